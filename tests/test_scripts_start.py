"""Every script and benchmark beside the package finds what it imports from tpose: a renamed or removed module
or name fails here instead of on the next person who runs the script (the scripts themselves run for minutes
on ../shared, so their tpose imports are resolved, not the scripts run)."""

from __future__ import annotations

import ast
import importlib

import pytest

from .conftest import REPO

SCRIPTS = sorted((REPO / "scripts").glob("*.py")) + sorted((REPO / "benchmarks").glob("*.py")) + [REPO / "app.py"]


def _tpose_imports(path) -> list[tuple[str, str | None]]:
    """(module, name) of every ``import tpose...`` / ``from tpose... import name`` in the file, nested ones too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "tpose":
            found += [(node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names if a.name.split(".")[0] == "tpose"]
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_script_imports_resolve(script) -> None:
    missing = []
    for module, name in _tpose_imports(script):
        try:
            loaded = importlib.import_module(module)
        except ModuleNotFoundError:
            missing.append(module)
            continue
        if name is not None and not hasattr(loaded, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ModuleNotFoundError:
                missing.append(f"{module}.{name}")
    assert not missing, f"{script.name} imports what tpose no longer has: {missing}"


def test_a_renamed_module_is_caught(tmp_path) -> None:
    script = tmp_path / "old.py"
    script.write_text("from tpose.engine.config import read_yaml\nfrom tpose.weights.int8 import no_such_name\n")
    with pytest.raises(AssertionError, match=r"tpose\.engine\.config.*tpose\.weights\.int8\.no_such_name"):
        test_script_imports_resolve(script)
