"""dagserver's command line and supervisor process.

    dagserver check FILE...                      validate DAG files (exit 0 / 2)
    dagserver replay DAG.json EVENTS.jsonl       run recorded input, print publications
    dagserver serve [-c supervisor.toml]         run the server

``python supervisor.py ...`` is the same command line.
"""

from __future__ import annotations

import argparse
import logging
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dagserver", description="A DAG compute server.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check", help="validate DAG files; exit 0 if all are valid, 2 otherwise")
    check.add_argument("files", nargs="+", metavar="FILE", help="DAG files or folders of *.json")

    replay = sub.add_parser("replay", help="run recorded input through a DAG and print its publications")
    replay.add_argument("dag", metavar="DAG.json")
    replay.add_argument("events", metavar="EVENTS.jsonl")
    replay.add_argument("--engine", choices=("actors", "reference"), default="actors",
                        help="actors (default): the runtime the server uses; reference: the sequential oracle")
    replay.add_argument("--epoch-records", type=int, default=None, metavar="N",
                        help="at most N records per epoch (actors engine)")

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("-c", "--config", default=None, help="supervisor TOML config (default: the bundled example)")
    serve.add_argument("--log-level", default="INFO")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check":
        from graphs.check import run_check

        return run_check(args.files)
    if args.command == "replay":
        from actors.replay import run_replay

        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        return run_replay(args.dag, args.events, engine=args.engine, epoch_records=args.epoch_records)
    if args.command == "serve":
        print("dagserver serve: the server arrives with the supervisor; nothing to run yet", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
