"""The package's shape, read from its source with `ast`: no import cycle, no oversized
module, the SDK apart from the server, and every stage importing only earlier stages.

For cycles the import graph counts every `import`/`from ... import` that runs at module
import time, including ones nested in `if`/`try` at module level, but not imports inside
functions (deliberate late imports) nor those under `if TYPE_CHECKING:` (never
executed). For the stage order and the SDK's independence every import counts, late
ones too: a late import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "gensight"
MAX_LINES = 550

# Modules allowed over the limit, each with its reason (none today).
OVERSIZE_ALLOWED: dict[str, str] = {}

# The flow's order: a stage may import from model/ and from stages of a lower rank.
# export and alerts share a rank (both read the store's answers, neither imports the
# other); the cli comes last because its `demo` command runs demo/.
STAGE_RANK = {
    "model": 0,
    "conventions": 1,
    "enrich": 2,
    "receive": 3,
    "pipeline": 4,
    "store": 5,
    "query": 6,
    "export": 7,
    "alerts": 7,
    "web": 8,
    "demo": 9,
    "cli": 10,
}
SDK_FORBIDDEN = {"receive", "pipeline", "store", "query", "web", "alerts", "export", "cli", "demo"}

# Stage-order violations tolerated for now, each a (importer, imported) module edge with
# a comment naming why and who fixes it. None today: the only same-rank edge found
# (cli.main -> demo.run, the `demo` command) is the reason cli ranks above demo.
KNOWN_STAGE_VIOLATIONS: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, deep: bool) -> list[ast.Import | ast.ImportFrom]:
    """Import statements executed when the module is imported, or all of them (deep)."""
    if deep:
        return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.append(node)
            elif isinstance(node, ast.If):
                if not _is_type_checking(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, (ast.With, ast.ClassDef)):
                visit(node.body)

    visit(tree.body)
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is one of our modules."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _graph(deep: bool = False) -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in _imports(tree, deep):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from pkg import mod` is an edge to the submodule when there is one
                # (the package's __init__ runs first for any of its modules anyway);
                # `from mod import name` is an edge to the module.
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for target in targets:
                if not target.startswith("gensight"):
                    continue
                resolved = _resolve(target, modules)
                if resolved and resolved != name:
                    edges.add(resolved)
        graph[name] = edges
    return graph


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGE_RANK else None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def connect(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                connect(nxt)
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

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_graph_sees_the_package() -> None:
    graph = _graph()
    # A sanity check that the walk resolves imports at all (else every test passes).
    assert "gensight.receive.gateway" in graph
    assert any(target.startswith("gensight.model") for target in graph["gensight.pipeline.writer"])


def test_no_import_cycle() -> None:
    assert _cycles(_graph()) == []


def test_no_oversized_module() -> None:
    over = {}
    for name, path in _modules().items():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES and name not in OVERSIZE_ALLOWED:
            over[name] = lines
    assert over == {}


def test_sdk_imports_nothing_of_the_server() -> None:
    bad = sorted(
        (module, target)
        for module, targets in _graph(deep=True).items()
        if module.startswith("gensight.sdk") or module == "gensight"
        for target in targets
        if _stage(target) in SDK_FORBIDDEN
    )
    assert bad == []


def _stage_violations(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Edges from a stage to a stage of the same or a later rank (model/ is always fine)."""
    violations = set()
    for module, targets in graph.items():
        stage = _stage(module)
        if stage is None:
            continue
        for target in targets:
            other = _stage(target)
            if other is None or other == stage or other == "model":
                continue
            if STAGE_RANK[other] >= STAGE_RANK[stage]:
                violations.add((module, target))
    return violations


def test_stages_import_only_earlier_stages() -> None:
    assert sorted(_stage_violations(_graph(deep=True)) - KNOWN_STAGE_VIOLATIONS) == []


def test_known_violations_are_current() -> None:
    # A fixed violation must leave KNOWN_STAGE_VIOLATIONS, so the list only shrinks.
    graph = _graph(deep=True)
    gone = sorted(edge for edge in KNOWN_STAGE_VIOLATIONS if edge[1] not in graph.get(edge[0], ()))
    assert gone == []


# Third-party packages only the server installs (pyproject's `server` and `clickhouse`
# extras); `pip install gensight` has none of them, so the SDK must not import them.
SERVER_ONLY_PACKAGES = {
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "duckdb",
    "pyarrow",
    "typer",
    "rich",
    "orjson",
    "aiohttp",
    "quicktok",
    "jinja2",
    "prometheus_client",
    "grpc",
    "chdb",
    "clickhouse_connect",
}


def _third_party(path: Path, deep: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: set[str] = set()
    for node in _imports(tree, deep):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def _reachable(graph: dict[str, set[str]], roots: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name])
    return seen


def test_sdk_imports_no_server_package() -> None:
    # The SDK's modules and every gensight module they import (e.g. enrich.pricing),
    # late imports included.
    modules = _modules()
    roots = [name for name in modules if name == "gensight" or name.startswith("gensight.sdk")]
    used = _reachable(_graph(deep=True), roots)
    assert len(used) > len(roots)  # the walk follows imports out of sdk/
    bad = {
        name: sorted(_third_party(modules[name], deep=True) & SERVER_ONLY_PACKAGES) for name in used
    }
    assert {name: found for name, found in bad.items() if found} == {}


def test_import_gensight_loads_no_opentelemetry() -> None:
    # `import gensight` runs gensight/__init__ and what it imports at module level.
    modules = _modules()
    loaded = {
        name: _third_party(modules[name], deep=False) for name in _reachable(_graph(), ["gensight"])
    }
    assert {name: found for name, found in loaded.items() if "opentelemetry" in found} == {}


def test_the_checks_can_fail() -> None:
    # The machinery on made-up input: a cycle is found, TYPE_CHECKING and function-level
    # imports are left out of the module-level graph but kept in the deep one.
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "import gensight.model\n"
        "if TYPE_CHECKING:\n    import gensight.store\n"
        "def f():\n    import gensight.web\n"
    )
    top = {alias.name for node in _imports(tree, deep=False) for alias in node.names}
    deep = {alias.name for node in _imports(tree, deep=True) for alias in node.names}
    assert "gensight.model" in top and not top & {"gensight.store", "gensight.web"}
    assert {"gensight.model", "gensight.store", "gensight.web"} <= deep
    graph = {
        "gensight.pipeline.writer": {"gensight.store.sql", "gensight.model.records"},
        "gensight.export.otlp": {"gensight.alerts.engine", "gensight.query.params"},
        "gensight.store.sql": {"gensight.enrich.pricing"},
    }
    assert _stage_violations(graph) == {
        ("gensight.pipeline.writer", "gensight.store.sql"),
        ("gensight.export.otlp", "gensight.alerts.engine"),
    }
