"""A container started through the launcher: isolation, file system view, I/O and exit codes."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from pathlib import Path

import pytest

from executors.container.capabilities import DOCKER_DEFAULT_CAPABILITIES, mask_of
from executors.container.runtime import ContainerError, Launcher, run_container
from executors.container.spec import Mount, Rootfs


def sh(launcher, spec_factory, script: str, expect: int = 0, **fields) -> str:
    """Run `script` with busybox sh; assert its exit code, return its output."""
    spec = spec_factory("sh", "-c", script, **fields)
    result, output = run_container(launcher, spec, timeout=20)
    assert result.exit_code == expect, output
    return output.decode()


def test_exit_code_and_output(launcher, make_spec):
    out = sh(launcher, make_spec, "echo hello; echo oops >&2; exit 3", expect=3)
    assert out.splitlines() == ["hello", "oops"]


def test_stdin_reaches_the_command(launcher, make_spec):
    spec = make_spec("sh", "-c", "read line; echo got:$line")
    result, out = run_container(launcher, spec, stdin=b"ping\n", timeout=20)
    assert (result.exit_code, out) == (0, b"got:ping\n")


def test_killed_by_signal_is_negative(launcher, make_spec):
    sh(launcher, make_spec, "kill -TERM $$", expect=-15)


def test_own_pid_namespace_with_our_init_as_pid_1(launcher, make_spec):
    out = sh(launcher, make_spec, "echo $$; ls /proc | grep -c '^[0-9]'")
    pid, processes = out.split()
    assert pid == "2"  # PID 1 is pyci's init, the command its first child
    assert int(processes) <= 4  # init, sh, ls, grep: nothing of the host


def test_pid_1_reaps_orphans(launcher, make_spec):
    # an orphan that exits at once; wait (bounded) until PID 1 has reaped it, then count
    # zombies: an orphan never reaped stays a zombie and the count is 1
    script = (
        "(sh -c 'echo $$ > /tmp/orphan' &); until [ -s /tmp/orphan ]; do sleep 0.01; done; "
        "i=0; while [ -e /proc/$(cat /tmp/orphan) ] && [ $i -lt 1000 ]; do i=$((i+1)); "
        "sleep 0.01; done; ps -o stat,comm | grep -c '^Z' || true"
    )
    out = sh(launcher, make_spec, script)
    assert out.strip() == "0"


def test_exit_of_the_command_kills_the_rest(launcher, make_spec):
    # waiting for the sleeps would run into the timeout; no_leftovers sees no surviving sleep
    spec = make_spec("sh", "-c", "sleep 600 & sleep 600 & exit 0")
    result, output = run_container(launcher, spec, timeout=120)
    assert (result.exit_code, result.timed_out) == (0, False), output


def test_hostname_is_the_containers(launcher, make_spec):
    out = sh(launcher, make_spec, "hostname; cat /proc/sys/kernel/hostname", hostname="job-1")
    assert out.split() == ["job-1", "job-1"]


def test_mount_view_is_the_image_only(launcher, make_spec, busybox_rootfs):
    out = sh(launcher, make_spec, "ls /; cat /proc/mounts")
    top = set(out.split("\n\n")[0].split()) if "\n\n" in out else set(out.split())
    assert {"bin", "etc", "proc", "dev", "sys"} <= top
    assert "work" not in top and "home" not in top
    assert str(busybox_rootfs) not in out.split("overlay / overlay")[1].split("\n", 1)[1]


def test_writes_go_to_the_throwaway_layer(launcher, make_spec, busybox_rootfs):
    spec = make_spec("sh", "-c", "echo x > /etc/created; rm /etc/group")
    result, _ = run_container(launcher, spec, timeout=20)
    assert result.exit_code == 0
    assert not (busybox_rootfs / "etc" / "created").exists()
    assert (busybox_rootfs / "etc" / "group").exists()
    assert (Path(spec.rootfs.upper_dir) / "etc" / "created").read_text() == "x\n"


def test_host_root_as_lower_layer_hides_private_paths(launcher, make_spec, tmp_path_factory):
    hidden = ("/home", "/root", "/tmp", "/run")
    script = "ls -A /home /root /tmp /run | grep -v ':$' | grep -c . ; test -x /usr/bin/env"
    spec = make_spec("sh", "-c", script, lower=("/",), hidden_paths=hidden)
    result, out = run_container(launcher, spec, timeout=20)
    assert (result.exit_code, out.strip()) == (0, b"0")


def test_docker_default_capabilities(launcher, make_spec):
    out = sh(launcher, make_spec, "grep -E '^Cap(Eff|Prm|Bnd|Inh)' /proc/self/status")
    caps = dict(line.split(":\t") for line in out.splitlines())
    expected = mask_of(DOCKER_DEFAULT_CAPABILITIES)
    assert int(caps["CapEff"], 16) == expected
    assert int(caps["CapPrm"], 16) == expected
    assert int(caps["CapBnd"], 16) == expected
    assert int(caps["CapInh"], 16) == 0


def test_without_cap_sys_admin_mount_fails(launcher, make_spec):
    out = sh(launcher, make_spec, "mount -t tmpfs none /mnt 2>&1; echo rc=$?")
    assert "rc=0" not in out


def test_non_root_user_has_no_effective_capabilities(launcher, make_spec):
    out = sh(launcher, make_spec, "id -u; id -g; grep CapEff /proc/self/status", user="nobody")
    lines = out.split()
    assert lines[:2] == ["65534", "65534"]
    assert int(lines[3], 16) == 0


def test_numeric_user_and_group(launcher, make_spec):
    out = sh(launcher, make_spec, "id -u; id -g", user="1234:1000")
    assert out.split() == ["1234", "1000"]


def test_unknown_user_is_a_setup_error(launcher, make_spec):
    with pytest.raises(ContainerError, match="unable to find user ghost"):
        sh(launcher, make_spec, "true", user="ghost")


def test_masked_and_readonly_proc_paths(launcher, make_spec):
    for path in ("/proc/interrupts", "/proc/keys", "/proc/timer_list", "/proc/acpi"):
        assert Path(path).exists()  # on the host, so masking them is what hides them
    script = (
        "cat /proc/interrupts /proc/keys /proc/timer_list | wc -c; ls /proc/acpi | wc -l; "
        "(echo 1 > /proc/sys/vm/drop_caches) 2>/dev/null && echo wrote || echo ro; "
        "(echo t > /proc/sysrq-trigger) 2>/dev/null && echo wrote || echo ro"
    )
    out = sh(launcher, make_spec, script)
    assert out.split() == ["0", "0", "ro", "ro"]


def test_sys_is_read_only(launcher, make_spec):
    out = sh(
        launcher, make_spec, "grep ' /sys ' /proc/mounts; touch /sys/x 2>/dev/null || echo denied"
    )
    mount_line, verdict = out.splitlines()
    assert " ro," in mount_line and verdict == "denied"


def test_dev_has_standard_nodes_only(launcher, make_spec):
    script = (
        "ls /dev | sort | tr '\\n' ' '; echo; echo x > /dev/shm/f && cat /dev/shm/f; "
        "head -c 4 /dev/zero | wc -c; readlink /dev/ptmx; grep -c devpts /proc/mounts"
    )
    out = sh(launcher, make_spec, script)
    names, shm, zero, ptmx, devpts = out.splitlines()
    assert set(names.split()) == {
        "core", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm",
        "stderr", "stdin", "stdout", "tty", "urandom", "zero",
    }  # fmt: skip
    assert (shm, zero.strip(), ptmx, devpts) == ("x", "4", "pts/ptmx", "1")


def test_no_new_privs(launcher, make_spec):
    off = sh(launcher, make_spec, "grep NoNewPrivs /proc/self/status")
    on = sh(launcher, make_spec, "grep NoNewPrivs /proc/self/status", no_new_privs=True)
    assert off.split()[-1] == "0" and on.split()[-1] == "1"


def test_generated_files_and_bind_mounts(launcher, make_spec, tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n10.0.0.9 db\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("from host")
    mounts = (
        Mount("/etc/hosts", source=str(hosts)),
        Mount("/builds/group/project", source=str(data)),
        Mount("/ro", source=str(data), readonly=True),
        Mount("/scratch", kind="tmpfs", options="size=1m"),
    )
    script = (
        "grep db /etc/hosts; cat /builds/group/project/in.txt; echo; "
        "echo out > /builds/group/project/out.txt; touch /ro/x 2>/dev/null || echo ro-ok; "
        "grep -c ' /scratch tmpfs' /proc/mounts; pwd"
    )
    out = sh(launcher, make_spec, script, mounts=mounts, cwd="/builds/group/project")
    assert out.splitlines() == ["10.0.0.9 db", "from host", "ro-ok", "1", "/builds/group/project"]
    assert (data / "out.txt").read_text() == "out\n"


def test_environment_is_exactly_the_specs(launcher, make_spec):
    out = sh(launcher, make_spec, "env", env=(("A", "1"), ("PATH", "/bin")))
    # the spec's variables, HOME from passwd, and what sh itself sets; nothing from pyci
    assert set(out.split()) - {"PWD=/", "SHLVL=1"} == {"A=1", "PATH=/bin", "HOME=/root"}


def test_network_none_has_only_loopback_up(launcher, make_spec):
    out = sh(launcher, make_spec, "ls /sys/class/net; cat /sys/class/net/lo/operstate")
    assert out.split() == ["lo", "unknown"]  # lo reports "unknown" when up


def test_every_container_has_a_fresh_network_namespace(launcher, make_spec):
    """The server makes each container's namespace ahead of time: never one twice, never the
    host's, and a socket bound in one is gone in the next."""
    script = "readlink /proc/self/ns/net; nc -l -p 7000 -e true & sleep 0.1; netstat -ltn"
    first, second = (sh(launcher, make_spec, script).splitlines() for _ in range(2))
    host = os.readlink("/proc/self/ns/net")
    assert len({first[0], second[0], host}) == 3
    assert sum(":7000" in line for line in first) == sum(":7000" in line for line in second) == 1


def test_timeout_kills_the_container(launcher, make_spec):
    spec = make_spec("sh", "-c", "sleep 60")
    result, _ = run_container(launcher, spec, timeout=0.3)
    assert result.timed_out and not result.canceled
    assert result.exit_code in (None, -signal.SIGKILL)  # killed, not the sleep's exit 0


def test_cancel_kills_the_container(launcher, make_spec):
    spec = make_spec("sh", "-c", "sleep 60")
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    result, _ = run_container(launcher, spec, cancel=cancel, timeout=30)
    assert result.canceled and not result.timed_out


def test_missing_command_names_it(launcher, make_spec):
    with pytest.raises(ContainerError, match="exec 'no-such-tool'"):
        run_container(launcher, make_spec("no-such-tool"), timeout=20)


def test_broken_rootfs_error_names_the_mount_call(launcher, make_spec, tmp_path):
    spec = make_spec("true", lower=(str(tmp_path / "missing"),))
    with pytest.raises(ContainerError, match=r"mount\(source='overlay'.*fstype='overlay'"):
        run_container(launcher, spec, timeout=20)


def test_once_mode_launcher_runs_the_same(make_spec):
    once = Launcher("once")
    result, out = run_container(once, make_spec("sh", "-c", "echo $$"), timeout=20)
    assert (result.exit_code, out) == (0, b"2\n")


def test_seccomp_filter_is_active_and_blocks_namespaces(launcher, make_spec):
    # unshare -U needs no capability, so only the filter can refuse it
    script = (
        "grep Seccomp: /proc/self/status; "
        "unshare -U true 2>/dev/null && echo allowed || echo denied"
    )
    without = sh(launcher, make_spec, script)
    with_filter = sh(launcher, make_spec, script, seccomp=True)
    with_nnp = sh(launcher, make_spec, script, seccomp=True, no_new_privs=True)
    assert without.split() == ["Seccomp:", "0", "allowed"]
    assert with_filter.split() == ["Seccomp:", "2", "denied"]
    assert with_nnp.split() == ["Seccomp:", "2", "denied"]


def test_seccomp_keeps_ordinary_work_working(launcher, make_spec):
    script = (
        "echo x | tr x y; ls / >/dev/null; sh -c 'sleep 0 & wait'; "
        "ping -c1 -W1 127.0.0.1 >/dev/null && echo ok"
    )
    assert sh(launcher, make_spec, script, seccomp=True).split() == ["y", "ok"]


def test_tmpfs_upper_layer_touches_no_disk(launcher, make_spec, state_dir, busybox_rootfs):
    base = state_dir / "volatile"
    base.mkdir()
    rootfs = Rootfs(
        (str(busybox_rootfs),),
        f"{base}/upper",
        f"{base}/work",
        f"{base}/merged",
        tmpfs_base=str(base),
    )
    spec = dataclasses.replace(
        make_spec("sh", "-c", "echo data > /etc/new; cat /etc/new"), rootfs=rootfs
    )
    result, out = run_container(launcher, spec, timeout=20)
    assert (result.exit_code, out) == (0, b"data\n")
    assert list(base.iterdir()) == []  # the tmpfs went with the container's mount namespace
