"""`pyci run --executor container` and `pyci shell` end to end, through the command line.

pyci runs as a child process (as a user starts it) on small git projects made here. Images come
from a real registry on loopback (tests/images' `RegistryServer`, seeded with a busybox image
built by its `imagelib`) into a fresh image store; jobs without `image:` run on the host's
root. The conftest's leftover check runs after every test here too.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import isolated_env
from tests.cli import run_pyci as pyci
from tests.gitutil import git
from tests.images.imagelib import busybox_image
from tests.images.servers import image_on_a_registry

REPO_ROOT = Path(__file__).resolve().parents[2]
APPLETS = ("sh", "ls", "cat", "echo", "true", "mkdir", "sleep", "test", "id", "hostname", "rm")


CONFIG = {"Env": ["PATH=/bin", "FROM_IMAGE=busybox"], "Cmd": ["sh"], "WorkingDir": "/"}


@pytest.fixture(scope="module")
def busybox_ref() -> Iterator[str]:
    """`127.0.0.1:<port>/library/busybox:v1` on a loopback registry of this module."""
    with image_on_a_registry(busybox_image(APPLETS, CONFIG), "library/busybox") as ref:
        yield ref


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """pyci's environment: its own image store, run dir, builds dir and temp dir."""
    return isolated_env(tmp_path, REPO_ROOT)


def make_project(tmp_path: Path, pipeline: str) -> Path:
    repo = tmp_path / "group" / "demo"
    repo.mkdir(parents=True)
    (repo / ".gitlab-ci.yml").write_text(pipeline)
    (repo / "input.txt").write_text("from the repository\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "demo")
    return repo


def job_lines(stdout: str, job: str) -> list[str]:
    prefix = f"[{job}] "
    return [line[len(prefix) :] for line in stdout.splitlines() if line.startswith(prefix)]


THREE_STAGES = """
stages: [build, test, deploy]
default:
  image: {image}
build:
  stage: build
  script:
    - mkdir -p out && echo built > out/result.txt
    - echo "image=$FROM_IMAGE dir=$CI_PROJECT_DIR host=$(hostname)"
    - cat input.txt
    - echo dirty > input.txt
  artifacts:
    paths: [out/]
test:
  stage: test
  script:
    - cat out/result.txt
    - cat input.txt
deploy:
  stage: deploy
  variables:
    PYCI_PIDS_LIMIT: "64"
  script:
    - id -u
"""


def test_a_three_stage_busybox_pipeline_from_a_registry(tmp_path, env, busybox_ref):
    repo = make_project(tmp_path, THREE_STAGES.format(image=busybox_ref))
    run = pyci(repo, env, "run", "--executor", "container", "--plain", "--network", "none")
    assert run.returncode == 0, run.stdout + run.stderr
    build = job_lines(run.stdout, "build")
    assert "image=busybox dir=/builds/local/demo host=build" in build, run.stdout
    assert "from the repository" in build
    assert job_lines(run.stdout, "test")[-8:].count("built") == 1
    assert "from the repository" in job_lines(run.stdout, "test")  # each job its own copy
    assert "0" in job_lines(run.stdout, "deploy")
    assert (repo / "input.txt").read_text() == "from the repository\n"  # the tree is clean
    assert not (repo / "out").exists()
    assert git_status(repo) == ""


def git_status(repo: Path) -> str:
    out = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True)
    return "\n".join(line for line in out.stdout.splitlines() if ".pyci" not in line)


HOST_ROOT = """
probe:
  script:
    - python3 -c "import sys; print('python', sys.version_info[0])"
    - for d in /home /root /tmp /run; do echo "$d:$(ls -A $d | wc -l)"; done
    - echo "store:$(ls -A "$PYCI_HOME" 2>/dev/null | wc -l)"
    - touch /usr/pyci-host-root-probe && echo wrote
    - pwd
"""


def test_a_job_without_image_runs_on_the_host_root_read_only(tmp_path, env):
    # the image store where /tmp's hiding would not cover it
    store = Path(tempfile.mkdtemp(prefix="pyci-cli-store-", dir="/var/tmp"))
    try:
        (store / "marker").write_text("the image store\n")
        repo = make_project(tmp_path, HOST_ROOT)
        env = {**env, "PYCI_HOME": str(store)}
        run = pyci(repo, env, "run", "--plain", "--variable", f"PYCI_HOME={store}")
    finally:
        shutil.rmtree(store)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = job_lines(run.stdout, "probe")
    assert 'Preparing the "container" executor' in lines  # the default, as root
    assert "python 3" in lines
    assert {"/home:0", "/root:0", "/tmp:0", "/run:0", "store:0", "wrote"} <= set(lines)
    assert "/builds/local/demo" in lines
    assert not Path("/usr/pyci-host-root-probe").exists()


def test_services_logs_and_limits_flags(tmp_path, env, busybox_ref):
    pipeline = f"""
job:
  image: {busybox_ref}
  services:
    - name: {busybox_ref}
      alias: helper
      command: ["sh", "-c", "echo service-up; sleep 30"]
  script:
    - cat /etc/hosts | grep -c helper
    - ls /sys/class/net
"""
    repo = make_project(tmp_path, pipeline)
    run = pyci(repo, env, "run", "--plain", "--memory", "64m", "--pids-limit", "32")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "eth0" in job_lines(run.stdout, "job")
    logs = list((repo / ".pyci" / "logs").glob("job-service-*.log"))
    assert len(logs) == 1 and "service-up" in logs[0].read_text()


def test_bad_limit_flags_are_one_line_usage_errors(tmp_path, env):
    repo = make_project(tmp_path, HOST_ROOT)
    run = pyci(repo, env, "run", "--memory", "lots")
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "error: --memory lots: invalid memory size 'lots' (use e.g. 512m or 2g)"
    ]


def test_help_names_the_default_executor_rule(tmp_path, env):
    run = pyci(tmp_path, env, "run", "--help")
    assert "default: container when pyci runs as root" in " ".join(run.stdout.split())


def launchers_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rfind(")") + 2 :].split()[1])
        if b"executors.container.launcher" in cmdline and parent == pid:
            found.append(int(entry))
    return found


def test_ctrl_c_stops_the_jobs_and_the_fork_server(tmp_path, env):
    repo = make_project(tmp_path, "slow:\n  script:\n    - echo started\n    - sleep 60\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "runner.cli", "run", "--plain"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if b"[slow] started" in line:
            break
    assert launchers_of(process.pid)  # spawned by pyci itself, running
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=30)  # a watchdog: the jobs sleep far longer
    assert process.returncode == 130, err
    assert launchers_of(process.pid) == []
    assert list(Path(env["PYCI_RUN_DIR"]).glob("containers/*")) == []


def all_in_order(output: bytes, markers: tuple[bytes, ...]) -> bool:
    position = 0
    for marker in markers:
        position = output.find(marker, position)
        if position < 0:
            return False
        position += len(marker)
    return True


@contextlib.contextmanager
def pyci_on_pty(
    args: list[str], cwd: Path, env: dict[str, str]
) -> Iterator[tuple[subprocess.Popen, int]]:
    """pyci started on a new pseudo-terminal, as (process, the terminal's primary fd); a pyci
    still running at the end (a failed test) is asked to clean up before it is killed."""
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "runner.cli", *args],
        cwd=cwd,
        env=env,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        start_new_session=True,
    )
    os.close(secondary)
    try:
        yield process, primary
    finally:
        os.close(primary)
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def drive_on_pty(args: list[str], cwd: Path, env: dict[str, str], answer_after: tuple[bytes, ...],
                 keys: bytes, timeout: float = 60) -> tuple[int, str]:  # fmt: skip
    """Run pyci on a new pseudo-terminal; type `keys` once the `answer_after` markers appeared
    in that order (wait for the shell's prompt: a line typed earlier is flushed when the shell
    sets up line editing)."""
    output, typed = b"", False
    deadline = time.monotonic() + timeout
    with pyci_on_pty(args, cwd, env) as (process, primary):
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # EIO: pyci and everything on the terminal exited
                    break
                if not chunk:
                    break
                output += chunk
            if not typed and all_in_order(output, answer_after):
                os.write(primary, keys)
                typed = True
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    return code, output.decode(errors="replace")


SHELL_PIPELINE = """
variables:
  GREETING: hello
job:
  image: {image}
  script:
    - echo "the script must not run"
  artifacts:
    paths: [made.txt]
"""


def test_pyci_shell_runs_a_command_typed_on_a_terminal(tmp_path, env, busybox_ref):
    repo = make_project(tmp_path, SHELL_PIPELINE.format(image=busybox_ref))
    code, output = drive_on_pty(
        ["shell", "job"],
        repo,
        env,
        (b"step_script", b"# "),
        b'test -t 0 && echo "tty $GREETING in $(pwd)"; echo x > made.txt; exit 3\n',
    )
    assert code == 3, output
    assert "tty hello in /builds/local/demo" in output
    assert "the script must not run" not in output
    from runner.build.artifacts import ArtifactStore

    assert not ArtifactStore(repo / ".pyci").job_dir("job").exists()  # nothing saved back
    assert not (repo / "made.txt").exists()


def test_pyci_shell_runs_the_command_after_the_dashes(tmp_path, env, busybox_ref):
    repo = make_project(tmp_path, SHELL_PIPELINE.format(image=busybox_ref))
    code, output = drive_on_pty(
        ["shell", "job", "--", "sh", "-c", "echo $FROM_IMAGE; exit 4"], repo, env, (b"\0",), b""
    )
    assert code == 4, output
    assert "\nbusybox\r\n" in output  # the image's FROM_IMAGE, on its own terminal line


FAILING = """
job:
  image: {image}
  script:
    - echo broken > state.txt
    - exit 5
  after_script:
    - echo after ran
"""


OTHER = """
other:
  image: {image}
  script:
    - sleep 2
    - echo other finished
"""


def test_shell_on_failure_opens_a_shell_where_the_script_failed(tmp_path, env, busybox_ref):
    pipeline = FAILING.format(image=busybox_ref) + OTHER.format(image=busybox_ref)
    repo = make_project(tmp_path, pipeline)
    code, output = drive_on_pty(
        ["run", "--shell-on-failure"],
        repo,
        env,
        (b"exit to go on", b"# "),
        b'sleep 3; echo "found $(cat state.txt)"; exit\n',
    )
    assert code == 1, output
    assert "found broken" in output
    assert output.index("found broken") < output.index("after ran")
    # the other job's lines wait until the shell is closed
    assert output.index("back from the shell") < output.index("[other] other finished")


def test_shell_on_failure_without_a_terminal_says_so_in_one_line(tmp_path, env, busybox_ref):
    repo = make_project(tmp_path, FAILING.format(image=busybox_ref))
    run = pyci(repo, env, "run", "--shell-on-failure")
    assert run.returncode == 1
    notes = [line for line in job_lines(run.stdout, "job") if "shell-on-failure" in line]
    assert notes == ["--shell-on-failure: stdin is not a terminal, no shell opened"]


def test_the_fork_server_starts_while_pyci_has_one_thread(tmp_path, env, monkeypatch):
    """The design forbids fork() from the threaded scheduler: the server must exist first."""
    import threading

    import executors.factory
    from runner.cli import main

    seen: list[int] = []
    real_start = executors.factory.start_launcher

    def observed_start() -> None:
        seen.append(threading.active_count())
        real_start()

    monkeypatch.setattr(executors.factory, "start_launcher", observed_start)
    for key in ("PYCI_HOME", "PYCI_BUILDS_DIR", "TMPDIR"):
        monkeypatch.setenv(key, env[key])
    repo = make_project(tmp_path, "job:\n  script: [echo hi]\n")
    monkeypatch.chdir(repo)
    # threads of the test session's own fixtures (a registry's server loop) are not pyci's
    before = threading.active_count()
    assert main(["run", "--plain", "--executor", "container"]) == 0
    assert seen == [before], [t.name for t in threading.enumerate()]


def test_pyci_shell_of_an_unknown_job_is_a_one_line_error(tmp_path, env):
    repo = make_project(tmp_path, HOST_ROOT)
    run = pyci(repo, env, "shell", "nope")
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        "error: pyci shell nope: no such job in the pipeline (jobs: probe)"
    ]
