"""cgroups: layout detection, limits that bite, OOM reported as such, kill-all and removal."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from executors.container import cgroupfs
from executors.container.cgroupfs import CgroupError, Hierarchy, Limits
from executors.container.cgroups import detect_layout, discover, open_driver
from executors.container.cgroups_v1 import V1Driver
from executors.container.cgroups_v2 import V2Driver
from executors.container.runtime import run_container
from tests.container.conftest import SESSION_PREFIX

MOUNTINFO = {
    "v2": "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
    "v1": (
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
        "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n"
    ),
}
MOUNTINFO["hybrid"] = MOUNTINFO["v1"] + (
    "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
)
PROC_CGROUP = {
    "v2": "0::/user.slice/session-3.scope\n",
    "v1": "9:name=systemd:/user.slice\n4:memory:/ci/job\n2:cpu,cpuacct:/ci\n1:pids:/\n",
}
PROC_CGROUP["hybrid"] = PROC_CGROUP["v1"] + "0::/user.slice\n"


@pytest.mark.parametrize("layout", ["v1", "v2", "hybrid"])
def test_layout_and_own_cgroups_are_found(tmp_path, layout):
    (tmp_path / "cgroup").write_text(PROC_CGROUP[layout])
    (tmp_path / "mountinfo").write_text(MOUNTINFO[layout])
    hierarchies = discover(tmp_path)
    assert detect_layout(hierarchies) == layout
    own = {h.version and ",".join(sorted(h.controllers)): str(h.own_dir) for h in hierarchies}
    if layout == "v2":
        assert own == {"": "/sys/fs/cgroup/user.slice/session-3.scope"}
    else:
        assert own["memory"] == "/sys/fs/cgroup/memory/ci/job"
        assert own["cpu,cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct/ci"
        assert own["pids"] == "/sys/fs/cgroup/pids"


def test_this_machines_layout_has_a_driver():
    driver = open_driver()
    assert driver.layout == detect_layout(discover())


def run_limited(launcher, make_spec, script: str, limits: Limits, layout: str | None = None):
    driver = open_driver(layout)
    spec = make_spec("sh", "-c", script)
    cgroup = driver.create(spec.id, limits)
    try:
        spec = dataclasses.replace(spec, cgroup_dirs=cgroup.dirs, cgroup_v2_dir=cgroup.v2_dir)
        result, output = run_container(launcher, spec, timeout=30)
        return result, output.decode(), cgroup.oom_killed()
    finally:
        cgroup.remove()


def test_memory_limit_ends_in_a_reported_oom_kill(launcher, make_spec):
    hog = "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo survived"
    _, out, oom = run_limited(launcher, make_spec, hog, Limits(memory_bytes=48 << 20))
    assert "survived" not in out
    assert oom is True


def test_within_the_memory_limit_no_oom_is_reported(launcher, make_spec):
    result, out, oom = run_limited(launcher, make_spec, "echo fine", Limits(memory_bytes=64 << 20))
    assert (result.exit_code, out, oom) == (0, "fine\n", False)


def test_pids_limit_stops_a_fork_bomb(launcher, make_spec):
    script = "for i in $(seq 30); do sleep 1 & echo $i; done"
    result, out, _ = run_limited(launcher, make_spec, script, Limits(pids_max=12))
    # busybox sh gives up at the first refused fork; PID 1 and sh count too
    assert "can't fork" in out
    started = [line for line in out.splitlines() if line.isdigit()]
    assert 0 < len(started) < 12 and result.exit_code != 0


def test_cpu_limit_is_written_as_quota(make_spec):
    driver = open_driver()
    cgroup = driver.create(f"{SESSION_PREFIX}-test-cpu", Limits(cpus=0.5))
    try:
        quota = None
        for directory in map(Path, cgroup.dirs):
            if (directory / "cpu.cfs_quota_us").exists():
                quota = (directory / "cpu.cfs_quota_us").read_text().split()
                period = (directory / "cpu.cfs_period_us").read_text().split()
                assert (quota, period) == (["50000"], ["100000"])
            elif (directory / "cpu.max").exists():
                quota = (directory / "cpu.max").read_text().split()
                assert quota == ["50000", "100000"]
        assert quota is not None
    finally:
        cgroup.remove()
    assert not any(Path(d).exists() for d in cgroup.dirs)


@pytest.mark.parametrize("layout", ["hybrid", "v2", "v1"])
def test_kill_takes_every_process_and_remove_leaves_nothing(launcher, make_spec, layout):
    if layout not in ("v2", open_driver().layout) and layout != "v1":
        pytest.fail(f"unexpected layout {layout}")
    driver = open_driver(layout)
    spec = make_spec("sh", "-c", "sleep 60 & sleep 60 & echo ready; wait")
    cgroup = driver.create(spec.id, Limits())
    spec = dataclasses.replace(spec, cgroup_dirs=cgroup.dirs, cgroup_v2_dir=cgroup.v2_dir)
    finished = {}
    thread = threading.Thread(
        target=lambda: finished.update(result=run_container(launcher, spec, timeout=30))
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while len(cgroup.processes()) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(cgroup.processes()) >= 4  # init, sh, two sleeps
        cgroup.kill()
        thread.join(10)  # a watchdog: without the kill, the sleeps run for 60 s
        assert not thread.is_alive()
        assert cgroup.processes() == []
    finally:
        cgroup.remove()
    assert not any(Path(d).exists() for d in cgroup.dirs)


def test_v2_limit_without_its_controller_is_a_clear_error():
    driver = open_driver("v2")
    available = driver.available_controllers()
    if "memory" in available:
        cgroup = driver.create(f"{SESSION_PREFIX}-test-v2mem", Limits(memory_bytes=64 << 20))
        assert (Path(cgroup.dirs[0]) / "memory.max").read_text().strip() == str(64 << 20)
        cgroup.remove()
    else:
        with pytest.raises(CgroupError, match=r"controller.*memory.*not available"):
            driver.create(f"{SESSION_PREFIX}-test-v2mem", Limits(memory_bytes=64 << 20))
        assert not (driver.parent / f"{SESSION_PREFIX}-test-v2mem").exists()


def test_stale_lists_pyci_cgroups_only():
    driver = open_driver()
    cgroup = driver.create(f"{SESSION_PREFIX}-test-stale", Limits())
    try:
        stale = {p.name for p in driver.stale()}
        assert f"{SESSION_PREFIX}-test-stale" in stale
        assert all(name.startswith("pyci") for name in stale)
    finally:
        cgroup.remove()
    assert f"{SESSION_PREFIX}-test-stale" not in {p.name for p in driver.stale()}


def test_read_procs_of_a_missing_cgroup_is_empty(tmp_path):
    assert cgroupfs.read_procs(tmp_path / "gone") == []


@pytest.mark.parametrize("cloned_into", [True, False], ids=["clone3-into-cgroup", "joined"])
def test_pid1_is_in_every_cgroup_of_the_container(launcher, make_spec, cloned_into):
    """PID 1 is born in the v2 cgroup (CLONE_INTO_CGROUP) or, without `cgroup_v2_dir` (the
    fallback for kernels before 5.7), joins it by writing; it joins v1 ones by writing."""
    driver = open_driver()
    spec = make_spec("sleep", "30")
    cgroup = driver.create(spec.id, Limits(pids_max=64))
    v2_dir = cgroup.v2_dir if cloned_into else None
    spec = dataclasses.replace(spec, cgroup_dirs=cgroup.dirs, cgroup_v2_dir=v2_dir)
    container = launcher.launch(spec, 0, 1, 2)
    try:
        if cloned_into:  # there from its first instruction
            assert container.pid1 in cgroupfs.read_procs(Path(cgroup.v2_dir))
        deadline = time.monotonic() + 5  # PID 1 writes to the others right after it starts
        missing = list(cgroup.dirs)
        while missing and time.monotonic() < deadline:
            missing = [d for d in missing if container.pid1 not in cgroupfs.read_procs(Path(d))]
            time.sleep(0.01)
        assert missing == []
    finally:
        container.kill()
        container.wait(timeout=10)
        cgroup.remove()


# --- where the device policy goes -------------------------------------------------------------


def hierarchies_of(tmp_path: Path, *v1_controllers: str, v2: bool = False) -> list[Hierarchy]:
    """Mounted hierarchies as discover() returns them, over plain directories."""
    found = []
    for controller in v1_controllers:
        (tmp_path / controller).mkdir()
        found.append(Hierarchy(1, frozenset({controller}), tmp_path, tmp_path / controller))
    if v2:
        (tmp_path / "unified").mkdir()
        found.append(Hierarchy(2, frozenset(), tmp_path, tmp_path / "unified"))
    return found


def test_pure_v2_puts_the_policy_in_a_bpf_program(tmp_path):
    driver = open_driver(hierarchies=hierarchies_of(tmp_path, v2=True))
    assert isinstance(driver, V2Driver) and driver.device_policy


def test_hybrid_puts_the_policy_in_a_bpf_program_even_beside_v1_devices(tmp_path):
    hierarchies = hierarchies_of(tmp_path, "memory", "pids", "devices", v2=True)
    driver = open_driver(hierarchies=hierarchies)
    assert isinstance(driver, V1Driver) and not driver.policy_on_v1
    assert driver.tracker is not None and driver.tracker.device_policy


def test_hybrid_without_v1_devices_puts_a_bpf_program_on_the_tracker(tmp_path):
    driver = open_driver(hierarchies=hierarchies_of(tmp_path, "memory", "pids", v2=True))
    assert isinstance(driver, V1Driver) and not driver.policy_on_v1
    assert driver.tracker is not None and driver.tracker.device_policy


def test_pure_v1_uses_the_devices_controller(tmp_path):
    driver = open_driver(hierarchies=hierarchies_of(tmp_path, "memory", "pids", "devices"))
    assert isinstance(driver, V1Driver) and driver.policy_on_v1 and driver.tracker is None


DECIDE_WITHOUT_BPF = """
import sys
from pathlib import Path
from executors.container.cgroups import open_driver
from executors.container.cgroupfs import Hierarchy
top = Path(sys.argv[1])
driver = open_driver(hierarchies=[
    Hierarchy(1, frozenset({"devices"}), top, top / "devices"),
    Hierarchy(2, frozenset(), top, top / "unified"),
])
print(driver.layout, driver.policy_on_v1, driver.tracker.device_policy)
"""


def test_hybrid_falls_back_to_v1_devices_where_no_program_may_be_loaded(tmp_path):
    """Without CAP_SYS_ADMIN and CAP_BPF (e.g. pyci in a container) the kernel refuses the
    program: the v1 devices controller holds the policy instead."""
    (tmp_path / "devices").mkdir()
    (tmp_path / "unified").mkdir()
    done = subprocess.run(
        [
            "setpriv", "--bounding-set=-sys_admin,-bpf", "--inh-caps=-all", "--",
            sys.executable, "-c", DECIDE_WITHOUT_BPF, str(tmp_path),
        ],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["hybrid", "True", "False"]


def test_no_place_for_a_device_policy_is_a_clear_error(tmp_path):
    with pytest.raises(CgroupError, match="no device policy can be set"):
        open_driver(hierarchies=hierarchies_of(tmp_path, "memory", "pids"))


def test_a_refused_bpf_program_fails_the_cgroup_and_leaves_nothing(tmp_path):
    """A directory that is no cgroup takes no device program: the kernel refuses the attach,
    and create() says so instead of handing back a cgroup without a policy."""
    driver = open_driver(hierarchies=hierarchies_of(tmp_path, v2=True))
    with pytest.raises(CgroupError, match=r"cannot set the device policy on .*BPF_PROG_ATTACH"):
        driver.create("pyci-test-nopolicy", Limits())
    assert list((tmp_path / "unified").iterdir()) == []


def test_v1_containers_get_the_devices_rules():
    driver = open_driver("v1")  # this machine's v1 hierarchies, without the v2 side
    assert isinstance(driver, V1Driver) and driver.policy_on_v1
    cgroup = driver.create("pyci-test-devices", Limits())
    try:
        devices_dir = next(Path(d) for d in cgroup.dirs if (Path(d) / "devices.list").exists())
        listed = (devices_dir / "devices.list").read_text().splitlines()
    finally:
        cgroup.remove()
    assert listed[:3] == ["c *:* m", "b *:* m", "c 1:3 rwm"]
    assert "a *:* rwm" not in listed and "c 136:* rwm" in listed
    assert not devices_dir.exists()
