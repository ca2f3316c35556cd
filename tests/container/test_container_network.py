"""Networks: none has only lo, host shares the host's, bridge gives eth0 on pyci0 with NAT."""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
from pathlib import Path

import pytest

from executors.container import network
from executors.container.network import AddressPool, Bridge, ensure_bridge, host_link_name
from executors.container.runtime import run_container
from executors.container.spec import NetworkSpec


@pytest.fixture(scope="module")
def bridge() -> Bridge:
    return ensure_bridge()


@pytest.fixture
def pool(bridge, state_dir) -> AddressPool:
    return AddressPool(bridge, state_dir / "ipam")


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
    script = f"for i in $(seq 50); do {connect} && exit 0; sleep 0.1; done; exit 1"
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
    spec, address = bridged(make_spec, pool, "cat /sys/class/net/eth0/operstate")
    _, out = run_container(launcher, spec, timeout=20)
    pool.release(address)
    assert out == b"up\n"
    # the no_leftovers fixture checks the host side of the pair is gone


def test_nat_rule_covers_the_subnet(bridge):
    import subprocess

    rules = subprocess.run(
        ["iptables", "-t", "nat", "-S", "POSTROUTING"], capture_output=True, text=True
    ).stdout
    assert any(str(bridge.subnet) in r and "MASQUERADE" in r for r in rules.splitlines())
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"


def test_address_leases_are_unique_and_stale_ones_recovered(pool):
    first, second = pool.lease(), pool.lease()
    assert first != second and first.endswith("/24")
    assert first.split("/")[0] != pool.bridge.gateway
    dead = pool.lease(owner_pid=2**22 + 1)  # beyond pid_max: a pid that cannot be alive
    assert pool.release_stale() == [dead.split("/")[0]]
    pool.release(first)
    pool.release(second)
    assert list(pool.directory.iterdir()) == []


def test_host_link_names_fit_the_kernel_limit():
    name = host_link_name("pyci-0123456789abcdef")
    assert name.startswith("pyci") and len(name) <= 15


def test_loopback_up_is_idempotent_in_a_fresh_namespace(launcher, make_spec):
    # `none` is the default: lo must be up (ping works) and there is no other link
    spec = make_spec("sh", "-c", "ping -c 1 -W 2 127.0.0.1 >/dev/null && echo ok")
    _, out = run_container(launcher, spec, timeout=20)
    assert out == b"ok\n"
    assert network.BRIDGE_NAME == "pyci0"
