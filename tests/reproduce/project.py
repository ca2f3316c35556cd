"""A project whose failed pipeline the fake GitLab serves: the must-show scenario's setup.

The clone has two commits: the pipeline ran at the first (where `test` fails with exit code 3),
the clone's HEAD is the second (where `test` would pass), so reproducing must check out the
first. The fake API serves the pipeline (a scheduled one on `main`), `build`'s artifacts
archive, `test`'s log, the pipeline's variables, a group variable, and project variables with
a masked file variable (`KUBECONFIG`), a protected one and an environment-scoped one.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tests.fake_gitlab import FakeGitLab
from tests.gitutil import git

SECRET = "kube-secret-0123456789"
PIPELINE = """
build:
  stage: build
  {image}
  script: [mkdir -p out, echo local > out/data.txt]
  artifacts:
    paths: [out/]
test:
  stage: test
  {image}
  needs: [build]
  environment: production
  script:
    - echo "source=$CI_PIPELINE_SOURCE ref=$CI_COMMIT_REF_NAME pipeline=$CI_PIPELINE_ID"
    - echo "group=$FROM_GROUP prod=$PROD_ONLY protected=$ON_MAIN nightly=$NIGHTLY"
    - cat out/data.txt
    - echo "kubeconfig bytes=$(wc -c < "$KUBECONFIG")"
    - cat "$KUBECONFIG"
    - echo "$KUBECONFIG_TEXT"
    - {last}
"""


@dataclass
class Scenario:
    repo: Path
    failing_sha: str
    url: str


def artifacts_zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def failed_pipeline(tmp_path: Path, gitlab: FakeGitLab, image: str | None) -> Scenario:
    repo = tmp_path / "clone" / "demo"
    repo.mkdir(parents=True)
    image_line = f"image: {image}" if image else ""
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "dev@example.com")
    git(repo, "config", "user.name", "Dev")
    (repo / ".gitlab-ci.yml").write_text(PIPELINE.format(image=image_line, last="exit 3"))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the commit CI ran")
    failing = git(repo, "rev-parse", "HEAD")
    (repo / ".gitlab-ci.yml").write_text(PIPELINE.format(image=image_line, last="exit 0"))
    git(repo, "commit", "-q", "-am", "a later commit, where test passes")

    gitlab.groups["team"] = [{"key": "FROM_GROUP", "value": "group-value"}]
    project = gitlab.add_project("team/demo", private=True)
    project.variables = [
        {
            "key": "KUBECONFIG",
            "value": SECRET,
            "variable_type": "file",
            "masked": True,
            "protected": False,
            "environment_scope": "*",
        },
        {"key": "KUBECONFIG_TEXT", "value": SECRET, "masked": True},
        {"key": "ON_MAIN", "value": "yes", "protected": True},
        {"key": "PROD_ONLY", "value": "prod", "environment_scope": "production"},
        {"key": "PROD_ONLY", "value": "review", "environment_scope": "review/*"},
    ]
    pipeline = project.add_pipeline(
        7, "main", failing, source="schedule", variables=[{"key": "NIGHTLY", "value": "1"}]
    )
    project.add_job(
        pipeline,
        10,
        "build",
        "build",
        artifacts=artifacts_zip({"out/": "", "out/data.txt": "from the CI pipeline\n"}),
    )
    project.add_job(
        pipeline,
        11,
        "test",
        "test",
        status="failed",
        failure_reason="script_failure",
        trace="$ exit 3\n\x1b[31;1mERROR: Job failed: exit code 3\n\x1b[0;m",
    )
    return Scenario(repo, failing, f"{gitlab.url}/team/demo/-/jobs/11")
