"""No import cycles in ``pgjax/``: layers import downwards only (docs: DESIGN, "Layers").

Every module under ``pgjax/`` is parsed with :mod:`ast` (nothing is imported), and every
``import pgjax...`` and ``from pgjax... import ...`` becomes an edge, at module level or inside a
function alike: an import deferred into a function still ties the two modules together in the
design, it only hides the cycle from Python until that function runs. A target that is a
package resolves to its ``__init__``; ``from pgjax.pkg import name`` is an edge to the
submodule ``pgjax.pkg.name`` when there is one, else to ``pgjax.pkg``. Relative imports
resolve the same way. Importing a submodule does not add an edge to its parent package (the
parent's ``__init__`` runs first, but a package re-exporting its own modules is no cycle).
``pgjax/__init__.py`` names its lazily loaded attributes in a dict of strings, which is not
an import statement and is not read.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pgjax"


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package (packages as their __init__)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module that ``name`` (dotted) lives in: itself, or its nearest enclosing module."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """``module -> {pgjax modules it imports}``, from every import statement in its source."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package that holds this module
                    package = name if is_package else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        package = package.rpartition(".")[0]
                    base = f"{package}.{base}".strip(".")
                # `from pkg import sub` imports the submodule when there is one.
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            for target in targets:
                if target == "pgjax" or target.startswith("pgjax."):
                    resolved = _resolve(target, modules)
                    if resolved is not None and resolved != name:
                        graph[name].add(resolved)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(sorted(c), graph) for c in components]


def _cycle_in(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A concrete cycle through the component's first module, as a path a -> ... -> a."""
    members, start = set(component), component[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:  # breadth-first: the shortest way back to start
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    return component


def test_the_walk_sees_imports():
    graph = import_graph()
    assert "pgjax.returns" in graph["pgjax.losses"]  # module level
    assert "pgjax.envs.gymnax" in graph["pgjax.envs"]  # `from pgjax.envs import gymnax`
    assert "pgjax.plot" in graph["pgjax.host.summary"]  # inside a function
    assert "pgjax.bench" in graph["pgjax.cli"]  # inside a function (pgjax bench's dispatch)
    assert "pgjax.host.loop" in graph["pgjax.host.commands"]


def test_find_cycles_reports_one():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles in pgjax/:\n" + "\n".join(" -> ".join(c) for c in cycles)
