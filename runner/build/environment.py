"""A job's variables at build time: what the scripts export and what must be masked.

Order of precedence (later wins), as the build assembles it:
  the job's variables (predefined < YAML < rules < --variable, as the planner ordered them)
  < dotenv reports of upstream jobs < what the executor decides (CI_PROJECT_DIR,
  CI_BUILDS_DIR, RUNNER_TEMP_PROJECT_DIR: real paths, whatever the planner assumed).
GitLab ranks dotenv below pipeline variables (`--variable` here); the job's list does not say
which entries came from the command line, so locally a dotenv value wins over them too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from runner.build.scripts import ScriptVariable
from runner.core.jobspec import Variable
from runner.evaluate.variables import expand as expand_text
from runner.evaluate.variables import resolve


@dataclass(frozen=True)
class JobEnvironment:
    values: dict[str, str]  # every variable, resolved (file variables: their content)
    file_keys: frozenset[str]
    secrets: tuple[str, ...]  # values to mask, expanded and as written

    def expand(self, text: str) -> str:
        """gitlab-runner's expansion of a keyword value (`cache:key`, `artifacts:paths`)."""
        return expand_text(text, self.values)

    def script_variables(self) -> tuple[ScriptVariable, ...]:
        return tuple(
            ScriptVariable(key, value, key in self.file_keys) for key, value in self.values.items()
        )


def build_environment(
    job_variables: Sequence[Variable],
    dotenv: Sequence[Variable],
    project_dir_in_job: str,
    builds_dir_in_job: str,
) -> JobEnvironment:
    tmp_dir = project_dir_in_job + ".tmp"
    runner_set = [
        Variable("CI_BUILDS_DIR", builds_dir_in_job),
        Variable("CI_PROJECT_DIR", project_dir_in_job),
        Variable("RUNNER_TEMP_PROJECT_DIR", tmp_dir),
        Variable("CI_JOB_STATUS", "running"),  # after_script sees the final one
    ]
    variables = [*job_variables, *dotenv, *runner_set]
    values = _resolve(variables, tmp_dir)
    latest = {variable.key: variable for variable in variables}
    file_keys = frozenset(key for key, variable in latest.items() if variable.file)
    secrets: list[str] = []
    for key, variable in latest.items():
        if variable.masked:
            secrets.extend(v for v in (variable.value, values.get(key, "")) if v)
    return JobEnvironment(values, file_keys, tuple(dict.fromkeys(secrets)))


def _resolve(variables: Sequence[Variable], file_dir: str) -> dict[str, str]:
    # a list without any reference ($X, ${X}, %X%) resolves to itself: the common case of a
    # job with predefined and plain variables skips building the reference graph (~2 ms)
    if any(not v.raw and ("$" in v.value or "%" in v.value) for v in variables):
        return resolve(variables, file_dir=file_dir)
    values: dict[str, str] = {}
    for variable in variables:
        values.pop(variable.key, None)  # the order of the winning definition, as resolve()
        values[variable.key] = variable.value
    return values
