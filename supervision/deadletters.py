"""Dead letters on the supervisor's side (SPEC §13): list and redrive them on the DAG's worker; the CLI.

A DAG's letters are read back where the DAG runs (a ``mem://`` queue lives in that worker),
by its first replica's worker; a redrive injects there too. The worker's refusals (no
``dead_letter`` destination, one that cannot be read back, a stopped DAG) are
raised as ``error(message, 409)``.

``dagserver deadletters show|redrive DAG`` asks the running server's API (the letters of a
``mem://`` queue exist only in its worker): the URL comes from ``-c CONFIG``'s ``bind`` (https
with ``tls_cert``) or ``--url``, the token from ``$DAGSERVER_TOKEN`` or ``--token-file``
(``dagserver user token NAME``; redrive needs an admin's). Exit 0; 1 when the server refuses
(its error printed); 2 on a bad command line or config.

Usage::

    dagserver deadletters show orders -c supervisor.toml            # one line per letter, oldest first
    dagserver deadletters redrive orders --ids 0 4 -c supervisor.toml
    dagserver deadletters redrive orders --all --url https://dags.example:8443 --cafile ca.pem

    desk = DeadLetterDesk(pool, dags, ServiceError)
    desk.letters("orders")                 # {"dag": "orders", "dead_letter": URI, "letters": [...]}
    desk.redrive("orders", ids=["0", "4"])  # {"redriven": 2, "by_subscriber": {...}, ...}
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from supervision.config import ServerConfigError, load_server_config
from supervision.dags import DagEntry
from supervision.workers import WorkerPool, WorkerUnavailable

REDRIVE_TIMEOUT = 60.0  # seconds a redrive may take on the worker (injection waits for room in the DAG)
LIST_TIMEOUT = 30.0


class DeadLetterDesk:
    """``error(message, status)`` makes the exception a refusal is raised as (the web layer's ServiceError:
    404 unknown DAG, 409 not possible now, 500 the worker did not answer)."""

    def __init__(self, pool: WorkerPool, dags: dict[str, DagEntry],
                 error: Callable[[str, int], Exception]) -> None:
        self.pool = pool
        self.dags = dags
        self.error = error

    def letters(self, name: str, limit: int = 1000) -> dict[str, Any]:
        """The DAG's dead letters, oldest first, each with its ``id`` (at most ``limit``)."""
        entry = self._entry(name)
        answer = self._ask(entry, "deadletters", {"limit": limit}, LIST_TIMEOUT)
        return {"dag": name, "dead_letter": entry.raw.get("dead_letter"), "letters": answer["letters"]}

    def redrive(self, name: str, ids: list[str] | None) -> dict[str, Any]:
        """Inject the chosen letters' records again (``ids`` None: all); what was redriven and skipped."""
        return {"dag": name, **self._ask(self._entry(name), "redrive", {"ids": ids}, REDRIVE_TIMEOUT)}

    def _entry(self, name: str) -> DagEntry:
        entry = self.dags.get(name)
        if entry is None:
            raise self.error(f"no dag named {name!r}", 404)
        return entry

    def _ask(self, entry: DagEntry, command: str, args: dict[str, Any], timeout: float) -> dict[str, Any]:
        handle = self.pool.handles[entry.worker]
        if not handle.alive:
            raise self.error(f"dag {entry.name!r} is not running: its worker is down", 409)
        try:
            payload, _, _ = self.pool.request(handle, command, {"name": entry.name, "replica": entry.replica(0),
                                                                **args}, timeout)
        except WorkerUnavailable as exc:
            raise self.error(str(exc), 500) from exc
        if isinstance(payload, dict) and "error" in payload:
            raise self.error(str(payload["error"]), 409)
        return dict(payload)


# -- dagserver deadletters ------------------------------------------------------------------------------------
def add_deadletters_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``deadletters show|redrive DAG`` to the CLI's subparsers."""
    command = sub.add_parser("deadletters", help="list a running DAG's dead letters, or inject their records again")
    actions = command.add_subparsers(dest="deadletters_command", required=True, metavar="ACTION")
    for name, text in (("show", "list the dead letters, oldest first"),
                       ("redrive", "inject the letters' records again at their subscribers (admin)")):
        action = actions.add_parser(name, help=text)
        action.add_argument("dag")
        action.add_argument("-c", "--config", default=None, help="the server's TOML: its bind address and TLS")
        action.add_argument("--url", default=None, help="the server's URL instead (e.g. https://host:8443)")
        action.add_argument("--token-file", default=None, help="a file holding the API token "
                                                                "(default: $DAGSERVER_TOKEN)")
        action.add_argument("--cafile", default=None, help="CA certificates to verify an https server with")
        if name == "show":
            action.add_argument("--json", action="store_true", help="print the API's JSON answer")
        else:
            which = action.add_mutually_exclusive_group(required=True)
            which.add_argument("--all", action="store_true", help="every dead letter")
            which.add_argument("--ids", nargs="+", metavar="ID", help="the letters' ids, as `show` lists them")


def run_deadletters(args: argparse.Namespace) -> int:
    """Carry out ``dagserver deadletters show|redrive``; 0, 1 when the server refused, 2 on a usage error."""
    try:
        url, context = _server(args)
        token = _token(args)
    except ValueError as exc:
        print(f"dagserver deadletters: {exc}", file=sys.stderr)
        return 2
    path = f"/api/dags/{urllib.parse.quote(args.dag, safe='')}/deadletters"
    if args.deadletters_command == "show":
        status, answer = _call(url + path, token, context, None)
    else:
        body = {"all": True} if args.all else {"ids": args.ids}
        status, answer = _call(url + path + "/redrive", token, context, body)
    if status != 200:
        print(f"dagserver deadletters: {status}: {answer.get('error', answer)}", file=sys.stderr)
        return 1
    if args.deadletters_command == "redrive" or args.json:
        print(json.dumps(answer, indent=2))
        return 0
    for letter in answer.get("letters") or ():
        where = (f"node {letter.get('node')}" if letter.get("node") else f"publisher {letter.get('publisher')}"
                 if letter.get("publisher") else f"subscriber {letter.get('subscriber')}")
        print(f"{letter.get('id')}\t{where}\t{letter.get('error')}\t"
              f"{json.dumps(letter.get('record', letter.get('input')))}")
    print(f"{len(answer.get('letters') or ())} dead letter(s) in {answer.get('dead_letter')}", file=sys.stderr)
    return 0


def _server(args: argparse.Namespace) -> tuple[str, ssl.SSLContext | None]:
    if args.url:
        url = args.url.rstrip("/")
    elif args.config:
        try:
            config = load_server_config(args.config)
        except ServerConfigError as exc:
            raise ValueError(str(exc)) from exc
        host = "127.0.0.1" if config.bind_host in ("0.0.0.0", "::", "") else config.bind_host
        url = f"{'https' if config.tls else 'http'}://{host}:{config.bind_port}"
    else:
        raise ValueError("say which server: -c CONFIG (its bind address) or --url URL")
    context = ssl.create_default_context(cafile=args.cafile) if url.startswith("https") else None
    return url, context


def _token(args: argparse.Namespace) -> str:
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as handle:
                token = handle.read().strip()
        except OSError as exc:
            raise ValueError(f"--token-file {args.token_file}: {exc.strerror or exc}") from exc
    else:
        token = os.environ.get("DAGSERVER_TOKEN", "").strip()
    if not token:
        raise ValueError("no API token: set DAGSERVER_TOKEN or give --token-file (make one with "
                         "`dagserver user token NAME`)")
    return token


def _call(url: str, token: str, context: ssl.SSLContext | None, body: Any) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=120, context=context) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read() or b"{}")
        except ValueError:
            return error.code, {"error": error.reason}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return 0, {"error": f"cannot reach {url}: {getattr(exc, 'reason', exc)}"}
