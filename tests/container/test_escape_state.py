"""What a job leaves on the host is out of other local users' reach.

A job (or an image) can write a setuid-root copy of a binary, or a 0666 device node. On the
host these are real files under pyci's state: if an unprivileged user could walk to them, it
could run the binary as root, or open the device. So while a job is paused (on a FIFO, not a
sleep) with such files in its upper dir and its builds dir, `nobody` tries every host path
that leads to them, and every one must be refused; the same for a hostile image's layer in
the store. pyci's state roots start out 0755 here, as an older pyci left them."""

from __future__ import annotations

import hashlib
import io
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from executors.base import StageCommand
from executors.container.executor import ContainerExecutor, ContainerSettings
from executors.images.config import ImageConfig
from executors.images.extract import extract_layer
from executors.images.reference import parse_reference
from executors.images.store import ImageRecord, ImageStore, LayerRecord
from runner.build import workspace
from runner.core import background
from runner.core.jobspec import ImageSpec, JobSpec
from tests.cli import isolated_env
from tests.images.imagelib import chardev, directory, file, make_tar

pytestmark = pytest.mark.root

SUID = "pyci-suid-copy"
# run as nobody: for each path, what stat, open and exec give (an errno name, or what ran)
PROBE = r"""
import errno, json, os, subprocess, sys
def attempt(action):
    try:
        return "ok: " + str(action())
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
results = {}
for path in sys.argv[1:]:
    results[path] = {
        "stat": attempt(lambda: os.stat(path).st_mode),
        "open": attempt(lambda: os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))),
        "exec": attempt(lambda: subprocess.run([path, "id", "-u"], capture_output=True).stdout),
    }
print(json.dumps(results))
"""


def probe_as_nobody(paths: list[str]) -> dict[str, dict[str, str]]:
    out = subprocess.run(
        ["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", PROBE, *paths],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    return json.loads(out.stdout)


def refused(results: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """The attempts that were not refused with EACCES (empty when all were)."""
    return {
        path: {what: got for what, got in attempts.items() if got != "EACCES"}
        for path, attempts in results.items()
        if any(got != "EACCES" for got in attempts.values())
    }


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory every user may enter, holding pyci's state roots made 0755."""
    path = Path(tempfile.mkdtemp(prefix="pyci-escape-"))
    path.chmod(0o755)
    for name in ("run", "builds", "store", "project"):
        (path / name).mkdir()
        (path / name).chmod(0o755)
    yield path
    background.finish_removals()
    shutil.rmtree(path)


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_a_jobs_setuid_files_are_out_of_reach_while_it_runs(base, launcher, busybox_rootfs):
    ws = workspace.create(base / "builds", base / "project", "escape")
    ws.dirs.project_dir.mkdir()
    for fifo in ("ready", "gate"):
        os.mkfifo(ws.dirs.project_dir / fifo)
    # read-write ends never block and keep the FIFOs open whatever the job does
    ready = os.open(ws.dirs.project_dir / "ready", os.O_RDWR | os.O_NONBLOCK)
    gate = os.open(ws.dirs.project_dir / "gate", os.O_RDWR | os.O_NONBLOCK)
    executor = ContainerExecutor(
        ContainerSettings(state_dir=base / "run", network="none"), launcher
    )
    job = JobSpec(
        name="escape",
        stage="test",
        stage_index=0,
        script=("true",),
        image=ImageSpec(str(busybox_rootfs)),
    )
    script = (
        f"cp /bin/busybox /tmp/{SUID} && chmod 4755 /tmp/{SUID}\n"
        f"cp /bin/busybox ./{SUID} && chmod 4755 ./{SUID}\n"
        "echo written > ./ready\n"
        "read line < ./gate\n"
    )
    results: list = []

    class Log:
        def write(self, text: str) -> None:
            results.append(text)

    executor.prepare(job, ws.dirs, Log())

    def run() -> None:
        results.append(
            executor.run(StageCommand("step_script", script, 60, {}), Log(), threading.Event())
        )

    runner = threading.Thread(target=run)
    runner.start()
    try:
        readable, _, _ = select.select([ready], [], [], 60)  # a watchdog, not a schedule
        assert readable, f"the job never got there: {''.join(map(str, results))}"
        assert os.read(ready, 100) == b"written\n"
        paths = [str(p) for p in base.rglob(SUID)]
        paths += [
            f"/proc/{pid}/root/tmp/{SUID}"
            for pid in os.listdir("/proc")
            if pid.isdigit() and os.path.exists(f"/proc/{pid}/root/tmp/{SUID}")
        ]
        assert any("/upper/tmp/" in p for p in paths), paths  # the container's upper dir
        assert str(ws.dirs.project_dir / SUID) in paths  # the builds dir
        assert any(p.startswith("/proc/") for p in paths), paths  # the container's root
        assert os.stat(paths[0]).st_mode & 0o4000  # root sees the setuid copy
        assert refused(probe_as_nobody(paths)) == {}
    finally:
        os.write(gate, b"go\n")
        runner.join(60)
        executor.cleanup()
        os.close(ready)
        os.close(gate)
        ws.remove()
    assert next(r for r in results if not isinstance(r, str)).exit_code == 0, results
    for root in ("run", "builds"):
        assert (base / root).stat().st_mode & 0o777 == 0o700, root


def hostile_layer(target: Path) -> None:
    tar = make_tar(
        [
            directory("bin"),
            file("bin/suid", Path("/usr/bin/busybox").read_bytes(), mode=0o4755),
            directory("dev"),
            chardev("dev/mem", 1, 1, mode=0o666),
        ]
    )
    extract_layer(io.BytesIO(tar), target)


def test_a_hostile_images_devices_and_setuid_files_are_out_of_reach(base):
    store = ImageStore(base / "store")
    layer = LayerRecord(_digest("blob"), _digest("diff"), _digest("chain"), 1)
    layer_dir = store.add_layer(layer, hostile_layer)
    record = ImageRecord(_digest("m"), _digest("m"), _digest("c"), (layer,), ImageConfig())
    store.save_image(record, [str(parse_reference("registry.test/hostile:1"))])
    image = store.get("registry.test/hostile:1")
    assert image is not None and image.layer_dirs == (layer_dir,)
    assert os.stat(layer_dir / "dev/mem").st_mode & 0o666 == 0o666
    assert os.stat(layer_dir / "bin/suid").st_mode & 0o4000
    short = store.short_link(layer.chain_id)
    paths = [
        str(layer_dir / "dev/mem"),
        str(layer_dir / "bin/suid"),
        f"{short}/dev/mem",
        f"{short}/bin/suid",
    ]
    assert refused(probe_as_nobody(paths)) == {}
    assert (base / "store").stat().st_mode & 0o777 == 0o700


def test_a_non_root_job_runs_from_layers_under_private_dirs(base, launcher, busybox_rootfs):
    """overlayfs reaches lower and upper dirs with the mounter's (root's) credentials, so a
    job running as `nobody` starts from a store whose every layer sits below 0700 dirs, and
    reads its stage scripts from the job's scratch dir below the 0700 job dir."""
    store = ImageStore(base / "store")
    layer = LayerRecord(_digest("b1"), _digest("d1"), _digest("c1"), 1)
    store.add_layer(layer, lambda d: shutil.copytree(busybox_rootfs, d, dirs_exist_ok=True))
    config = ImageConfig(env=("PATH=/bin:/usr/bin",))
    record = ImageRecord(_digest("m1"), _digest("m1"), _digest("cfg1"), (layer,), config)
    store.save_image(record, [str(parse_reference("registry.test/plain:1"))])
    ws = workspace.create(base / "builds", base / "project", "as-nobody")
    ws.dirs.project_dir.mkdir()
    executor = ContainerExecutor(
        ContainerSettings(state_dir=base / "run", network="none", image_home=base / "store"),
        launcher,
    )
    job = JobSpec(
        name="as nobody",
        stage="test",
        stage_index=0,
        script=("true",),
        image=ImageSpec("registry.test/plain:1", user="nobody"),
    )
    parts: list[str] = []

    class Log:
        def write(self, text: str) -> None:
            parts.append(text)

    executor.prepare(job, ws.dirs, Log())
    try:
        result = executor.run(
            StageCommand("step_script", "id -u; ls /bin/busybox\n", 30, {}),
            Log(),
            threading.Event(),
        )
    finally:
        executor.cleanup()
        ws.remove()
    assert result.exit_code == 0, "".join(parts)
    assert "".join(parts).splitlines()[-2:] == ["65534", "/bin/busybox"]
    for path in (base / "store", base / "store" / "layers" / "sha256" / layer.chain_id[7:]):
        assert path.stat().st_mode & 0o777 == 0o700


def test_a_run_dir_owned_by_someone_else_fails_the_job_in_one_line(tmp_path):
    from tests.container.test_container_cli import REPO_ROOT, make_project, pyci

    for name in ("home", "run", "builds", "tmp"):
        (tmp_path / name).mkdir()
    os.chown(tmp_path / "run", 65534, 65534)  # someone else could swap what is inside
    env = isolated_env(tmp_path, REPO_ROOT)
    repo = make_project(tmp_path, "job:\n  script: [echo never]\n")
    run = pyci(repo, env, "run", "--executor", "container", "--plain", "--network", "none")
    assert run.returncode == 1
    assert "Traceback" not in run.stdout + run.stderr
    refusal = f"{tmp_path / 'run'}: owned by uid 65534, not by this user (uid 0)"
    lines = [line for line in run.stdout.splitlines() if line.startswith("[job] ")]  # no tail
    failed = [line for line in lines if "Job failed (system failure)" in line]
    assert len(failed) == 1 and refusal in failed[0], run.stdout
    assert "never" not in run.stdout.replace("echo never", "")
    assert os.listdir(tmp_path / "run") == [] and (tmp_path / "run").stat().st_uid == 65534


LEAKY = """
stages: [make, use]
leak:
  stage: make
  image: {image}
  script:
    - cp /bin/busybox ./suid && chmod 4755 ./suid
    - mknod ./mem c 1 1 && mknod ./fifo p
    - ln -s {secret} build.env && ln -s {secret} report.xml
    - mkdir dir && ln -s {secret} dir/inside
  artifacts:
    paths: [suid, mem, fifo, dir/]
    reports:
      dotenv: build.env
      junit: report.xml
use:
  stage: use
  image: {image}
  script:
    - echo "secret=$SECRET_VALUE"
    - ls -l suid
"""


def test_artifacts_never_carry_setuid_devices_or_host_files(tmp_path, busybox_rootfs):
    """The artifact stage runs in pyci, as root on the host, over the files the job left: a
    symlink to a host file, a device node or a setuid copy must not turn into host secrets in
    variables, a copy of /dev/mem, or a setuid-root file in `.pyci/artifacts/`."""
    from tests.container.test_container_cli import REPO_ROOT, make_project, pyci

    secret = tmp_path / "secret.env"
    secret.write_text("SECRET_VALUE=host-only\n")
    secret.chmod(0o600)
    env = isolated_env(tmp_path, REPO_ROOT)
    repo = make_project(tmp_path, LEAKY.format(image=busybox_rootfs, secret=secret))
    run = pyci(repo, env, "run", "--executor", "container", "--plain", "--network", "none")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "[use] secret=" in run.stdout.splitlines()
    assert "host-only" not in run.stdout
    from runner.build.artifacts import ArtifactStore

    stored = ArtifactStore(repo / ".pyci", ".gitlab-ci.yml").job_dir("leak")
    assert sorted(p.name for p in stored.iterdir()) == ["dir", "suid"]
    assert (stored / "suid").stat().st_mode & 0o7777 == 0o755  # setuid dropped
    assert os.readlink(stored / "dir" / "inside") == str(secret)  # a link, as the job made it
    assert not list((repo / ".pyci" / "artifacts").rglob("*report.xml"))
    warnings = [line for line in run.stdout.splitlines() if "not a regular file" in line]
    assert len(warnings) == 2  # build.env and report.xml


PAUSED = """
job:
  image: {image}
  script:
    - cp /bin/busybox ./{suid} && chmod 4755 ./{suid}
    - cp /bin/busybox /tmp/{suid} && chmod 4755 /tmp/{suid}
    - mkfifo ./gate
    - read line < ./gate
"""


def test_a_whole_run_keeps_the_jobs_files_out_of_reach(tmp_path, busybox_rootfs):
    """The same through `pyci run`: the job's copy of the repository is an overlay mounted on
    the host (writes in `pyci-upper/`), its root an overlay in its own namespace."""
    from tests.container.test_container_cli import REPO_ROOT, make_project

    tmp_path.chmod(0o755)
    for name in ("home", "run", "builds", "tmp"):
        (tmp_path / name).mkdir()
        (tmp_path / name).chmod(0o755)
    env = isolated_env(tmp_path, REPO_ROOT)
    repo = make_project(tmp_path, PAUSED.format(image=busybox_rootfs, suid=SUID))
    run = subprocess.Popen(
        [sys.executable, "-m", "runner.cli", "run", "--plain", "--network", "none"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60  # a watchdog: the job gets there in a second or two
        gates: list[Path] = []
        while not gates and time.monotonic() < deadline and run.poll() is None:
            gates = [p for p in (tmp_path / "builds").rglob("gate") if "pyci-upper" not in str(p)]
            time.sleep(0.05)
        assert gates, "the job never paused"
        paths = [str(p) for root in ("run", "builds") for p in (tmp_path / root).rglob(SUID)]
        assert any("/pyci-upper/" in p for p in paths), paths  # the overlay's upper
        assert any("/upper/tmp/" in p for p in paths), paths  # the container's upper
        assert str(gates[0].parent / SUID) in paths  # through the sources overlay
        assert refused(probe_as_nobody(paths)) == {}
        for root in ("run", "builds"):  # (the store is not used: a directory image)
            assert (tmp_path / root).stat().st_mode & 0o777 == 0o700, root
        with open(gates[0], "w") as gate:  # the job is reading it: this does not block
            gate.write("go\n")
        output, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 0, output.decode()
