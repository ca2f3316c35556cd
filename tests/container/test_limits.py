"""Operator limits are ceilings: a job's variables may only lower them.

The threat: a job's `PYCI_MEMORY_LIMIT: 2g` lifted the operator's `--memory 64m`, and `"0"`
became a 0-byte limit that failed as a runner system failure. The limits a container really
got are read from the kernel's cgroup files, from the host, while the job waits on a gate.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from executors.base import BuildDirs, ExecutorError, StageCommand
from executors.container import cgroups, names
from executors.container.cgroupfs import Limits
from executors.container.executor import ContainerExecutor, ContainerSettings
from executors.container.limits import (
    LimitError,
    cpus_limit,
    format_memory,
    job_limits,
    memory_limit,
    parse_memory,
    pids_limit,
)
from runner.core.jobspec import ImageSpec, JobSpec, ServiceSpec, Variable
from tests.cli import isolated_env
from tests.cli import run_pyci as pyci
from tests.container.test_container_cli import job_lines, make_project

REPO_ROOT = Path(__file__).resolve().parents[2]
M = 1 << 20

# -- Docker's syntax -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512m", 512 * M), ("1g", 1 << 30), ("1.5GiB", 3 << 29), ("4096", 4096),
        ("64kb", 65536), ("2 g", 2 << 30), ("1t", 1 << 40), ("1p", 1 << 50), ("0", 0),
        ("100B", 100),
    ],
)  # fmt: skip
def test_parse_memory_takes_dockers_syntax(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("64m", 64 * M), ("6m", 6 * M), ("0", None), ("0b", None)]
)
def test_memory_limit(text, expected):
    assert memory_limit(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lots", "invalid memory size 'lots' (use e.g. 512m or 2g)"),
        ("-1", "invalid memory size '-1'"),
        ("5m", "memory limit '5m' is below the minimum of 6m"),
        ("1x", "invalid memory size '1x'"),
    ],
)
def test_invalid_memory_limits(text, message):
    with pytest.raises(LimitError, match=message.replace("(", r"\(").replace(")", r"\)")):
        memory_limit(text)


@pytest.mark.parametrize(("text", "expected"), [("1.5", 1.5), ("0.01", 0.01), ("2", 2.0)])
def test_cpus_limit(text, expected):
    assert cpus_limit(text) == expected


@pytest.mark.parametrize("text", ["0", "0.0"])
def test_zero_cpus_is_no_limit(text):
    assert cpus_limit(text) is None


@pytest.mark.parametrize("text", ["abc", "-1", "nan", "inf", "0.001", ""])
def test_invalid_cpus(text):
    with pytest.raises(LimitError, match=repr(text)):
        cpus_limit(text)


@pytest.mark.parametrize(("text", "expected"), [("64", 64), ("0", None), ("-1", None)])
def test_pids_limit(text, expected):
    assert pids_limit(text) == expected


@pytest.mark.parametrize("text", ["-2", "1.5", "many"])
def test_invalid_pids(text):
    with pytest.raises(LimitError, match=repr(text)):
        pids_limit(text)


def test_format_memory():
    assert [format_memory(n) for n in (64 * M, 1536 * M, 1 << 30, 4097)] == [
        "64m", "1536m", "1g", "4097"
    ]  # fmt: skip


# -- ceilings --------------------------------------------------------------------------------

CEILING = Limits(64 * M, 1.0, 64)


def variables(**values: str):
    return lambda name: values.get(name)


def test_a_request_above_the_ceiling_is_capped_with_a_note():
    chosen, notes = job_limits(
        CEILING,
        variables(PYCI_MEMORY_LIMIT="2g", PYCI_CPU_LIMIT="4", PYCI_PIDS_LIMIT="10000"),
    )
    assert chosen == CEILING
    assert notes == [
        "PYCI_MEMORY_LIMIT=2g is above the runner's limit of 64m: using 64m",
        "PYCI_CPU_LIMIT=4 is above the runner's limit of 1: using 1",
        "PYCI_PIDS_LIMIT=10000 is above the runner's limit of 64: using 64",
    ]


def test_a_lower_request_applies():
    chosen, notes = job_limits(
        CEILING, variables(PYCI_MEMORY_LIMIT="32m", PYCI_CPU_LIMIT="0.5", PYCI_PIDS_LIMIT="20")
    )
    assert (chosen, notes) == (Limits(32 * M, 0.5, 20), [])


def test_zero_in_a_variable_keeps_the_ceiling():
    chosen, notes = job_limits(
        CEILING, variables(PYCI_MEMORY_LIMIT="0", PYCI_CPU_LIMIT="0", PYCI_PIDS_LIMIT="-1")
    )
    assert (chosen, notes) == (CEILING, [])


def test_without_a_ceiling_the_job_chooses():
    chosen, notes = job_limits(Limits(), variables(PYCI_MEMORY_LIMIT="2g", PYCI_PIDS_LIMIT="0"))
    assert (chosen, notes) == (Limits(2 << 30, None, None), [])


@pytest.mark.parametrize(
    ("name", "value"),
    [("PYCI_MEMORY_LIMIT", "lots"), ("PYCI_CPU_LIMIT", "fast"), ("PYCI_PIDS_LIMIT", "-5")],
)
def test_an_invalid_variable_is_named_with_its_value(name, value):
    with pytest.raises(LimitError) as caught:
        job_limits(CEILING, variables(**{name: value}))
    assert str(caught.value).startswith(f"variable {name}: ")
    assert repr(value) in str(caught.value)


# -- what the kernel was told ----------------------------------------------------------------


def running_limits() -> list[Limits]:
    """The limits of every cgroup of this process's containers, as the kernel has them."""
    found: dict[str, dict[str, object]] = {}
    for hierarchy in cgroups.discover():
        for directory in hierarchy.own_dir.glob(f"{names.id_prefix()}-{os.getpid()}-*"):
            values = found.setdefault(directory.name, {})
            values.update(_read_limits(directory))
    return [Limits(v.get("memory"), v.get("cpus"), v.get("pids")) for v in found.values()]


def _read_limits(directory: Path) -> dict[str, object]:
    def read(name: str) -> str | None:
        path = directory / name
        return path.read_text().strip() if path.exists() else None

    values: dict[str, object] = {}
    memory = read("memory.max") or read("memory.limit_in_bytes")
    if memory is not None and memory != "max" and int(memory) < 1 << 62:  # v1: "unlimited"
        values["memory"] = int(memory)
    quota, period = (read("cpu.max") or "max 0").split()
    if read("cpu.cfs_quota_us") not in (None, "-1"):
        quota, period = read("cpu.cfs_quota_us") or "", read("cpu.cfs_period_us") or ""
    if quota != "max":
        values["cpus"] = int(quota) / int(period)
    pids = read("pids.max")
    if pids is not None and pids != "max":
        values["pids"] = int(pids)
    return values


class GatedLog:
    """The job's log; `ready` is set once the job printed `ready` (it then waits at its gate)."""

    def __init__(self) -> None:
        self.text = ""
        self.ready = threading.Event()

    def write(self, text: str) -> None:
        self.text += text
        if "ready\n" in self.text:
            self.ready.set()


@pytest.fixture
def dirs(tmp_path: Path) -> BuildDirs:
    (tmp_path / "project").mkdir()
    (tmp_path / "project.tmp").mkdir()
    return BuildDirs(tmp_path / "project", tmp_path / "project.tmp")


def limits_while_running(
    executor: ContainerExecutor, job: JobSpec, dirs: BuildDirs
) -> tuple[list[Limits], str]:
    """Prepare `job`, run a stage that waits at a gate (a FIFO in its project) while the
    cgroups are read, then let it finish. Returns the limits seen and the job's log."""
    gate = dirs.project_dir / "gate"
    os.mkfifo(gate)
    # read-write: opening never blocks, and the line waits in the FIFO until the job reads it
    gate_fd = os.open(gate, os.O_RDWR)
    log = GatedLog()
    results = []
    cancel = threading.Event()
    try:
        executor.prepare(job, dirs, log)
        script = f"echo ready\nread go < {executor.project_dir_in_job()}/gate\n"
        stage = StageCommand("step_script", script, 30)
        runner = threading.Thread(target=lambda: results.append(executor.run(stage, log, cancel)))
        runner.start()
        try:
            assert log.ready.wait(20), log.text
            seen = running_limits()
            os.write(gate_fd, b"go\n")
            runner.join(30)
        finally:
            cancel.set()  # a watchdog: only if the job is still there
            runner.join(30)
    finally:
        os.close(gate_fd)
        executor.cleanup()
    assert results and results[0].exit_code == 0, log.text
    return seen, log.text


def executor_with(state_dir, launcher, **settings) -> ContainerExecutor:
    settings.setdefault("network", "none")
    return ContainerExecutor(ContainerSettings(state_dir=state_dir, **settings), launcher)


def busybox_job(busybox_rootfs: Path, **values: str) -> JobSpec:
    return JobSpec(
        name="limited",
        stage="test",
        stage_index=0,
        script=("true",),
        image=ImageSpec(str(busybox_rootfs)),
        variables=tuple(Variable(k, v) for k, v in values.items()),
    )


OPERATOR = {"memory": 64 * M, "cpus": 1.0, "pids_limit": 64}


def test_variables_cannot_lift_the_operators_limits(state_dir, launcher, dirs, busybox_rootfs):
    executor = executor_with(state_dir, launcher, **OPERATOR)
    job = busybox_job(
        busybox_rootfs, PYCI_MEMORY_LIMIT="2g", PYCI_CPU_LIMIT="2", PYCI_PIDS_LIMIT="100000"
    )
    seen, text = limits_while_running(executor, job, dirs)
    assert seen == [Limits(64 * M, 1.0, 64)]
    assert "WARNING: PYCI_MEMORY_LIMIT=2g is above the runner's limit of 64m: using 64m" in text
    assert "WARNING: PYCI_CPU_LIMIT=2 is above the runner's limit of 1: using 1" in text
    assert "WARNING: PYCI_PIDS_LIMIT=100000 is above the runner's limit of 64" in text


def test_lower_variables_apply(state_dir, launcher, dirs, busybox_rootfs):
    executor = executor_with(state_dir, launcher, **OPERATOR)
    job = busybox_job(
        busybox_rootfs, PYCI_MEMORY_LIMIT="32m", PYCI_CPU_LIMIT="0.5", PYCI_PIDS_LIMIT="20"
    )
    seen, text = limits_while_running(executor, job, dirs)
    assert seen == [Limits(32 * M, 0.5, 20)]
    assert "WARNING" not in text


def test_zero_variables_keep_the_operators_limits(state_dir, launcher, dirs, busybox_rootfs):
    executor = executor_with(state_dir, launcher, **OPERATOR)
    job = busybox_job(
        busybox_rootfs, PYCI_MEMORY_LIMIT="0", PYCI_CPU_LIMIT="0", PYCI_PIDS_LIMIT="0"
    )
    seen, _ = limits_while_running(executor, job, dirs)
    assert seen == [Limits(64 * M, 1.0, 64)]


def test_zero_settings_mean_no_limit(state_dir, launcher, dirs, busybox_rootfs):
    executor = executor_with(state_dir, launcher, memory=0, cpus=0, pids_limit=-1)
    seen, _ = limits_while_running(executor, busybox_job(busybox_rootfs), dirs)
    assert seen in ([], [Limits()])  # no limit: no limiting cgroup, or one without limits


def test_services_run_under_the_operators_limits(state_dir, launcher, dirs, busybox_rootfs):
    """A service runs what the job says (`command:`): without a ceiling of its own it would
    be a way around the job's."""
    executor = executor_with(state_dir, launcher, network="host", **OPERATOR)
    service = ServiceSpec(str(busybox_rootfs), aliases=("svc",), command=("sleep", "60"))
    job = busybox_job(busybox_rootfs, PYCI_MEMORY_LIMIT="32m", PYCI_PIDS_LIMIT="20")
    job = dataclasses.replace(job, services=(service,))
    seen, _ = limits_while_running(executor, job, dirs)
    assert sorted(seen, key=lambda limits: limits.memory_bytes or 0) == [
        Limits(32 * M, 1.0, 20),  # the job's, lowered
        Limits(64 * M, 1.0, 64),  # the service's: the operator's
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [("PYCI_MEMORY_LIMIT", "lots"), ("PYCI_MEMORY_LIMIT", "1m"), ("PYCI_CPU_LIMIT", "-1"),
     ("PYCI_PIDS_LIMIT", "ten")],
)  # fmt: skip
def test_an_invalid_variable_fails_the_job_naming_it(
    state_dir, launcher, dirs, busybox_rootfs, name, value
):
    executor = executor_with(state_dir, launcher, **OPERATOR)
    with pytest.raises(ExecutorError) as caught:
        executor.prepare(busybox_job(busybox_rootfs, **{name: value}), dirs, GatedLog())
    executor.cleanup()
    assert caught.value.reason == "script_failure"
    message = str(caught.value)
    assert message.startswith(f"job limited: variable {name}: ") and repr(value) in message
    assert "\n" not in message


# -- through `pyci run` ----------------------------------------------------------------------

PIPELINE = """
default:
  image: {image}
capped:
  variables:
    PYCI_MEMORY_LIMIT: 2g
  script:
    - x=$(head -c 200000000 /dev/zero | tr '\\0' a)
    - echo survived
zero:
  variables:
    PYCI_MEMORY_LIMIT: "0"
  script:
    - echo zero-ran
invalid:
  variables:
    PYCI_MEMORY_LIMIT: lots
  script:
    - echo invalid-ran
"""


@pytest.fixture
def pyci_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    yield isolated_env(tmp_path, REPO_ROOT)


def test_pyci_run_caps_a_job_at_memory_flag(tmp_path, pyci_env, busybox_rootfs):
    repo = make_project(tmp_path, PIPELINE.format(image=busybox_rootfs))
    report = tmp_path / "report.json"
    run = pyci(repo, pyci_env, "run", "--plain", "--network", "none", "--memory", "64m",
               "--json-report", str(report))  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    jobs = {job["name"]: job for job in json.loads(report.read_text())["jobs"]}
    # 2g asked, 64m given: the 200 MB string ends in the OOM killer
    assert jobs["capped"]["failure_reason"] == "out_of_memory"
    capped = job_lines(run.stdout, "capped")
    assert "WARNING: PYCI_MEMORY_LIMIT=2g is above the runner's limit of 64m: using 64m" in capped
    assert "survived" not in capped
    # "0": no lower limit of the job's own, so the 64m stays (and the job runs)
    assert jobs["zero"]["status"] == "success"
    assert "zero-ran" in job_lines(run.stdout, "zero")
    # a bad value is the job's mistake, said in one line; nothing ran
    assert jobs["invalid"]["failure_reason"] == "script_failure"
    invalid = job_lines(run.stdout, "invalid")
    assert "invalid-ran" not in invalid
    expected = (
        "ERROR: Job failed (script failure): job invalid: variable PYCI_MEMORY_LIMIT: "
        "invalid memory size 'lots' (use e.g. 512m or 2g)"
    )
    assert expected in invalid, invalid


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (("--memory", "5m"), "--memory 5m: memory limit '5m' is below the minimum of 6m"),
        (("--cpus", "lots"), "--cpus lots: invalid number of CPUs 'lots' (use e.g. 1.5)"),
        (("--pids-limit", "-2"), "--pids-limit -2: invalid process limit '-2' (0 or -1: no limit)"),
    ],
)
def test_bad_limit_flags_are_one_line_usage_errors(tmp_path, pyci_env, flags, error):
    repo = make_project(tmp_path, "job:\n  script: [echo hi]\n")
    run = pyci(repo, pyci_env, "run", *flags)
    assert (run.returncode, run.stderr.strip().splitlines()) == (2, [f"error: {error}"])


def test_zero_limit_flags_mean_no_limit(tmp_path, pyci_env, busybox_rootfs):
    repo = make_project(tmp_path, f"job:\n  image: {busybox_rootfs}\n  script: [echo ran]\n")
    run = pyci(repo, pyci_env, "run", "--plain", "--network", "none",
               "--memory", "0", "--cpus", "0", "--pids-limit", "-1")  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ran" in job_lines(run.stdout, "job")
