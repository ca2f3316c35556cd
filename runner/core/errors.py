"""Expected errors: what a user did wrong, said in one line each.

A `Problem` names where (file, line, column), what (job, key) and why. Every step of the
pipeline (load, expand, validate, evaluate, plan) collects problems instead of stopping at the
first one, then raises one `ConfigError` holding them all. The CLI prints each problem on its
own line and exits 1; anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Location:
    """A place in a source file; `line` and `column` are 1-based, 0 when unknown."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if not self.line:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    """One user mistake. `message` uses GitLab's wording where GitLab has one."""

    message: str
    location: Location | None = None
    job: str | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{where}{self.message}"


class PyciError(Exception):
    """Base of every expected error; the CLI turns these into lines and exit codes."""

    exit_code = 1


class ConfigError(PyciError):
    """The configuration is invalid; holds every problem found, in file order."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.location or Location(""), p.message))
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def one(
        cls,
        message: str,
        location: Location | None = None,
        job: str | None = None,
        key: str | None = None,
    ) -> ConfigError:
        return cls([Problem(message, location, job, key)])


class UsageError(PyciError):
    """The command line itself is wrong (unknown job, bad option value)."""

    exit_code = 2


class ProblemCollector:
    """Gathers problems while a step keeps going; `raise_if_any` ends the step."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(
        self,
        message: str,
        location: Location | None = None,
        job: str | None = None,
        key: str | None = None,
    ) -> None:
        self.problems.append(Problem(message, location, job, key))

    def extend(self, problems: Iterable[Problem]) -> None:
        self.problems.extend(problems)

    def raise_if_any(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)

    def __bool__(self) -> bool:
        return bool(self.problems)
