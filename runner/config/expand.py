"""From the merged configuration to jobs: `extends`, `!reference`, `default:`, flat scripts.

The steps run in GitLab's order (lib/gitlab/ci/config.rb): `extends` first, then `!reference`
tags on the extended configuration, then job entries take what `default:` gives them.

- Top-level keys are split into GitLab's reserved keywords (kept in `globals`), hidden jobs
  (names starting with `.`) and jobs. A job whose value is not a mapping is an error in GitLab's
  words (`jobs:foo config should be a hash`).
- `default:` keys (and the legacy top-level `image`, `services`, `cache`, `before_script`,
  `after_script`) are copied into every job that does not set them, unless `inherit:default`
  is false or a list without that key. A key set both at top level and in `default:` is
  GitLab's error `image is defined in top-level and `default:` entry`. Trigger jobs take no
  defaults (GitLab's bridge jobs have none of these keys). Hidden jobs are templates, not jobs:
  they are expanded but take no defaults.
- Scripts become flat lists of strings: a string becomes a one-item list and nested lists are
  flattened up to GitLab's 10 levels. A script of any other shape is left as written, for the
  validator to report in GitLab's words. `rules` lists and `stages` are flattened too (GitLab
  flattens them, which is what makes `!reference` inside them work).
- The deprecated `types:` becomes `stages:` when there is no `stages:`, and is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.config.extends import apply_extends
from runner.config.limits import MAX_EXPANDED_ENTRIES
from runner.config.references import resolve_references
from runner.config.source import YamlList, YamlMap
from runner.core.errors import ConfigError, Location, Problem, ProblemCollector

RESERVED_KEYWORDS = (
    "default", "include", "before_script", "image", "services", "after_script",
    "variables", "stages", "types", "cache", "workflow", "spec",
)  # fmt: skip
DEFAULT_KEYWORDS = (
    "after_script", "artifacts", "before_script", "cache", "hooks", "id_tokens", "image",
    "interruptible", "retry", "services", "tags", "timeout",
)  # fmt: skip
LEGACY_DEFAULT_KEYWORDS = ("image", "services", "cache", "before_script", "after_script")
SCRIPT_KEYWORDS = ("before_script", "script", "after_script")
MAX_SCRIPT_NESTING = 10


@dataclass(frozen=True)
class ExpandedConfig:
    globals: YamlMap  # top-level keywords (stages, variables, workflow, default, ...)
    jobs: dict[str, YamlMap]  # visible jobs in file order, fully expanded
    hidden: dict[str, YamlMap]  # hidden jobs (templates), expanded without defaults


def expand_config(root: YamlMap) -> ExpandedConfig:
    """Jobs as GitLab builds them from the merged configuration; ConfigError lists all problems."""
    problems = ProblemCollector()
    extended = apply_extends(root, problems)
    resolved = resolve_references(extended, problems)
    globals_ = YamlMap(loc=root.loc)
    jobs: dict[str, YamlMap] = {}
    hidden: dict[str, YamlMap] = {}
    for key, value in resolved.items():
        name = _job_name(key)
        where = resolved.loc_of(key)
        if name in ("include", "spec"):
            if name == "spec":
                problems.add(
                    "`spec` belongs in a header document, followed by `---` and the configuration",
                    where,
                    key="spec",
                )
            continue
        if name in RESERVED_KEYWORDS:
            globals_[name] = value
            globals_.key_locs[name] = where
        elif name.startswith("."):
            if value is None:
                problems.add(f"jobs:{name} config can't be blank", where, job=name)
            elif isinstance(value, YamlMap):
                hidden[name] = _flatten_job(value)
        elif not isinstance(value, YamlMap):
            problems.add(f"jobs:{name} config should be a hash", where, job=name)
        else:
            jobs[name] = _flatten_job(value)
    _flatten_globals(globals_)
    _deprecated_types(globals_)
    defaults = _defaults(globals_, problems)
    for job in jobs.values():
        _apply_defaults(job, defaults)
    problems.raise_if_any()
    _check_expanded_size(jobs, root)
    return ExpandedConfig(globals_, jobs, hidden)


def _check_expanded_size(jobs: dict[str, YamlMap], root: YamlMap) -> None:
    """The jobs' keys and list items together, once extended, are bounded (limits.py): what
    comes next costs time and memory in proportion to them. Shared values are counted where
    they are used, each counted once (by identity), so the count itself stays cheap."""
    sizes: dict[int, int] = {}

    def entries(value: Any) -> int:
        if not isinstance(value, (dict, list)):
            return 0
        known = sizes.get(id(value))
        if known is None:
            children = value.values() if isinstance(value, dict) else value
            known = sizes[id(value)] = len(value) + sum(entries(child) for child in children)
        return known

    total = 0
    for job in jobs.values():
        total += entries(job)
        if total > MAX_EXPANDED_ENTRIES:
            raise ConfigError(
                [
                    Problem(
                        "The expanded configuration is too big: its jobs hold more than "
                        f"{MAX_EXPANDED_ENTRIES:,} keys and list items once `extends` and "
                        "`default:` are applied",
                        root.loc,
                    )
                ]
            )


def _job_name(key: Any) -> str:
    """A top-level key as GitLab names the job (Ruby's to_s: `on:` is the boolean true)."""
    if isinstance(key, bool):
        return "true" if key else "false"
    return "" if key is None else str(key)


def _deprecated_types(globals_: YamlMap) -> None:
    """GitLab's `types:` is the old name of `stages:`, used only when `stages:` is absent."""
    if "types" not in globals_:
        return
    where = globals_.key_locs.pop("types", None)
    types = globals_.pop("types")
    if "stages" not in globals_:
        globals_["stages"] = types
        globals_.key_locs["stages"] = where


# --- defaults --------------------------------------------------------------------------------


def _defaults(globals_: YamlMap, problems: ProblemCollector) -> YamlMap:
    defaults = YamlMap()
    default = globals_.get("default")
    if isinstance(default, YamlMap):
        for key in DEFAULT_KEYWORDS:
            if default.get(key) is not None:
                defaults[key] = default[key]
                defaults.key_locs[key] = default.loc_of(key)
    for key in LEGACY_DEFAULT_KEYWORDS:
        if globals_.get(key) is None:
            continue
        if key in defaults:
            problems.add(
                f"{key} is defined in top-level and `default:` entry", globals_.loc_of(key), key=key
            )
            continue
        defaults[key] = globals_[key]
        defaults.key_locs[key] = globals_.loc_of(key)
    return defaults


def _apply_defaults(job: YamlMap, defaults: YamlMap) -> None:
    if "trigger" in job:
        return
    inherited = _inherited_default_keys(job)
    for key, value in defaults.items():
        if job.get(key) is None and (inherited is None or key in inherited):
            job[key] = value  # shared, as merge.py shares: nothing later changes it
            job.key_locs[key] = defaults.loc_of(key)


def _inherited_default_keys(job: YamlMap) -> set[str] | None:
    """None for "every default key", else the keys `inherit:default` lets through."""
    inherit = job.get("inherit")
    if not isinstance(inherit, dict) or "default" not in inherit:
        return None
    setting = inherit["default"]
    if setting is True:
        return None
    if isinstance(setting, list):
        return {item for item in setting if isinstance(item, str)}
    return set()  # false, or a value the validator rejects: inherit nothing


# --- flattening --------------------------------------------------------------------------------


def _flatten_job(job: YamlMap) -> YamlMap:
    for key in SCRIPT_KEYWORDS:
        if key in job:
            job[key] = flatten_script(job[key], job.loc_of(key))
    hooks = job.get("hooks")
    if isinstance(hooks, YamlMap) and "pre_get_sources_script" in hooks:
        # a new `hooks`: the one from a template may be shared with other jobs (merge.py)
        flat = YamlMap(hooks, loc=hooks.loc)
        flat.key_locs.update(hooks.key_locs)
        flat["pre_get_sources_script"] = flatten_script(
            hooks["pre_get_sources_script"], hooks.loc_of("pre_get_sources_script")
        )
        job["hooks"] = flat
    if isinstance(job.get("rules"), list):
        job["rules"] = _flatten_list(job["rules"])
    return job


def _flatten_globals(globals_: YamlMap) -> None:
    for key in ("before_script", "after_script"):
        if key in globals_:
            globals_[key] = flatten_script(globals_[key], globals_.loc_of(key))
    default = globals_.get("default")
    if isinstance(default, YamlMap):
        _flatten_job(default)
    workflow = globals_.get("workflow")
    if isinstance(workflow, YamlMap) and isinstance(workflow.get("rules"), list):
        workflow["rules"] = _flatten_list(workflow["rules"])
    for key in ("stages", "types"):
        if isinstance(globals_.get(key), list):
            globals_[key] = _flatten_list(globals_[key])


def flatten_script(value: Any, where: Location | None) -> Any:
    """A script as GitLab runs it: a flat list of strings (`Array(config).flatten`).

    A value GitLab would reject (not strings, nested deeper than 10 levels) is returned as is.
    """
    if isinstance(value, str):
        items = YamlList([value], loc=where)
        items.item_locs = [where]
        return items
    if not isinstance(value, list) or not _nested_strings(value, 1):
        return value
    return _flatten_list(value)


def _nested_strings(value: list, level: int) -> bool:
    if level > MAX_SCRIPT_NESTING:
        return False
    return all(
        isinstance(item, str) or (isinstance(item, list) and _nested_strings(item, level + 1))
        for item in value
    )


def _flatten_list(value: list) -> YamlList:
    """Nested lists spliced into one, each item keeping the location where it was written."""
    result = YamlList(loc=getattr(value, "loc", None))
    for index, item in enumerate(value):
        if isinstance(item, list):
            inner = _flatten_list(item)
            result.extend(inner)
            result.item_locs.extend(inner.item_locs)
        else:
            result.append(item)
            result.item_locs.append(value.loc_of(index) if isinstance(value, YamlList) else None)
    return result
