"""Accounts on their own (``web/accounts.py``, SPEC §7): what a login costs must not tell names apart.

A login for an unknown name checks the password against a decoy hash made once per process, so it
runs exactly one scrypt, as a login for a known name does (hashing a fresh decoy each time made it
two, and a timing of the form told which user names exist).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from web import accounts as accounts_module
from web.accounts import Accounts, UsersFile


def test_a_login_costs_one_scrypt_whether_the_name_exists_or_not(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    users = UsersFile(tmp_path / "users.json")
    users.add("ada", "admin", "right-pw")
    accounts = Accounts(users)
    calls: list[str] = []
    real_scrypt = accounts_module.hashlib.scrypt

    def counted(*args: object, **kwargs: object) -> bytes:
        calls.append("scrypt")
        return real_scrypt(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(accounts_module.hashlib, "scrypt", counted)
    for name, password, admitted in [("ada", "right-pw", True), ("ada", "wrong", False), ("nobody", "wrong", False)]:
        calls.clear()
        user = accounts.login(name, password)
        assert (user is not None) == admitted
        assert calls == ["scrypt"], (name, password)
