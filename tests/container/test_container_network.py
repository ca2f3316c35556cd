"""Networks: none has only lo, host shares the host's, bridge gives eth0 on pyci0 with NAT."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from executors.base import ExecutorError
from executors.container import network
from executors.container.names import new_container_id
from executors.container.network import (
    DEFAULT_SUBNET,
    AddressPool,
    Bridge,
    ensure_bridge,
    host_link_name,
)
from executors.container.runtime import run_container
from executors.container.spec import NetworkSpec
from tests.container.conftest import ETH0_OPERSTATE


@pytest.fixture(scope="module")
def bridge() -> Bridge:
    return ensure_bridge()


@pytest.fixture
def pool(bridge) -> AddressPool:
    return AddressPool(bridge)  # the machine-wide leases, as the executor uses them


def bridged(make_spec, pool: AddressPool, script: str, **fields):
    spec = make_spec("sh", "-c", script, **fields)
    address = pool.lease()
    net = NetworkSpec(
        "bridge", address, pool.bridge.gateway, pool.bridge.name, host_link_name(spec.id)
    )
    return dataclasses.replace(spec, network=net), address


def test_host_network_sees_the_hosts_links(launcher, make_spec):
    spec = make_spec("ls", "/sys/class/net", network=NetworkSpec("host"))
    _, out = run_container(launcher, spec, timeout=20)
    assert set(out.decode().split()) == set(os.listdir("/sys/class/net"))


def test_bridge_gives_eth0_with_the_leased_address(launcher, make_spec, pool):
    spec, address = bridged(make_spec, pool, "ls /sys/class/net; ip -4 addr show eth0; ip route")
    result, out = run_container(launcher, spec, timeout=20)
    text = out.decode()
    assert result.exit_code == 0, text
    assert text.split()[:2] == ["eth0", "lo"]
    assert f"inet {address}" in text
    assert f"default via {pool.bridge.gateway}" in text
    pool.release(address)


def test_bridge_reaches_a_server_on_the_bridge_address(launcher, make_spec, pool, bridge):
    server = socket.create_server((bridge.gateway, 0))
    port = server.getsockname()[1]
    received: list[bytes] = []

    def serve_once() -> None:
        server.settimeout(10)
        conn, _ = server.accept()
        with conn:
            received.append(conn.recv(100))
            conn.sendall(b"pong\n")

    thread = threading.Thread(target=serve_once)
    thread.start()
    try:
        spec, address = bridged(make_spec, pool, f"echo ping | nc -w 5 {bridge.gateway} {port}")
        result, out = run_container(launcher, spec, timeout=20)
        thread.join(10)
    finally:
        server.close()
        pool.release(address)
    assert (result.exit_code, out, received) == (0, b"pong\n", [b"ping\n"])


def test_two_containers_on_the_bridge_reach_each_other(launcher, make_spec, pool):
    server_spec, server_address = bridged(make_spec, pool, "echo hello | nc -l -p 7000")
    server_ip = server_address.split("/")[0]
    outcome = {}
    thread = threading.Thread(
        target=lambda: outcome.update(server=run_container(launcher, server_spec, timeout=20))
    )
    thread.start()
    connect = f"nc -w 2 {server_ip} 7000 2>/dev/null"
    # retried until the server listens (the container's timeout is the watchdog)
    script = f"for i in $(seq 600); do {connect} && exit 0; sleep 0.1; done; exit 1"
    client_spec, client_address = bridged(make_spec, pool, script)
    try:
        result, out = run_container(launcher, client_spec, timeout=20)
        thread.join(20)
    finally:
        pool.release(server_address)
        pool.release(client_address)
    assert (result.exit_code, out) == (0, b"hello\n")
    assert outcome["server"][0].exit_code == 0


def test_veth_disappears_with_the_container(launcher, make_spec, pool):
    spec, address = bridged(make_spec, pool, ETH0_OPERSTATE)
    _, out = run_container(launcher, spec, timeout=20)
    pool.release(address)
    assert out == b"up\n"
    # the no_leftovers fixture checks the host side of the pair is gone


def test_nat_rule_covers_the_subnet(bridge):
    rules = subprocess.run(
        ["iptables", "-t", "nat", "-S", "POSTROUTING"], capture_output=True, text=True
    ).stdout
    assert any(str(bridge.subnet) in r and "MASQUERADE" in r for r in rules.splitlines())
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"


# a pyci process of its own: leases `count` addresses once a line arrives on stdin, prints
# them, and holds them until stdin closes
HOLDER = """
import ipaddress, sys
from pathlib import Path
from executors.container.network import DEFAULT_SUBNET, LEASES_DIR, AddressPool, Bridge

directory = Path(sys.argv[2]) if len(sys.argv) > 2 else LEASES_DIR
pool = AddressPool(Bridge("pyci0", ipaddress.IPv4Network(DEFAULT_SUBNET)), directory)
sys.stdin.readline()
print(" ".join(pool.lease() for _ in range(int(sys.argv[1]))), flush=True)
sys.stdin.read()
"""


def _holder(count: int, *args: str, run_dir: Path | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    if run_dir is not None:
        env["PYCI_RUN_DIR"] = str(run_dir)
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(count), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _read_line(holder: subprocess.Popen[str]) -> str:
    assert holder.stdout is not None
    return holder.stdout.readline()


def test_two_runs_with_their_own_run_dirs_lease_disjoint_addresses(tmp_path):
    """Both lease from the machine-wide file at once (each waits for the same go), whatever
    PYCI_RUN_DIR says: no address is given twice."""
    holders = [_holder(20, run_dir=tmp_path / name) for name in ("run-a", "run-b")]
    try:
        for holder in holders:
            assert holder.stdin is not None
            holder.stdin.write("go\n")
            holder.stdin.flush()
        leased = [set(_read_line(holder).split()) for holder in holders]
    finally:
        for holder in holders:
            holder.communicate(timeout=30)  # closes stdin: each releases by exiting
    assert len(leased[0]) == len(leased[1]) == 20
    assert not leased[0] & leased[1]


def test_leases_are_unique_and_those_of_ended_processes_reclaimed(tmp_path):
    # a private lease file: no concurrent pyci run reclaims the dead leases before we look
    pool = AddressPool(Bridge("pyci0", ipaddress.IPv4Network(DEFAULT_SUBNET)), tmp_path)
    first, second = pool.lease(), pool.lease()
    assert first != second and first.endswith("/24")
    assert first.split("/")[0] != pool.bridge.gateway
    holder = _holder(1, str(tmp_path))
    assert holder.stdin is not None
    holder.stdin.write("go\n")
    holder.stdin.flush()
    killed = _read_line(holder).strip().split("/")[0]
    assert pool.holders()[killed] == holder.pid
    holder.kill()  # as kill -9 of a pyci run: no release
    holder.communicate()
    assert pool.release_stale() == [killed]
    assert pool.lease() == f"{killed}/24"  # the lowest free address, given again
    never_alive = pool.lease(owner_pid=2**22 + 1)  # beyond pid_max: a pid that cannot be alive
    assert pool.release_stale() == [never_alive.split("/")[0]]
    pool.release(first)
    pool.release(second)
    pool.release(f"{killed}/24")
    assert pool.holders() == {}


def test_host_link_names_fit_the_kernel_limit_and_carry_the_prefix(monkeypatch):
    # the longest prefix allowed, and ids that differ only beyond what a cut would keep
    monkeypatch.setenv("PYCI_ID_PREFIX", "pyci12345")
    ids = [f"pyci12345-4194303-{n:06x}" for n in range(1000)]
    link_names = {host_link_name(container_id) for container_id in ids}
    assert len(link_names) == len(ids)
    assert all(name.startswith("pyci12345") and len(name) <= 15 for name in link_names)


def test_an_invalid_id_prefix_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("PYCI_ID_PREFIX", "ci-run")
    with pytest.raises(ExecutorError, match=r"^PYCI_ID_PREFIX='ci-run': must be 'pyci' followed"):
        new_container_id()


def test_loopback_up_is_idempotent_in_a_fresh_namespace(launcher, make_spec):
    # `none` is the default: lo must be up (ping works) and there is no other link
    spec = make_spec("sh", "-c", "ping -c 1 -W 2 127.0.0.1 >/dev/null && echo ok")
    _, out = run_container(launcher, spec, timeout=20)
    assert out == b"ok\n"
    assert network.BRIDGE_NAME == "pyci0"
