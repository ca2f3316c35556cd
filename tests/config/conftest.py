"""Projects built from a dict of files, and short ways to load and expand them."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.config.expand import ExpandedConfig, expand_config
from runner.config.include import LoadedConfig, load_config
from runner.core.errors import ConfigError

Files = dict[str, str]


@pytest.fixture
def project(tmp_path: Path) -> Callable[[Files], Path]:
    """`project({"path": "yaml text", ...})` writes the files (dedented) and returns the dir."""

    def build(files: Files) -> Path:
        for name, text in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        return tmp_path

    return build


@pytest.fixture
def load(project: Callable[[Files], Path]) -> Callable[..., LoadedConfig]:
    def run(files: Files, **options) -> LoadedConfig:
        directory = project(files)
        return load_config(directory, directory / ".gitlab-ci.yml", **options)

    return run


@pytest.fixture
def expand(load: Callable[..., LoadedConfig]) -> Callable[..., ExpandedConfig]:
    def run(files: Files | str, **options) -> ExpandedConfig:
        if isinstance(files, str):
            files = {".gitlab-ci.yml": files}
        return expand_config(load(files, **options).root)

    return run


@pytest.fixture
def problems() -> Callable[[Callable[[], object]], list[str]]:
    """`problems(lambda: ...)`: the lines of the ConfigError the call raises (it must raise)."""

    def lines(action: Callable[[], object]) -> list[str]:
        with pytest.raises(ConfigError) as caught:
            action()
        return [str(problem) for problem in caught.value.problems]

    return lines
