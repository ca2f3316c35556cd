"""Variables kept outside the repository: `.pyci/variables.yml`, the user's file and
`--gitlab-variables`, through `pyci run` (in-process, shell executor).

What is checked: GitLab's precedence (YAML < settings < --variable; instance < group <
project; the user file below the project file), `environment_scope` (`*` < glob < exact),
`protected` only on a protected ref, the user file's project globs, file variables, masked
values in no output, and bad files as one line naming file:line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.cli import main
from tests.fake_gitlab import FakeGitLab
from tests.gitutil import git

PIPELINE = """
variables:
  FROM_YAML: yaml
  OVERRIDDEN: yaml
show:
  environment: {environment}
  script:
    - echo "yaml=$FROM_YAML overridden=$OVERRIDDEN scoped=$SCOPED prot=$PROT user=$USER_ONLY"
    - echo "file=$(cat "$A_FILE")"
    - echo "secret=$SECRET"
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("PYCI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PYCI_BUILDS_DIR", str(tmp_path / "builds"))
    for name in ("PYCI_GITLAB_TOKEN", "GITLAB_TOKEN", "PYCI_GITLAB_URL"):
        monkeypatch.delenv(name, raising=False)
    repo = tmp_path / "demo"
    repo.mkdir()
    (repo / ".gitlab-ci.yml").write_text(PIPELINE.format(environment="review/app-1"))
    git(repo, "init", "-q", "-b", "main")
    git(
        repo,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "x",
    )
    git(repo, "remote", "add", "origin", "https://gitlab.example.com/team/demo.git")
    (repo / ".pyci").mkdir()
    return repo


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def run(repo: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["run", "-C", str(repo), "--executor", "shell", "--plain", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


PROJECT_FILE = """
variables:
  - key: OVERRIDDEN
    value: project-file
  - key: SCOPED
    value: any
  - key: SCOPED
    value: exact
    environment_scope: review/app-1
  - key: SCOPED
    value: glob
    environment_scope: review/*
  - key: PROT
    value: protected-value
    protected: true
  - key: A_FILE
    value: file content
    variable_type: file
  - key: SECRET
    value: s3cr3t-value-42
    masked: true
"""


def test_precedence_scopes_protected_files_and_masking(project, capsys, tmp_path):
    write(project / ".pyci" / "variables.yml", PROJECT_FILE)
    write(
        tmp_path / "config" / "pyci" / "variables.yml",
        "variables:\n"
        "  - {key: USER_ONLY, value: mine, projects: ['team/*']}\n"
        "  - {key: OVERRIDDEN, value: user-file}\n"
        "  - {key: USER_ONLY, value: other-project, projects: ['other/*']}\n",
    )
    code, output = run(project, capsys)
    assert code == 0, output
    assert (
        "[show] yaml=yaml overridden=project-file scoped=exact prot=protected-value user=mine"
        in output
    )
    assert "[show] file=file content" in output
    assert "[show] secret=[MASKED]" in output
    assert "s3cr3t-value-42" not in output
    logs = project / ".pyci" / "logs"
    assert all("s3cr3t-value-42" not in p.read_text() for p in logs.iterdir())
    # pipeline variables (--variable) stay on top
    code, output = run(project, capsys, "--variable", "SCOPED=cli")
    assert "scoped=cli" in output


def test_protected_variables_stay_out_of_other_branches(project, capsys):
    write(project / ".pyci" / "variables.yml", PROJECT_FILE)
    git(project, "checkout", "-q", "-b", "feature")
    code, output = run(project, capsys)
    assert code == 0, output
    assert "prot= user=" in output


def test_a_job_without_environment_gets_only_star_scoped_variables(project, capsys):
    (project / ".gitlab-ci.yml").write_text(PIPELINE.replace("  environment: {environment}\n", ""))
    write(project / ".pyci" / "variables.yml", PROJECT_FILE)
    code, output = run(project, capsys)
    assert code == 0, output
    assert "scoped=any" in output


def test_rules_see_settings_variables(project, capsys):
    (project / ".gitlab-ci.yml").write_text(
        "only-when-set:\n  rules:\n    - if: $DEPLOY == 'yes'\n  script: [echo ran]\n"
        "other:\n  script: [echo other]\n"
    )
    write(project / ".pyci" / "variables.yml", "variables:\n  - {key: DEPLOY, value: 'yes'}\n")
    code, output = run(project, capsys)
    assert code == 0, output
    assert "[only-when-set] ran" in output


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("variables:\n  - key: A\n    valu: x\n", 3, "variables: unknown field `valu`"),
        (
            "variables:\n  - {key: A, value: x}\n  - key: B\n    value: short\n    masked: true\n",
            4,
            "variables: B: a masked value must be a single line of at least 8 characters",
        ),
        ("variables:\n  - key: A-B\n    value: x\n", 2, "variables: `key` must be 1-255"),
        ("variables:\n  - key: A\n    value: x\n    variable_type: secret\n", 4, "env_var or file"),
        ("variables: {A: x}\n", 1, "expected `variables:` with a list of variables"),
        ("variables:\n  - [unclosed\n", 3, "invalid YAML"),
    ],
)
def test_a_bad_file_is_one_line_with_its_place(project, capsys, text, line, message):
    write(project / ".pyci" / "variables.yml", text)
    code, output = run(project, capsys)
    assert code == 1  # an invalid configuration file, as for .gitlab-ci.yml (docs/cli.md)
    lines = [entry for entry in output.splitlines() if entry.strip()]
    assert len(lines) == 1, output
    where = f"{project / '.pyci' / 'variables.yml'}:{line}:"
    assert lines[0].startswith(f"error: {where}"), lines[0]
    assert message in lines[0]


def test_gitlab_variables_groups_project_and_protected_branches(project, capsys, monkeypatch):
    with FakeGitLab() as gitlab:
        gitlab.groups["team"] = [
            {"key": "OVERRIDDEN", "value": "group"},
            {"key": "USER_ONLY", "value": "from-group"},
        ]
        gitlab.groups["team/sub"] = [{"key": "OVERRIDDEN", "value": "subgroup"}]
        remote = gitlab.add_project("team/sub/demo", private=True)
        remote.variables = [
            {"key": f"FILLER_{n}", "value": str(n)}
            for n in range(120)  # two pages
        ] + [
            {"key": "SCOPED", "value": "server-glob", "environment_scope": "review/*"},
            {"key": "PROT", "value": "server-protected", "protected": True},
            {"key": "A_FILE", "value": "server file", "variable_type": "file"},
            {"key": "SECRET", "value": "server-secret-99", "masked": True},
        ]
        remote.protected_branches = ["release/*"]
        git(project, "remote", "set-url", "origin", f"{gitlab.url}/team/sub/demo.git")
        without_token = main(
            ["run", "-C", str(project), "--executor", "shell", "--gitlab-variables"]
        )
        denied = capsys.readouterr().err
        assert without_token == 1
        assert denied.strip() == (
            "error: project `team/sub/demo`: not found (or not visible without a token)"
        )
        monkeypatch.setenv("PYCI_GITLAB_TOKEN", gitlab.token)
        code, output = run(project, capsys, "--gitlab-variables")
        git(project, "checkout", "-q", "-b", "release/1.0")
        _, on_release = run(project, capsys, "--gitlab-variables")
        paths = [request.path for request in gitlab.api_requests()]
    assert code == 0, output
    # subgroup over group, `main` is not protected on this server: no protected variable
    assert "overridden=subgroup scoped=server-glob prot= user=from-group" in output
    assert "[show] file=server file" in output
    assert "[show] secret=[MASKED]" in output and "server-secret-99" not in output
    assert "prot=server-protected" in on_release
    assert "/api/v4/groups/team/variables" in paths
    assert "/api/v4/groups/team%2Fsub/variables" in paths
    # nothing of it is written to disk
    for root in (project, project.parent / "home"):
        assert not [
            p for p in root.rglob("*") if p.is_file() and b"server-secret-99" in p.read_bytes()
        ]


def test_without_a_server_gitlab_variables_is_a_usage_error(project, capsys):
    git(project, "remote", "remove", "origin")
    code, output = run(project, capsys, "--gitlab-variables")
    assert code == 2
    assert "--gitlab-variables: no GitLab server (set --gitlab-url or PYCI_GITLAB_URL)" in output
