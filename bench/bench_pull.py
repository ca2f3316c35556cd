#!/usr/bin/env python3
"""Pull + unpack, side by side: pyci against `skopeo copy` + `umoci unpack`.

Images: busybox (Debian's busybox-static in one layer) and a Debian bookworm built with
`debootstrap --variant=minbase` (about 200 MB, one gzip layer, built once and kept in
bench/.cache/). Both are pushed to a `docker-registry` on 127.0.0.1 with skopeo, then each
contender pulls from there into a fresh directory, `--runs` times; the median is printed.
Finally a warm re-pull with `if-not-present`: its request count (must be 0) and time, in
process and through the CLI.

    python3 bench/bench_pull.py [--runs 3] [--only busybox|debian]

Needs root (owners, device nodes), docker-registry, skopeo, umoci, debootstrap, gzip, tar.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from executors.images.auth import CredentialStore  # noqa: E402
from executors.images.pull import pull_image  # noqa: E402
from executors.images.registry import RequestCounter  # noqa: E402
from executors.images.store import ImageStore  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"
SUITE = "bookworm"


def run(*cmd: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, **kwargs)


def apt_mirror() -> str:
    """The Debian mirror apt uses here (deb822 `.sources` or one-line `sources.list`)."""
    candidates = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in candidates:
        for stanza in path.read_text().split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if (
                uris
                and suites
                and SUITE in suites.group(1).split()
                and "security" not in uris.group(1)
            ):
                return uris.group(1)
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.list")]:
        if path.is_file():
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[0] == "deb" and parts[2] == SUITE:
                    return parts[1] if not parts[1].startswith("[") else parts[2]
    raise SystemExit("no Debian mirror for bookworm in apt's sources")


def debian_rootfs() -> Path:
    target = CACHE / "debian-rootfs"
    if target.is_dir():
        return target
    work = CACHE / "debian-rootfs.tmp"
    shutil.rmtree(work, ignore_errors=True)
    mirror = apt_mirror()
    print(f"building the Debian image with debootstrap from {mirror} (once)...", flush=True)
    run("debootstrap", "--variant=minbase", SUITE, str(work), mirror)
    work.rename(target)
    return target


def busybox_rootfs() -> Path:
    target = CACHE / "busybox-rootfs"
    if target.is_dir():
        return target
    work = CACHE / "busybox-rootfs.tmp"
    shutil.rmtree(work, ignore_errors=True)
    (work / "bin").mkdir(parents=True)
    (work / "etc").mkdir()
    (work / "tmp").mkdir(mode=0o1777)
    shutil.copy2("/usr/bin/busybox", work / "bin/busybox")
    for applet in run("/usr/bin/busybox", "--list", text=True).stdout.split():
        if applet != "busybox":
            (work / "bin" / applet).symlink_to("busybox")
    (work / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    work.rename(target)
    return target


def _blob(layout: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs/sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def oci_layout(name: str, rootfs: Path) -> Path:
    """An OCI image layout with the rootfs as one gzip layer (as `docker build` makes)."""
    layout = CACHE / f"{name}-oci"
    if (layout / "index.json").is_file():
        return layout
    shutil.rmtree(layout, ignore_errors=True)
    (layout / "blobs/sha256").mkdir(parents=True)
    tar = run(
        "tar", "-C", str(rootfs), "--numeric-owner", "--xattrs", "--xattrs-include=*",
        "--sort=name", "-cf", "-", ".",
    ).stdout  # fmt: skip
    layer = _blob(layout, gzip.compress(tar, compresslevel=6, mtime=0))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
    }  # fmt: skip
    config_desc = _blob(layout, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
    }
    manifest_desc = _blob(layout, json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **manifest_desc,
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }
        ],
    }
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps(index))
    print(f"{name}: layer {len(tar) / 1e6:.0f} MB, gzip {layer['size'] / 1e6:.0f} MB", flush=True)
    return layout


class Registry:
    def __init__(self, workdir: Path):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.host = f"127.0.0.1:{sock.getsockname()[1]}"
        config = workdir / "registry.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'storage'}\n"
            f"http:\n  addr: {self.host}\n  secret: bench\n"
        )
        self.process = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            try:
                socket.create_connection(self.host.split(":"), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise SystemExit("registry did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def drop_caches() -> None:
    """Start every run from the same state: dirty pages written, nothing of the last run's
    output in flight."""
    os.sync()


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def bench_skopeo_umoci(ref: str, work: Path) -> tuple[float, float, float]:
    """(copy wall s, unpack wall s, CPU s of both)"""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    drop_caches()
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    run("skopeo", "copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{work / 'oci'}:latest")
    copied = time.perf_counter()
    run("umoci", "unpack", "--image", f"{work / 'oci'}:latest", str(work / "bundle"))
    unpacked = time.perf_counter()
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - cpu
    shutil.rmtree(work)
    return copied - began, unpacked - copied, cpu


def bench_pyci(ref: str, home: Path) -> tuple[float, int, float]:
    """(wall s, requests, CPU s)"""
    shutil.rmtree(home, ignore_errors=True)
    drop_caches()
    counter = RequestCounter()
    cpu = cpu_seconds(resource.RUSAGE_SELF)
    began = time.perf_counter()
    pull_image(ImageStore(home), ref, auth=CredentialStore([]), counter=counter)
    return time.perf_counter() - began, counter.count, cpu_seconds(resource.RUSAGE_SELF) - cpu


def bench_warm(ref: str, home: Path) -> tuple[float, int, float]:
    counter = RequestCounter()
    began = time.perf_counter()
    pull_image(ImageStore(home), ref, policy="if-not-present", counter=counter)
    in_process = time.perf_counter() - began
    began = time.perf_counter()
    run(
        sys.executable, "-m", "runner", "image", "pull", "--pull-policy", "if-not-present", ref,
        env={**os.environ, "PYCI_HOME": str(home)}, cwd=str(ROOT),
    )  # fmt: skip
    return in_process, counter.count, time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=("busybox", "debian"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: extraction keeps owners and device nodes")
    CACHE.mkdir(exist_ok=True)
    images = {"busybox": busybox_rootfs, "debian": debian_rootfs}
    if args.only:
        images = {args.only: images[args.only]}
    layouts = {name: oci_layout(name, build()) for name, build in images.items()}
    work = Path(tempfile.mkdtemp(prefix="pyci-bench-", dir=CACHE))
    registry = Registry(work)
    rows = []
    try:
        for name, layout in layouts.items():
            ref = f"{registry.host}/bench/{name}:latest"
            run(
                "skopeo",
                "copy",
                "--dest-tls-verify=false",
                f"oci:{layout}:latest",
                f"docker://{ref}",
            )
            samples: list[list[float]] = [[], [], [], [], []]
            requests = 0
            for _ in range(args.runs):
                copy, unpack, their_cpu = bench_skopeo_umoci(ref, work / "skopeo")
                elapsed, requests, our_cpu = bench_pyci(ref, work / "pyci-home")
                for series, value in zip(
                    samples, (copy, unpack, their_cpu, elapsed, our_cpu), strict=True
                ):
                    series.append(value)
            warm, warm_requests, warm_cli = bench_warm(ref, work / "pyci-home")
            medians = [statistics.median(series) for series in samples]
            rows.append((name, *medians, requests, warm, warm_requests, warm_cli))
            shutil.rmtree(work / "pyci-home", ignore_errors=True)
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\nmedian of {args.runs} runs, cold pull + unpack from a loopback registry "
        f"(wall time; CPU = user + system of all threads/processes)"
    )
    print(
        f"{'image':8} {'skopeo':>7} {'umoci':>7} {'sk+umoci':>8} {'(CPU)':>7} {'pyci':>7} "
        f"{'(CPU)':>7} {'req':>4} | {'warm pyci':>9} {'req':>3} {'warm CLI':>8}"
    )
    for name, copy, unpack, their_cpu, pyci, our_cpu, req, warm, warm_req, warm_cli in rows:
        print(
            f"{name:8} {copy:6.2f}s {unpack:6.2f}s {copy + unpack:7.2f}s {their_cpu:6.2f}s "
            f"{pyci:6.2f}s {our_cpu:6.2f}s {req:4} | {warm * 1000:6.1f} ms {warm_req:3} "
            f"{warm_cli:7.2f}s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
