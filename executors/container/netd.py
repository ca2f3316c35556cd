"""netd: the helper process that makes the bridge network's links, and pyci's client of it.

pyroute2 (the project's netlink library) costs ~160 ms of CPU to import. In pyci's own process
that import sat on the critical path of the first bridge container, while pyci's second core
idled during the CPU-bound load of the pipeline. So pyroute2 lives here: pyci spawns this
helper as early as the fork server (`python -S -m executors.container.netd FD`) and at once
asks it to ensure the bridge, so the import and the bridge/NAT checks run on the other core.

Protocol: one JSON request per SOCK_SEQPACKET message, answered in order by one JSON reply,
`{"ok": value}` or `{"error": "one line", "errno": n}`. Requests:

- `{"op": "ensure_bridge", "name": ..., "subnet": ...}`: the bridge with its gateway address,
  up, ip_forward and the NAT/forward rules (checked once per helper, again if the bridge went);
- `{"op": "add_veth", "host": ..., "bridge": ..., "mtu": n, "peer": ..., "pid": n}`: a veth
  pair up on the bridge whose peer is born in the network namespace of process `pid`;
- `{"op": "delete_link", "name": ...}`: true if there was such a link.

The helper serves one request at a time and exits when its socket reaches EOF: when pyci
closes it or dies, so it never outlives pyci.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

_REPO_ROOT = Path(__file__).resolve().parents[2]
_MAX_MESSAGE = 65536
_STOP_TIMEOUT = 5.0


class NetdError(OSError):
    """The network helper could not do what was asked (or could not run at all); `errno` is
    the failed call's, when there was one."""


def _error(message: str, errno: int | None = None) -> NetdError:
    error = NetdError(message)  # str(error) is the message alone, not "[Errno n] ..."
    error.errno = errno
    return error


# --- the helper process -----------------------------------------------------------------------


class _Server:
    def __init__(self) -> None:
        self._ensured: set[tuple[str, str]] = set()
        try:
            from executors.container import netlink  # imports pyroute2: the slow part
        except ImportError as exc:
            self._netlink: Any = None
            self._import_error = f"cannot import pyroute2 in the network helper ({exc})"
        else:
            self._netlink = netlink
            self._import_error = ""

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        if self._netlink is None:
            return {"error": self._import_error, "errno": None}
        op = request.get("op")
        try:
            if op == "ensure_bridge":
                return {"ok": self.ensure_bridge(request["name"], request["subnet"])}
            if op == "add_veth":
                return {"ok": self.add_veth(**{k: v for k, v in request.items() if k != "op"})}
            if op == "delete_link":
                return {"ok": self._netlink.delete_link(request["name"])}
            return {"error": f"unknown request {op!r}", "errno": None}
        except OSError as exc:  # its strerror is our one-line message when we made it
            return {"error": exc.strerror or str(exc), "errno": exc.errno}
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
            cmd = " ".join(exc.cmd)
            return {"error": f"{cmd}: {detail[-1] if detail else exc}", "errno": None}
        except Exception as exc:  # a bug: say so in the reply, keep the details on stderr
            traceback.print_exc()
            return {"error": f"{op}: {type(exc).__name__}: {exc}", "errno": None}

    def ensure_bridge(self, name: str, subnet: str) -> None:
        key = (name, subnet)
        if key in self._ensured and os.path.exists(f"/sys/class/net/{name}"):
            return
        network = ipaddress.IPv4Network(subnet)
        gateway = str(next(network.hosts()))
        netlink = self._netlink
        if netlink.link_index(name) is None:
            try:
                netlink.add_bridge(name)
            except OSError as exc:  # another pyci run may have won the race
                if netlink.link_index(name) is None:
                    message = f"cannot create bridge {name}: {exc.strerror}"
                    raise OSError(exc.errno, message) from exc
        index = netlink.link_index(name)
        if index is None:
            raise OSError(f"bridge {name} vanished while being set up")
        try:
            netlink.add_address(index, gateway, network.prefixlen)  # False: had it already
            netlink.set_up(index)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot set up bridge {name}: {exc.strerror}") from exc
        try:
            _enable_nat(name, str(network))
        except OSError as exc:  # no iptables, a read-only /proc/sys
            detail = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
            raise OSError(exc.errno, f"cannot set up NAT for bridge {name}: {detail}") from exc
        self._ensured.add(key)

    def add_veth(self, host: str, bridge: str, mtu: int, peer: str, pid: int) -> None:
        master = self._netlink.link_index(bridge)
        if master is None:
            raise OSError(f"bridge {bridge} does not exist")
        try:
            self._netlink.add_veth(host, master, mtu, peer, pid)
        except OSError as exc:
            what = f"veth {host} with its peer in the network namespace of pid {pid}"
            raise OSError(exc.errno, f"cannot create {what}: {exc.strerror}") from exc


def _enable_nat(bridge: str, subnet: str) -> None:
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1")
    rules = [
        ["-t", "nat", "POSTROUTING", "-s", subnet, "!", "-o", bridge,
         "-j", "MASQUERADE", "-m", "comment", "--comment", "pyci"],
        ["-t", "filter", "FORWARD", "-i", bridge, "-j", "ACCEPT",
         "-m", "comment", "--comment", "pyci"],
        ["-t", "filter", "FORWARD", "-o", bridge, "-j", "ACCEPT",
         "-m", "comment", "--comment", "pyci"],
    ]  # fmt: skip
    # the checks run side by side (each is an iptables process reading the rule set)
    checks = [
        subprocess.Popen(
            ["iptables", "-w", *rule[:2], "-C", *rule[2:]],  # -w: legacy iptables' lock
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for rule in rules
    ]
    missing = [rule for rule, check in zip(rules, checks, strict=True) if check.wait() != 0]
    for rule in missing:
        subprocess.run(
            ["iptables", "-w", *rule[:2], "-A", *rule[2:]], check=True, capture_output=True
        )


def serve(fd: int) -> None:
    """Answer requests on socket `fd` until it reaches EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is pyci's; EOF tells us to go
    os.set_inheritable(fd, False)
    with socket.socket(fileno=fd) as sock:
        server = _Server()
        while True:
            try:
                data = sock.recv(_MAX_MESSAGE)
            except ConnectionResetError:
                data = b""
            if not data:
                return
            reply = server.answer(json.loads(data))
            try:
                sock.send(json.dumps(reply).encode())
            except (BrokenPipeError, ConnectionResetError):
                return


def main(argv: list[str]) -> int:
    library = os.environ.pop(_LIBRARY_DIR, "")
    if library and library not in sys.path:
        sys.path.append(library)
    serve(int(argv[0]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # nothing to finalize; pyci may be waiting for us at its exit


# --- pyci's side ------------------------------------------------------------------------------


_LIBRARY_DIR = "PYCI_NETD_LIBRARY_DIR"  # where pyci found pyroute2 (netd runs with -S)


def helper_command(fd: int) -> list[str]:
    # -S: no `site` (.pth files, import hooks) at start-up; PYTHONPATH names what we import
    return [sys.executable, "-S", "-m", "executors.container.netd", str(fd)]


def helper_env() -> dict[str, str]:
    """Our environment with PYTHONPATH naming this repository and pyroute2's install dir
    (found without importing pyroute2 here, which is the point of the helper)."""
    entries = [str(_REPO_ROOT)]
    env = dict(os.environ)
    if env.get("PYTHONPATH"):
        entries.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(entries))
    spec = importlib.util.find_spec("pyroute2")
    if spec is not None and spec.submodule_search_locations:
        # appended to sys.path by the helper, after the standard library (PYTHONPATH would
        # put the whole site-packages dir first, where a package could shadow a stdlib one)
        env[_LIBRARY_DIR] = str(Path(next(iter(spec.submodule_search_locations))).parent)
    return env


class Netd:
    """pyci's client of the helper, safe to use from any thread. The helper is spawned on the
    first request; requests are answered in order, so `submit` can send one
    early (the bridge, while the pipeline loads) and a later `call` reads its reply first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._waiting: collections.deque[tuple[int, bool]] = collections.deque()
        self._replies: dict[int, dict[str, Any]] = {}
        self._tickets = 0

    def submit(self, op: str, keep: bool = True, **fields: Any) -> int:
        """Send a request now; its reply is read by `result(ticket)` (dropped unless `keep`)."""
        with self._lock:
            sock = self._ensure_started()
            try:
                sock.send(json.dumps({"op": op, **fields}).encode())
            except OSError as exc:  # EPIPE: it is gone
                raise self._died("the network helper exited") from exc
            self._tickets += 1
            self._waiting.append((self._tickets, keep))
            return self._tickets

    def result(self, ticket: int) -> Any:
        with self._lock:
            while ticket not in self._replies:
                if all(waiting != ticket for waiting, _ in self._waiting):
                    raise _error("the network helper exited before answering")
                self._read_reply()
            reply = self._replies.pop(ticket)
        if "error" in reply:
            raise _error(reply["error"], reply.get("errno"))
        return reply["ok"]

    def call(self, op: str, **fields: Any) -> Any:
        return self.result(self.submit(op, **fields))

    def close(self) -> None:
        """Close the socket (the helper then exits) and reap the helper. A helper still busy
        with requests nobody will read (the early bridge set-up of a run that failed to load)
        is killed with its iptables children rather than waited for: every step it takes is
        checked again by the next helper, and a killed `iptables` changes nothing or all."""
        with self._lock:
            sock, process = self._sock, self._process
            busy = bool(self._waiting)
            self._sock = self._process = None
            self._waiting.clear()
            self._replies.clear()
        if sock is not None:
            sock.close()
        if process is not None:
            if busy:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # its own group: see _ensure_started
            try:
                process.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _ensure_started(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            try:
                self._process = subprocess.Popen(
                    helper_command(theirs.fileno()),
                    pass_fds=[theirs.fileno()],
                    stdin=subprocess.DEVNULL,
                    env=helper_env(),
                    cwd="/",
                    process_group=0,  # so close() can end it with its iptables children
                )
            except OSError as exc:
                ours.close()
                message = f"cannot start the network helper ({sys.executable}): {exc}"
                raise _error(message, exc.errno) from exc
        self._sock = ours
        return ours

    def _read_reply(self) -> None:
        assert self._sock is not None
        try:
            data = self._sock.recv(_MAX_MESSAGE)
        except OSError:
            data = b""
        if not data:
            raise self._died("the network helper exited")
        ticket, keep = self._waiting.popleft()
        if keep:
            self._replies[ticket] = json.loads(data)

    def _died(self, what: str) -> NetdError:
        """Forget a helper that is gone (the next request starts a fresh one)."""
        sock, process = self._sock, self._process
        self._sock = self._process = None
        self._waiting.clear()
        self._replies.clear()
        status = ""
        if sock is not None:
            sock.close()
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                status = f" (exit status {process.wait(timeout=_STOP_TIMEOUT)})"
        return _error(what + status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
