"""Command line: the parser and the dispatch. Each group of commands has a module of its
own (`plan`, `run`, `watch`, `control`, `report`, `agents`, `internal`) that parses its
arguments and prints; the decisions live below, in `run/`, `views/` and the rest.

Errors the tool raises on purpose (`LimitlessError`) become one message on stderr and
the exit code of their class (DESIGN §4).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from limitless import __version__
from limitless.cli.common import Handler
from limitless.errors import LimitlessError, PlanError
from limitless.tmux.pane_programs import SOCKET_ENV


class _Parser(argparse.ArgumentParser):
    """argparse with exit code 2 and a hint, as every limitless usage error has."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"limitless: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from limitless.cli import agents, control, internal, plan, report, run, watch

    parser = _Parser(
        prog="limitless",
        description="Run many coding agents in parallel on one repository.",
    )
    parser.add_argument("--version", action="version", version=f"limitless {__version__}")
    parser.add_argument(
        "--socket",
        metavar="NAME",
        help="tmux socket name (as `tmux -L NAME`); default $LIMITLESS_TMUX_SOCKET, "
        "else the default tmux server",
    )
    parser.add_argument(
        "-C", dest="directory", metavar="DIR", help="run as if started in DIR (like git -C)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def command(name: str, help_text: str, handler: Handler) -> argparse.ArgumentParser:
        if help_text == argparse.SUPPRESS:  # internal commands stay out of `--help`
            cmd = sub.add_parser(name)
        else:
            cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.set_defaults(handler=handler)
        return cmd

    for group in (plan, run, watch, control, report, agents, internal):
        group.add_commands(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.directory:
        try:
            os.chdir(args.directory)
        except OSError as exc:
            print(f"limitless: error: cannot enter -C {args.directory}: {exc}", file=sys.stderr)
            return 2
    if args.socket:
        os.environ[SOCKET_ENV] = args.socket
    handler: Handler = args.handler
    try:
        return handler(args)
    except PlanError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return exc.exit_code
    except LimitlessError as exc:
        print(f"limitless: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("limitless: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
