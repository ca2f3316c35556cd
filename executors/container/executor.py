"""The `container` executor: every stage of a job in a fresh container on the job's rootfs.

prepare: resolve the image (store, directory, or the host root), lease an address on the
`pyci0` bridge, start the services. run: one container per stage, all on the job's overlay
upper layer (so what `before_script` installs is still there for `after_script`), each in its
own cgroup with the job's limits. cleanup: stop services, remove cgroups, scratch and leases.

Where the job sees things: the repository at `/builds/<namespace>/<project>` (CI_PROJECT_DIR),
the build's scratch (stage scripts, file variables) at `<that>.tmp`, as gitlab-runner does.
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from executors.base import BuildDirs, ExecResult, ExecutorError, JobLog, StageCommand
from executors.container import cgroupfs, cgroups, hosts, limits, network, recovery, services
from executors.container.cgroupfs import CgroupError, Limits
from executors.container.images import RootImage, has_bash, resolve_image
from executors.container.names import new_container_id
from executors.container.runtime import (
    DEFAULT_STATE_DIR,
    ContainerError,
    Launcher,
    RunningContainer,
    Scratch,
    shared_launcher,
)
from executors.container.spec import ContainerSpec, Mount, NetworkMode, NetworkSpec, Rootfs
from runner.core import background
from runner.core.filenames import file_stem
from runner.core.jobspec import JobSpec, ServiceSpec


@dataclass(frozen=True)
class ContainerSettings:
    state_dir: Path = DEFAULT_STATE_DIR
    image_home: Path | None = None  # the image store (None: $PYCI_HOME or its default)
    default_image: str | None = None  # None: the host root as a read-only lower layer
    network: NetworkMode = "bridge"
    # the operator's ceilings (limits.py): jobs may only ask for less; None or 0: no limit
    memory: int | None = None  # bytes
    cpus: float | None = None
    pids_limit: int | None = None  # -1 too: no limit
    no_new_privs: bool = False
    seccomp: bool = True  # Docker's default profile
    pull_policy: str = "if-not-present"
    registry_mirrors: tuple[str, ...] = ()  # Docker Hub mirrors, tried in order
    insecure_registries: tuple[str, ...] = ()  # hosts that may be reached over plain HTTP
    service_log_dir: Path | None = None  # where service logs are kept (.pyci/ of the project)
    services_timeout: float = 30.0
    cgroup_layout: str | None = None  # None: detect


@dataclass
class _Service:
    spec: ServiceSpec
    names: tuple[str, ...]
    container: RunningContainer | None = None
    cgroup: cgroupfs.Cgroup | None = None
    scratch: Scratch | None = None
    address: str | None = None
    log_fd: int = -1


class ContainerExecutor:
    name = "container"

    def __init__(self, settings: ContainerSettings | None = None, launcher: Launcher | None = None):
        self.settings = settings or ContainerSettings()
        self.launcher = launcher or shared_launcher()
        self.shell_name = "sh"
        self._job: JobSpec | None = None
        self._dirs: BuildDirs | None = None
        self._image: RootImage | None = None
        self._scratch: Scratch | None = None
        self._driver: cgroupfs.Driver | None = None
        self._pool: network.AddressPool | None = None
        self._address: str | None = None
        self._hosts_entries: list[tuple[str, str]] = []
        self._services: list[_Service] = []
        self._limits = Limits()
        self._project_in_job = "/builds/project"

    # -- Executor protocol ------------------------------------------------------------------
    def prepare(self, job: JobSpec, dirs: BuildDirs, log: JobLog) -> None:
        self._job, self._dirs = job, dirs
        settings = self.settings
        recovered = recovery.recover_once(settings.state_dir)
        if recovered is not None and not recovered.empty:
            log.write(
                f"Removed leftovers of an interrupted run: {len(recovered.scratch)} container "
                f"dirs, {len(recovered.cgroups)} cgroups, {len(recovered.leases)} addresses, "
                f"{len(recovered.mounts)} source overlays\n"
            )
            for failure in recovered.failed:
                log.write(f"WARNING: could not remove a leftover: {failure}\n")
        self._limits = self._job_limits(job, log)
        try:
            self._driver = cgroups.shared_driver(settings.cgroup_layout)
        except CgroupError as exc:
            raise ExecutorError(f"cgroups: {exc}") from exc
        image_name = job.image.name if job.image else settings.default_image
        policies = job.image.pull_policy if job.image and job.image.pull_policy else None
        hidden = (settings.state_dir, settings.image_home or _default_image_home())
        self._image = resolve_image(
            image_name,
            settings.image_home,
            policies or settings.pull_policy,
            hidden,
            settings.registry_mirrors,
            settings.insecure_registries,
            _docker_auth_config(job),
        )
        self.shell_name = "bash" if has_bash(self._image) else "sh"
        shown = self._image.name or "the host's root file system (read-only)"
        log.write(f"Using container executor with image {shown} ...\n")
        self._project_in_job = f"/builds/{_project_path(job, dirs)}"
        self._scratch = Scratch.create(settings.state_dir, new_container_id())
        if settings.network == "bridge":
            try:
                bridge = network.ensure_bridge()
            except OSError as exc:
                raise ExecutorError(f"bridge network: {exc}") from exc
            self._pool = network.AddressPool(bridge)
            self._address = self._pool.lease()
        for service in job.services:
            self._start_service(service, job, log)

    def project_dir_in_job(self) -> str:
        return self._project_in_job

    def builds_dir_in_job(self) -> str:
        return "/builds"

    def run(self, cmd: StageCommand, log: JobLog, cancel: threading.Event) -> ExecResult:
        assert self._dirs is not None and self._image is not None and self._scratch is not None
        script = self._dirs.scratch / f"{cmd.stage}.sh"
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(cmd.script)
        script_in_job = f"{self._project_in_job}.tmp/{script.name}"
        shell = ["bash", "--noprofile", "--norc"] if self.shell_name == "bash" else ["sh"]
        argv = (*self._entrypoint(), *shell, script_in_job)
        env = {**_env_list(self._image.config.env), **cmd.env}
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            exit_, oom = self._run_container(
                argv, env, cmd.timeout, cancel, lambda chunk: log.write(decoder.decode(chunk))
            )
        finally:
            rest = decoder.decode(b"", final=True)
            if rest:
                log.write(rest)
            script.unlink(missing_ok=True)
        if exit_.timed_out or exit_.canceled:
            return ExecResult(None, timed_out=exit_.timed_out, canceled=exit_.canceled)
        code = exit_.exit_code
        code = 128 - code if code is not None and code < 0 else code
        return ExecResult(code, out_of_memory=oom)

    def interactive_shell(
        self,
        stdin: int = 0,
        stdout: int = 1,
        stderr: int = 2,
        command: tuple[str, ...] = (),
        cancel: threading.Event | None = None,
    ) -> int:
        """`pyci shell` / `--shell-on-failure`: a shell (or `command`) in a fresh container of
        the prepared job (same image, user, variables, services and repository view), on the
        caller's terminal. Returns its exit code."""
        assert self._image is not None and self._scratch is not None
        argv = command or (("bash", "-l") if self.shell_name == "bash" else ("sh", "-l"))
        env = {**_env_list(self._image.config.env), **self._job_env()}
        env.setdefault("TERM", os.environ.get("TERM", "xterm"))
        exit_ = self._run_container((*self._entrypoint(), *argv), env, None, cancel, None,
                                    stdio=(stdin, stdout, stderr))  # fmt: skip
        code = exit_[0].exit_code
        return 128 - code if code is not None and code < 0 else (code or 0)

    def _job_env(self) -> dict[str, str]:
        assert self._job is not None
        env = {v.key: v.value for v in self._job.variables if not v.file}
        env["CI_PROJECT_DIR"] = self._project_in_job
        env["CI_BUILDS_DIR"] = "/builds"
        return env

    def cleanup(self) -> None:
        for service in reversed(self._services):
            self._stop_service(service)
        self._services = []
        if self._pool is not None and self._address is not None:
            self._pool.release(self._address)
            self._address = None
        if self._scratch is not None:
            # its containers are gone: the job's result need not wait for the files
            background.remove_later(self._scratch.remove)
            self._scratch = None

    # -- one container ----------------------------------------------------------------------
    def _spec(
        self,
        container_id: str,
        argv: tuple[str, ...],
        env: dict[str, str],
        scratch: Scratch,
        image: RootImage,
        address: str | None,
        hostname: str,
        mounts: tuple[Mount, ...],
        cwd: str,
        user: str | None,
    ) -> ContainerSpec:
        settings = self.settings
        net = NetworkSpec(settings.network)
        if settings.network == "bridge":
            assert self._pool is not None and address is not None
            bridge = self._pool.bridge
            net = NetworkSpec(
                "bridge", address, bridge.gateway, bridge.name, network.host_link_name(container_id)
            )
        own = address.split("/")[0] if address else None
        etc = (
            Mount("/etc/hosts", source=scratch.write_file("hosts", self._hosts(own, hostname))),
            Mount("/etc/hostname", source=scratch.write_file("hostname", hostname + "\n")),
            Mount(
                "/etc/resolv.conf",
                source=scratch.write_file(
                    "resolv.conf", hosts.resolv_conf(host_network=settings.network == "host")
                ),
            ),
        )
        return ContainerSpec(
            id=container_id,
            command=argv,
            rootfs=Rootfs(
                image.lower_dirs,
                scratch.upper,
                scratch.work,
                scratch.merged,
                image.hidden_paths,
                image.lower_cwd,
            ),
            env=tuple(env.items()),
            cwd=cwd,
            user=user,
            hostname=hostname,
            mounts=(*etc, *mounts),
            network=net,
            no_new_privs=settings.no_new_privs,
            seccomp=settings.seccomp,
        )

    def _hosts(self, own: str | None, hostname: str) -> str:
        return hosts.hosts_file(own, hostname, self._hosts_entries)

    def _run_container(self, argv, env, timeout, cancel, on_output, stdio=None):
        assert self._job and self._dirs and self._image and self._scratch and self._driver
        container_id = new_container_id()
        mounts = (
            Mount(self._project_in_job, source=str(self._dirs.project_dir)),
            Mount(self._project_in_job + ".tmp", source=str(self._dirs.scratch)),
        )
        user = (self._job.image.user if self._job.image else None) or self._image.config.user
        spec = self._spec(
            container_id,
            argv,
            env,
            self._scratch,
            self._image,
            self._address,
            hosts.hostname_for(self._job.name),
            mounts,
            self._project_in_job,
            user or None,
        )
        try:
            cgroup = self._driver.create(container_id, self._limits)
        except (CgroupError, FileExistsError) as exc:
            raise ExecutorError(f"cgroup for {container_id}: {exc}") from exc
        out_r, out_w = os.pipe()
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            spec = dataclasses.replace(spec, cgroup_dirs=cgroup.dirs, cgroup_v2_dir=cgroup.v2_dir)
            try:
                fds = stdio or (null, out_w, out_w)
                container = self.launcher.launch(spec, *fds)
            finally:
                os.close(out_w)
                os.close(null)
            output = None if stdio else (out_r, on_output)
            exit_ = container.wait(timeout, cancel, output)
            return exit_, cgroup.oom_killed()
        except ContainerError as exc:
            raise ExecutorError(str(exc)) from exc
        finally:
            os.close(out_r)
            with contextlib.suppress(CgroupError):
                cgroup.remove()
            # the veth goes with the container's network namespace (see network.finish)

    def _entrypoint(self) -> tuple[str, ...]:
        assert self._image is not None
        override = self._job.image.entrypoint if self._job and self._job.image else None
        if override is not None:
            return tuple(e for e in override if e)
        return self._image.config.entrypoint or ()

    def _ceiling(self) -> Limits:
        settings = self.settings
        return limits.ceiling(settings.memory, settings.cpus, settings.pids_limit)

    def _job_limits(self, job: JobSpec, log: JobLog) -> Limits:
        """The operator's limits, lowered where the job's variables ask for less. A bad value
        is the job's own mistake, not the runner's: a script_failure, as gitlab-runner reports
        errors of the job's making."""
        try:
            chosen, notes = limits.job_limits(self._ceiling(), job.variable)
        except limits.LimitError as exc:
            raise ExecutorError(f"job {job.name}: {exc}", reason="script_failure") from None
        for note in notes:
            log.write(f"WARNING: {note}\n")
        return chosen

    # -- services ---------------------------------------------------------------------------
    def _start_service(self, service: ServiceSpec, job: JobSpec, log: JobLog) -> None:
        if self.settings.network == "none":
            raise ExecutorError(f"service {service.name}: services need the bridge or host network")
        assert self._driver is not None
        names = services.service_names(service.name, service.aliases)
        entry = _Service(service, names)
        self._services.append(entry)
        image = resolve_image(
            service.name,
            self.settings.image_home,
            service.pull_policy or self.settings.pull_policy,
            mirrors=self.settings.registry_mirrors,
            insecure=self.settings.insecure_registries,
            docker_auth_config=_docker_auth_config(job),
        )
        container_id = new_container_id()
        entry.scratch = Scratch.create(self.settings.state_dir, container_id)
        if self._pool is not None:
            entry.address = self._pool.lease()
        variables = {v.key: v.value for v in (*job.variables, *service.variables)}
        env = {**_env_list(image.config.env), **variables}
        argv = services.argv(image.config, service.entrypoint, service.command)
        if not argv:
            raise ExecutorError(f"service {service.name}: no command (image has no CMD)")
        spec = self._spec(
            container_id,
            argv,
            env,
            entry.scratch,
            image,
            entry.address,
            names[0].replace("_", "-")[:63],
            (),
            image.config.working_dir or "/",
            image.config.user or None,
        )
        entry.log_fd = self._service_log(job, names[0])
        try:
            # the operator's limits: a service runs what the job says (`command:`), so
            # without them a job could escape its ceiling through a service
            entry.cgroup = self._driver.create(container_id, self._ceiling())
            spec = dataclasses.replace(
                spec, cgroup_dirs=entry.cgroup.dirs, cgroup_v2_dir=entry.cgroup.v2_dir
            )
            null = os.open(os.devnull, os.O_RDONLY)
            try:
                entry.container = self.launcher.launch(spec, null, entry.log_fd, entry.log_fd)
            finally:
                os.close(null)
        except (ContainerError, CgroupError) as exc:
            raise ExecutorError(f"service {service.name}: {exc}") from exc
        address = entry.address.split("/")[0] if entry.address else "127.0.0.1"
        self._hosts_entries.extend((address, name) for name in names)
        log.write(f"Starting service {service.name} as {', '.join(names)} ({address})\n")
        ports = services.tcp_ports(image.config.exposed_ports)
        if ports:
            pending = services.wait_for_ports(address, ports, self.settings.services_timeout)
            if pending:
                log.write(
                    f"*** WARNING: Service {service.name} probably didn't start properly: "
                    f"port(s) {', '.join(map(str, pending))} not listening after "
                    f"{self.settings.services_timeout:g}s\n"
                )

    def _service_log(self, job: JobSpec, name: str) -> int:
        directory = self.settings.service_log_dir
        if directory is None:
            assert self._dirs is not None
            directory = self._dirs.scratch
        directory.mkdir(parents=True, exist_ok=True)
        stem = file_stem(f"{job.name}-service-{name}")  # within NAME_MAX, whatever the names
        return os.open(directory / f"{stem}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def _stop_service(self, service: _Service) -> None:
        with contextlib.suppress(Exception):
            if service.container is not None:
                service.container.kill()
                service.container.wait(timeout=10)
        with contextlib.suppress(Exception):
            if service.cgroup is not None:
                service.cgroup.remove()
        if service.log_fd >= 0:
            os.close(service.log_fd)
            service.log_fd = -1
        if service.address and self._pool is not None:
            self._pool.release(service.address)
        if service.scratch is not None:
            background.remove_later(service.scratch.remove)


def _docker_auth_config(job: JobSpec) -> str | None:
    """The job's DOCKER_AUTH_CONFIG variable (the last definition wins, as in the job's env)."""
    found = None
    for variable in job.variables:
        if variable.key == "DOCKER_AUTH_CONFIG":
            found = variable.value
    return found


def _env_list(entries: tuple[str, ...]) -> dict[str, str]:
    env = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if sep:
            env[key] = value
    return env


def _project_path(job: JobSpec, dirs: BuildDirs) -> str:
    path = job.variable("CI_PROJECT_PATH")
    if path and "$" not in path:
        return path.strip("/")
    return f"pyci/{dirs.project_dir.name}"


def _default_image_home() -> Path:
    from executors.images.home import default_home

    return default_home()
