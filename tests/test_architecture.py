"""The layering, read from the source: core (the floor) <- audit <- keys_app <- sessions_app <-
invoices_app / dashboard, and payments_site (the roof: settings, urls, Celery app) above all.

Every import counts, also one inside a function: a cycle hidden in a function is still a cycle.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "audit", "events_app", "keys_app", "sessions_app", "invoices_app", "dashboard", "payments_site")
# What each package may import of ours (itself always). Anything not listed is forbidden.
ALLOWED = {
    "core": set(),
    "audit": {"core"},
    "events_app": {"core", "audit"},
    "keys_app": {"core", "audit", "events_app"},
    "sessions_app": {"core", "audit", "events_app", "keys_app"},
    "invoices_app": {"core", "audit", "events_app", "keys_app", "sessions_app"},
    "dashboard": {"core", "audit", "events_app", "keys_app", "sessions_app", "invoices_app"},
    "payments_site": {"core", "audit", "events_app", "keys_app", "sessions_app", "invoices_app", "dashboard"},
}
MAX_FUNCTION_LEVEL_IMPORTS = 10


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    in_function: bool


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
            if "tests" not in path.parts and "migrations" not in path.parts}


def _imports() -> list[Import]:
    modules = _modules()

    def ours(name: str) -> str | None:
        parts = name.split(".")
        return next((".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in modules), None)

    found = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            for target in {ours(n) for n in names} - {None, name}:
                found.append(Import(name, target, node.lineno, id(node) not in top_level))
    return found


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in list(edges):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return _imports()


def test_no_module_imports_one_that_imports_it_back(imports):
    edges: dict[str, set[str]] = {}
    for imp in imports:
        edges.setdefault(imp.source, set()).add(imp.target)
    assert _cycles(edges) == []


def test_each_package_imports_only_the_layers_below_it(imports):
    broken = [f"{imp.source}:{imp.line} imports {imp.target}" for imp in imports
              if (src := imp.source.split(".")[0]) != (dst := imp.target.split(".")[0]) and dst not in ALLOWED[src]]
    assert broken == []


def test_function_level_imports_are_few_and_each_says_why(imports):
    inside = [imp for imp in imports if imp.in_function]
    assert len(inside) <= MAX_FUNCTION_LEVEL_IMPORTS, [f"{imp.source}:{imp.line}" for imp in inside]
    modules = _modules()
    unexplained = []
    for imp in inside:
        lines = modules[imp.source].read_text().splitlines()
        here, above = lines[imp.line - 1], lines[imp.line - 2].strip() if imp.line > 1 else ""
        if "#" not in here and not above.startswith("#"):
            unexplained.append(f"{imp.source}:{imp.line}")
    assert unexplained == []


def test_the_rule_catches_a_cycle_and_a_layer_broken():
    # The checks themselves: a cycle is found, and so is the floor importing an app.
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert "sessions_app" not in ALLOWED["keys_app"] and "invoices_app" not in ALLOWED["sessions_app"]
    assert ALLOWED["core"] == set() and ALLOWED["audit"] == {"core"}
