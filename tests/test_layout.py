"""The layout the design promises (SPEC §1; docs/ARCHITECTURE.md), checked on the code itself.

* imports go one way: ``graphs`` imports nothing of ours but itself; ``adapters`` may use
  ``graphs``; ``actors`` may use both; ``supervision`` may use all three; the web layer
  knows only the DAG states; ``supervisor.py`` puts it all together;
* no import cycle, not even through imports made only for type checkers: every module imports
  on its own, in a fresh set of project modules;
* imports sit at the top of modules (inside a function only for optional client libraries);
* no module outside the tests is longer than 400 lines;
* every adapter module sits in its system's folder (:func:`adapter_misplacements` states the rule),
  and ``tests/adapters/`` has the same folders.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from adapters import registry

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


def imported(path: Path, type_checking: bool = False) -> list[tuple[str, ast.AST, bool]]:
    """``(module, node, at_top)`` for every import in ``path``; ``if TYPE_CHECKING:`` blocks only when asked."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, ast.AST, bool]] = []

    def visit(node: ast.AST, at_top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test) and not type_checking:
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


def import_cycle(modules: Mapping[str, Path]) -> str | None:
    """The first import cycle between ``modules`` (dotted name: file), as ``"a -> b -> a"``; None if none.

    Imports made only for type checkers count: they tie two modules together just the same.
    """
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for mine, path in modules.items():
        for name, _, at_top in imported(path, type_checking=True):
            if not at_top or owner(name) not in OURS:
                continue
            target = next((m for m in (name, name.rpartition(".")[0]) if m in modules), None)
            if target and target != mine:
                edges[mine].add(target)
    state: dict[str, int] = {}

    def walk(module: str, trail: list[str]) -> str | None:
        state[module] = 1
        for nxt in sorted(edges[module]):
            if state.get(nxt) == 1:
                return " -> ".join([*trail, module, nxt])
            found = walk(nxt, [*trail, module]) if nxt not in state else None
            if found:
                return found
        state[module] = 2
        return None

    for module in sorted(modules):
        found = walk(module, []) if module not in state else None
        if found:
            return found
    return None


def test_no_import_cycles_between_our_modules() -> None:
    cycle = import_cycle({module_name(p): p for p in source_files()})
    assert cycle is None, f"import cycle: {cycle}"


def test_an_import_cycle_is_found_even_through_type_checking_imports(tmp_path: Path) -> None:
    (tmp_path / "one.py").write_text("from actors.two import B\n")
    (tmp_path / "two.py").write_text("from typing import TYPE_CHECKING\n"
                                     "if TYPE_CHECKING:\n    from actors.one import A\n")
    (tmp_path / "three.py").write_text("from actors.two import B\n")
    modules = {f"actors.{name}": tmp_path / f"{name}.py" for name in ("one", "two", "three")}
    assert import_cycle(modules) == "actors.one -> actors.two -> actors.one"
    del modules["actors.one"]
    assert import_cycle(modules) is None


# -- where adapter modules live --------------------------------------------------------------------
SHARED_ADAPTER_MODULES = {"__init__", "base", "registry", "formats"}  # the only modules directly in adapters/
BUILTIN = "builtin"  # the folder of the schemes that need no external system
# a client library: the only folder whose modules may import it
CLIENT_FOLDERS = {"kafka": "kafka", "redis": "redis", "stomp": "activemq", "pymysql": "sql", "psycopg": "sql",
                  "aerospike": "aerospike", "aerospike_helpers": "aerospike"}


def adapter_misplacements(adapters_dir: Path, tests_dir: Path, modules: Mapping[str, str]) -> list[str]:
    """What sits in the wrong place in ``adapters_dir`` (and its tests in ``tests_dir``), given the registry's
    scheme -> module map. The rule, one line per check:

    * directly in ``adapters/``: only ``base``, ``registry``, ``formats`` (what every adapter shares) and folders;
    * the folders are the ones the registry maps schemes into: ``builtin/`` and one per external system,
      named after it; every scheme's module sits in ``builtin/`` or in the folder its scheme starts with
      (``redischannel`` in ``redis/``); each folder is a package (``__init__.py``);
    * a module using a system's client library sits in that system's folder (``stomp``: ``activemq/``);
    * a folder's modules use, of the adapters, only the shared modules and their own folder: systems do not
      reach into each other; and a module in ``redis/`` is not called ``redis_*.py`` (the folder says it);
    * ``tests/adapters/`` has the same folders, and no test module directly in it is named after a
      folder or scheme (``test_kafka*.py`` belongs in ``tests/adapters/kafka/``).
    """
    problems: list[str] = []
    package = adapters_dir.name
    folders = {module.split(".")[1] for module in modules.values() if module.startswith(package + ".")}
    problems += [f"{package}/{name}/: the registry maps a scheme there, but it is not a folder"
                 for name in sorted(folders) if not (adapters_dir / name).is_dir()]
    for scheme, module in sorted(modules.items()):
        head, _, rest = module.partition(".")
        folder = rest.split(".")[0]
        if head != package:
            continue  # a module outside the project (a test's own scheme)
        if folder not in folders or (folder != BUILTIN and not scheme.startswith(folder)):
            problems.append(f"scheme {scheme!r}: module {module} is not in {package}/{BUILTIN}/ or {package}/"
                            f"{scheme}/ (the folder of its system)")
    for path in sorted(adapters_dir.iterdir()):
        if path.name == "__pycache__":
            continue
        if path.is_dir() and path.name not in folders:
            problems.append(f"{package}/{path.name}/: no scheme of the registry lives there; a system's folder "
                            f"is named after it and listed in registry.MODULES, built-in schemes go in {BUILTIN}/")
        elif path.is_dir() and not (path / "__init__.py").is_file():
            problems.append(f"{package}/{path.name}/ has no __init__.py")
        elif path.suffix == ".py" and path.stem not in SHARED_ADAPTER_MODULES:
            problems.append(f"{package}/{path.name}: only {sorted(SHARED_ADAPTER_MODULES)} sit directly in "
                            f"{package}/; move it into its system's folder (or {BUILTIN}/)")
    for path in sorted(adapters_dir.rglob("*.py")):
        relative = path.relative_to(adapters_dir)
        folder = relative.parts[0] if len(relative.parts) > 1 else None
        where = f"{package}/{relative.as_posix()}"
        if folder and path.stem.startswith(folder + "_"):
            problems.append(f"{where}: drop the {folder + '_'!r} prefix, the folder says it")
        for name, _, _ in imported(path):
            client = CLIENT_FOLDERS.get(owner(name))
            if client and folder != client:
                problems.append(f"{where} imports {owner(name)}, the client of {package}/{client}/: it belongs there")
            ours = name.split(".")
            if folder and ours[0] == package and len(ours) > 2 and ours[1] not in (folder, *SHARED_ADAPTER_MODULES):
                problems.append(f"{where} imports {name}: a folder uses only the shared modules and its own")
    test_folders = {p.name for p in tests_dir.iterdir() if p.is_dir() and p.name != "__pycache__"}
    if test_folders != folders:
        problems.append(f"tests/{package}/ has the folders {sorted(test_folders)}, {package}/ {sorted(folders)}")
    problems += [f"tests/{package}/{name}/ has no __init__.py" for name in sorted(test_folders)
                 if not (tests_dir / name / "__init__.py").is_file()]
    named = tuple(f"test_{name}" for name in (*folders - {BUILTIN}, *modules))
    problems += [f"tests/{package}/{p.name}: belongs in the folder of its system"
                 for p in sorted(tests_dir.glob("*.py")) if p.stem.startswith(named)]
    return problems


def test_every_adapter_module_sits_in_its_systems_folder() -> None:
    problems = adapter_misplacements(ROOT / "adapters", ROOT / "tests" / "adapters", registry.MODULES)
    assert problems == [], "\n".join(problems)


def test_a_misplaced_adapter_module_is_found(tmp_path: Path) -> None:
    adapters_dir, tests_dir = tmp_path / "adapters", tmp_path / "tests"
    for folder in ("builtin", "redis", "kafka"):
        (adapters_dir / folder).mkdir(parents=True)
        (adapters_dir / folder / "__init__.py").write_text("")
        (tests_dir / folder).mkdir(parents=True)
        (tests_dir / folder / "__init__.py").write_text("")
    (adapters_dir / "base.py").write_text("")
    (adapters_dir / "redis" / "lists.py").write_text("from adapters.redis.link import target_of\n")
    modules = {"mem": "adapters.builtin.mem", "redis": "adapters.redis", "redischannel": "adapters.redis.redischannel",
               "kafka": "adapters.kafka", "toy": "tests.support.toy_adapter"}
    assert adapter_misplacements(adapters_dir, tests_dir, modules) == []

    (adapters_dir / "redis_extra.py").write_text("")
    (adapters_dir / "kafka" / "topics.py").write_text("def load():\n    import redis\n")
    (adapters_dir / "redis" / "redis_streams.py").write_text("from adapters.kafka import KafkaSink\n")
    (tests_dir / "test_kafka_more.py").write_text("")
    modules = {**modules, "aerospike": "adapters.kafka.aerospike"}
    problems = adapter_misplacements(adapters_dir, tests_dir, modules)
    assert problems == [
        "scheme 'aerospike': module adapters.kafka.aerospike is not in adapters/builtin/ or adapters/aerospike/ "
        "(the folder of its system)",
        "adapters/redis_extra.py: only ['__init__', 'base', 'formats', 'registry'] sit directly in adapters/; "
        "move it into its system's folder (or builtin/)",
        "adapters/kafka/topics.py imports redis, the client of adapters/redis/: it belongs there",
        "adapters/redis/redis_streams.py: drop the 'redis_' prefix, the folder says it",
        "adapters/redis/redis_streams.py imports adapters.kafka.KafkaSink: a folder uses only the shared modules "
        "and its own",
        "tests/adapters/test_kafka_more.py: belongs in the folder of its system",
    ], problems


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
