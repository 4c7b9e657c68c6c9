"""Command line before a run: `init`, `validate`, `graph`, `plan` (a goal made into a
plan), `config show`, `doctor`. Parsing and printing only."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from limitless.cli.common import Command, print_json
from limitless.errors import UsageError

if TYPE_CHECKING:
    from limitless.programs import PaneLine


def add_commands(command: Command) -> None:
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

    p = command("plan", "turn a goal into a plan through a planner agent", cmd_plan)
    p.add_argument("goal", help="what to build, e.g. 'frontend, backend, database'")
    p.add_argument(
        "--planner", default=None, help="planner profile (default: config, else claude; demo)"
    )
    p.add_argument(
        "-o", "--output", default=None, help="plan file to write (default limitless.yaml)"
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing plan file")
    p.add_argument("--json", action="store_true", help="print one JSON document")

    p = command("config", "show the user configuration merged with a plan", cmd_config)
    p.add_argument("action", choices=("show",), help="show: print values and their sources")
    p.add_argument("--plan", default=None, help="plan file (default limitless.yaml if present)")
    p.add_argument("--json", action="store_true")


def _plan_path(arg: str | None) -> Path:
    from limitless.plan.model import DEFAULT_PLAN_FILE

    return Path(arg) if arg else Path(DEFAULT_PLAN_FILE)


def cmd_init(args: argparse.Namespace) -> int:
    from limitless.plan.example import EXAMPLE_PLAN
    from limitless.plan.model import DEFAULT_PLAN_FILE

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
    from limitless.run.validation import validate

    path = _plan_path(args.plan)
    found = validate(path)
    if found.plan is None:
        if args.json:
            print_json({"ok": False, "problems": [vars(p) for p in found.problems]})
        else:
            for problem in found.problems:
                print(problem, file=sys.stderr)
            count = len(found.problems)
            print(f"{path}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        return 2
    if found.environment:
        if args.json:
            print_json(
                {
                    "ok": False,
                    "problems": [],
                    "environment": found.environment,
                    "warnings": found.warnings,
                }
            )
        else:
            for message in found.environment:
                print(f"{path}: {message}", file=sys.stderr)
        return 3
    plan = found.plan
    if args.json:
        print_json(
            {"ok": True, "plan": plan.name, "tasks": len(plan.tasks), "warnings": found.warnings}
        )
    else:
        for warning in found.warnings:
            print(f"{path}: warning: {warning}", file=sys.stderr)
        print(f"{path}: ok — plan {plan.name!r}, {len(plan.tasks)} tasks")
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    from limitless.plan import userconfig
    from limitless.plan.graph import Dag

    plan = userconfig.load_plan(_plan_path(args.plan))
    dag = Dag.from_tasks(plan.tasks)
    if args.format == "json":
        print_json(dag.to_json())
    elif args.format == "mermaid":
        print(dag.render_mermaid())
    else:
        print(dag.render_ascii())
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from limitless.run.doctor import run_checks

    checks = run_checks(Path.cwd())
    if args.json:
        print_json([vars(check) for check in checks])
    else:
        for check in checks:
            width = max(len(c.name) for c in checks if c.required == check.required)
            mark = "ok  " if check.ok else ("FAIL" if check.required else "--  ")
            print(f"{mark} {check.name:<{width}}  {check.detail}")
    return 0 if all(check.ok for check in checks if check.required) else 3


def cmd_plan(args: argparse.Namespace) -> int:
    from limitless.agents import planner
    from limitless.plan import userconfig
    from limitless.plan.graph import Dag
    from limitless.plan.model import DEFAULT_PLAN_FILE

    config = userconfig.load_config()
    output = Path(args.output or DEFAULT_PLAN_FILE)
    if output.exists() and not args.force:
        msg = f"{output} exists already; pass --force to overwrite it, or name another -o FILE"
        raise UsageError(msg)
    planned = planner.plan_goal(args.goal, args.planner, config, Path.cwd(), on_line=planner_line)
    planner.save_plan(planned, output, force=args.force)
    dag = Dag.from_tasks(planned.plan.tasks)
    if args.json:
        print_json(
            {
                "plan": str(output),
                "planner": planned.planner,
                "asks": planned.asks,
                "tasks": [task.id for task in planned.plan.tasks],
            }
        )
        return 0
    print(dag.render_ascii())
    asks = "" if planned.asks == 1 else f" (fixed on ask {planned.asks})"
    print(
        f"wrote {output}: plan {planned.plan.name!r}, {len(planned.plan.tasks)} tasks, "
        f"by planner {planned.planner}{asks}"
    )
    print(f"  run it:  limitless run {output}")
    return 0


def planner_line(line: PaneLine) -> None:
    """A planner program's readable line, shown on stderr while it plans."""
    print(f"  planner │ {line.text}", file=sys.stderr, flush=True)


def cmd_config(args: argparse.Namespace) -> int:
    from limitless.plan import userconfig
    from limitless.plan.model import DEFAULT_PLAN_FILE

    config = userconfig.load_config()
    plan_path = Path(args.plan) if args.plan else Path(DEFAULT_PLAN_FILE)
    if args.plan and not plan_path.exists():
        raise UsageError(f"plan file {args.plan} not found; name an existing plan with --plan")
    used_plan = plan_path if plan_path.exists() else None
    settings = userconfig.effective_settings(config, used_plan)
    if args.json:
        print_json(
            {
                "config": str(config.path),
                "config_exists": config.exists,
                "plan": str(used_plan) if used_plan else None,
                "settings": [
                    {"key": s.key, "value": _jsonable(s.value), "source": s.source}
                    for s in settings
                ],
            }
        )
        return 0
    state = "" if config.exists else " (not present: built-in defaults)"
    print(f"config: {config.path}{state}")
    print(f"plan:   {used_plan or '(none)'}")
    width = max(len(s.key) for s in settings)
    for s in settings:
        value = "-" if s.value is None else s.value
        print(f"  {s.key:<{width}}  {value!s:<20}  from {s.source}")
    return 0


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
