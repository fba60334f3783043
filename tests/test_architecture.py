"""The shape of the code, checked: no import cycles, no import hidden in a function without a reason, small modules.

The layers themselves are import-linter's contracts (`.importlinter`, run by `make test`); these are
the rules it cannot state.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

from tests.conftest import ROOT

PACKAGE = ROOT / "sloplane"
MAX_LINES = 500
"""A module longer than this must say why in its docstring, in a paragraph starting `Size:`."""


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in sorted(modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root) & modules)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child) & modules))))
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
                    components.append(sorted(component))
    return components


def test_no_module_imports_itself_back() -> None:
    """Not even through `TYPE_CHECKING` imports or imports inside functions: each is a real dependency."""
    graph = grimp.build_graph("sloplane", cache_dir=None)
    modules = set(_modules())
    assert _cycles(graph, modules) == []


def _function_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found += [inner for inner in ast.walk(node) if isinstance(inner, ast.Import | ast.ImportFrom)]
    return found


def test_an_import_inside_a_function_says_why() -> None:
    """Deferred imports are for slow packages (Pulumi, scipy, boto3, the web stack), each with its reason."""
    unexplained = []
    for name, path in _modules().items():
        lines = path.read_text(encoding="utf-8").splitlines()
        imports = _function_imports(ast.parse("\n".join(lines)))
        importing = {number for node in imports for number in range(node.lineno, (node.end_lineno or node.lineno) + 1)}
        for node in imports:
            if not _explained(lines, node, importing):
                unexplained.append(f"{name}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert unexplained == []


def _explained(lines: list[str], node: ast.Import | ast.ImportFrom, importing: set[int]) -> bool:
    """A comment on the import's lines, or on the line before the block of imports it stands in (`importing`: the
    line numbers of every import, so that an import written over several lines stays in its block)."""
    if any("#" in line for line in lines[node.lineno - 1 : node.end_lineno or node.lineno]):
        return True
    above = node.lineno - 1
    while above in importing:
        above -= 1
    return above >= 1 and lines[above - 1].strip().startswith("#")


def test_modules_are_small_or_say_why() -> None:
    too_long = []
    for name, path in _modules().items():
        text = path.read_text(encoding="utf-8")
        count = len(text.splitlines())
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if count > MAX_LINES and "\nSize:" not in f"\n{docstring}":
            too_long.append(f"{name}: {count} lines")
    assert too_long == []
