"""ContainerSpec is plain data: it survives JSON and a broken one is refused before any mount."""

from __future__ import annotations

import dataclasses

import pytest

from executors.container.spec import (
    ContainerSpec,
    Mount,
    NetworkSpec,
    Rootfs,
    SpecError,
    validate,
)
from executors.linux import syscalls


def a_spec(**fields) -> ContainerSpec:
    rootfs = Rootfs(("/lower1", "/lower2"), "/s/upper", "/s/work", "/s/merged", ("/home",))
    base = dict(id="pyci-x", command=("sh", "-c", "true"), rootfs=rootfs)
    return ContainerSpec(**{**base, **fields})


def test_json_round_trip_is_lossless():
    spec = a_spec(
        env=(("A", "1"),),
        mounts=(Mount("/b", source="/h"), Mount("/t", kind="tmpfs", options="size=1m")),
        network=NetworkSpec("bridge", "10.1.0.2/24", "10.1.0.1", "pyci0", "pycix"),
        cgroup_dirs=("/sys/fs/cgroup/pids/pyci-x",),
        user="1000:1000",
    )
    assert ContainerSpec.from_json(spec.to_json()) == spec
    assert validate(spec) is spec


def test_validate_names_every_problem():
    spec = a_spec(
        id="job",
        command=(),
        hostname="bad_host!",
        cwd="relative",
        mounts=(Mount("/x/../etc", source="/h"), Mount("/y", source=None)),
        capabilities=("CAP_NOPE",),
        network=NetworkSpec("bridge"),
        env=(("A=B", "1"),),
    )
    with pytest.raises(SpecError) as caught:
        validate(spec)
    message = str(caught.value)
    for expected in (
        "command is empty",
        "must contain 'pyci'",
        "'bad_host!' is not a valid host name",
        "cwd 'relative'",
        "mount target '/x/../etc'",
        "bind mount to '/y' needs an absolute source",
        "unknown capability 'CAP_NOPE'",
        "bridge network needs address",
        "environment variable name 'A=B'",
    ):
        assert expected in message


def test_rootfs_needs_a_lower_layer():
    spec = a_spec()
    broken = dataclasses.replace(spec, rootfs=dataclasses.replace(spec.rootfs, lower_dirs=()))
    with pytest.raises(SpecError, match="no lower layer"):
        validate(broken)


def test_failed_system_call_names_call_and_arguments(tmp_path):
    with pytest.raises(OSError) as caught:
        syscalls.mount("none", str(tmp_path / "absent"), "tmpfs", syscalls.MS_NOSUID, "size=1m")
    text = str(caught.value)
    assert text.startswith("[Errno 2] mount(source='none', target=")
    assert "fstype='tmpfs', flags=2, data='size=1m'" in text
    assert caught.value.errno == 2
