"""The floor plan holds (docs/architecture.md): imports run one way, private names stay home, rooms stay small.

Read from the source with ``ast``, every import counts, a function-level one included (it is still an arrow, only
a later one). Fails on:
- any circle among ``atlas_mcp`` modules;
- a ``_private`` name imported from another module (a name two modules share is public in the one that owns it);
- an arrow from the rooms below the MCP layer (``atlas``, ``core``, ``spend``, ``media``, ``state``) up into
  ``server``, or from ``atlas`` into anything of ours but ``errors``, ``redaction``, ``addresses`` and itself;
- a module over 600 lines or a function over 80.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "atlas_mcp"
BELOW_MCP = ("atlas", "core", "spend", "media", "state")
ATLAS_MAY_USE = (
    "atlas_mcp.atlas",
    "atlas_mcp.errors",
    "atlas_mcp.redaction",
    "atlas_mcp.addresses",
    "atlas_mcp._version",
)
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


@dataclass(frozen=True)
class Arrow:
    source: str
    target: str
    name: str | None  # the name imported (``from x import name``), None for ``import x``
    line: int


def room(module: str) -> str:
    """The folder (or top-level module) a module lives in: ``atlas_mcp.core.catalog`` -> ``core``."""
    return module.split(".")[1] if "." in module else ""


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.with_suffix("").relative_to(package.parent).parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def arrows(known: dict[str, Path]) -> Iterator[Arrow]:
    for module, path in known.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [(alias.name, None) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                # ``from pkg import module`` points at the module; ``from module import name`` at the module
                targets = [(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base, a.name) for a in node.names]
            else:
                continue
            for target, name in targets:
                while target not in known and "." in target:
                    target = target.rpartition(".")[0]
                if target in known and target != module:
                    yield Arrow(module, target, name, node.lineno)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
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


KNOWN = modules()
ARROWS = list(arrows(KNOWN))


def test_the_modules_are_found() -> None:
    # Guards the tests below against passing over nothing (a moved package, a broken walk).
    assert {"atlas_mcp.server.app", "atlas_mcp.core.catalog", "atlas_mcp.spend.policy"} <= set(KNOWN)
    assert any(arrow.source == "atlas_mcp.server.app" for arrow in ARROWS)


def test_no_import_circle() -> None:
    graph: dict[str, set[str]] = {module: set() for module in KNOWN}
    for arrow in ARROWS:
        graph[arrow.source].add(arrow.target)
    assert circles(graph) == []


def test_no_private_name_is_borrowed_from_another_module() -> None:
    borrowed = [
        f"{arrow.source}:{arrow.line} imports {arrow.name} from {arrow.target}"
        for arrow in ARROWS
        if arrow.name is not None
        and arrow.name.startswith("_")
        and not arrow.name.startswith("__")
        and arrow.target != "atlas_mcp._version"
    ]
    assert borrowed == []


def test_the_rooms_below_mcp_never_import_the_mcp_layer() -> None:
    upward = [
        f"{arrow.source}:{arrow.line} -> {arrow.target}"
        for arrow in ARROWS
        if room(arrow.source) in BELOW_MCP and arrow.target.startswith("atlas_mcp.server")
    ]
    assert upward == []


def test_the_atlas_client_knows_only_atlas() -> None:
    outside = [
        f"{arrow.source}:{arrow.line} -> {arrow.target}"
        for arrow in ARROWS
        if arrow.source.startswith("atlas_mcp.atlas") and not arrow.target.startswith(ATLAS_MAY_USE)
    ]
    assert outside == []


def test_the_rooms_below_mcp_do_not_import_the_mcp_sdk() -> None:
    found = []
    for module, path in KNOWN.items():
        if room(module) in BELOW_MCP:
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = (
                    [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom) and not node.level
                    else []
                )
                found += [
                    f"{module}:{node.lineno} imports {name}"
                    for name in names
                    if name.split(".")[0] in ("mcp", "mcp_types")
                ]
    assert found == []


def test_no_module_over_600_lines_and_no_function_over_80() -> None:
    long_modules = []
    long_functions = []
    for module, path in KNOWN.items():
        text = path.read_text(encoding="utf-8")
        if (count := len(text.splitlines())) > MAX_MODULE_LINES:
            long_modules.append(f"{module}: {count} lines")
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.end_lineno is None:
                continue
            if (length := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES:
                long_functions.append(f"{module}.{node.name}: {length} lines")
    assert long_modules == []
    assert long_functions == []


def test_the_checks_see_what_they_claim(tmp_path: Path) -> None:
    """A circle through a function-level import, a relative import and a borrowed private name, planted in a
    small package, are each found."""
    root = tmp_path / "atlas_mcp"
    (root / "core").mkdir(parents=True)
    (root / "server").mkdir()
    for folder in (root, root / "core", root / "server"):
        (folder / "__init__.py").write_text("")
    (root / "core" / "a.py").write_text("def late():\n    from atlas_mcp.server.b import _hidden\n")
    (root / "server" / "b.py").write_text("from ..core import a\n_hidden = 1\n")
    known = modules(root)
    planted = list(arrows(known))
    assert {(arrow.source, arrow.target, arrow.name) for arrow in planted} == {
        ("atlas_mcp.core.a", "atlas_mcp.server.b", "_hidden"),
        ("atlas_mcp.server.b", "atlas_mcp.core.a", "a"),
    }
    graph = {module: {arrow.target for arrow in planted if arrow.source == module} for module in known}
    assert circles(graph) == [["atlas_mcp.core.a", "atlas_mcp.server.b"]]
    assert circles({"a": {"b"}, "b": set()}) == []
