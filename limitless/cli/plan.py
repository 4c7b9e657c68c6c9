"""Command line of planning and configuration: `plan`, `config show`, `add`.

Parsing and printing only; the work happens in planner, userconfig and adhoc.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from limitless.errors import UsageError

if TYPE_CHECKING:
    from limitless.agents.planner import PlannedGoal
    from limitless.plan.userconfig import UserConfig

Handler = Callable[[argparse.Namespace], int]
Command = Callable[[str, str, Handler], argparse.ArgumentParser]


def add_commands(command: Command) -> None:
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

    p = command("add", "add a task to a live run", cmd_add)
    p.add_argument("run", nargs="?", default=None, help="run id (default: the newest run)")
    p.add_argument("--prompt", required=True, help="what the agent must do")
    p.add_argument("--id", dest="task_id", default=None, help="task id (default: task-N)")
    p.add_argument("--agent", default=None, help="agent profile (default: the plan's)")
    p.add_argument("--depends-on", nargs="+", default=[], metavar="ID", help="tasks it waits for")
    p.add_argument(
        "--no-stages", action="store_true", help="one task, not one per stage of the plan"
    )
    p.add_argument("--json", action="store_true")


def _print_json(document: object) -> None:
    json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def cmd_plan(args: argparse.Namespace) -> int:
    from limitless.agents import planner
    from limitless.plan import userconfig
    from limitless.plan.graph import Dag
    from limitless.plan.loader import DEFAULT_PLAN_FILE

    config = userconfig.load_config()
    output = Path(args.output or DEFAULT_PLAN_FILE)
    if output.exists() and not args.force:
        msg = f"{output} exists already; pass --force to overwrite it, or name another -o FILE"
        raise UsageError(msg)
    planned = make_goal_plan(args.goal, args.planner, config, Path.cwd())
    planner.save_plan(planned, output, force=args.force)
    dag = Dag.from_tasks(planned.plan.tasks)
    if args.json:
        _print_json(
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


def make_goal_plan(
    goal: str, planner_name: str | None, config: UserConfig, cwd: Path
) -> PlannedGoal:
    """Plan `goal` with the chosen planner (flag, config, default agent)."""
    from limitless.agents import planner
    from limitless.programs.profiles import BUILTIN_PROFILES

    name = planner_name or config.planner or config.agent or "claude"
    profiles = {**BUILTIN_PROFILES, **config.agents}
    agent = "demo" if name == planner.DEMO_PLANNER else (config.agent or "claude")
    return planner.make_plan(goal, planner=name, cwd=cwd, profiles=profiles, agent=agent)


def cmd_config(args: argparse.Namespace) -> int:
    from limitless.plan import userconfig
    from limitless.plan.loader import DEFAULT_PLAN_FILE

    config = userconfig.load_config()
    plan_path = Path(args.plan) if args.plan else Path(DEFAULT_PLAN_FILE)
    if args.plan and not plan_path.exists():
        raise UsageError(f"plan file {args.plan} not found; name an existing plan with --plan")
    used_plan = plan_path if plan_path.exists() else None
    settings = userconfig.effective_settings(config, used_plan)
    if args.json:
        _print_json(
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


def cmd_add(args: argparse.Namespace) -> int:
    from limitless.run.context import open_context
    from limitless.run.launcher import add_task

    with open_context() as ctx:
        run = ctx.run(args.run)
        added = add_task(
            ctx.store,
            run.id,
            prompt=args.prompt,
            task_id=args.task_id,
            agent=args.agent,
            depends_on=tuple(args.depends_on),
            stages=not args.no_stages,
        )
    if args.json:
        _print_json({"run": run.id, "task": added.id, "tasks": list(added.tasks)})
    else:
        print(f"added {added.id} to run {run.id}; the supervisor starts it when it is ready")
        if added.tasks != (added.id,):
            print(f"  as the plan's stages: {', '.join(added.tasks)}")
        print(f"  wait: limitless wait {run.id}")
    return 0
