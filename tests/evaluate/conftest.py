"""Real git repositories built in tmp_path with gitpython."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import git
import pytest

AUTHOR = git.Actor("Ada Lovelace", "ada@example.org")


class RepoBuilder:
    def __init__(self, root: Path, branch: str = "main"):
        self.root = root
        self.repo = git.Repo.init(root, initial_branch=branch)
        with self.repo.config_writer() as config:
            config.set_value("user", "name", "Ada Lovelace")
            config.set_value("user", "email", "ada@example.org")

    def write(self, path: str, text: str = "x\n") -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def commit(self, message: str, files: dict[str, str] | None = None) -> str:
        for path, text in (files or {}).items():
            self.write(path, text)
        self.repo.git.add("-A")
        commit = self.repo.index.commit(message, author=AUTHOR, committer=AUTHOR)
        return commit.hexsha

    def close(self) -> None:
        self.repo.close()


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., RepoBuilder]:
    built: list[RepoBuilder] = []

    def make(name: str = "project", branch: str = "main") -> RepoBuilder:
        builder = RepoBuilder(tmp_path / name, branch)
        built.append(builder)
        return builder

    yield make
    for builder in built:
        builder.close()
