"""Validation of configuration against the models, with GitLab-worded one-line problems.

pydantic reports errors as `loc` paths into the data; here each becomes a `Problem` naming the
file, line:column (walked with runner.config.source.locate), job and key, in GitLab's words:
`jobs:build config contains unknown keys: scriptt`. Every job and every global keyword is
checked, so a file's problems are all reported at once, not just the first.

- `validate_shape`: one raw file as GitLab's JSON schema checks it (`pyci validate
  --shape-only`): no include resolution, no cross-job checks, hidden jobs accepted as anything,
  jobs not required to have a `script:` (it may come from `extends:`, an include, a template).
- `validate_job` / `validate_pipeline`: expanded jobs as GitLab's YAML processor checks them,
  plus the cross-job check of stages.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from runner.config.job_checks import job_findings
from runner.config.models import (
    GLOBAL_KEYWORDS,
    IGNORED_KEYWORDS,
    JobConfig,
    PipelineConfig,
)
from runner.config.models_base import is_reference
from runner.config.source import YamlMap, loc_of, locate
from runner.core.errors import ConfigError, Location, Problem

MAX_JOB_NAME = 255

__all__ = ["ignored_keys", "validate_job", "validate_pipeline", "validate_shape"]

# pydantic's own error types, said the way GitLab says them.
_TYPE_MESSAGES = {
    "bool_type": "config should be a boolean value",
    "int_type": "config should be an integer",
    "int_from_float": "config should be an integer",
    "float_type": "config should be a number",
    "string_type": "config should be a string",
    "dict_type": "config should be a hash",
    "model_type": "config should be a hash",
    "model_attributes_type": "config should be a hash",
    "list_type": "config should be an array",
}


def validate_job(name: str, job: YamlMap) -> tuple[JobConfig | None, list[Problem]]:
    """Check one expanded job: the model (None if a keyword is invalid) and every problem."""
    problems: list[Problem] = []
    if job is None:  # `name:` with no value: GitLab takes it as an empty job
        job = YamlMap()
    model = _validate(JobConfig, job, ("jobs", name), name, job, (), problems, False, job_name=name)
    if len(name) > MAX_JOB_NAME:
        problems.append(
            Problem(
                f"jobs:{name} name is too long (maximum is {MAX_JOB_NAME} characters)",
                loc_of(job),
                job=name,
            )
        )
    if model is not None:
        for finding in job_findings(name, model):
            text = f"{':'.join(('jobs', name, *finding.holder))} {finding.message}"
            where = locate(job, finding.at) if finding.at else loc_of(job)
            key = finding.at[0] if finding.at else None
            problems.append(Problem(text, where, job=name, key=key))
    if isinstance(job, dict) and not any(key in job for key in ("script", "run", "trigger")):
        problems.append(
            Problem(
                f"jobs {name} config should implement the script:, run:, or trigger: keyword",
                loc_of(job),
                job=name,
            )
        )
    return model, _ordered(problems)


def validate_pipeline(globals_: YamlMap, jobs: dict[str, YamlMap]) -> PipelineConfig:
    """Check global keywords and every visible job; raises ConfigError with all problems."""
    problems: list[Problem] = []
    globals_only = {key: value for key, value in globals_.items() if key != "jobs"}
    pipeline = _validate(PipelineConfig, globals_only, (), None, globals_, (), problems, False)
    models: dict[str, JobConfig] = {}
    for name, job in jobs.items():
        if str(name).startswith("."):
            continue
        model, job_problems = validate_job(str(name), job)
        problems.extend(job_problems)
        if model is not None:
            models[str(name)] = model
    if not any(not str(name).startswith(".") for name in jobs):
        problems.append(
            Problem("jobs config should contain at least one visible job", loc_of(globals_))
        )
    if pipeline is not None:
        problems.extend(_stage_problems(pipeline, models, jobs))
    if problems:
        raise ConfigError(problems)
    assert pipeline is not None
    return pipeline.model_copy(update={"jobs": models})


def validate_shape(document: Any, file: str) -> list[Problem]:
    """Every problem GitLab's schema finds in one raw file (nothing is resolved or merged)."""
    if document is None:
        return []
    if not isinstance(document, dict):
        return [Problem("root config should be a hash", loc_of(document) or Location(file))]
    problems: list[Problem] = []
    globals_only = {key: value for key, value in document.items() if key in GLOBAL_KEYWORDS}
    _validate(PipelineConfig, globals_only, (), None, document, (), problems, True, file)
    for key, value in document.items():
        name = str(key)
        if key in GLOBAL_KEYWORDS or name.startswith("."):
            continue  # hidden jobs are templates: anything goes until something extends them
        if is_reference(value):
            continue  # a whole job from `!reference`: checked once resolved
        _validate(JobConfig, value, ("jobs", name), name, document, (key,), problems, True, file)
    return _ordered(problems)


def ignored_keys(job: JobConfig) -> list[str]:
    """Keywords the job sets that have no effect when pyci runs it (reported, not dropped)."""
    return [key for key in IGNORED_KEYWORDS if getattr(job, key) is not None]


def _stage_problems(
    pipeline: PipelineConfig, models: dict[str, JobConfig], jobs: dict[str, YamlMap]
) -> list[Problem]:
    available = pipeline.all_stages()
    problems = []
    for name, source in jobs.items():
        if str(name).startswith("."):
            continue
        model = models.get(str(name))
        stage = model.stage if model else source.get("stage") if isinstance(source, dict) else None
        stage = stage or "test"
        if isinstance(stage, str) and stage not in available:
            problems.append(
                Problem(
                    f"{name} job: chosen stage {stage} does not exist; available stages are "
                    f"{', '.join(available)}",
                    locate(source, ["stage"]),
                    job=name,
                    key="stage",
                )
            )
    return problems


def _validate(
    model: type,
    value: Any,
    prefix: tuple[str, ...],
    job: str | None,
    root: Any,
    root_path: tuple,
    problems: list[Problem],
    shape: bool,
    file: str = "",
    job_name: str | None = None,
) -> Any:
    """Validate `value` (found at `root_path` inside `root`), adding problems; the model or None."""
    resolved, dropped = _resolved_part(value, shape)
    try:
        context = {"shape": shape, "job": job_name}
        return model.model_validate(resolved, context=context)
    except ValidationError as exc:
        problems.extend(_translate(exc, prefix, job, root, root_path, file, dropped))
        return None


def _translate(
    exc: ValidationError,
    prefix: tuple[str, ...],
    job: str | None,
    root: Any,
    root_path: tuple,
    file: str,
    dropped: set[tuple],
) -> list[Problem]:
    problems: list[Problem] = []
    unknown: dict[tuple, list[str]] = {}
    missing: dict[tuple, list[str]] = {}
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(error["loc"])
        kind = error["type"]
        if kind in ("gitlab_key", "gitlab_attribute") and error.get("ctx", {}).get("key"):
            # an error about one key, raised by the model holding it
            loc = (*loc, error["ctx"]["key"])
            kind = "gitlab" if kind == "gitlab_key" else kind
        if dropped and _caused_by_unresolved(kind, loc, error["msg"], dropped):
            continue
        if kind == "extra_forbidden":
            unknown.setdefault(loc[:-1], []).append(str(loc[-1]))
            continue
        if kind == "missing":
            missing.setdefault(loc[:-1], []).append(str(loc[-1]))
            continue
        if kind == "gitlab_entry":
            message = f"{_path(prefix, loc)} {error['msg']}"
            problems.append(_problem(message, root, root_path + loc, job, loc, file))
            continue
        if kind in ("gitlab", "gitlab_attribute"):
            text = error["msg"]
        else:
            text = (
                _TYPE_MESSAGES.get(kind) or f"config {error['msg'][:1].lower()}{error['msg'][1:]}"
            )
        message = _message(prefix, loc, text, attribute=kind == "gitlab_attribute")
        problems.append(_problem(message, root, root_path + loc, job, loc, file))
    for loc, keys in unknown.items():
        message = f"{_path(prefix, loc)} config contains unknown keys: {', '.join(keys)}"
        where = (*loc, keys[0])
        problems.append(_problem(message, root, root_path + where, job, where, file))
    for loc, keys in missing.items():
        message = f"{_path(prefix, loc)} config missing required keys: {', '.join(keys)}"
        problems.append(_problem(message, root, root_path + loc, job, loc, file))
    return problems


# GitLab validates these keys as attributes of the entry holding them, and words their errors
# after the holder: `jobs:x allow failure should be ...`, `jobs:x:artifacts expire in ...`.
_JOB_ATTRIBUTES = frozenset(
    {"when", "dependencies", "rules", "allow_failure", "start_in", "resource_group", "extends"}
)
_ATTRIBUTE_HOLDERS = frozenset({"artifacts", "allow_failure", "only", "except"})


def _message(prefix: tuple[str, ...], loc: tuple, text: str, *, attribute: bool) -> str:
    """`text` (relative, `config should be ...` or `should be ...`) placed as GitLab places it."""
    last = loc[-1] if loc else None
    if isinstance(last, str) and not attribute:
        in_job = prefix[:1] == ("jobs",) and len(loc) == 1 and last in _JOB_ATTRIBUTES
        held = len(loc) > 1 and loc[-2] in _ATTRIBUTE_HOLDERS
        attribute = (in_job or held) and text.startswith("config ")
        text = text.removeprefix("config ") if attribute else text
    if attribute and isinstance(last, str):
        return f"{_path(prefix, loc[:-1])} {last.replace('_', ' ')} {text}"
    return f"{_path(prefix, loc)} {text}"


# Model fields that hold a normalised form of a differently written key.
_RENAMED = {"parallel_matrix": "parallel:matrix"}
# GitLab names the entries of these lists after their kind: `jobs:x:services:service`.
_ENTRY_NAMES = {"services": "service", "rules": "rule", "needs": "need"}


def _path(prefix: tuple[str, ...], loc: tuple) -> str:
    """GitLab's name of a place in the config: `jobs:build:cache:key`, `jobs:x:rules:rule`."""
    parts = list(prefix)
    previous: Any = None
    for part in loc:
        if isinstance(part, str):
            parts.append(_RENAMED.get(part, part))
        elif isinstance(previous, str) and previous in _ENTRY_NAMES:
            parts.append(_ENTRY_NAMES[previous])
        previous = part
    return ":".join(parts) if parts else "root"


def _problem(
    message: str, root: Any, path: tuple, job: str | None, loc: tuple, file: str
) -> Problem:
    location = _locate(root, _source_path(root, path)) or (Location(file) if file else None)
    key = next((str(part) for part in loc if isinstance(part, str)), None)
    return Problem(message, location, job=job, key=key)


def _locate(root: Any, path: tuple) -> Location | None:
    """`locate`, also through plain dicts and lists wrapped around YAML values (a dict of
    global keys built by a caller): their positions are those of the YAML values inside."""
    node, rest = root, list(path)
    while rest and loc_of(node) is None:
        part = rest[0]
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return None
        rest.pop(0)
    return locate(node, rest)


def _source_path(root: Any, path: tuple) -> tuple:
    """`path` as it is written in the YAML: a list index that a short form added (one `cache:`
    hash validated as a list of one) is left out where the YAML has the hash itself."""
    node, kept = root, []
    for part in path:
        if isinstance(part, int) and isinstance(node, dict):
            continue
        kept.append(part)
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(kept)


def _ordered(problems: list[Problem]) -> list[Problem]:
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.location or Location(""), p.message))


_DROP = object()
# A whole value that is an input of a `spec:` header, interpolated when the file is included.
_INPUT = re.compile(r"^\s*\$\[\[.*\]\]\s*$", re.DOTALL)


def _unresolved(value: Any, shape: bool) -> bool:
    """A value only known after expansion: a `!reference`, or (in one raw file) a `$[[ input ]]`
    standing for a whole value, which may be a list or a boolean once interpolated."""
    return is_reference(value) or (shape and isinstance(value, str) and bool(_INPUT.match(value)))


def _has_unresolved(value: Any, shape: bool) -> bool:
    if _unresolved(value, shape):
        return True
    if isinstance(value, dict):
        return any(_has_unresolved(item, shape) for item in value.values())
    if isinstance(value, list):
        return any(_has_unresolved(item, shape) for item in value)
    return False


def _resolved_part(value: Any, shape: bool) -> tuple[Any, set[tuple]]:
    """The value without what is unresolved (GitLab's schema accepts `!reference` anywhere; what
    it resolves to is checked after expansion), and the paths left out. A list left empty goes
    too (it held only unresolved items)."""
    if not _has_unresolved(value, shape):
        return value, set()
    dropped: set[tuple] = set()

    def strip(node: Any, path: tuple) -> Any:
        if _unresolved(node, shape):
            dropped.add(path)
            return _DROP
        if isinstance(node, dict):
            kept = {key: strip(item, (*path, key)) for key, item in node.items()}
            return {key: item for key, item in kept.items() if item is not _DROP}
        if isinstance(node, list):
            items = [strip(item, (*path, index)) for index, item in enumerate(node)]
            items = [item for item in items if item is not _DROP]
            if node and not items:
                dropped.add(path)
                return _DROP
            return items
        return node

    result = strip(value, ())
    return (None if result is _DROP else result), dropped


def _caused_by_unresolved(kind: str, loc: tuple, message: str, dropped: set[tuple]) -> bool:
    """Whether an error only says that a key left out as unresolved is missing."""
    if kind == "missing":
        return loc in dropped
    prefix = "config missing required keys: "
    if kind == "gitlab" and message.startswith(prefix):
        keys = message.removeprefix(prefix).split(", ")
        return all((*loc, key) in dropped for key in keys)
    return False
