"""A job of the file that a pipeline does not create, and why (`pyci list --all`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExcludedJob:
    name: str
    stage: str
    reason: str  # which rule (or `when: never`) left it out
