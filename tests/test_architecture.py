"""The package's imports run one way (issue 14): no import cycle between modules or between subpackages, no
tpose import hidden inside a function, and every subpackage imports only from the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tpose"

# the data's path, lowest first: a unit may import from its own layer and the ones before it
LAYERS = [
    ["utils"],
    ["codecs"],
    ["data"],
    ["models"],
    ["weights"],
    ["factory"],
    ["engine"],
    ["inference"],
    ["explain"],
    ["export"],
    ["bench"],
    ["demo"],
    ["cli"],
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The tpose modules an import statement loads (a ``from pkg import name`` of a submodule counts it)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "tpose"]
    is_package = MODULES[module].name == "__init__.py"
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != "tpose":
        return []
    return [f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names]


def _graph() -> tuple[dict[str, set[str]], list[tuple[str, str, int]]]:
    """Module -> imported tpose modules, and the (module, target, line) of every import inside a function."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    hidden = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(module, node):
                    if target in MODULES and target != module:
                        graph[module].add(target)
                        if id(node) not in top:
                            hidden.append((module, target, node.lineno))
    return graph, hidden


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _unit(module: str) -> str | None:
    """The subpackage (or top-level module) a module belongs to; None for the ``tpose`` facade itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_no_import_cycle_between_modules() -> None:
    graph, _ = _graph()
    assert _cycles(graph) == []


def test_no_import_cycle_between_subpackages() -> None:
    graph, _ = _graph()
    units: dict[str, set[str]] = {}
    for module, targets in graph.items():
        a = _unit(module)
        if a is None:
            continue
        units.setdefault(a, set())
        units[a] |= {b for t in targets if (b := _unit(t)) is not None and b != a}
    assert _cycles(units) == []


def test_no_tpose_import_is_hidden_inside_a_function() -> None:
    _, hidden = _graph()
    assert hidden == [], "imports inside functions hide the dependency order: " + ", ".join(
        f"{m} -> {t} (line {n})" for m, t, n in hidden)


def test_every_subpackage_imports_only_from_the_layers_below() -> None:
    layer = {name: i for i, names in enumerate(LAYERS) for name in names}
    graph, _ = _graph()
    wrong = []
    for module, targets in graph.items():
        a = _unit(module)
        if a is None:
            continue
        assert a in layer, f"{a} is in no layer of this test: place it in LAYERS"
        for t in targets:
            b = _unit(t)
            if b is not None and b != a and layer[b] > layer[a]:
                wrong.append(f"{module} -> {t}")
    assert wrong == []


def test_init_files_only_re_export() -> None:
    """``__init__.py`` files hold a docstring, imports and ``__all__``: the logic lives in modules of its own."""
    for path in MODULES.values():
        if path.name != "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            ok = isinstance(node, (ast.Import, ast.ImportFrom)) or (
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) or (
                isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id in ("__all__", "__version__")
                                                     for t in node.targets))
            assert ok, f"{path}: line {node.lineno} is not a re-export"


@pytest.mark.parametrize("name", ["cycle", "hidden"])
def test_the_checks_can_fail(name: str) -> None:
    """The helpers catch what they are for (a cycle, an import in a function) on a made-up graph."""
    if name == "cycle":
        assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    else:
        tree = ast.parse("def f():\n    from tpose.models import variants\n")
        inner = tree.body[0].body[0]
        assert _targets("tpose.cli", inner) == ["tpose.models.variants"]
