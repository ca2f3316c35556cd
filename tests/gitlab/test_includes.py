"""Every include kind that lives on a GitLab server, resolved through the fake GitLab API on
loopback: `project` (file lists, refs, the default branch, nested `local:`), `template`,
`remote` (with `integrity`), `component` (`~latest`, partial and exact versions, both file
layouts, inputs), private projects behind a token, the cache (zero requests on a hit),
`--offline`, `--include-project` and `pyci fetch-includes`."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path

import pytest

from runner.cli import main
from runner.config.remote_includes import IncludeOptions
from runner.core.errors import ConfigError, UsageError
from runner.pipeline import load_expanded
from runner.project import ProjectOptions
from tests.fake_gitlab import FakeGitLab

JOB = "local-job:\n  script: echo\n"


@pytest.fixture
def gitlab(monkeypatch, tmp_path):
    monkeypatch.setenv("PYCI_HOME", str(tmp_path / "home"))
    for name in ("PYCI_GITLAB_TOKEN", "GITLAB_TOKEN", "PYCI_GITLAB_URL", "PYCI_INCLUDE_TTL"):
        monkeypatch.delenv(name, raising=False)
    with FakeGitLab() as server:
        shared = server.add_project("ci/shared")
        shared.refs["main"] = {
            "jobs/build.yml": "include:\n  - local: jobs/common.yml\nbuild:\n  script: make\n",
            "jobs/common.yml": "common:\n  script: echo common-from-main\n",
            "jobs/test.yml": "test:\n  script: make test\n",
        }
        shared.refs["v1"] = {"jobs/build.yml": "build:\n  script: make-v1\n"}
        yield server


def project(tmp_path: Path, text: str) -> Path:
    directory = tmp_path / "project"
    directory.mkdir(exist_ok=True)
    (directory / ".gitlab-ci.yml").write_text(text)
    return directory


def load(directory: Path, url: str, **options):
    includes = IncludeOptions(gitlab_url=url, **options)
    return load_expanded(ProjectOptions(directory, directory / ".gitlab-ci.yml", {}, includes))


def test_project_files_at_a_ref_with_nested_local_from_that_project(gitlab, tmp_path):
    directory = project(
        tmp_path,
        "include:\n  - project: ci/shared\n    ref: main\n"
        "    file: [jobs/build.yml, /jobs/test.yml]\n" + JOB,
    )
    expanded = load(directory, gitlab.url)
    assert set(expanded.jobs) == {"build", "common", "test", "local-job"}
    assert expanded.jobs["common"]["script"] == ["echo common-from-main"]
    assert expanded.fetched == (
        "ci/shared@main:jobs/build.yml",
        "ci/shared@main:jobs/common.yml",
        "ci/shared@main:jobs/test.yml",
    )


def test_project_without_ref_reads_the_default_branch(gitlab, tmp_path):
    gitlab.projects["ci/shared"].default_branch = "v1"
    directory = project(tmp_path, "include:\n  project: ci/shared\n  file: jobs/build.yml\n")
    assert load(directory, gitlab.url).jobs["build"]["script"] == ["make-v1"]


def test_template(gitlab, tmp_path):
    gitlab.templates["Bash"] = "bash-job:\n  script: bash --version\n"
    directory = project(tmp_path, "include:\n  - template: Bash.gitlab-ci.yml\n" + JOB)
    assert load(directory, gitlab.url).jobs["bash-job"]["script"] == ["bash --version"]
    missing = project(tmp_path, "include:\n  - template: Nope.gitlab-ci.yml\n" + JOB)
    with pytest.raises(ConfigError, match=r"Included file `Nope.gitlab-ci.yml` is empty or"):
        load(missing, gitlab.url)


def test_remote_with_integrity(gitlab, tmp_path):
    body = b"remote-job:\n  script: echo remote\n"
    gitlab.static["/files/remote.yml"] = body
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    url = f"{gitlab.url}/files/remote.yml"
    good = project(tmp_path, f"include:\n  - remote: {url}\n    integrity: sha256-{digest}\n")
    assert "remote-job" in load(good, gitlab.url).jobs
    bad = project(tmp_path, f"include:\n  - remote: {url}\n    integrity: sha256-AAAA\n")
    with pytest.raises(ConfigError, match="does not match the integrity hash"):
        load(bad, gitlab.url, refresh=True)
    gone = project(tmp_path, f"include:\n  - remote: {gitlab.url}/files/gone.yml\n")
    with pytest.raises(ConfigError, match=r"because of HTTP code `404` error!"):
        load(gone, gitlab.url)


@pytest.fixture
def components(gitlab):
    lib = gitlab.add_project("ci/components")
    spec = "spec:\n  inputs:\n    stage:\n      default: test\n---\n"
    for version in ("1.0.0", "1.2.0", "1.10.1", "2.0.0"):
        lib.refs[version] = {
            "templates/lint.yml": spec
            + f'lint:\n  stage: $[[ inputs.stage ]]\n  script: echo "{version}"\n',
            "templates/scan/template.yml": f'scan:\n  script: echo "scan {version}"\n',
        }
        lib.tags[version] = version
    lib.refs["main"] = dict(lib.refs["2.0.0"])
    return lib


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("~latest", "2.0.0"),
        ("1", "1.10.1"),
        ("1.2", "1.2.0"),
        ("1.0.0", "1.0.0"),
        ("main", "2.0.0"),
    ],
)
def test_component_versions_resolve_as_the_catalog_does(
    gitlab, components, tmp_path, version, expected
):
    address = f"{gitlab.fqdn}/ci/components/lint@{version}"
    directory = project(tmp_path, f"include:\n  - component: {address}\n" + JOB)
    assert load(directory, gitlab.url).jobs["lint"]["script"] == [f'echo "{expected}"']


def test_component_directory_layout_and_inputs(gitlab, components, tmp_path):
    scan = f"{gitlab.fqdn}/ci/components/scan@1.2.0"
    lint = f"{gitlab.fqdn}/ci/components/lint@2.0.0"
    directory = project(
        tmp_path,
        f"stages: [build, test]\ninclude:\n  - component: {scan}\n"
        f"  - component: {lint}\n    inputs:\n      stage: build\n" + JOB,
    )
    expanded = load(directory, gitlab.url)
    assert expanded.jobs["scan"]["script"] == ['echo "scan 1.2.0"']
    assert expanded.jobs["lint"]["stage"] == "build"
    wrong = project(
        tmp_path,
        f"include:\n  - component: {lint}\n    inputs:\n      nope: x\n" + JOB,
    )
    with pytest.raises(ConfigError, match="unknown input"):
        load(wrong, gitlab.url)


def test_component_errors_are_one_line(gitlab, components, tmp_path):
    other = project(tmp_path, "include:\n  - component: gitlab.com/ci/components/lint@1\n" + JOB)
    with pytest.raises(ConfigError, match="must start with the server's FQDN"):
        load(other, gitlab.url)
    none = project(tmp_path, f"include:\n  - component: {gitlab.fqdn}/ci/components/lint@9\n")
    with pytest.raises(ConfigError, match="no released version matches `9`"):
        load(none, gitlab.url)


def test_private_project_needs_the_token(gitlab, tmp_path, monkeypatch):
    secret = gitlab.add_project("team/private", private=True)
    secret.refs["main"] = {"ci.yml": "private-job:\n  script: echo\n"}
    directory = project(
        tmp_path, "include:\n  - project: team/private\n    ref: main\n    file: ci.yml\n"
    )
    with pytest.raises(ConfigError, match="not found"):
        load(directory, gitlab.url)
    monkeypatch.setenv("PYCI_GITLAB_TOKEN", gitlab.token)
    assert "private-job" in load(directory, gitlab.url).jobs
    assert gitlab.api_requests()[-1].headers["private-token"] == gitlab.token


def test_the_token_never_follows_a_redirect_to_another_host(gitlab, tmp_path, monkeypatch):
    monkeypatch.setenv("PYCI_GITLAB_TOKEN", gitlab.token)
    with FakeGitLab() as elsewhere:
        elsewhere.static["/moved.yml"] = b"moved:\n  script: echo\n"
        raw = "/api/v4/projects/ci%2Fshared/repository/files/moved.yml/raw"
        gitlab.redirects[raw] = f"{elsewhere.url}/moved.yml"
        directory = project(
            tmp_path, "include:\n  - project: ci/shared\n    ref: main\n    file: moved.yml\n"
        )
        assert "moved" in load(directory, gitlab.url).jobs
        assert [r.headers.get("private-token") for r in elsewhere.requests] == [None]
        assert gitlab.requests[-1].headers["private-token"] == gitlab.token


def test_a_second_load_makes_no_request_and_offline_reads_the_cache(gitlab, tmp_path):
    gitlab.templates["Bash"] = "bash-job:\n  script: bash\n"
    directory = project(
        tmp_path,
        "include:\n  - project: ci/shared\n    file: jobs/build.yml\n"
        "  - template: Bash.gitlab-ci.yml\n" + JOB,
    )
    first = load(directory, gitlab.url)
    sent = len(gitlab.requests)
    assert sent > 0
    assert load(directory, gitlab.url).jobs == first.jobs
    assert load(directory, gitlab.url, offline=True).jobs == first.jobs
    assert len(gitlab.requests) == sent


def test_offline_without_the_cache_says_how_to_fetch(gitlab, tmp_path, capsys):
    directory = project(
        tmp_path, "include:\n  - project: ci/shared\n    ref: main\n    file: jobs/test.yml\n"
    )
    assert main(["validate", "-C", str(directory), "--gitlab-url", gitlab.url, "--offline"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert "include:project `ci/shared` file `jobs/test.yml` (ref `main`)" in err[0]
    assert "pyci fetch-includes" in err[0]
    assert gitlab.requests == []
    assert main(["fetch-includes", "-C", str(directory), "--gitlab-url", gitlab.url]) == 0
    assert "ci/shared@main:jobs/test.yml" in capsys.readouterr().out
    assert main(["validate", "-C", str(directory), "--gitlab-url", gitlab.url, "--offline"]) == 0


def test_branches_are_fetched_again_after_the_ttl_but_shas_never(gitlab, tmp_path, monkeypatch):
    sha = "a" * 40
    gitlab.projects["ci/shared"].refs[sha] = {"pinned.yml": "pinned:\n  script: echo\n"}
    directory = project(
        tmp_path,
        "include:\n  - project: ci/shared\n    ref: main\n    file: jobs/test.yml\n"
        f"  - project: ci/shared\n    ref: '{sha}'\n    file: pinned.yml\n",
    )
    load(directory, gitlab.url)
    monkeypatch.setenv("PYCI_INCLUDE_TTL", "0")
    before = len(gitlab.requests)
    load_expanded(
        ProjectOptions(
            directory, directory / ".gitlab-ci.yml", {}, IncludeOptions(gitlab_url=gitlab.url)
        )
    )
    again = [r.query.get("ref") for r in gitlab.requests[before:]]
    assert again == ["main"]


def test_include_project_reads_a_local_checkout(gitlab, tmp_path):
    checkout = tmp_path / "shared-checkout"
    (checkout / "jobs").mkdir(parents=True)
    (checkout / "jobs" / "build.yml").write_text(
        "include:\n  - local: jobs/common.yml\nbuild:\n  script: make-local\n"
    )
    (checkout / "jobs" / "common.yml").write_text("common:\n  script: echo local-common\n")
    directory = project(tmp_path, "include:\n  - project: ci/shared\n    file: jobs/build.yml\n")
    code = main(
        ["show", "common", "-C", str(directory), "--include-project", f"ci/shared={checkout}"]
    )
    assert code == 0
    assert gitlab.requests == []


def test_no_server_known_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYCI_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PYCI_GITLAB_URL", raising=False)
    directory = project(tmp_path, "include:\n  - template: Bash.gitlab-ci.yml\n" + JOB)
    assert main(["validate", "-C", str(directory)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "no GitLab server is known" in err[0] and "--gitlab-url" in err[0]


def test_project_errors_are_gitlabs_words(gitlab, tmp_path):
    cases = {
        "project: ci/nope\n    file: a.yml": "Project `ci/nope` not found or access denied!",
        "project: ci/shared\n    ref: gone\n    file: a.yml": (
            "Project `ci/shared` reference `gone` does not exist!"
        ),
        "project: ci/shared\n    ref: main\n    file: a.yml": (
            "Project `ci/shared` file `a.yml` does not exist!"
        ),
        "project: ci/shared\n    ref: main\n    file: jobs/readme.txt": "not have YAML extension",
    }
    gitlab.projects["ci/shared"].refs["main"]["jobs/readme.txt"] = "x"
    for entry, message in cases.items():
        directory = project(tmp_path, f"include:\n  - {entry}\n" + JOB)
        with pytest.raises(ConfigError) as info:
            load(directory, gitlab.url)
        assert [message in p.message for p in info.value.problems] == [True], entry


def test_the_credential_helper_is_asked_only_when_a_request_is_sent(gitlab, tmp_path):
    """git's credential helper gives the token, and is run only when pyci has to talk to the
    server: a pipeline whose includes are all local (or cached) never runs it."""
    secret = gitlab.add_project("team/private", private=True)
    secret.refs["main"] = {"ci.yml": "private-job:\n  script: echo\n"}
    asked = tmp_path / "helper-asked"
    helper = tmp_path / "helper.sh"
    answer = f"username=pyci\\npassword={gitlab.token}"  # what `git credential fill` needs
    helper.write_text(f'#!/bin/sh\necho "$1" >> {asked}\nprintf "{answer}\\n"\n')
    helper.chmod(0o755)
    directory = project(tmp_path, JOB)
    for command in (["init", "-q"], ["config", "credential.helper", str(helper)]):
        subprocess.run(["git", "-C", str(directory), *command], check=True)

    assert "local-job" in load(directory, gitlab.url).jobs
    assert not asked.exists()

    (directory / ".gitlab-ci.yml").write_text(
        "include:\n  - project: team/private\n    ref: main\n    file: ci.yml\n" + JOB
    )
    assert "private-job" in load(directory, gitlab.url).jobs
    assert asked.read_text() == "get\n"
    assert gitlab.api_requests()[-1].headers["private-token"] == gitlab.token


def test_a_bad_gitlab_url_is_refused_even_when_nothing_is_fetched(tmp_path):
    directory = project(tmp_path, JOB)
    with pytest.raises(UsageError, match=r"GitLab URL 'ftp://gitlab': expected http\(s\)://"):
        load(directory, "ftp://gitlab")
