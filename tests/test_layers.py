"""The layers import only downward (docs/architecture.md, "Layers"):

- `runner/core/` (job spec, events, errors, background clean-up, file names) imports nothing
  else of pyci;
- `executors/` imports nothing from `runner/` but the core;
- nothing outside `runner/commands/` and `runner/cli.py` imports the commands;
- no module imports, directly or not, one that imports it back (imports inside functions
  count too: a cycle there is still a cycle in the design).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("runner", "executors")


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_the_core_imports_nothing_else_of_pyci():
    graph = _graph()
    outside = {
        name: sorted(t for t in targets if not t.startswith("runner.core"))
        for name, targets in graph.items()
        if name.startswith("runner.core")
    }
    assert {name: targets for name, targets in outside.items() if targets} == {}


def test_executors_import_only_the_core_of_runner():
    graph = _graph()
    upward = {
        name: sorted(
            t for t in targets if t.startswith("runner") and not t.startswith("runner.core")
        )
        for name, targets in graph.items()
        if name.startswith("executors")
    }
    assert {name: targets for name, targets in upward.items() if targets} == {}


def test_nothing_below_the_commands_imports_them():
    graph = _graph()
    upward = {
        name: sorted(t for t in targets if t.startswith("runner.commands"))
        for name, targets in graph.items()
        if not name.startswith("runner.commands") and name != "runner.cli"
    }
    assert {name: targets for name, targets in upward.items() if targets} == {}


def test_the_checks_see_a_cycle_and_an_upward_import():
    """The checks themselves can fail (a made-up graph)."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
