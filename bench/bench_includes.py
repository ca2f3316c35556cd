"""Includes from a GitLab server against the same files included locally.

    python bench/bench_includes.py [--runs N]

A pipeline includes 20 files: 10 `project:` files and 10 `remote:` ones, served by the fake
GitLab API of the tests (tests/fake_gitlab.py) on loopback. The same 20 files, copied into the
project, make the local variant. Each run is a whole `pyci validate` process; runs alternate
between the two variants so a busy machine weighs on both alike.

Printed: the first (cold) validate with its request count, then medians of N warm runs of
each variant, their ratio (the target: at most 1.0 plus noise) and the requests the warm runs
sent (the target: 0).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fake_gitlab import FakeGitLab  # noqa: E402  (after the path is set)

FILES = 20


def included(index: int) -> str:
    return "".join(
        f"job-{index}-{n}:\n  stage: test\n  script: echo {index}-{n}\n" for n in range(5)
    )


def pyci_validate(directory: Path, env: dict[str, str], *extra: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "runner", "validate", "-C", str(directory), *extra],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, FakeGitLab() as gitlab:
        base = Path(scratch)
        env = {**os.environ, "PYCI_HOME": str(base / "home"), "PYTHONPATH": str(ROOT)}
        shared = gitlab.add_project("ci/shared")
        shared.refs["main"] = {}
        remote_lines, local_lines = [], []
        local = base / "local"
        local.mkdir()
        for index in range(FILES):
            text = included(index)
            (local / f"inc-{index}.yml").write_text(text)
            local_lines.append(f"  - local: inc-{index}.yml\n")
            if index % 2:
                gitlab.static[f"/files/inc-{index}.yml"] = text.encode()
                remote_lines.append(f"  - remote: {gitlab.url}/files/inc-{index}.yml\n")
            else:
                shared.refs["main"][f"inc-{index}.yml"] = text
                remote_lines.append(
                    f"  - project: ci/shared\n    ref: main\n    file: inc-{index}.yml\n"
                )
        (local / ".gitlab-ci.yml").write_text("include:\n" + "".join(local_lines))
        served = base / "served"
        served.mkdir()
        (served / ".gitlab-ci.yml").write_text("include:\n" + "".join(remote_lines))
        url = ["--gitlab-url", gitlab.url]

        cold = pyci_validate(served, env, *url)
        cold_requests = len(gitlab.requests)
        times: dict[str, list[float]] = {"local": [], "served": []}
        for _ in range(args.runs):
            times["local"].append(pyci_validate(local, env))
            times["served"].append(pyci_validate(served, env, *url))
        warm_requests = len(gitlab.requests) - cold_requests

    local_median = statistics.median(times["local"])
    served_median = statistics.median(times["served"])
    print(f"{FILES} includes (10 project, 10 remote), {args.runs} interleaved runs each")
    print(f"{'variant':<34}{'median':>10}")
    print(
        f"{'first validate, served (cold)':<34}{cold * 1000:>8.0f} ms  ({cold_requests} requests)"
    )
    print(f"{'validate, local files':<34}{local_median * 1000:>8.0f} ms")
    print(f"{'validate, served (cache)':<34}{served_median * 1000:>8.0f} ms")
    print(f"served / local: {served_median / local_median:.2f}")
    print(f"requests sent by the {args.runs} warm served runs: {warm_requests}")


if __name__ == "__main__":
    main()
