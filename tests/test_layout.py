"""The layout the design promises (SPEC §1; docs/ARCHITECTURE.md), checked on the code itself.

* imports go one way: ``graphs`` imports nothing of ours but itself; ``adapters`` may use
  ``graphs``; ``actors`` may use both; ``supervision`` may use all three; the web layer
  knows only the DAG states; ``supervisor.py`` puts it all together;
* no import cycle: every module imports on its own, in a fresh set of project modules;
* imports sit at the top of modules (inside a function only for optional client libraries);
* no module outside the tests is longer than 400 lines.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("actors", "adapters", "graphs", "supervision", "web")
OURS = {*PACKAGES, "supervisor", "bench"}
MAY_IMPORT: dict[str, set[str]] = {
    "graphs": {"graphs"},
    "adapters": {"adapters", "graphs"},
    "actors": {"actors", "adapters", "graphs"},
    "supervision": {"supervision", "actors", "adapters", "graphs"},
    "web": {"web", "actors.states"},
}
# client libraries imported inside load_X(); aerospike_helpers comes in the aerospike package
OPTIONAL_CLIENTS = {"kafka", "stomp", "redis", "pymysql", "psycopg", "aerospike", "aerospike_helpers", "kazoo"}
MAX_LINES = 400


def source_files() -> list[Path]:
    files = [ROOT / "supervisor.py"]
    for package in (*PACKAGES, "bench"):
        files += sorted((ROOT / package).rglob("*.py"))
    return files


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> list[tuple[str, ast.AST, bool]]:
    """``(module, node, at_top)`` for every import of ours in ``path`` (TYPE_CHECKING blocks left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, ast.AST, bool]] = []

    def visit(node: ast.AST, at_top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, child, at_top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                found.extend((f"{child.module}.{alias.name}", child, at_top) for alias in child.names)
            inner = at_top and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            visit(child, inner)

    visit(tree, True)
    return found


def owner(module: str) -> str:
    return module.split(".", 1)[0]


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_go_one_way_and_sit_at_the_top(path: Path) -> None:
    mine = module_name(path)
    allowed = MAY_IMPORT.get(owner(mine))
    for name, node, at_top in imported(path):
        lineno = getattr(node, "lineno", 0)
        if not at_top:
            assert owner(name) in OPTIONAL_CLIENTS, f"{path.name}:{lineno}: import of {name} inside a function"
        if owner(name) not in OURS or allowed is None:
            continue
        assert any(name == a or name.startswith(a + ".") for a in allowed), \
            f"{path.name}:{lineno}: {mine} must not import {name} (it may use {sorted(allowed)})"


def test_no_import_cycles_between_our_modules() -> None:
    modules = {module_name(p): p for p in source_files()}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for mine, path in modules.items():
        for name, _, at_top in imported(path):
            if not at_top or owner(name) not in OURS:
                continue
            target = next((m for m in (name, name.rpartition(".")[0]) if m in modules), None)
            if target and target != mine:
                edges[mine].add(target)
    state: dict[str, int] = {}

    def walk(module: str, trail: list[str]) -> None:
        state[module] = 1
        for nxt in sorted(edges[module]):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join([*trail, module, nxt])
            if nxt not in state:
                walk(nxt, [*trail, module])
        state[module] = 2

    for module in sorted(modules):
        if module not in state:
            walk(module, [])


def test_every_module_imports_on_its_own() -> None:
    names = sorted(module_name(p) for p in source_files() if module_name(p) != "bench.__main__")
    code = (
        "import importlib, sys\n"
        f"ours = {sorted(OURS)!r}\n"
        f"for name in {names!r}:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] in ours]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_stay_small(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines (at most {MAX_LINES})"
