"""Hostile images against pyci's mounts: links out of the root, and device nodes.

The threat: an image whose `/builds`, `/etc`, `/etc/hosts`, ... is a symbolic link to a host
path (absolute, or `../../..` relative) made pyci create directories and files on the host
when it prepared its mount targets. And with CAP_MKNOD, a job's device nodes worked on every
mount but /dev. Each test runs in every network mode and on both kinds of root: the busybox
image and the host's own root, each with a hostile layer on top.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from executors.base import BuildDirs, ExecutorError, StageCommand
from executors.container.executor import ContainerExecutor, ContainerSettings
from executors.container.images import HOST_HIDDEN_PATHS
from executors.container.network import AddressPool, ensure_bridge, host_link_name
from executors.container.runtime import ContainerError, run_container
from executors.container.spec import ContainerSpec, Mount, NetworkSpec
from executors.linux import syscalls
from runner.core.jobspec import ImageSpec, JobSpec

MODES = ("none", "host", "bridge")
KINDS = ("busybox", "host-root")
HOSTS_TEXT = "10.9.8.7\tescape-test\n"
# deep enough to climb from any container's merged dir to the host's /
CLIMB = "../" * 16


@pytest.fixture
def victim() -> Iterator[Path]:
    """A host directory the hostile links point into; it must stay empty."""
    path = Path(tempfile.mkdtemp(prefix="escape-victim-"))
    yield path
    shutil.rmtree(path)


@pytest.fixture
def sources() -> Iterator[Path]:
    """What the executor binds: /etc files and the build's project and scratch dirs."""
    path = Path(tempfile.mkdtemp(prefix="escape-sources-"))
    (path / "hosts").write_text(HOSTS_TEXT)
    (path / "hostname").write_text("escape-test\n")
    (path / "resolv.conf").write_text("nameserver 10.9.8.1\n")
    (path / "project").mkdir()
    (path / "project" / "README").write_text("the project\n")
    (path / "project.tmp").mkdir()
    yield path
    shutil.rmtree(path)


@pytest.fixture
def layer() -> Iterator[Path]:
    """The hostile top layer. On a tmpfs of its own: overlayfs refuses a lower layer inside
    another one (ELOOP), and the host-root kind's bottom layer is the host's /."""
    path = Path(tempfile.mkdtemp(prefix="escape-layer-"))
    syscalls.mount("tmpfs", str(path), "tmpfs", 0, "mode=755,size=1m")
    yield path
    syscalls.umount2(str(path), syscalls.MNT_DETACH)
    path.rmdir()


def executor_mounts(sources: Path) -> tuple[Mount, ...]:
    """The container executor's mount list (executor.py: _spec and _run_container)."""
    return (
        Mount("/etc/hosts", source=str(sources / "hosts")),
        Mount("/etc/hostname", source=str(sources / "hostname")),
        Mount("/etc/resolv.conf", source=str(sources / "resolv.conf")),
        Mount("/builds/group/project", source=str(sources / "project")),
        Mount("/builds/group/project.tmp", source=str(sources / "project.tmp")),
    )


@pytest.fixture
def run_in(make_spec, launcher, busybox_rootfs, state_dir, sources):
    """Run `script` on a root of `kind` with `layer` on top, in network `mode`."""

    def run(kind: str, mode: str, layer: Path, script: str) -> tuple[int | None, str]:
        lower = (str(busybox_rootfs) if kind == "busybox" else "/", str(layer))
        hidden = HOST_HIDDEN_PATHS if kind == "host-root" else ()
        spec: ContainerSpec = make_spec(
            "/bin/sh", "-c", script, lower=lower, hidden_paths=hidden,
            mounts=executor_mounts(sources), network=NetworkSpec(mode),
        )  # fmt: skip
        address, pool = None, None
        if mode == "bridge":
            pool = AddressPool(ensure_bridge(), state_dir / "ipam")
            address = pool.lease()
            bridge = pool.bridge
            net = NetworkSpec(
                "bridge", address, bridge.gateway, bridge.name, host_link_name(spec.id)
            )
            spec = dataclasses.replace(spec, network=net)
        try:
            result, output = run_container(launcher, spec, timeout=30)
        finally:
            if pool is not None and address is not None:
                pool.release(address)
        return result.exit_code, output.decode()

    return run


def link_target(victim: Path, style: str) -> str:
    host_path = f"{victim}/x"
    return host_path if style == "absolute" else CLIMB + host_path.lstrip("/")


def plant(layer: Path, path: str, target: str) -> None:
    link = layer / path.lstrip("/")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


# a mount target that is a link resolves inside the root: the job sees its file there
RESOLVED_INSIDE = {
    "/builds": "cat /builds/group/project/README",
    "/etc": "cat /etc/hosts",
    "/etc/hosts": "cat /etc/hosts",
    "/etc/resolv.conf": "cat /etc/resolv.conf",
}
EXPECTED_OUTPUT = {
    "/builds": "the project\n",
    "/etc": HOSTS_TEXT,
    "/etc/hosts": HOSTS_TEXT,
    "/etc/resolv.conf": "nameserver 10.9.8.1\n",
}


@pytest.mark.parametrize("style", ["absolute", "relative"])
@pytest.mark.parametrize("path", sorted(RESOLVED_INSIDE))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_linked_mount_target_resolves_inside_the_root(
    run_in, layer, victim, kind, mode, path, style
):
    plant(layer, path, link_target(victim, style))
    code, output = run_in(kind, mode, layer, f"{RESOLVED_INSIDE[path]}; ls -d {victim}/x")
    assert code == 0, output
    # the link's target exists now, in the container's own file system
    assert output == EXPECTED_OUTPUT[path] + f"{victim}/x\n"
    assert os.listdir(victim) == []


@pytest.mark.parametrize("style", ["absolute", "relative"])
@pytest.mark.parametrize("path", ["/dev", "/proc", "/sys"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_linked_kernel_file_system_mount_point_is_refused(
    run_in, layer, victim, kind, mode, path, style
):
    plant(layer, path, link_target(victim, style))
    with pytest.raises(ContainerError) as caught:
        run_in(kind, mode, layer, "true")
    assert f"mount point {path}: the image has a symbolic link there" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert os.listdir(victim) == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_mount_target_of_the_wrong_type_is_refused(run_in, layer, kind):
    (layer / "etc" / "hosts").mkdir(parents=True)
    with pytest.raises(ContainerError) as caught:
        run_in(kind, "none", layer, "true")
    expected = "mount target /etc/hosts: the image has something other than a regular file"
    assert expected in str(caught.value)


@pytest.mark.parametrize("kind", KINDS)
def test_a_link_loop_is_refused(run_in, layer, kind):
    (layer / "builds").symlink_to("loop")
    (layer / "loop").symlink_to("builds")
    with pytest.raises(ContainerError) as caught:
        run_in(kind, "none", layer, "true")
    assert "mount target /builds/group/project: its links loop" in str(caught.value)


@pytest.mark.parametrize(
    ("path", "target", "expected"),
    [
        (
            "/etc/hosts",
            "/proc/sys/kernel/core_pattern",
            "the image's links lead into /proc or /sys",
        ),
        ("/etc/resolv.conf", "/sys/kernel/mm/ksm/run", "the image's links lead into /proc or /sys"),
        # /proc/1/root of PID 1 is, while it builds the root, the host's /
        ("/builds", "/proc/1/root/tmp", "one is a /proc magic link"),
        ("/builds", "/proc/self/cwd", "one is a /proc magic link"),
    ],
)
def test_a_link_into_proc_or_sys_is_refused(run_in, layer, victim, path, target, expected):
    plant(layer, path, target)
    with pytest.raises(ContainerError) as caught:
        run_in("busybox", "none", layer, "true")
    assert expected in str(caught.value)


MKNOD_AND_OPEN = """
for dir in {dirs}; do
    mknod ${{dir%/}}/null-node c 1 3 || echo "$dir: mknod failed"
    if echo x > ${{dir%/}}/null-node; then echo "$dir: opened"; else echo "$dir: refused"; fi
done
echo x > /dev/null && echo "/dev: opened"
"""


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_device_nodes_do_not_open_outside_dev(run_in, layer, sources, kind, mode):
    # /tmp: the overlay in busybox, a tmpfs hiding the host's /tmp in host-root;
    # /builds/...: a bind of a host directory; /: the overlay root
    dirs = "/builds/group/project /tmp /"
    code, output = run_in(kind, mode, layer, MKNOD_AND_OPEN.format(dirs=dirs))
    assert code == 0, output
    for directory in dirs.split():
        assert f"{directory}: refused" in output, output
    assert "mknod failed" not in output  # CAP_MKNOD is Docker's: the node is made, not usable
    assert "/dev: opened" in output  # the container's own /dev keeps working
    node = sources / "project" / "null-node"
    assert node.is_char_device()  # the host sees the node; the job could not use it


@pytest.fixture
def secret_dir() -> Iterator[Path]:
    """A host directory outside the paths the host-root image hides, with a file in it."""
    path = Path(tempfile.mkdtemp(prefix="escape-hidden-", dir="/var/tmp"))
    (path / "private-file").write_text("host data\n")
    yield path
    shutil.rmtree(path)


@pytest.mark.parametrize("style", ["absolute", "relative"])
def test_a_hidden_path_that_is_a_link_is_hidden_where_it_points_in_the_root(
    run_in, layer, secret_dir, style
):
    # the host root's /home is hidden behind an empty tmpfs; a link /home -> elsewhere must
    # hide elsewhere *in the container*, not a host path of that name
    target = str(secret_dir) if style == "absolute" else CLIMB + str(secret_dir).lstrip("/")
    plant(layer, "/home", target)
    code, output = run_in("host-root", "none", layer, f"ls -A /home/ {secret_dir}/")
    assert code == 0, output
    assert output == f"/home/:\n\n{secret_dir}/:\n"  # both empty: the same hidden directory
    assert (secret_dir / "private-file").read_text() == "host data\n"


def test_the_executor_fails_a_hostile_image_in_one_line(
    state_dir, launcher, busybox_rootfs, sources, tmp_path
):
    image = tmp_path / "image"
    shutil.copytree(busybox_rootfs, image, symlinks=True)
    (image / "dev").symlink_to("/tmp")
    settings = ContainerSettings(state_dir=state_dir, network="none")
    executor = ContainerExecutor(settings, launcher)
    job = JobSpec(name="hostile", stage="test", stage_index=0, script=("true",),
                  image=ImageSpec(str(image)))  # fmt: skip
    dirs = BuildDirs(sources / "project", sources / "project.tmp")
    executor.prepare(job, dirs, _Log())
    try:
        with pytest.raises(ExecutorError) as caught:
            executor.run(StageCommand("step_script", "true", 30, {}), _Log(), threading.Event())
    finally:
        executor.cleanup()
    message = str(caught.value)
    assert "mount point /dev: the image has a symbolic link there" in message
    assert "\n" not in message


class _Log:
    def write(self, text: str) -> None:
        pass
