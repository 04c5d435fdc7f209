"""Web and API accounts (SPEC §7): the users file, password hashes, API tokens, roles.

The users file is JSON, written with mode 0600::

    {"ana": {"password_hash": "scrypt$131072$8$1$<salt>$<hash>", "role": "admin",
             "tokens": ["<sha256 hex of an API token>", ...]}}

Passwords are hashed with scrypt at OWASP's current figure (N=2^17, r=8, p=1: 128 MiB and
about half a second per hash; at most :data:`PARALLEL_HASHES` run at once, so a burst of logins
cannot exhaust memory); a hash made with a lower cost is rewritten at the user's next
successful login. Tokens are random and only their SHA-256 is stored, so neither can be read
back from the file. A file holding a plaintext
``password`` is refused (:class:`AccountsError` naming ``dagserver user hash``).

Usage::

    users = UsersFile("var/users.json")
    users.add("ana", "admin", "s3cret!")         # or change ana's password and role
    token = users.new_token("ana")                # shown once; only its hash is kept
    accounts = Accounts(users)                    # what the web layer asks, re-read when the file changes
    accounts.login("ana", "s3cret!")              # User(name="ana", role="admin", ...) or None
    users.remove("ana")                           # her sessions end at her next request
    accounts.by_token(token)                      # the same User, or None when unknown/revoked
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROLES = ("viewer", "operator", "admin")  # each may do what the ones before it may
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1  # OWASP's password storage figure for scrypt
SCRYPT_MAXMEM = 2**28  # bytes one hash may use: N=2^17, r=8 needs 128 MiB; a stored hash asking more fails
PARALLEL_HASHES = 2  # scrypts run at once (each holds 128 MiB); further logins wait their turn
MAX_NAME = 128  # characters in a user name; longer ones are refused before any hashing
_hashing = threading.BoundedSemaphore(PARALLEL_HASHES)
DEFAULT_USERS = "var/users.json"
TOKEN_PREFIX = "dgs_"  # what every API token starts with


class AccountsError(ValueError):
    """A users file that cannot be used, or a bad request to change it; the message says why."""


@dataclass(frozen=True)
class User:
    """A signed-in account: ``name``, ``role``, and a fingerprint of its role and password hash (a
    session made before either changed is no longer valid). ``rehashed_from``: the fingerprint the
    account had before this login rewrote a weaker hash (its sessions are carried over)."""

    name: str
    role: str
    fingerprint: str = ""
    rehashed_from: str = ""

    def may(self, role: str) -> bool:
        """Whether this user's role includes ``role`` (``User("a", "admin").may("operator")`` is True)."""
        return ROLES.index(self.role) >= ROLES.index(role)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    with _hashing:
        return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=SCRYPT_MAXMEM)


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password``: ``scrypt$N$r$p$salt$hash`` (base64 parts)."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, 32)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)])


def is_weak(stored: str) -> bool:
    """Whether ``stored`` was made with a lower cost than :func:`hash_password` uses now."""
    try:
        kind, n, r, p, _salt, _digest = stored.split("$")
        return kind != "scrypt" or (int(n), int(r), int(p)) < (SCRYPT_N, SCRYPT_R, SCRYPT_P)
    except ValueError:
        return True


@functools.cache
def _decoy_hash() -> str:
    """What an unknown name's password is checked against: made once per process, so a login for an
    unknown name costs one scrypt, as for a known one (hashing a fresh decoy each time cost two)."""
    return hash_password("no such user")


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (from :func:`hash_password`), compared in constant time."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p), len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def token_digest(token: str) -> str:
    """The SHA-256 (hex) stored for an API token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class UsersFile:
    """The users file on disk: read, checked, and rewritten atomically with mode 0600."""

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_USERS) -> None:
        self.path = Path(path)

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> dict[str, dict[str, Any]]:
        """Every account; AccountsError when the file is unreadable, malformed or holds a plaintext password."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise AccountsError(f"{self.path}: cannot read the users file: {exc}") from exc
        if not isinstance(data, dict):
            raise AccountsError(f"{self.path}: the users file must be a JSON object of NAME: {{...}}")
        for name, account in data.items():
            if not isinstance(account, dict):
                raise AccountsError(f"{self.path}: user {name!r}: must be an object")
            if "password" in account:
                raise AccountsError(f"{self.path}: user {name!r} has a plaintext password; convert the file "
                                    f"with `dagserver user hash {self.path}`")
            if not isinstance(account.get("password_hash"), str):
                raise AccountsError(f"{self.path}: user {name!r}: no password_hash")
            if account.get("role") not in ROLES:
                raise AccountsError(f"{self.path}: user {name!r}: role must be one of {', '.join(ROLES)} "
                                    f"(got {account.get('role')!r})")
            tokens = account.setdefault("tokens", [])
            if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                raise AccountsError(f"{self.path}: user {name!r}: tokens must be a list of SHA-256 hex strings")
        return data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        """Replace the file with ``data`` (mode 0600, never half written)."""
        if not self.path.parent.exists():
            self.path.parent.mkdir(mode=0o700, parents=True)  # the folder the server makes for it: 0700
        temp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.replace(temp, self.path)

    def add(self, name: str, role: str, password: str) -> None:
        """Create user ``name`` or change its password and role (its tokens are kept)."""
        if role not in ROLES:
            raise AccountsError(f"role must be one of {', '.join(ROLES)} (got {role!r})")
        if not name or not name.isprintable() or name.strip() != name:
            raise AccountsError(f"a user name must be printable, without surrounding spaces (got {name!r})")
        if not password:
            raise AccountsError("the password must not be empty")
        data = self.read()
        tokens = data.get(name, {}).get("tokens", [])
        data[name] = {"password_hash": hash_password(password), "role": role, "tokens": tokens}
        self.write(data)

    def new_token(self, name: str) -> str:
        """A new API token for ``name``; only its SHA-256 is stored, so this is the one time it is seen."""
        data = self.read()
        if name not in data:
            raise AccountsError(f"{self.path}: no user named {name!r}")
        # the prefix makes tokens recognisable in logs and configs, and never start with "-" (which a
        # command line such as `dagserver user revoke NAME --token TOKEN` would take for an option)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        data[name]["tokens"].append(token_digest(token))
        self.write(data)
        return token

    def revoke(self, name: str, token: str | None = None) -> int:
        """Forget ``token`` of ``name`` (every token of ``name`` when None); how many were revoked."""
        data = self.read()
        if name not in data:
            raise AccountsError(f"{self.path}: no user named {name!r}")
        tokens = data[name]["tokens"]
        keep = [] if token is None else [t for t in tokens if t != token_digest(token)]
        data[name]["tokens"] = keep
        self.write(data)
        return len(tokens) - len(keep)

    def remove(self, name: str) -> None:
        """Delete user ``name``: its tokens stop working and its sessions end at once."""
        data = self.read()
        if name not in data:
            raise AccountsError(f"{self.path}: no user named {name!r}")
        del data[name]
        self.write(data)

    def rehash(self, name: str, old_hash: str, new_hash: str) -> bool:
        """Replace ``name``'s password hash ``old_hash`` by ``new_hash`` (a stronger hash of the same
        password); False, leaving the file alone, when the hash changed meanwhile."""
        data = self.read()
        if data.get(name, {}).get("password_hash") != old_hash:
            return False
        data[name]["password_hash"] = new_hash
        self.write(data)
        return True

    def convert_plaintext(self) -> int:
        """Hash the plaintext passwords of a seed users file ``{"NAME": {"password", "role"}}`` in place
        (role ``user`` becomes ``viewer``); how many were converted."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AccountsError(f"{self.path}: cannot read the users file: {exc}") from exc
        if not isinstance(data, dict) or not all(isinstance(a, dict) for a in data.values()):
            raise AccountsError(f"{self.path}: the users file must be a JSON object of NAME: {{...}}")
        converted = 0
        for name, account in data.items():
            role = {"user": "viewer"}.get(account.get("role"), account.get("role"))
            if role not in ROLES:
                raise AccountsError(f"{self.path}: user {name!r}: unknown role {account.get('role')!r}")
            if "password" in account:
                data[name] = {"password_hash": hash_password(str(account["password"])), "role": role,
                              "tokens": account.get("tokens", [])}
                converted += 1
            else:
                account["role"] = role
        self.write(data)
        return converted

    def create_first_admin(self) -> str:
        """Create the file with one ``admin`` and a random password, which is returned (to be shown once)."""
        password = secrets.token_urlsafe(12)
        self.write({"admin": {"password_hash": hash_password(password), "role": "admin", "tokens": []}})
        return password


class Accounts:
    """The accounts the web layer checks logins and tokens against; re-reads the file when it changes
    (so a revoked token or a removed user stops working at once). A file that became invalid keeps
    the last good accounts."""

    def __init__(self, users: UsersFile) -> None:
        self.users = users
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._data: dict[str, dict[str, Any]] = users.read()
        self._stamp = self._file_stamp()
        _decoy_hash()  # made now, not during the first login for an unknown name

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = self.users.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size, stat.st_ino  # every write replaces the file: a new inode

    def _current(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            stamp = self._file_stamp()
            if stamp != self._stamp:
                with contextlib.suppress(AccountsError):  # a file being edited by hand: keep what worked
                    self._data = self.users.read()
                self._stamp = stamp
            return self._data

    @staticmethod
    def _user(name: str, account: dict[str, Any]) -> User:
        return User(name, account["role"], token_digest(f"{account['role']}\0{account['password_hash']}")[:16])

    def user(self, name: str) -> User | None:
        """The account ``name`` as it is now (None when it was removed)."""
        account = self._current().get(name)
        return None if account is None else self._user(name, account)

    def login(self, name: str, password: str) -> User | None:
        """The user when ``password`` is right, else None (the work done is the same for unknown names:
        one scrypt against a decoy hash, so timing does not tell which names exist). Names longer than
        :data:`MAX_NAME` are None without any hashing. A hash weaker than today's is rewritten."""
        if len(name) > MAX_NAME:
            return None
        account = self._current().get(name)
        stored = account["password_hash"] if account else _decoy_hash()
        if not check_password(password, stored) or account is None:
            return None
        user = self._user(name, account)
        if is_weak(stored):
            stronger = hash_password(password)
            with contextlib.suppress(AccountsError, OSError):  # unwritable: keep the old hash, still signed in
                if self.users.rehash(name, stored, stronger):
                    upgraded = self._user(name, {**account, "password_hash": stronger})
                    user = User(name, user.role, upgraded.fingerprint, rehashed_from=user.fingerprint)
        return user

    def by_token(self, token: str) -> User | None:
        """The user holding API ``token`` (None when unknown, tampered with or revoked)."""
        digest = token_digest(token)
        found = None
        for name, account in self._current().items():
            for stored in account["tokens"]:
                if hmac.compare_digest(stored, digest):
                    found = self._user(name, account)
        return found
