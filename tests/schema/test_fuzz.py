"""1,000 mutations of GitLab's own schema fixtures: pyci answers each with an exit code, never
a traceback.

Every case starts from a fixture (the same files test_conformance.py reads), applies one to three
mutations drawn with a fixed seed, writes the result as `.gitlab-ci.yml` and runs `pyci validate`
in-process (plain, or `--shape-only`). The answer must be 0, 1 or 2 (valid, invalid, usage), and
anything the command raises is a bug: an expected error is a line, never an exception. Each run
has a 5 s watchdog (SIGALRM), which only a hang can reach.

Mutations: delete a key, duplicate a key, swap a value's type, nest a value deeper (past
GitLab's depth limit too), insert a huge number, add anchors and aliases (an alias bomb among
them), add bad or unknown tags, truncate the text, insert random bytes. A failing case names its
number, fixture and mutations, and is reproduced by running that number alone (`case(n)`).
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from runner.cli import main
from runner.config.yamlload import Reference, load_yaml

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "conformance" / "gitlab-schema"
SEED = 20261207
CASES = 1000
WATCHDOG_SECONDS = 5


def _fixtures() -> list[tuple[str, Any]]:
    found = []
    for path in sorted(SCHEMA_DIR.rglob("*.yml")):
        found.append(
            (path.relative_to(SCHEMA_DIR).as_posix(), _plain(load_yaml(path.read_text(), "f")))
        )
    for path in sorted(SCHEMA_DIR.rglob("*.json")):
        found.append((path.relative_to(SCHEMA_DIR).as_posix(), json.loads(path.read_text())))
    return found


def _plain(value: Any) -> Any:
    """Plain dicts, lists and scalars that yaml.safe_dump can write (a !reference as its text)."""
    if isinstance(value, Reference):
        return str(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


# --- mutations of the data ---------------------------------------------------------------------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value below `value` (mapping keys and list indexes)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from _paths(item, (*prefix, index))


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


def _replace(rng: random.Random, data: Any, make: Callable[[Any], Any]) -> Any:
    paths = list(_paths(data))
    if not paths:
        return make(data)
    path = rng.choice(paths)
    parent = _parent(data, path)
    parent[path[-1]] = make(parent[path[-1]])
    return data


def delete_key(rng: random.Random, data: Any) -> Any:
    paths = [path for path in _paths(data) if isinstance(_parent(data, path), dict)]
    if paths:
        path = rng.choice(paths)
        del _parent(data, path)[path[-1]]
    return data


def swap_type(rng: random.Random, data: Any) -> Any:
    others = [None, True, 0, -1, 3.5, "", "text", [], ["a", 1], {}, {"x": None}, "$[[ inputs.x ]]"]
    return _replace(rng, data, lambda _old: rng.choice(others))


def deepen(rng: random.Random, data: Any) -> Any:
    depth = rng.choice([5, 20, 99, 101, 150])
    wrap = rng.choice([lambda v: [v], lambda v: {"k": v}])

    def deeper(value: Any) -> Any:
        for _ in range(depth):
            value = wrap(value)
        return value

    return _replace(rng, data, deeper)


def huge_number(rng: random.Random, data: Any) -> Any:
    numbers = [2**63, -(2**64) - 1, 10**300, -(10**4000), 1e308, float("nan"), float("-inf")]
    return _replace(rng, data, lambda _old: rng.choice(numbers))


DATA_MUTATIONS = [delete_key, swap_type, deepen, huge_number]


# --- mutations of the text ---------------------------------------------------------------------


def duplicate_key(rng: random.Random, text: str) -> str:
    lines = text.splitlines(keepends=True)
    keyed = [n for n, line in enumerate(lines) if ":" in line and not line.lstrip().startswith("-")]
    if keyed:
        n = rng.choice(keyed)
        lines.insert(n, lines[n])
    return "".join(lines)


def huge_number_text(rng: random.Random, text: str) -> str:
    number = rng.choice(["9" * 4400, "-" + "1" * 5000, "0x" + "f" * 5000, "0" + "7" * 6000])
    return _at_a_value(rng, text, number)


def aliases(rng: random.Random, text: str) -> str:
    choice = rng.randrange(4)
    if choice == 0:  # an anchor used elsewhere
        return "x-anchor: &anchor {script: [echo]}\n" + _at_a_value(rng, text, "*anchor")
    if choice == 1:  # an alias bomb
        bomb = ["b0: &b0 [x, x, x, x, x, x, x, x]"]
        bomb += [f"b{n}: &b{n} [{', '.join([f'*b{n - 1}'] * 8)}]" for n in range(1, 8)]
        return "\n".join(bomb) + "\n" + _at_a_value(rng, text, "*b7")
    if choice == 2:
        return _at_a_value(rng, text, "*undefined")
    return "x: &loop [a, *loop]\n" + text


def bad_tag(rng: random.Random, text: str) -> str:
    tags = [
        "!!int abc", "!!float x", "!!bool maybe", "!!null x", "!!binary x", "!!timestamp x",
        "!reference []", "!reference [a, 1]", "!reference {a: b}", "!reference x",
        "!!python/object:os.system x", "!unknown x", "!!str [a]", "!!map [a]", "!!seq {a: b}",
        "!!int 1_000", "!!float 1e99999",
    ]  # fmt: skip
    return _at_a_value(rng, text, rng.choice(tags))


def truncate(rng: random.Random, text: str) -> str:
    return text[: rng.randrange(len(text) + 1)]


def random_bytes(rng: random.Random, text: str) -> str:
    at = rng.randrange(len(text) + 1)
    characters = [0, 9, 10, 13, 27, 0x85, 0xFEFF, 0xD7FF, rng.randrange(32, 0x2FF)]
    noise = "".join(chr(rng.choice(characters)) for _ in range(rng.randrange(1, 12)))
    return text[:at] + noise + text[at:]


def _at_a_value(rng: random.Random, text: str, value: str) -> str:
    """`text` with the value of one `key: value` line replaced by `value`."""
    lines = text.splitlines(keepends=True)
    keyed = [n for n, line in enumerate(lines) if ": " in line]
    if not keyed:
        return text + f"key: {value}\n"
    n = rng.choice(keyed)
    key = lines[n][: lines[n].index(": ") + 2]
    lines[n] = f"{key}{value}\n"
    return "".join(lines)


TEXT_MUTATIONS = [duplicate_key, huge_number_text, aliases, bad_tag, truncate, random_bytes]


# --- the cases ---------------------------------------------------------------------------------

FIXTURES = _fixtures()


def case(number: int) -> tuple[str, list[str], bytes, bool]:
    """Case `number`: its fixture, the names of its mutations, the file's bytes, shape-only."""
    rng = random.Random(SEED * 100_003 + number)
    name, data = FIXTURES[rng.randrange(len(FIXTURES))]
    data = json.loads(json.dumps(data))  # a copy the mutations may change
    applied = []
    mutations = [*DATA_MUTATIONS, *TEXT_MUTATIONS]
    chosen = rng.sample(mutations, rng.randint(1, 3))
    for mutation in (m for m in chosen if m in DATA_MUTATIONS):
        data = mutation(rng, data)
        applied.append(mutation.__name__)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)
    for mutation in (m for m in chosen if m in TEXT_MUTATIONS):
        text = mutation(rng, text)
        applied.append(mutation.__name__)
    raw = text.encode("utf-8")
    if rng.random() < 0.02:  # some files are not UTF-8 at all
        raw = raw[: len(raw) // 2] + b"\xff\xfe\xc3" + raw[len(raw) // 2 :]
    return name, applied, raw, rng.random() < 0.3


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _Hang


def test_fixtures_are_there() -> None:
    assert len(FIXTURES) > 100, f"no fixtures under {SCHEMA_DIR}"


def test_a_thousand_mutated_fixtures_end_in_an_exit_code(tmp_path: Path) -> None:
    target = tmp_path / ".gitlab-ci.yml"
    codes: dict[int, int] = {}
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for number in range(CASES):
            name, applied, raw, shape_only = case(number)
            target.write_bytes(raw)
            argv = ["validate", "-C", str(tmp_path), *(["--shape-only"] if shape_only else [])]
            where = (
                f"case {number} ({name}, {' + '.join(applied)}, {' '.join(argv[:1] + argv[3:])})"
            )
            signal.alarm(WATCHDOG_SECONDS)
            try:
                with (
                    contextlib.redirect_stdout(io.StringIO()),
                    contextlib.redirect_stderr(io.StringIO()) as errors,
                ):
                    code = main(argv)
            except _Hang:
                raise AssertionError(f"{where}: still running after {WATCHDOG_SECONDS} s") from None
            except Exception as exc:
                raise AssertionError(f"{where}: {type(exc).__name__}: {exc}") from exc
            finally:
                signal.alarm(0)
            assert code in (0, 1, 2), f"{where}: exit code {code}"
            assert "Traceback" not in errors.getvalue(), f"{where}: {errors.getvalue()}"
            codes[code] = codes.get(code, 0) + 1
    finally:
        signal.signal(signal.SIGALRM, previous)
    # the mutations must exercise both answers, not only break every file
    assert codes.get(0, 0) > 20 and codes.get(1, 0) > 300, codes
