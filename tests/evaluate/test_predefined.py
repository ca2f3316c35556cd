"""Predefined CI_* variables read from real git repositories."""

import pytest

from runner.evaluate.predefined import (
    ZERO_SHA,
    job_variables,
    parse_remote_url,
    pipeline_variables,
    read_git_facts,
    slugify,
)


def as_dict(variables):
    return {v.key: v.value for v in variables}


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("main", "main"),
        ("Feature/Login_Page", "feature-login-page"),
        ("-x-", "x"),
        ("a" * 70, "a" * 63),
        ("x" * 62 + "/y", "x" * 62),  # cut to 63, then trailing - removed
        ("ÄÖ", ""),
    ],
)
def test_slugify(text, slug):
    assert slugify(text) == slug


@pytest.mark.parametrize(
    ("url", "host", "port", "ssh_port", "path"),
    [
        ("https://gitlab.com/group/project.git", "gitlab.com", 443, 22, "group/project"),
        ("https://user:tok@git.example.org:8443/a/b/c", "git.example.org", 8443, 22, "a/b/c"),
        ("git@gitlab.com:group/sub/project.git", "gitlab.com", 443, 22, "group/sub/project"),
        ("ssh://git@git.example.org:2222/g/p.git", "git.example.org", 443, 2222, "g/p"),
        ("http://localhost/g/p", "localhost", 80, 22, "g/p"),
    ],
)
def test_parse_remote_url(url, host, port, ssh_port, path):
    info = parse_remote_url(url)
    assert (info.server_host, info.server_port, info.ssh_port, info.project_path) == (
        host,
        port,
        ssh_port,
        path,
    )


def test_local_paths_are_not_remotes():
    assert parse_remote_url("/srv/git/project.git") is None
    assert parse_remote_url("file:///srv/git/project.git") is None


def test_branch_commit_and_remote(make_repo):
    repo = make_repo()
    repo.commit("Add login page\n\nWith a form.\nAnd tests.\n", {"a.txt": "a"})
    repo.repo.git.checkout("-b", "Feature/Login")
    sha = repo.commit("Second commit", {"b.txt": "b"})
    repo.repo.create_remote("origin", "git@gitlab.example.com:team/web/app.git")
    facts = read_git_facts(repo.root)
    variables = as_dict(pipeline_variables(facts))
    assert variables["CI_COMMIT_SHA"] == sha
    assert variables["CI_COMMIT_SHORT_SHA"] == sha[:8]
    assert variables["CI_COMMIT_REF_NAME"] == "Feature/Login"
    assert variables["CI_COMMIT_REF_SLUG"] == "feature-login"
    assert variables["CI_COMMIT_BRANCH"] == "Feature/Login"
    assert "CI_COMMIT_TAG" not in variables
    assert variables["CI_COMMIT_TITLE"] == "Second commit"
    assert variables["CI_COMMIT_AUTHOR"] == "Ada Lovelace <ada@example.org>"
    assert variables["CI_COMMIT_TIMESTAMP"].endswith("Z")
    assert variables["CI_DEFAULT_BRANCH"] == "main"
    assert variables["CI_COMMIT_REF_PROTECTED"] == "false"
    assert variables["CI_PROJECT_PATH"] == "team/web/app"
    assert variables["CI_PROJECT_NAMESPACE"] == "team/web"
    assert variables["CI_PROJECT_ROOT_NAMESPACE"] == "team"
    assert variables["CI_PROJECT_NAME"] == "app"
    assert variables["CI_PROJECT_PATH_SLUG"] == "team-web-app"
    assert variables["CI_PROJECT_URL"] == "https://gitlab.example.com/team/web/app"
    assert variables["CI_SERVER_HOST"] == "gitlab.example.com"
    assert variables["CI_API_V4_URL"] == "https://gitlab.example.com/api/v4"
    assert variables["CI_PIPELINE_SOURCE"] == "push"
    assert variables["CI"] == variables["GITLAB_CI"] == "true"
    assert variables["GITLAB_USER_EMAIL"] == "ada@example.org"


def test_commit_description(make_repo):
    repo = make_repo()
    repo.commit("Title\n\nBody one.\nBody two.\n", {"a": "1"})
    facts = read_git_facts(repo.root)
    assert facts.commit_title == "Title"
    # GitLab: the message after the first line, one trailing newline removed
    assert facts.commit_description == "\nBody one.\nBody two."
    assert facts.commit_message == "Title\n\nBody one.\nBody two.\n"


def test_long_first_line_is_cut_and_the_description_is_the_whole_message(make_repo):
    repo = make_repo()
    first_line = "word " * 30  # 150 characters
    repo.commit(first_line + "\nmore\n", {"a": "1"})
    facts = read_git_facts(repo.root)
    assert facts.commit_title == "word " * 14 + "word..."  # cut at the last space before 79
    assert len(facts.commit_title) <= 81
    assert facts.commit_description == first_line + "\nmore\n"


def test_detached_head_on_an_annotated_tag(make_repo):
    repo = make_repo()
    sha = repo.commit("release", {"a": "1"})
    repo.repo.create_tag("v1.2.0", message="Release 1.2.0")
    repo.repo.git.checkout("v1.2.0")
    variables = as_dict(pipeline_variables(read_git_facts(repo.root)))
    assert variables["CI_COMMIT_TAG"] == "v1.2.0"
    assert variables["CI_COMMIT_TAG_MESSAGE"] == "Release 1.2.0"
    assert variables["CI_COMMIT_REF_SLUG"] == "v1-2-0"
    assert variables["CI_COMMIT_SHA"] == sha
    assert "CI_COMMIT_BRANCH" not in variables


def test_detached_head_on_a_bare_commit(make_repo):
    repo = make_repo()
    first = repo.commit("one", {"a": "1"})
    repo.commit("two", {"a": "2"})
    repo.repo.git.checkout(first)
    facts = read_git_facts(repo.root)
    assert (facts.ref_name, facts.is_branch, facts.is_tag) == (first, False, False)


def test_no_commit_yet(make_repo):
    repo = make_repo(branch="trunk")
    facts = read_git_facts(repo.root)
    assert facts.sha == ZERO_SHA
    assert facts.ref_name == "trunk"
    assert facts.default_branch == "trunk"
    assert facts.commit_message == ""
    assert facts.project_path == "local/project"
    assert facts.repository_url.startswith("file://")


def test_not_a_repository(tmp_path):
    facts = read_git_facts(tmp_path)
    assert facts.sha == ZERO_SHA
    assert facts.project_name == tmp_path.name
    assert facts.server_host == "gitlab.localhost"


def test_remote_head_gives_the_default_branch(make_repo):
    upstream = make_repo("upstream", branch="develop")
    upstream.commit("one", {"a": "1"})
    clone_dir = upstream.root.parent / "clone"
    cloned = upstream.repo.clone(clone_dir)
    cloned.remotes.origin.set_url("https://gitlab.example.com/g/p.git")
    cloned.git.checkout("-b", "topic")
    try:
        facts = read_git_facts(clone_dir)
    finally:
        cloned.close()
    assert facts.default_branch == "develop"
    assert facts.ref_name == "topic"


def test_merge_request_pipeline_has_no_commit_branch(make_repo):
    repo = make_repo()
    repo.commit("one", {"a": "1"})
    variables = as_dict(
        pipeline_variables(read_git_facts(repo.root), pipeline_source="merge_request_event")
    )
    assert "CI_COMMIT_BRANCH" not in variables
    assert variables["CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"] == "main"
    assert variables["CI_COMMIT_REF_PROTECTED"] == "true"


def test_job_variables(make_repo):
    repo = make_repo()
    repo.commit("one", {"a": "1"})
    facts = read_git_facts(repo.root)
    variables = as_dict(
        job_variables(
            facts,
            job_name="test: [linux, 3.11]",
            stage="test",
            node_index=2,
            node_total=4,
            project_dir_in_job="/builds/local/project",
            builds_dir="/builds",
        )
    )
    assert variables["CI_JOB_NAME"] == "test: [linux, 3.11]"
    assert variables["CI_JOB_NAME_SLUG"] == "test---linux--3-11"  # no collapsing, as GitLab
    assert variables["CI_JOB_STAGE"] == "test"
    assert (variables["CI_NODE_INDEX"], variables["CI_NODE_TOTAL"]) == ("2", "4")
    assert variables["CI_PROJECT_DIR"] == "/builds/local/project"
    assert variables["CI_BUILDS_DIR"] == "/builds"
    single = as_dict(
        job_variables(
            facts,
            job_name="x",
            stage="build",
            node_index=None,
            node_total=None,
            project_dir_in_job="/b",
            builds_dir="/",
        )
    )
    assert "CI_NODE_INDEX" not in single
    assert single["CI_NODE_TOTAL"] == "1"
