"""The package's shape: no import circle (counting imports inside functions), and a function-level import of the
package's own modules only where it keeps a heavy library off a fast path, for the reason listed here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "llmoe_pipeline"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# Module -> why its functions import some of the package's modules themselves.
LAZY_IMPORTS = {
    "app.cli": "each command imports what it runs: `llmoe --help`, `llmoe signal` load no Dagster, torch or MLflow",
    "cluster.cli": "each command imports what it runs: `llmoe-cluster status|down` start in a fraction of a second",
    "cluster.apps": "vLLM's settings only in the command that starts `vllm serve`",
    "cluster.bench": "torch and vLLM only in the bench that labels",
    "bench.paths": "each scoring path imports its backend (torch, vLLM) in the process that measures it",
    "bench.router": "each scoring path imports its backend (torch, vLLM) in the process that measures it",
    "definitions": "Celery only with the celery executor",
    "defs.assets.fetch": "the providers' clients (yfinance, exchange_calendars) only when a fetch runs",
    "defs.io_manager": "torch only where a model is read or written: tables load without it (`llmoe report`)",
    "defs.resources": "torch and MLflow in the step that uses the resource, not in every process that loads the "
    "definitions (webserver, daemon)",
    "router.backends.transformers": "torch's model code once the backend is built, not when the backends are listed",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}


def _resolve(name: str) -> str | None:
    """The package module an import names (`a.b.func` -> `a.b`)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported package module, inside a function) of every import in the file."""
    tree = ast.parse(path.read_text())
    inside = {
        id(node)
        for fn in ast.walk(tree)
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(fn)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith(PACKAGE):
            names = [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith(PACKAGE)]
        else:
            continue
        found += [(target, id(node) in inside) for n in names if (target := _resolve(n))]
    return found


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _cycle() -> list[str] | None:
    """One import circle of the package, if any (depth-first search over every import, top-level or not)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target, _ in GRAPH[module]:
            if target == module or target.startswith(f"{module}."):
                continue  # a package importing its own submodules (its __init__) is not a circle
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(GRAPH):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_the_package_has_no_import_circle():
    assert _cycle() is None


def test_the_walk_finds_a_circle_when_there_is_one(monkeypatch):
    monkeypatch.setitem(GRAPH, f"{PACKAGE}.catalog", [(f"{PACKAGE}.router.variants", True)])
    monkeypatch.setitem(GRAPH, f"{PACKAGE}.router.variants", [(f"{PACKAGE}.catalog", False)])
    assert _cycle() == [f"{PACKAGE}.catalog", f"{PACKAGE}.router.variants", f"{PACKAGE}.catalog"]


def test_function_level_imports_of_own_modules_are_the_listed_ones():
    lazy = {name.removeprefix(f"{PACKAGE}.") for name, imports in GRAPH.items() if any(inner for _, inner in imports)}
    assert lazy - set(LAZY_IMPORTS) == set(), "a function imports a package module: move it to the top, or say why"
    assert set(LAZY_IMPORTS) - lazy == set(), "listed as importing lazily, but no longer does"


@pytest.mark.parametrize("module", ["catalog", "router.regimes", "router.variants", "config.protocol"])
def test_light_modules_load_neither_torch_nor_dagster(module):
    import subprocess
    import sys

    code = f"import sys, {PACKAGE}.{module}; print('torch' in sys.modules, 'dagster' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
