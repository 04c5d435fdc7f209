"""Accounts on their own (``web/accounts.py``, SPEC §7): what a login costs must not tell names apart.

A login for an unknown name checks the password against a decoy hash made once per process, so it
runs exactly one scrypt, as a login for a known name does (hashing a fresh decoy each time made it
two, and a timing of the form told which user names exist).
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from web import accounts as accounts_module
from web.accounts import Accounts, AccountsError, User, UsersFile


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


def old_hash(password: str) -> str:
    """A hash as the server made them before (scrypt N=2^14, r=8, p=1)."""
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    encoded = [base64.b64encode(part).decode() for part in (salt, digest)]
    return "$".join(["scrypt", str(2**14), "8", "1", *encoded])


def test_new_hashes_use_scrypt_at_owasp_strength(tmp_path: Path) -> None:
    users = UsersFile(tmp_path / "users.json")
    users.add("ada", "viewer", "pw")
    kind, n, r, p, _salt, _digest = users.read()["ada"]["password_hash"].split("$")
    assert (kind, int(n), int(r), int(p)) == ("scrypt", 2**17, 8, 1)
    assert Accounts(users).login("ada", "pw") is not None  # and 128 MiB is within what a check may use


def test_an_old_hash_logs_in_and_is_rewritten_at_todays_cost(tmp_path: Path) -> None:
    users = UsersFile(tmp_path / "users.json")
    users.write({"bea": {"password_hash": old_hash("old-pw"), "role": "operator", "tokens": []}})
    accounts = Accounts(users)
    user = accounts.login("bea", "old-pw")
    assert user is not None and user.rehashed_from and user.rehashed_from != user.fingerprint
    stored = users.read()["bea"]["password_hash"]
    assert stored.startswith(f"scrypt${2**17}$8$1$")
    assert accounts.login("bea", "old-pw") == User("bea", "operator", user.fingerprint)  # no second rewrite
    assert users.read()["bea"]["password_hash"] == stored
    assert accounts.login("bea", "wrong") is None


def test_a_stored_hash_asking_for_too_much_memory_is_refused_without_trying(tmp_path: Path) -> None:
    users = UsersFile(tmp_path / "users.json")
    users.write({"cy": {"password_hash": "scrypt$1048576$8$1$AAAA$AAAA", "role": "viewer", "tokens": []}})
    assert Accounts(users).login("cy", "pw") is None


def test_user_remove(tmp_path: Path) -> None:
    users = UsersFile(tmp_path / "users.json")
    users.write({"dan": {"password_hash": old_hash("pw"), "role": "viewer", "tokens": []}})
    accounts = Accounts(users)
    assert accounts.user("dan") is not None
    users.remove("dan")
    assert accounts.user("dan") is None and "dan" not in users.read()
    with pytest.raises(AccountsError, match="no user named 'dan'"):
        users.remove("dan")
