"""``dagserver user add|remove|token|hash|revoke`` and the accounts ``serve`` starts with (SPEC §7).

Usage (the users file comes from ``--users FILE``, else ``-c CONFIG``'s ``users`` key, else
``var/users.json``). Each command is appended to the audit log (SPEC §13): ``audit.jsonl`` in
``-c CONFIG``'s ``state_dir``, else in ``state/`` beside the users file (``var/state`` by
default, the default ``state_dir``); the user is the one running the command, the role ``cli``::

    dagserver user add ana --role operator        # password from the terminal, or stdin's first line
    dagserver user token ana                      # a new API token, printed once on the last line
    dagserver user hash old-users.json            # the seed's plaintext file, hashed in place
    dagserver user revoke ana [--token TOKEN]     # forget one token of ana's, or all of them
    dagserver user remove ana                     # delete ana: her tokens and sessions stop working at once

In code::

    add_user_parser(subparsers); run_user(args, "var/users.json")
    accounts = open_accounts("var/users.json", log, "http://127.0.0.1:8080")   # AccountsError when unusable
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from pathlib import Path

from web.accounts import DEFAULT_USERS, ROLES, Accounts, AccountsError, UsersFile
from web.audit import AuditLog


def add_user_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``user`` command and its actions to the CLI's subparsers."""
    user = sub.add_parser("user", help="manage web and API accounts: add, remove, token, hash, revoke")
    actions = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")

    def where(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--users", default=None, metavar="FILE", help=f"the users file (default {DEFAULT_USERS})")
        parser.add_argument("-c", "--config", default=None, help="take the users file from this supervisor TOML")
        return parser

    add = where(actions.add_parser("add", help="create a user or change its password and role"))
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    remove = where(actions.add_parser("remove", help="delete a user (its tokens and browser sessions end at once)"))
    remove.add_argument("name")
    token = where(actions.add_parser("token", help="make a new API token (printed once)"))
    token.add_argument("name")
    revoke = where(actions.add_parser("revoke", help="revoke one API token of a user, or all of them"))
    revoke.add_argument("name")
    revoke.add_argument("--token", default=None, help="the token to revoke (default: every token of the user)")
    convert = actions.add_parser("hash", help="hash the plaintext passwords of a seed users file, in place")
    convert.add_argument("file")


def read_password() -> str:
    """From the terminal (asked twice), or the first line of stdin when it is not a terminal."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise AccountsError("the passwords differ")
    return first


def run_user(args: argparse.Namespace, users_path: str, state_dir: str | None = None) -> int:
    """Carry out one ``dagserver user`` action and audit it (never its password or token); 0, or 2 with the
    reason on stderr."""
    users_file = args.file if args.user_command == "hash" else users_path
    audit = AuditLog.in_state_dir(state_dir if state_dir is not None else Path(users_file).parent / "state")
    target = getattr(args, "name", None) or args.file
    try:
        _run_user(args, users_path)
    except AccountsError as exc:
        _audit(audit, args.user_command, target, f"refused: {exc}")
        print(f"dagserver user: {exc}", file=sys.stderr)
        return 2
    _audit(audit, args.user_command, target, "ok")
    return 0


def _audit(audit: AuditLog, command: str, target: str, outcome: str) -> None:
    try:
        audit.append(user=getpass.getuser(), role="cli", action=f"user {command}", target=target, outcome=outcome)
    except OSError as exc:
        print(f"dagserver user: the audit log {audit.path} could not be written: {exc}", file=sys.stderr)


def _run_user(args: argparse.Namespace, users_path: str) -> None:
    if args.user_command == "hash":
        count = UsersFile(args.file).convert_plaintext()
        print(f"{args.file}: {count} password(s) hashed")
        return
    users = UsersFile(users_path)
    if args.user_command == "add":
        users.add(args.name, args.role, read_password())
        print(f"{users_path}: user {args.name!r} saved with role {args.role}")
    elif args.user_command == "remove":
        users.remove(args.name)
        print(f"{users_path}: user {args.name!r} removed (its tokens and sessions no longer work)")
    elif args.user_command == "token":
        token = users.new_token(args.name)
        print(f"{users_path}: a new API token for {args.name!r} (shown only now; send it as "
              f"'Authorization: Bearer TOKEN'):")
        print(token)
    else:
        count = users.revoke(args.name, args.token)
        print(f"{users_path}: {count} token(s) of {args.name!r} revoked")


def open_accounts(users_path: str, log: logging.Logger, url: str) -> Accounts:
    """The accounts ``serve`` checks logins against; on first start (no users file) an ``admin`` with
    a random password, printed once to the log; later, the log says how to set a password."""
    users = UsersFile(users_path)
    if not users.exists():
        password = users.create_first_admin()
        log.warning("first start: created %s with user 'admin', password %s (shown only this once; change it "
                    "with `dagserver user add admin --role admin`); log in at %s/login", users_path, password, url)
    else:  # the first start's password was printed then, maybe somewhere long gone: say how to set one
        log.info("accounts from %s (the admin password was printed on the first start only); to set a password: "
                 "`dagserver user add admin --role admin --users %s`, then log in at %s/login",
                 users_path, users_path, url)
    return Accounts(users)
