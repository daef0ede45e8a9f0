"""Options travel as objects (issue 23): no function of the package takes more than 12 parameters.

PosePredictor's constructor is the one exception: its keyword arguments are the documented public API (their
defaults come from ``tpose.inference.options.PredictorOptions``).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "tpose"
MAX_PARAMETERS = 12
ALLOWED = {("tpose.inference.predictor", "PosePredictor.__init__")}
EXCLUDED_PACKAGES: tuple[str, ...] = ()  # every package of src/tpose is checked


def _parameter_count(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = node.args
    return len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) + (a.vararg is not None) + (a.kwarg is not None)


def _functions(tree: ast.AST) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """(qualified name inside the module, node) of every function, methods and nested functions included."""
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((prefix + child.name, child))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def long_signatures(root: Path = SRC) -> list[str]:
    """'module:function (n parameters)' for every function over the limit that is not allowed."""
    out = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if module.startswith(EXCLUDED_PACKAGES):
            continue
        for name, node in _functions(ast.parse(path.read_text())):
            n = _parameter_count(node)
            if n > MAX_PARAMETERS and (module, name) not in ALLOWED:
                out.append(f"{module}:{name} ({n} parameters)")
    return out


def test_no_function_takes_more_than_twelve_parameters() -> None:
    assert long_signatures() == []


def test_the_walk_counts_every_kind_of_parameter(tmp_path: Path) -> None:
    package = tmp_path / "tpose"
    package.mkdir()
    (package / "mod.py").write_text(
        "def short(a, b, *, c): ...\n"
        "class K:\n"
        "    def wide(self, a, b, c, d, e, f, g, /, h, i, *args, j, k, **kw): ...\n"
        "    def inner(self):\n"
        "        def nested(a, b, c, d, e, f, g, h, i, j, k, l, m): ...\n"
    )
    assert long_signatures(package) == ["tpose.mod:K.wide (14 parameters)", "tpose.mod:K.inner.nested (13 parameters)"]


def test_pose_predictor_is_the_only_exception() -> None:
    path = SRC / "inference" / "predictor.py"
    counts = {name: _parameter_count(node) for name, node in _functions(ast.parse(path.read_text()))}
    assert counts["PosePredictor.__init__"] > MAX_PARAMETERS  # the documented keywords stay as they are
