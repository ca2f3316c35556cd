"""The container executor on its own: images (host root, directory, store), variables and
limits, services by alias, and what a broken environment reports."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from executors.base import BuildDirs, ExecutorError, StageCommand
from executors.container.executor import ContainerExecutor, ContainerSettings
from executors.images.config import ImageConfig
from executors.images.reference import parse_reference
from executors.images.store import ImageRecord, ImageStore, LayerRecord
from runner.core import background
from runner.core.filenames import file_stem
from runner.core.jobspec import ImageSpec, JobSpec, ServiceSpec, Variable


class Log:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)

    @property
    def text(self) -> str:
        return "".join(self.parts)


@pytest.fixture
def dirs() -> Iterator[BuildDirs]:
    root = Path(tempfile.mkdtemp(prefix="pyci-exec-"))
    (root / "project").mkdir()
    (root / "project.tmp").mkdir()
    yield BuildDirs(root / "project", root / "project.tmp")
    shutil.rmtree(root)


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="session")
def image_home(busybox_rootfs) -> Iterator[Path]:
    """An image store holding `registry.test/tools:1`: busybox plus an entrypoint script."""
    home = Path(tempfile.mkdtemp(prefix="pyci-images-"))
    store = ImageStore(home)
    base = LayerRecord(_digest("b1"), _digest("d1"), _digest("c1"), 1)
    top = LayerRecord(_digest("b2"), _digest("d2"), _digest("c2"), 1)
    store.add_layer(base, lambda d: shutil.copytree(busybox_rootfs, d, dirs_exist_ok=True))

    def add_entrypoint(directory: Path) -> None:
        (directory / "usr" / "local" / "bin").mkdir(parents=True)
        script = directory / "usr" / "local" / "bin" / "entry.sh"
        script.write_text('#!/bin/sh\nexport FROM_ENTRYPOINT=yes\nexec "$@"\n')
        script.chmod(0o755)
        (directory / "srv").mkdir()

    store.add_layer(top, add_entrypoint)
    config = ImageConfig(
        env=("PATH=/usr/local/bin:/bin:/usr/bin", "FROM_IMAGE=image", "OVERRIDDEN=image"),
        entrypoint=("/usr/local/bin/entry.sh",),
        cmd=("nc", "-ll", "-p", "6379", "-e", "echo", "PONG"),
        working_dir="/srv",
        user="build",
        exposed_ports=("6379/tcp",),
    )
    record = ImageRecord(_digest("m"), _digest("m"), _digest("cfg"), (base, top), config)
    store.save_image(record, [str(parse_reference("registry.test/tools:1"))])
    yield home
    shutil.rmtree(home)


def make_executor(state_dir, launcher, **settings) -> ContainerExecutor:
    settings.setdefault("network", "none")
    return ContainerExecutor(ContainerSettings(state_dir=state_dir, **settings), launcher)


def job_of(**fields) -> JobSpec:
    return JobSpec(name="unit test", stage="test", stage_index=0, script=("true",), **fields)


def run_job(executor, job, dirs, script: str, env=None, timeout=30):
    log = Log()
    executor.prepare(job, dirs, log)
    try:
        result = executor.run(
            StageCommand("step_script", script, timeout, env or {}), log, threading.Event()
        )
    finally:
        executor.cleanup()
    return result, log.text


def test_no_image_runs_on_the_host_root_with_private_paths_hidden(state_dir, launcher, dirs):
    executor = make_executor(state_dir, launcher)
    script = (
        "test -x /usr/bin/env && echo host-tools\n"
        "echo $(ls -A /root /home | grep -v ':$' | grep -c .)\n"
    )
    result, text = run_job(executor, job_of(), dirs, script)
    assert result.exit_code == 0
    assert text.splitlines()[-2:] == ["host-tools", "0"]
    assert executor.shell_name == "bash"  # the host has bash


def test_directory_image_and_project_path(state_dir, launcher, dirs, busybox_rootfs):
    executor = make_executor(state_dir, launcher)
    job = job_of(
        image=ImageSpec(str(busybox_rootfs)),
        variables=(Variable("CI_PROJECT_PATH", "group/sub/app"),),
    )
    _, text = run_job(executor, job, dirs, "pwd; hostname; test -e /usr/bin/python3 || echo no")
    assert text.splitlines()[-3:] == ["/builds/group/sub/app", "unit-test", "no"]
    assert executor.shell_name == "sh"


def test_cleanup_removes_the_jobs_container_dirs_in_the_background(
    state_dir, launcher, dirs, busybox_rootfs
):
    executor = make_executor(state_dir, launcher)
    job = job_of(image=ImageSpec(str(busybox_rootfs)))
    result, _ = run_job(executor, job, dirs, "mkdir -p /var/made/by/job && echo x > /var/f")
    assert result.exit_code == 0
    background.finish_removals()
    assert list((state_dir / "containers").iterdir()) == []


def test_store_image_config_applies_under_the_job(state_dir, launcher, dirs, image_home):
    executor = make_executor(state_dir, launcher, image_home=image_home)
    job = job_of(image=ImageSpec("registry.test/tools:1"))
    script = 'echo "$FROM_IMAGE $OVERRIDDEN $FROM_ENTRYPOINT"; id -un; pwd\n'
    result, text = run_job(executor, job, dirs, script, env={"OVERRIDDEN": "job"})
    assert result.exit_code == 0, text
    # image Env under the job's, the image's ENTRYPOINT wraps the shell, its USER runs it;
    # the job runs in the project directory, not the image's WorkingDir
    assert text.splitlines()[-3:] == ["image job yes", "build", executor.project_dir_in_job()]


def test_image_entrypoint_override_and_user_override(state_dir, launcher, dirs, image_home):
    executor = make_executor(state_dir, launcher, image_home=image_home)
    job = job_of(image=ImageSpec("registry.test/tools:1", entrypoint=("",), user="root"))
    _, text = run_job(executor, job, dirs, 'echo "[$FROM_ENTRYPOINT]"; id -u\n')
    assert text.splitlines()[-2:] == ["[]", "0"]


def test_missing_image_is_an_image_pull_failure(state_dir, launcher, dirs, image_home):
    executor = make_executor(state_dir, launcher, image_home=image_home)
    job = job_of(image=ImageSpec("registry.test/absent:1", pull_policy=("never",)))
    with pytest.raises(ExecutorError) as caught:
        executor.prepare(job, dirs, Log())
    executor.cleanup()
    assert caught.value.reason == "image_pull_failure"
    assert "registry.test/absent:1" in str(caught.value)


def test_memory_limit_variable_reports_out_of_memory(state_dir, launcher, dirs, busybox_rootfs):
    executor = make_executor(state_dir, launcher)
    job = job_of(
        image=ImageSpec(str(busybox_rootfs)), variables=(Variable("PYCI_MEMORY_LIMIT", "40m"),)
    )
    hog = "x=$(head -c 300000000 /dev/zero | tr '\\0' a)\necho survived\n"
    result, text = run_job(executor, job, dirs, hog)
    assert result.out_of_memory and "survived" not in text
    assert result.exit_code == 137


def test_invalid_limit_variable_is_named(state_dir, launcher, dirs):
    executor = make_executor(state_dir, launcher)
    job = job_of(variables=(Variable("PYCI_MEMORY_LIMIT", "lots"),))
    with pytest.raises(ExecutorError, match="invalid memory size 'lots'"):
        executor.prepare(job, dirs, Log())
    executor.cleanup()


def test_services_are_reachable_by_alias_and_derived_names(
    state_dir, launcher, dirs, image_home, tmp_path
):
    logs = tmp_path / "logs"
    executor = make_executor(
        state_dir, launcher, image_home=image_home, network="bridge", service_log_dir=logs
    )
    job = job_of(
        image=ImageSpec("registry.test/tools:1"),
        services=(ServiceSpec("registry.test/tools:1", aliases=("cache,kv", "store")),),
    )
    script = (
        "for name in cache kv store registry.test__tools registry.test-tools; do\n"
        "  printf '%s ' $name; nc -w 2 $name 6379 </dev/null\n"
        "done\n"
    )
    result, text = run_job(executor, job, dirs, script)
    assert result.exit_code == 0, text
    answers = [line for line in text.splitlines() if line.endswith("PONG")]
    assert len(answers) == 5, text
    # named as job logs are (runner/filenames.py): "unit test" had to change, so a hash
    assert [p.name for p in logs.iterdir()] == [f"{file_stem('unit test-service-cache')}.log"]


def test_service_not_listening_is_a_warning(state_dir, launcher, dirs, image_home, busybox_rootfs):
    executor = make_executor(
        state_dir, launcher, image_home=image_home, network="bridge", services_timeout=0.5
    )
    job = job_of(
        image=ImageSpec(str(busybox_rootfs)),
        services=(ServiceSpec("registry.test/tools:1", ("slow",), command=("sleep", "30")),),
    )
    result, text = run_job(executor, job, dirs, "echo job ran\n")
    assert "probably didn't start properly" in text and "6379" in text
    assert result.exit_code == 0 and "job ran" in text


def test_interactive_shell_gets_a_terminal(state_dir, launcher, dirs, busybox_rootfs):
    import os

    executor = make_executor(state_dir, launcher)
    job = job_of(image=ImageSpec(str(busybox_rootfs)), variables=(Variable("GREETING", "hi"),))
    executor.prepare(job, dirs, Log())
    primary, secondary = os.openpty()
    try:
        script = 'test -t 0 && echo "tty $GREETING $CI_PROJECT_DIR"; exit 5'
        code = executor.interactive_shell(
            secondary, secondary, secondary, command=("sh", "-c", script)
        )
        os.close(secondary)
        output = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the terminal has no writer left
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(primary)
        executor.cleanup()
    assert code == 5
    assert output.decode().strip() == f"tty hi {executor.project_dir_in_job()}"
