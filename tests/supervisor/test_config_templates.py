"""Templates in the supervisor's TOML config (SPEC §14): resolved when the file is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervision.config import ServerConfigError, load_server_config


def test_variables_defaults_and_secret_files_in_the_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGS_HOME", str(tmp_path / "dags"))
    monkeypatch.delenv("DAGSERVER_TEST_BIND", raising=False)
    (tmp_path / "state_dir").write_text(f"{tmp_path / 'state'}\n")
    path = tmp_path / "supervisor.toml"
    path.write_text(f'dags = ["${{DAGS_HOME}}", "$${{LITERAL}}"]\nbind = "${{DAGSERVER_TEST_BIND:-127.0.0.1:9}}"\n'
                    f'state_dir = "${{file:{tmp_path / "state_dir"}}}"\n')
    config = load_server_config(str(path))
    assert config.dags == (str(tmp_path / "dags"), "${LITERAL}")
    assert config.bind == "127.0.0.1:9"
    assert config.state_dir == str(tmp_path / "state")


def test_an_unset_variable_is_an_error_naming_it_and_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGSERVER_TEST_USERS", raising=False)
    path = tmp_path / "supervisor.toml"
    path.write_text('users = "${DAGSERVER_TEST_USERS}"\n[restart]\nmax_restarts = 3\n')
    with pytest.raises(ServerConfigError) as raised:
        load_server_config(str(path))
    assert str(raised.value).startswith(f"{path}: users: the environment variable DAGSERVER_TEST_USERS is not set")
