"""Command line: argument parsing and output formatting only.

Every command is a `cmd_<name>(args) -> int` that calls into the modules and
prints. Errors the tool raises on purpose (`LimitlessError`) become one message
on stderr and the exit code of their class (DESIGN §4).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from limitless import __version__
from limitless.errors import LimitlessError, PlanError, UsageError

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse with exit code 2 and a hint, as every limitless usage error has."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"limitless: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
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

    p = command("init", "write a commented example plan", cmd_init)
    p.add_argument("path", nargs="?", default=None, help="where to write (default limitless.yaml)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")

    p = command("validate", "check a plan; print PLAN:LINE:COL: message per problem", cmd_validate)
    p.add_argument("plan", nargs="?", default=None)
    p.add_argument("--json", action="store_true", help="print one JSON document")

    p = command("graph", "draw the task graph of a plan", cmd_graph)
    p.add_argument("plan", nargs="?", default=None)
    p.add_argument("--format", choices=("ascii", "mermaid", "json"), default="ascii")

    p = command("doctor", "check tmux, git, the repository and the store", cmd_doctor)
    p.add_argument("--json", action="store_true")

    p = command("list", "list the runs of this repository", cmd_list)
    p.add_argument("--json", action="store_true")

    p = command("status", "show a run's tasks", cmd_status)
    p.add_argument("run", nargs="?", default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--watch", action="store_true", help="redraw every --interval seconds")
    p.add_argument("--interval", type=float, default=1.0)

    _add_run_engine_commands(command)
    return parser


def _add_run_engine_commands(
    command: Callable[[str, str, Handler], argparse.ArgumentParser],
) -> None:
    from limitless.cli import agents as cli_agents
    from limitless.cli import plan as cli_plan
    from limitless.cli import report as cli_report
    from limitless.cli import run as cli_run

    cli_run.add_commands(command)
    cli_agents.add_commands(command)
    cli_report.add_commands(command)
    cli_plan.add_commands(command)


# ---------------------------------------------------------------- foundation


def _plan_path(arg: str | None) -> Path:
    from limitless.plan.loader import DEFAULT_PLAN_FILE

    return Path(arg) if arg else Path(DEFAULT_PLAN_FILE)


def cmd_init(args: argparse.Namespace) -> int:
    from limitless.plan.loader import DEFAULT_PLAN_FILE, EXAMPLE_PLAN

    path = Path(args.path or DEFAULT_PLAN_FILE)
    if path.is_dir():
        path = path / DEFAULT_PLAN_FILE
    if path.exists() and not args.force:
        msg = f"{path} exists already; pass --force to overwrite it, or name another path"
        raise UsageError(msg)
    path.write_text(EXAMPLE_PLAN, encoding="utf-8")
    print(f"wrote {path}: edit the tasks, then `limitless validate {path}` and `limitless run`")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from limitless.agents.check import plan_problems
    from limitless.plan import userconfig
    from limitless.plan.overlap import overlap_warnings

    path = _plan_path(args.plan)
    try:
        # as `run` reads it: the user config's defaults and agent profiles included
        plan = userconfig.load_plan(path)
    except PlanError as exc:
        if args.json:
            _print_json({"ok": False, "problems": [vars(p) for p in exc.problems]})
        else:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            count = len(exc.problems)
            print(f"{path}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        return 2
    # A program missing here may be there where the plan runs; a refusal is the plan's.
    programs = plan_problems(plan)
    warnings = overlap_warnings(plan) + [p.message for p in programs if p.kind != "refused"]
    environment = _repository_problems(plan.base)
    environment += [p.message for p in programs if p.kind == "refused"]
    if environment:
        if args.json:
            _print_json(
                {"ok": False, "problems": [], "environment": environment, "warnings": warnings}
            )
        else:
            for message in environment:
                print(f"{path}: {message}", file=sys.stderr)
        return 3
    if args.json:
        _print_json({"ok": True, "plan": plan.name, "tasks": len(plan.tasks), "warnings": warnings})
    else:
        for warning in warnings:
            print(f"{path}: warning: {warning}", file=sys.stderr)
        print(f"{path}: ok — plan {plan.name!r}, {len(plan.tasks)} tasks")
    return 0


def _repository_problems(base: str | None) -> list[str]:
    """What the repository here lacks for a run (signing, git-lfs); [] outside a repository."""
    from limitless.errors import LimitlessError
    from limitless.git import repochecks
    from limitless.git.worktrees import find_repo

    try:
        repo = find_repo(Path.cwd())
        ref = f"refs/heads/{base}" if base else "HEAD"
        return [f.detail for f in repochecks.findings(repo.root, ref) if not f.ok]
    except LimitlessError:
        return []


def cmd_graph(args: argparse.Namespace) -> int:
    from limitless.plan import userconfig
    from limitless.plan.graph import Dag

    plan = userconfig.load_plan(_plan_path(args.plan))
    dag = Dag.from_tasks(plan.tasks)
    if args.format == "json":
        _print_json(dag.to_json())
    elif args.format == "mermaid":
        print(dag.render_mermaid())
    else:
        print(dag.render_ascii())
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from limitless.run.doctor import run_checks

    checks = run_checks(Path.cwd())
    if args.json:
        _print_json([vars(check) for check in checks])
    else:
        for check in checks:
            width = max(len(c.name) for c in checks if c.required == check.required)
            mark = "ok  " if check.ok else ("FAIL" if check.required else "--  ")
            print(f"{mark} {check.name:<{width}}  {check.detail}")
    return 0 if all(check.ok for check in checks if check.required) else 3


def cmd_list(args: argparse.Namespace) -> int:
    from limitless.run.context import open_context
    from limitless.views import status as views

    with open_context() as ctx:
        runs = ctx.store.list_runs()
        summaries = [views.run_summary(ctx.store, run) for run in runs]
    if args.json:
        _print_json({"runs": summaries})
        return 0
    if not summaries:
        print("no runs yet; start one with `limitless run [PLAN]` or try `limitless demo`")
        return 0
    views.print_runs_table(summaries)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from limitless.run.context import open_context
    from limitless.views import status as views

    with open_context() as ctx:
        run = ctx.run(args.run)
        if args.watch and not args.json:
            return views.watch_status(ctx.store, run.id, args.interval)
        document = views.status_document(ctx.store, run.id)
    if args.json:
        _print_json(document)
    else:
        views.print_status(document)
    return 0


# ---------------------------------------------------------------- plumbing


def _print_json(document: object) -> None:
    json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.directory:
        import os

        try:
            os.chdir(args.directory)
        except OSError as exc:
            print(f"limitless: error: cannot enter -C {args.directory}: {exc}", file=sys.stderr)
            return 2
    if args.socket:
        import os

        os.environ["LIMITLESS_TMUX_SOCKET"] = args.socket
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
