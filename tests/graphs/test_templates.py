"""Configuration templates (SPEC §14): ``${VAR}``, ``${VAR:-default}``, ``${file:/path}``, the ``$${``
escape, literal dollars, masking, and ``check`` naming an unset variable with its JSON path."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphs.loader import load_dag_dict
from graphs.templates import mask_templates, resolve_templates
from tests.support.dag_check import base, check_doc, line_at


def test_variables_defaults_files_escapes_and_literal_dollars(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    env = {"HOST": "db1", "EMPTY": ""}
    doc = {"a": "${HOST}", "b": ["${NOPE:-localhost}", "${EMPTY:-fallback}", "${HOST:-x}:${NOPE:-}"],
           "c": {"password": f"${{file:{secret}}}"}, "d": "$5 costs $$ and a$b", "e": "$${HOME} and $${X:-y}",
           "n": 5, "f": None}
    result = resolve_templates(doc, environ=env)
    assert result.problems == []
    assert result.value == {"a": "db1", "b": ["localhost", "fallback", "db1:"], "c": {"password": "s3cret"},
                            "d": "$5 costs $$ and a$b", "e": "${HOME} and ${X:-y}", "n": 5, "f": None}
    assert result.paths == ["a", "b[0]", "b[1]", "b[2]", "c.password"]  # an escape is no template
    assert doc["a"] == "${HOST}"                                          # the document is not changed


def test_a_secret_file_loses_one_trailing_newline_only(tmp_path: Path) -> None:
    for text, expected in (("pw\n", "pw"), ("pw\r\n", "pw"), ("pw\n\n", "pw\n"), ("pw", "pw"), ("", "")):
        (tmp_path / "s").write_text(text, newline="")
        assert resolve_templates(f"${{file:{tmp_path / 's'}}}").value == expected


def test_problems_name_the_path_the_variable_and_the_escape() -> None:
    result = resolve_templates({"x": [{"y": "${MISSING_VAR}"}], "z": "${1BAD}", "w": "${file:/no/such/file}",
                                "v": "${OPEN"}, environ={})
    assert [(p.path, p.message) for p in result.problems] == [
        ("x[0].y", "the environment variable MISSING_VAR is not set"),
        ("z", "malformed template at '${1BAD}': expected ${NAME}, ${NAME:-default} or ${file:/path}"),
        ("w", "cannot read the secret file '/no/such/file': No such file or directory"),
        ("v", "malformed template at '${OPEN': expected ${NAME}, ${NAME:-default} or ${file:/path}"),
    ]
    assert result.problems[0].suggestion == "set MISSING_VAR in the server's environment, or give a default: " \
        "${MISSING_VAR:-default}"
    assert result.problems[1].suggestion == "write $${ for a literal ${"


def test_masking_shows_stars_where_a_template_was() -> None:
    doc = {"url": "mysql://app:${DB_PASSWORD}@${DB_HOST:-localhost}/x", "key": "${file:/run/secrets/k}",
           "plain": "$5", "escaped": "$${LITERAL}", "list": ["${A}", 1]}
    assert mask_templates(doc) == {"url": "mysql://app:***@***/x", "key": "***", "plain": "$5",
                                   "escaped": "${LITERAL}", "list": ["***", 1]}


def test_the_model_keeps_resolved_values_and_the_file_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRICES_QUEUE", "prices_live")
    doc = base()
    doc["subscribers"][0]["config"]["source"] = "mem://queue/${PRICES_QUEUE}"
    dag = load_dag_dict(doc)
    assert dag.subscribers["prices"].source == "mem://queue/prices_live"
    assert dag.raw["subscribers"][0]["config"]["source"] == "mem://queue/prices_live"
    assert dag.template is doc
    assert load_dag_dict(base()).template is None


def test_check_names_an_unset_variable_and_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAG_TEST_UNSET", raising=False)
    doc = base()
    doc["publishers"][1]["config"]["destination"] = "mem://topic/${DAG_TEST_UNSET}"
    code, _, err, file = check_doc(tmp_path, doc)
    assert code == 2
    line = line_at(err, file, "publishers[1].config.destination")
    assert "the environment variable DAG_TEST_UNSET is not set" in line and "${DAG_TEST_UNSET:-default}" in line
    monkeypatch.setenv("DAG_TEST_UNSET", "audit")
    code, _, err, _ = check_doc(tmp_path, doc)
    assert (code, err) == (0, "")


def test_check_lines_show_a_templated_value_masked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAG_TEST_SECRET", "hunter2")
    doc = base()
    doc["subscribers"][0]["config"]["source"] = "nosuchscheme://u:${DAG_TEST_SECRET}@host/q"
    code, _, err, file = check_doc(tmp_path, doc)
    assert code == 2
    line = line_at(err, file, "subscribers[0].config.source")
    assert "hunter2" not in err and "nosuchscheme://u:***@host/q" in line
