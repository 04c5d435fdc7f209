"""What an admin's DAG may reach, against a real ``dagserver serve`` (SPEC §7 ``[security]``).

* ``file://`` endpoints never name the server's own files (users file, ``state_dir``, ``dags``
  folders), with or without ``file_roots``; with it they stay inside its folders, ``..`` and
  symlinks resolved first;
* ``module_prefixes`` bounds where user classes come from, checked before any import;
* the supervisor never imports user code: a module with a side effect (it leaves a file named
  after the importing process's pid) is imported by a worker only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.supervised import ROOT, SupervisedServer, metronome_dag
from tests.support.waiting import wait_until

SIDE_EFFECT_MODULE = '''
import os
from pathlib import Path

Path({marks!r}, f"imported-by-{{os.getpid()}}").touch()


class Stamp:
    def __init__(self, name, config):
        self.name = name

    def calculate(self, record):
        return {{**record, "stamped": True}}
'''


def with_side_effect_module(tmp: Path, package: str) -> tuple[dict[str, str], Path]:
    """A package ``package`` under ``tmp/pkgs`` that marks every process importing it; the env that finds
    it, and the folder of the marks."""
    marks = tmp / "marks"
    marks.mkdir()
    (tmp / "pkgs" / package).mkdir(parents=True)
    (tmp / "pkgs" / package / "__init__.py").write_text(SIDE_EFFECT_MODULE.format(marks=str(marks)))
    return {"PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp / "pkgs")])}, marks


def importers(marks: Path) -> set[int]:
    return {int(p.name.rsplit("-", 1)[1]) for p in marks.iterdir()}


def problems_of(body: Any) -> str:
    return "\n".join(body.get("problems") or []) + body.get("error", "")


# -- bounded: [security] file_roots and module_prefixes ------------------------------------------------------
@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisedServer]:
    root = tmp_path_factory.mktemp("bounded")
    (root / "files").mkdir()
    env, _ = with_side_effect_module(root, "sidefx")
    extra = (f'\n[security]\nfile_roots = ["{root / "files"}"]\n'
             'module_prefixes = ["tests.support", "sidefx."]\n')
    with SupervisedServer(root, {}, workers=1, config_extra=extra, env=env) as server:
        yield server


def dag_to(name: str, destination: str, **extra: Any) -> dict[str, Any]:
    dag = metronome_dag(name, Path("/unused"), **extra)
    dag["publishers"][0]["config"]["destination"] = destination
    return dag


def test_a_file_outside_file_roots_is_refused_naming_the_key_and_the_rule(bounded: SupervisedServer,
                                                                         tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text('{"line": "the secret"}\n')
    dag = metronome_dag("peek", bounded.tmp / "files" / "out.jsonl")
    dag["subscribers"] = [{"name": "clock", "config": {"source": f"file://{secret}"}}]
    status, body = bounded.request("POST", "/api/dags", body=dag)
    assert status == 400, body
    text = problems_of(body)
    assert "subscribers[0].config.source" in text and "file_roots" in text, text
    assert bounded.request("GET", "/api/dags/peek")[0] == 404


@pytest.mark.parametrize("how", ["dotdot", "symlink", "dead_letter"])
def test_dot_dot_symlinks_and_dead_letters_do_not_leave_file_roots(bounded: SupervisedServer, tmp_path: Path,
                                                                   how: str) -> None:
    files = bounded.tmp / "files"
    if how == "dotdot":
        dag = dag_to("escape_dotdot", f"file://{files}/../escaped.jsonl")
    elif how == "symlink":
        link = files / f"link-{tmp_path.name}"
        link.symlink_to(tmp_path, target_is_directory=True)
        dag = dag_to("escape_link", f"file://{link}/escaped.jsonl")
    else:
        dag = {**dag_to("escape_dead", f"file://{files}/ok.jsonl"), "dead_letter": f"file://{tmp_path}/dead.jsonl"}
    status, body = bounded.request("POST", "/api/dags", body=dag)
    assert status == 400, body
    assert "file_roots" in problems_of(body)
    assert not (bounded.tmp / "escaped.jsonl").exists() and not (tmp_path / "escaped.jsonl").exists()


def test_a_file_inside_file_roots_is_fine(bounded: SupervisedServer) -> None:
    out = bounded.tmp / "files" / "inside.jsonl"
    status, body = bounded.request("POST", "/api/dags", body=metronome_dag("inside", out))
    assert status == 201, body
    bounded.wait_dags("running", ["inside"])
    bounded.request("DELETE", "/api/dags/inside")


@pytest.mark.parametrize("kind,type_name,where", [
    ("calculator", "os.system", "calculators[0].type"),
    ("calculator", "subprocess.Popen", "calculators[0].type"),
    ("calculator", "tests.supportx.userclasses.RaisingCalculator", "calculators[0].type"),
    ("sink", "custom://subprocess.Popen", "publishers[0].config.destination"),
])
def test_module_prefixes_refuse_classes_from_elsewhere(bounded: SupervisedServer, kind: str, type_name: str,
                                                       where: str) -> None:
    if kind == "calculator":
        dag = metronome_dag("outsider", bounded.tmp / "files" / "x.jsonl",
                            calculator={"name": "c", "type": type_name})
    else:
        dag = dag_to("outsider", type_name)
    status, body = bounded.request("POST", "/api/dags", body=dag)
    assert status == 400, body
    text = problems_of(body)
    assert where in text and "module_prefixes" in text, text


def test_module_prefixes_let_classes_from_inside_run(bounded: SupervisedServer) -> None:
    marks = bounded.tmp / "marks"
    dag = metronome_dag("insider", bounded.tmp / "files" / "insider.jsonl",
                        calculator={"name": "c", "type": "sidefx.Stamp"})
    status, body = bounded.request("POST", "/api/dags", body=dag)
    assert status == 201, body
    bounded.wait_dags("running", ["insider"])
    assert bounded.pid not in importers(marks)  # the worker imported it, not the supervisor
    assert importers(marks)
    bounded.request("DELETE", "/api/dags/insider")


# -- unbounded: the server's own files are refused all the same ------------------------------------------------
@pytest.fixture(scope="module")
def unbounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisedServer]:
    root = tmp_path_factory.mktemp("unbounded")
    env, _ = with_side_effect_module(root, "sidefx_free")
    with SupervisedServer(root, {}, workers=1, env=env) as server:
        yield server


@pytest.mark.parametrize("target", ["users", "state", "dags", "config"])
def test_the_servers_own_files_are_refused_without_file_roots(unbounded: SupervisedServer, target: str) -> None:
    path = {"users": unbounded.users_path, "state": unbounded.state_dir / "x.ckpt",
            "dags": unbounded.dag_dir / "evil.json", "config": unbounded.config_path}[target]
    before = path.read_bytes() if path.exists() else None
    status, body = unbounded.request("POST", "/api/dags", body=dag_to(f"own_{target}", f"file://{path}"))
    assert status == 400, body
    assert "server's own files" in problems_of(body)
    assert (path.read_bytes() if path.exists() else None) == before


def test_a_dead_letter_into_the_state_dir_is_refused(unbounded: SupervisedServer) -> None:
    dag = {**dag_to("own_dead", f"file://{unbounded.tmp}/fine.jsonl"),
           "dead_letter": f"file://{unbounded.state_dir}/dead.jsonl"}
    status, body = unbounded.request("POST", "/api/dags", body=dag)
    assert status == 400 and "dead_letter" in problems_of(body), body


def test_the_supervisor_never_imports_user_code(unbounded: SupervisedServer) -> None:
    marks = unbounded.tmp / "marks"
    dag = metronome_dag("userclass", unbounded.tmp / "userclass.jsonl",
                        calculator={"name": "c", "type": "sidefx_free.Stamp"})
    status, body = unbounded.request("POST", "/api/dags", body=dag)
    assert status == 201, body
    unbounded.wait_dags("running", ["userclass"])
    assert wait_until(lambda: bool(importers(marks)), timeout=10)
    assert unbounded.pid not in importers(marks), "the supervisor process imported the DAG's module"
    unbounded.request("DELETE", "/api/dags/userclass")


def test_a_class_that_cannot_be_imported_fails_its_dag_in_the_worker(unbounded: SupervisedServer) -> None:
    dag = metronome_dag("noclass", unbounded.tmp / "noclass.jsonl",
                        calculator={"name": "c", "type": "no_such_module_here.Calc"})
    status, body = unbounded.request("POST", "/api/dags", body=dag)
    assert status == 201, body
    assert wait_until(lambda: unbounded.states().get("noclass") == "failed", timeout=30, interval=0.05), \
        unbounded.states()
    assert "no_such_module_here" in unbounded.dag("noclass")["reason"]
    unbounded.request("DELETE", "/api/dags/noclass")


@pytest.mark.parametrize("where", ["config", "query"])
def test_a_sql_config_file_may_not_be_the_users_file(unbounded: SupervisedServer, where: str) -> None:
    uri = "sql://shop"
    config: dict[str, Any] = {"destination": uri, "insert_statement": "insert into t values (%(a)s)"}
    if where == "config":
        config["sql_config_file"] = str(unbounded.users_path)
    else:
        config["destination"] = f"{uri}?sql_config_file={unbounded.users_path}"
    dag = dag_to(f"sqlfile_{where}", "mem://queue/unused")
    dag["publishers"][0]["config"] = config
    status, body = unbounded.request("POST", "/api/dags", body=dag)
    assert status == 400, body
    assert "sql_config_file" in problems_of(body) and "server's own files" in problems_of(body), body
