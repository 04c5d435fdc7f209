"""The supervisor's TOML config (SPEC §7): defaults, unknown keys, bad values, ``bind``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from supervision.config import (
    SecurityConfig,
    ServerConfig,
    ServerConfigError,
    load_server_config,
    parse_server_config,
)
from supervision.security import ServerRules

ROOT = Path(__file__).resolve().parents[2]  # the project root


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ServerConfigError) as caught:
        parse_server_config(data, "sup.toml")
    return str(caught.value).splitlines()


def test_every_key_has_a_default() -> None:
    for config in (parse_server_config({}), load_server_config(None), ServerConfig()):
        assert config.workers == (os.cpu_count() or 1)
        assert config.dags == ("examples/dags",)
        assert config.state_dir == "var/state"
        assert config.bind == "127.0.0.1:8080"
        assert (config.bind_host, config.bind_port) == ("127.0.0.1", 8080)
        assert config.users == "var/users.json"
        assert config.shutdown_timeout == 15
        assert config.heartbeat_timeout == 3
        assert (config.max_restarts, config.within_seconds) == (5, 60)


def test_a_full_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "sup.toml"
    path.write_text('workers = 3\ndags = ["a", "b.json"]\nstate_dir = "st"\nbind = "0.0.0.0:9100"\n'
                    'users = "u.json"\nshutdown_timeout = 2.5\nheartbeat_timeout = 1\n'
                    '[restart]\nmax_restarts = 7\nwithin_seconds = 30\n')
    config = load_server_config(str(path))
    assert config.workers == 3
    assert config.dags == ("a", "b.json")
    assert (config.state_dir, config.users) == ("st", "u.json")
    assert (config.bind_host, config.bind_port) == ("0.0.0.0", 9100)
    assert (config.shutdown_timeout, config.heartbeat_timeout) == (2.5, 1.0)
    assert isinstance(config.heartbeat_timeout, float)
    assert (config.max_restarts, config.within_seconds) == (7, 30.0)
    assert config.path == str(path)


def test_the_bundled_example_is_valid() -> None:
    config = load_server_config(str(ROOT / "examples" / "supervisor.toml"))
    assert config.workers == 2
    assert config.bind == "127.0.0.1:8080"


def test_a_single_dags_string_is_a_list_of_one() -> None:
    assert parse_server_config({"dags": "my/dags"}).dags == ("my/dags",)


def test_dag_files_lists_folders_sorted_and_files_as_given(tmp_path: Path) -> None:
    folder = tmp_path / "dags"
    folder.mkdir()
    for name in ("b.json", "a.json", "notes.txt"):
        (folder / name).write_text("{}")
    single = tmp_path / "x.json"
    config = parse_server_config({"dags": [str(folder), str(single)]})
    assert config.dag_files() == [folder / "a.json", folder / "b.json", single]


@pytest.mark.parametrize(("data", "where", "hint"), [
    ({"worker": 2}, "worker", "workers"),
    ({"bnid": "x:1"}, "bnid", "bind"),
    ({"shutdown_timout": 3}, "shutdown_timout", "shutdown_timeout"),
    ({"restart": {"max_restart": 3}}, "restart.max_restart", "max_restarts"),
    ({"restart": {"within": 3}}, "restart.within", "within_seconds"),
])
def test_an_unknown_key_is_an_error_with_a_suggestion(data: dict[str, Any], where: str, hint: str) -> None:
    (problem,) = problems_of(data)
    assert problem.startswith(f"sup.toml: {where}: unknown key")
    assert f"did you mean {hint!r}?" in problem


def test_an_unknown_key_with_nothing_close_has_no_suggestion() -> None:
    (problem,) = problems_of({"zzzzzz": 1})
    assert "unknown key" in problem
    assert "did you mean" not in problem


@pytest.mark.parametrize(("data", "where"), [
    ({"workers": "2"}, "workers"),
    ({"workers": 0}, "workers"),
    ({"workers": 1.5}, "workers"),
    ({"workers": True}, "workers"),
    ({"shutdown_timeout": -1}, "shutdown_timeout"),
    ({"shutdown_timeout": "15"}, "shutdown_timeout"),
    ({"heartbeat_timeout": 0}, "heartbeat_timeout"),
    ({"heartbeat_timeout": 0.4}, "heartbeat_timeout"),
    ({"dags": 5}, "dags"),
    ({"dags": ["ok", 1]}, "dags"),
    ({"state_dir": ""}, "state_dir"),
    ({"users": 3}, "users"),
    ({"restart": 5}, "restart"),
    ({"restart": {"max_restarts": 0}}, "restart.max_restarts"),
    ({"restart": {"max_restarts": 2.5}}, "restart.max_restarts"),
    ({"restart": {"within_seconds": "60"}}, "restart.within_seconds"),
])
def test_a_bad_value_names_the_key_and_the_value(data: dict[str, Any], where: str) -> None:
    (problem,) = problems_of(data)
    assert problem.startswith(f"sup.toml: {where}: must be")
    bad = data[where.split(".")[0]]
    bad = bad[where.split(".")[1]] if "." in where else bad
    assert f"(got {bad!r})" in problem


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of({"workers": -1, "colour": "red", "bind": "nope", "restart": {"max_restarts": "x"}})
    assert len(problems) == 4
    assert {p.split(":")[1].strip() for p in problems} == {"workers", "colour", "bind", "restart.max_restarts"}


@pytest.mark.parametrize(("bind", "host", "port"), [
    ("127.0.0.1:8080", "127.0.0.1", 8080),
    ("0.0.0.0:1", "0.0.0.0", 1),
    ("localhost:65535", "localhost", 65535),
    ("[::1]:9000", "::1", 9000),
])
def test_bind_is_host_and_port(bind: str, host: str, port: int) -> None:
    config = parse_server_config({"bind": bind})
    assert (config.bind, config.bind_host, config.bind_port) == (bind, host, port)


@pytest.mark.parametrize("bind", ["localhost", "8080", 8080, ":8080", "host:", "host:0", "host:65536",
                                  "host:http", "host:-1"])
def test_a_bad_bind_is_an_error(bind: object) -> None:
    (problem,) = problems_of({"bind": bind})
    assert problem.startswith("sup.toml: bind: must be HOST:PORT")
    assert f"(got {bind!r})" in problem


def test_an_unreadable_or_invalid_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ServerConfigError, match="cannot read"):
        load_server_config(str(tmp_path / "missing.toml"))
    broken = tmp_path / "broken.toml"
    broken.write_text("workers = = 2\n")
    with pytest.raises(ServerConfigError, match="not valid TOML"):
        load_server_config(str(broken))


def test_serve_refuses_a_bad_config_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "sup.toml"
    config.write_text('workers = 2\nbnid = "127.0.0.1:1"\n')
    result = subprocess.run([sys.executable, str(ROOT / "supervisor.py"), "serve", "-c", str(config)],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    assert "bnid: unknown key (did you mean 'bind'?)" in result.stderr


def test_session_hours_default_to_twelve_and_must_be_positive() -> None:
    assert parse_server_config({}).session_hours == 12.0
    assert parse_server_config({"session_hours": 0.5}).session_hours == 0.5
    for bad in (0, -1, "12", True):
        with pytest.raises(ServerConfigError, match="session_hours: must be a positive number"):
            parse_server_config({"session_hours": bad}, "sup.toml")
def test_the_security_section_is_optional_and_read() -> None:
    assert parse_server_config({}).security == SecurityConfig(None, None)
    config = parse_server_config({"security": {"file_roots": ["/srv/feeds"], "module_prefixes": ["acme.dags."]}})
    assert config.security == SecurityConfig(("/srv/feeds",), ("acme.dags",))


@pytest.mark.parametrize("section,where", [
    ({"file_root": ["/x"]}, "security.file_root: unknown key (did you mean 'file_roots'?)"),
    ({"file_roots": "/x"}, "security.file_roots: must be a list of folders"),
    ({"module_prefixes": ["acme dags"]}, "security.module_prefixes: each must be a dotted package name"),
    ({"module_prefixes": [3]}, "security.module_prefixes: must be a list of package names"),
])
def test_a_bad_security_section_names_the_key(section: dict[str, Any], where: str) -> None:
    assert any(where in line for line in problems_of({"security": section})), problems_of({"security": section})


def test_the_servers_rules_pass_on_the_adapters_own_config_checks() -> None:
    """The server validates with its own rules (file_roots...), which must still ask each adapter about its
    config in its DAG: an ActiveMQ prefetch too small for the checkpoint interval is refused there too."""
    rules = ServerRules(parse_server_config({}))
    settings = {"checkpoint.every_epochs": 5, "epochs.max_records": 500, "epochs.max_inflight": 4}
    problems = rules.check_config("activemq://queue/q", {"prefetch": 10}, "source", settings)
    assert [p.key for p in problems] == ["prefetch"] and "2001" in problems[0].message
    assert rules.check_config("activemq://queue/q", {"prefetch": 2001}, "source", settings) == []
