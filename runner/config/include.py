"""Loading `.gitlab-ci.yml` with its `include`s, merged the way GitLab merges them.

Each file is read, its `spec:inputs` header applied (inputs.py), then its own includes are
loaded (depth first, in the order written) and deep-merged together, and the file's own content
is merged over them: "the including file wins". `include:local` is read from the project on
disk; `project`, `template`, `component` and `remote` come from a GitLab server through
remote_includes.py (cached, and readable offline from that cache). Without a server to ask
(`load_single_file`), those kinds are reported in one line each, never skipped silently.

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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.config.inputs import expand_existing, load_with_inputs
from runner.config.limits import MAX_INCLUDES, MAX_TOTAL_YAML_SIZE_BYTES, TOTAL_TOO_BIG
from runner.config.merge import merge_into
from runner.config.references import resolve_references
from runner.config.remote_includes import (
    PIPELINE_PROJECT,
    FetchedFile,
    IncludeError,
    Origin,
    RemoteIncludes,
)
from runner.config.source import YamlList, YamlMap
from runner.config.textfile import UnreadableFile, read_config_text
from runner.config.yamlload import ruby_inspect
from runner.core.errors import Location, ProblemCollector
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
    fetched: tuple[str, ...] = ()  # those of `files` that came from a server (or its cache)


def load_config(
    project_dir: Path,
    file: Path,
    *,
    rule_matcher: IncludeRuleMatcher | None = None,
    variables: Mapping[str, str] | None = None,
    inputs: Mapping[str, Any] | None = None,
    remote: RemoteIncludes | None = None,
) -> LoadedConfig:
    """The root file merged with everything it includes; ConfigError lists every problem.

    `rule_matcher` decides `include:rules` (without one, every include is taken); `variables`
    expand `$VAR` in include paths and feed `expand_vars`; `inputs` fill the root file's own
    `spec:inputs` header, if it has one; `remote` reads the kinds that live on a server.
    """
    loader = _Loader(project_dir, rule_matcher, variables or {}, remote)
    root = loader.load_root(_relative(project_dir, file), inputs)
    loader.problems.raise_if_any()
    return LoadedConfig(root, tuple(loader.files), tuple(loader.fetched))


# artifact_reader(job, path) -> the text of `path` in the artifacts of `job` (this run's)
ArtifactReader = Callable[[str, str], str]


def load_child_config(
    project_dir: Path,
    includes: list[dict[str, Any]],
    *,
    name: str,
    variables: Mapping[str, str],
    remote: RemoteIncludes | None,
    artifact_reader: ArtifactReader,
) -> LoadedConfig:
    """A child pipeline's configuration: the files its bridge job's `trigger:include` names
    (`artifact` + `job` among them: a file an earlier job of this run generated), merged in
    order as a root file made of that `include:` alone would be. `name` names the child in
    messages (`trigger:include of deploy`)."""
    loader = _Loader(project_dir, None, variables, remote, artifact_reader)
    root = YamlMap(loc=Location(name, 1, 1))
    root["include"] = YamlList(includes)
    merged = loader._with_includes(root, (name,))
    loader.problems.raise_if_any()
    return LoadedConfig(merged, tuple(loader.files), tuple(loader.fetched))


def load_single_file(project_dir: Path, file: Path | str) -> YamlMap:
    """One file on its own, for `validate --shape-only`: includes are not followed (`include`
    stays), header defaults are interpolated, and `!reference` tags whose target is in this file
    are resolved while the others stay `Reference` objects."""
    loader = _Loader(project_dir, None, {}, None)
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
        remote: RemoteIncludes | None,
        artifact_reader: ArtifactReader | None = None,
    ):
        self.project_dir = project_dir.resolve()
        self.remote = remote
        self.artifact_reader = artifact_reader
        self.rule_matcher = rule_matcher
        self.variables = variables
        self.problems = ProblemCollector()
        self.files: list[str] = []
        self.fetched: list[str] = []
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
        return self._load_text(relative, text, entry, chain, PIPELINE_PROJECT)

    def _load_text(
        self, name: str, text: str, entry: _Entry, chain: tuple[str, ...], origin: Origin
    ) -> YamlMap | None:
        relative = name
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
        return self._with_includes(content, (*chain, relative), origin)

    def _with_includes(
        self, content: YamlMap, chain: tuple[str, ...], origin: Origin = PIPELINE_PROJECT
    ) -> YamlMap:
        if "include" not in content:
            return content
        where = content.loc_of("include")
        value = content.pop("include")
        content.key_locs.pop("include", None)
        merged: YamlMap | None = None
        # every file is freshly loaded and used once, so merging in place is safe (and keeps
        # big include trees linear instead of copying the merged result at each step)
        for included in self._included_files(value, where, chain, origin):
            merged = included if merged is None else merge_into(merged, included)
        return content if merged is None else merge_into(merged, content)

    # --- include entries ---------------------------------------------------------------------

    def _included_files(
        self, value: Any, where: Location | None, chain: tuple[str, ...], origin: Origin
    ) -> Iterator[YamlMap]:
        for entry in self._entries(value, where):
            if self.stopped:
                return
            if entry.kind != "local" or origin.project is not None:
                yield from self._server_files(entry, chain, origin)
                continue
            for relative in self._local_paths(entry, chain[-1]):
                if self.stopped:
                    return
                included = self._checked_include(relative, entry, chain)
                if included is not None:
                    yield included

    def _server_files(
        self, entry: _Entry, chain: tuple[str, ...], origin: Origin
    ) -> Iterator[YamlMap]:
        """The files of one non-local entry (or of a `local:` one inside another project's
        file), fetched through `self.remote`."""
        if entry.kind == "artifact" and self.artifact_reader is not None:
            fetched_files = self._artifact_file(entry, self.artifact_reader)
        elif self.remote is None or entry.kind == "artifact":
            self._local_paths(entry, chain[-1])  # reports the kind as unreadable here
            return
        else:
            fetched_files = self._fetch(entry, origin, self.remote)
        try:
            fetched = list(fetched_files)
        except IncludeError as exc:
            self.problems.add(str(exc), entry.where)
            return
        for file in fetched:
            if self.stopped:
                return
            included = self._checked_fetched(file, entry, chain)
            if included is not None:
                yield included

    def _artifact_file(self, entry: _Entry, read: ArtifactReader) -> Iterator[FetchedFile]:
        """`artifact: path` + `job: name`: a file an earlier job of this run left in its
        artifacts (a dynamic child pipeline). Its `local:` includes are the project's."""
        job = entry.options.get("job")
        if not isinstance(job, str) or not isinstance(entry.location, str):
            raise IncludeError("include:artifact needs `artifact:` (a path) and `job:`")
        name = f"artifact:{job}:{entry.location}"
        yield FetchedFile(name, read(job, entry.location), PIPELINE_PROJECT)

    def _fetch(
        self, entry: _Entry, origin: Origin, remote: RemoteIncludes
    ) -> Iterator[FetchedFile]:
        location = entry.location
        if not isinstance(location, str):
            raise IncludeError(f"Included file `{ruby_inspect(location)}` needs to be a string")
        location = expand_existing(location, self.variables)
        if entry.kind == "local":  # inside a file of another project: that project's file
            path = location.lstrip("/")
            if "*" in path:
                raise IncludeError(
                    f"Local file `{path}` of project `{origin.project}`: wildcard paths are "
                    "only read from the pipeline's own project"
                )
            if origin.local_dir is not None:
                yield remote.project_file(origin.project or "", path, None)
            else:
                yield remote.project_file(origin.project or "", path, origin.ref)
        elif entry.kind == "project":
            files = entry.options.get("file")
            names = files if isinstance(files, list) else [files]
            if not names or not all(isinstance(name, str) and name for name in names):
                raise IncludeError("include:project config requires `file:`, a path or a list")
            ref = entry.options.get("ref")
            ref = expand_existing(str(ref), self.variables) if ref is not None else None
            for name in names:
                yield remote.project_file(
                    location, expand_existing(name, self.variables).lstrip("/"), ref
                )
        elif entry.kind == "template":
            if not location.endswith(".gitlab-ci.yml"):
                raise IncludeError(f"Template file `{location}` is not a valid location!")
            yield remote.template(location)
        elif entry.kind == "remote":
            integrity = entry.options.get("integrity")
            yield remote.remote(location, str(integrity) if integrity is not None else None)
        elif entry.kind == "component":
            yield remote.component(location)

    def _checked_fetched(
        self, file: FetchedFile, entry: _Entry, chain: tuple[str, ...]
    ) -> YamlMap | None:
        path = file.name.rsplit(":", 1)[-1].split("?", 1)[0]
        named_by_kind = entry.kind in ("template", "component")  # no file name of their own
        if not self._admitted(file.name, path, entry, chain, check_extension=not named_by_kind):
            return None
        if not file.text.strip():
            self.problems.add(
                f"Included file `{file.name}` is empty or does not exist!", entry.where
            )
            return None
        if file.name not in self.files:
            self.files.append(file.name)
            self.fetched.append(file.name)
        return self._load_text(file.name, file.text, entry, chain, file.origin)

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
            options={key: item[key] for key in ("file", "ref", "integrity", "job") if key in item},
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

    def _admitted(
        self, name: str, path: str, entry: _Entry, chain: tuple[str, ...], *, check_extension: bool
    ) -> bool:
        """GitLab's checks of every included file, whatever its kind: the count (duplicates
        too), the YAML extension of its `path`, and (pyci's own) a cycle through `name`."""
        self.count += 1
        if self.count > MAX_INCLUDES:
            self.problems.add(
                f"Maximum of {MAX_INCLUDES} nested includes are allowed!", entry.where
            )
            self.stopped = True
            return False
        if check_extension and not _YAML_NAME.fullmatch(os.path.basename(path)):
            self.problems.add(f"Included file `{name}` does not have YAML extension!", entry.where)
            return False
        if name in chain:
            cycle = " -> ".join((*chain[chain.index(name) :], name))
            self.problems.add(
                f"Maximum of {MAX_INCLUDES} nested includes are allowed! (include cycle: {cycle})",
                entry.where,
            )
            return False
        return True

    def _checked_include(
        self, relative: str, entry: _Entry, chain: tuple[str, ...]
    ) -> YamlMap | None:
        if not self._admitted(relative, relative, entry, chain, check_extension=True):
            return None
        path = _resolved(self.project_dir / relative)
        if path is None:
            self.problems.add(
                f"`{relative}`: cannot read the file: it is a symbolic link that loops", entry.where
            )
            return None
        # GitLab reads the path from the repository's tree, where no name is `.` or `..`:
        # `./ci.yml` does not exist there even though the file system would find it
        in_tree = all(part not in ("", ".", "..") for part in relative.split("/"))
        if not in_tree or not path.is_relative_to(self.project_dir) or not path.is_file():
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
    from runner import gitrepo

    listed = gitrepo.output(
        project_dir, "ls-files", "-z", "--cached", "--others", "--exclude-standard"
    )
    if listed is None:
        return None
    names = {name for name in listed.decode("utf-8", "replace").split("\0") if name}
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
    options: Mapping[str, Any] = field(default_factory=dict)  # project's file/ref, integrity
    rules: Any = None
    inputs: Mapping[str, Any] | None = None
    inputs_loc: Location | None = None


def _key_loc(item: Any, key: str, default: Location | None) -> Location | None:
    return item.loc_of(key) if isinstance(item, YamlMap) else default
