"""Loading `.gitlab-ci.yml` with its `include`s, merged the way GitLab merges them.

Each file is read, its `spec:inputs` header applied (inputs.py), then its own includes are
loaded (depth first, in the order written) and deep-merged together, and the file's own content
is merged over them: "the including file wins". Only `include:local` can be read offline; the
other kinds are recognised and reported in one line each, never skipped silently.

GitLab's limits and words are kept: at most 150 included files per pipeline, duplicates counted
(GitLab merges a file included twice twice, the last one winning), `Local file `x` does not
exist!`, `Included file `x` does not have YAML extension!`. A file that includes itself, directly
or not, would only stop at that limit in GitLab; it is reported at once, with the chain.

`!reference` tags are left in the merged root: GitLab resolves them after `extends`, which is
expand_config's step (see expand.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.config.inputs import expand_existing, load_with_inputs
from runner.config.limits import MAX_INCLUDES, MAX_TOTAL_YAML_SIZE_BYTES, TOTAL_TOO_BIG
from runner.config.merge import merge_into
from runner.config.references import resolve_references
from runner.config.source import YamlList, YamlMap
from runner.config.textfile import UnreadableFile, read_config_text
from runner.config.yamlload import ruby_inspect
from runner.errors import Location, ProblemCollector
from runner.evaluate.re2syntax import compile_re2

IncludeRuleMatcher = Callable[[list[Mapping[str, Any]], Location | None], bool]

__all__ = ["MAX_INCLUDES", "LoadedConfig", "load_config", "load_single_file"]

INCLUDE_KEYS = (
    "local", "file", "remote", "project", "ref", "template", "artifact", "job",
    "component", "rules", "inputs", "integrity", "cache",
)  # fmt: skip
INCLUDE_TYPES = ("local", "project", "remote", "template", "artifact", "component")
_YAML_NAME = re.compile(r".+\.(yml|yaml)", re.IGNORECASE)
_URL = re.compile(r"https?://\S+", re.IGNORECASE)


@dataclass(frozen=True)
class LoadedConfig:
    root: YamlMap  # root file merged with all includes, inputs interpolated, `include` removed
    files: tuple[str, ...]  # every file read, relative to project_dir, in read order


def load_config(
    project_dir: Path,
    file: Path,
    *,
    rule_matcher: IncludeRuleMatcher | None = None,
    variables: Mapping[str, str] | None = None,
    inputs: Mapping[str, Any] | None = None,
) -> LoadedConfig:
    """The root file merged with everything it includes; ConfigError lists every problem.

    `rule_matcher` decides `include:rules` (without one, every include is taken); `variables`
    expand `$VAR` in include paths and feed `expand_vars`; `inputs` fill the root file's own
    `spec:inputs` header, if it has one.
    """
    loader = _Loader(project_dir, rule_matcher, variables or {})
    root = loader.load_root(_relative(project_dir, file), inputs)
    loader.problems.raise_if_any()
    return LoadedConfig(root, tuple(loader.files))


def load_single_file(project_dir: Path, file: Path | str) -> YamlMap:
    """One file on its own, for `validate --shape-only`: includes are not followed (`include`
    stays), header defaults are interpolated, and `!reference` tags whose target is in this file
    are resolved while the others stay `Reference` objects."""
    loader = _Loader(project_dir, None, {})
    relative = _relative(project_dir, Path(file))
    content = loader.read_root(relative, None)
    loader.problems.raise_if_any()
    problems = ProblemCollector()
    resolved = resolve_references(content, problems, keep_missing=True)
    problems.raise_if_any()
    return resolved


def _relative(project_dir: Path, file: Path) -> str:
    path = file if file.is_absolute() else project_dir / file
    # a symlink loop cannot be resolved: its own name is kept, and reading it says why
    real = _resolved(path) or Path(os.path.abspath(path))
    try:
        return real.relative_to(project_dir.resolve()).as_posix()
    except ValueError:
        return os.path.relpath(real, project_dir.resolve())


def _resolved(path: Path) -> Path | None:
    """`path` with every symlink followed; None for a symlink loop (Python 3.11 raises
    RuntimeError for one, later versions OSError)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return None


class _Loader:
    def __init__(
        self,
        project_dir: Path,
        rule_matcher: IncludeRuleMatcher | None,
        variables: Mapping[str, str],
    ):
        self.project_dir = project_dir.resolve()
        self.rule_matcher = rule_matcher
        self.variables = variables
        self.problems = ProblemCollector()
        self.files: list[str] = []
        self.count = 0
        self.total_bytes = 0  # text of every file read, for GitLab's total limit
        self.stopped = False  # the include limit was hit: GitLab stops there
        self._tree: list[str] | None = None

    # --- files ------------------------------------------------------------------------------

    def load_root(self, relative: str, inputs: Mapping[str, Any] | None) -> YamlMap:
        content = self.read_root(relative, inputs)
        return self._with_includes(content, (relative,))

    def read_root(self, relative: str, inputs: Mapping[str, Any] | None) -> YamlMap:
        text = self._read(relative, Location(relative), "")
        if text is None:
            return YamlMap(loc=Location(relative, 1, 1))
        content = load_with_inputs(text, relative, inputs, self.problems, variables=self.variables)
        return content if content is not None else YamlMap(loc=Location(relative, 1, 1))

    def _read(self, relative: str, where: Location | None, prefix: str) -> str | None:
        try:
            text = read_config_text(self.project_dir / relative)
        except UnreadableFile as exc:
            self.problems.add(f"{prefix}{exc}", where)
            return None
        self.total_bytes += len(text)
        if self.total_bytes > MAX_TOTAL_YAML_SIZE_BYTES:
            self.problems.add(TOTAL_TOO_BIG, where)
            self.stopped = True
            return None
        if relative not in self.files:
            self.files.append(relative)
        return text

    def _load_included(
        self, relative: str, entry: _Entry, chain: tuple[str, ...]
    ) -> YamlMap | None:
        text = self._read(relative, entry.where, f"`{relative}`: ")
        if text is None:
            return None
        if not text.strip():
            self.problems.add(f"Local file `{relative}` is empty!", entry.where)
            return None
        content = load_with_inputs(
            text,
            relative,
            entry.inputs,
            self.problems,
            prefix=f"`{relative}`: ",
            args_loc=entry.inputs_loc or entry.where,
            variables=self.variables,
        )
        if content is None:
            return None
        if not content:
            self.problems.add(
                f"Included file `{relative}` does not have valid YAML syntax!", entry.where
            )
            return None
        return self._with_includes(content, (*chain, relative))

    def _with_includes(self, content: YamlMap, chain: tuple[str, ...]) -> YamlMap:
        if "include" not in content:
            return content
        where = content.loc_of("include")
        value = content.pop("include")
        content.key_locs.pop("include", None)
        merged: YamlMap | None = None
        # every file is freshly loaded and used once, so merging in place is safe (and keeps
        # big include trees linear instead of copying the merged result at each step)
        for included in self._included_files(value, where, chain):
            merged = included if merged is None else merge_into(merged, included)
        return content if merged is None else merge_into(merged, content)

    # --- include entries ---------------------------------------------------------------------

    def _included_files(
        self, value: Any, where: Location | None, chain: tuple[str, ...]
    ) -> Iterator[YamlMap]:
        for entry in self._entries(value, where):
            if self.stopped:
                return
            for relative in self._local_paths(entry, chain[-1]):
                if self.stopped:
                    return
                included = self._checked_include(relative, entry, chain)
                if included is not None:
                    yield included

    def _entries(self, value: Any, where: Location | None) -> Iterator[_Entry]:
        if value is None:
            return
        if isinstance(value, (str, dict)):
            items, locs = [value], [where]
        elif isinstance(value, list):
            items = list(value)
            locs = [
                value.loc_of(i) if isinstance(value, YamlList) else where for i in range(len(items))
            ]
        else:
            self.problems.add("include config should be an array or a string", where)
            return
        for item, loc in zip(items, locs, strict=True):
            entry = self._entry(item, loc)
            if entry is not None and self._rules_pass(entry):
                yield entry

    def _entry(self, item: Any, where: Location | None) -> _Entry | None:
        if item is None:
            return None  # GitLab compacts nil entries away
        if isinstance(item, str):
            location = expand_existing(item, self.variables)
            kind = "remote" if _URL.fullmatch(location) else "local"
            return _Entry(kind, location, where)
        if not isinstance(item, dict):
            self.problems.add("include config should be a hash or a string", where)
            return None
        unknown = [str(key) for key in item if key not in INCLUDE_KEYS]
        if unknown:
            self.problems.add(f"include config contains unknown keys: {', '.join(unknown)}", where)
            return None
        kinds = [kind for kind in INCLUDE_TYPES if kind in item]
        if not kinds:
            shown = json.dumps(item, ensure_ascii=False, default=str, separators=(",", ":"))
            valid = "`, `".join(INCLUDE_TYPES)
            self.problems.add(
                f"`{shown}` does not have a valid subkey for include. Valid subkeys are: `{valid}`",
                where,
            )
            return None
        if len(kinds) > 1:
            valid = "`, `".join(INCLUDE_TYPES)
            self.problems.add(f"Each include must use only one of: `{valid}`", where)
            return None
        inputs = item.get("inputs")
        if inputs is not None and not isinstance(inputs, dict):
            self.problems.add(
                "include:inputs config should be a hash", _key_loc(item, "inputs", where)
            )
            return None
        return _Entry(
            kinds[0],
            item[kinds[0]],
            where,
            rules=item.get("rules"),
            inputs=inputs,
            inputs_loc=_key_loc(item, "inputs", where) if inputs is not None else None,
        )

    def _rules_pass(self, entry: _Entry) -> bool:
        if entry.rules is None or self.rule_matcher is None:
            return True
        rules = entry.rules if isinstance(entry.rules, list) else [entry.rules]
        return bool(self.rule_matcher(rules, entry.where))

    def _local_paths(self, entry: _Entry, including: str) -> list[str]:
        if entry.kind != "local":
            shown = (
                entry.location
                if isinstance(entry.location, str)
                else json.dumps(entry.location, default=str)
            )
            self.problems.add(
                f"include:{entry.kind} `{shown}` cannot be resolved offline: pyci reads only "
                "`include:local` files (copy the file into the project)",
                entry.where,
            )
            return []
        if not isinstance(entry.location, str):
            shown = ruby_inspect(entry.location)
            self.problems.add(f"Included file `{shown}` needs to be a string", entry.where)
            return []
        path = expand_existing(entry.location, self.variables).lstrip("/")
        if "*" not in path:
            return [path]
        pattern = re.escape(path).replace(r"\*\*", ".*?").replace(r"\*", "[^/]*?")
        # RE2, not re: `**a**a**a...` backtracks polynomially in the name's length in re (twelve
        # of them did not finish in ten minutes on a 44-character name); RE2 is linear
        matcher = compile_re2(pattern)
        # GitLab skips the file that holds the wildcard, so `**.yml` does not include itself
        return [
            name for name in self._project_files() if matcher.fullmatch(name) and name != including
        ]

    def _checked_include(
        self, relative: str, entry: _Entry, chain: tuple[str, ...]
    ) -> YamlMap | None:
        self.count += 1
        if self.count > MAX_INCLUDES:
            self.problems.add(
                f"Maximum of {MAX_INCLUDES} nested includes are allowed!", entry.where
            )
            self.stopped = True
            return None
        if not _YAML_NAME.fullmatch(os.path.basename(relative)):
            self.problems.add(
                f"Included file `{relative}` does not have YAML extension!", entry.where
            )
            return None
        if relative in chain:
            cycle = " -> ".join((*chain[chain.index(relative) :], relative))
            self.problems.add(
                f"Maximum of {MAX_INCLUDES} nested includes are allowed! (include cycle: {cycle})",
                entry.where,
            )
            return None
        path = _resolved(self.project_dir / relative)
        if path is None:
            self.problems.add(
                f"`{relative}`: cannot read the file: it is a symbolic link that loops", entry.where
            )
            return None
        if not path.is_relative_to(self.project_dir) or not path.is_file():
            self.problems.add(f"Local file `{relative}` does not exist!", entry.where)
            return None
        return self._load_included(relative, entry, chain)

    def _project_files(self) -> list[str]:
        """The files a wildcard include can match, sorted.

        GitLab matches the files committed at the pipeline's commit. Locally the work tree is
        what the user edits, so in a git repository this is every file git does not ignore
        (tracked or new); elsewhere every file, leaving out `.git` and pyci's own `.pyci`.
        """
        if self._tree is None:
            self._tree = sorted(_git_files(self.project_dir) or _walked_files(self.project_dir))
        return self._tree


def _git_files(project_dir: Path) -> list[str] | None:
    if not (project_dir / ".git").exists():
        return None
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=project_dir,
            capture_output=True,
            check=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    names = {name for name in listed.stdout.decode("utf-8", "replace").split("\0") if name}
    # --cached also lists files deleted from the work tree; an include needs them on disk
    return [name for name in names if (project_dir / name).is_file()]


def _walked_files(project_dir: Path) -> list[str]:
    names = []
    for directory, subdirs, files in os.walk(project_dir):
        subdirs[:] = [d for d in subdirs if d not in (".git", ".pyci")]
        base = Path(directory).relative_to(project_dir)
        names.extend((base / name).as_posix() for name in files)
    return names


@dataclass
class _Entry:
    kind: str  # local, project, remote, template, artifact, component
    location: Any
    where: Location | None
    rules: Any = None
    inputs: Mapping[str, Any] | None = None
    inputs_loc: Location | None = None


def _key_loc(item: Any, key: str, default: Location | None) -> Location | None:
    return item.loc_of(key) if isinstance(item, YamlMap) else default
