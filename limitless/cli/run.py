"""Command line that starts work: `run` (a plan, a goal or one prompt), `demo`, `add` (a
task to a live run). Parsing and printing only; runs start in `run/launcher.py`."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from limitless.cli.common import Command, print_flush, print_json
from limitless.errors import UsageError
from limitless.git import repo as git_repo

if TYPE_CHECKING:
    from limitless.plan.model import Plan
    from limitless.plan.userconfig import UserConfig
    from limitless.run.launcher import RunOptions


def add_commands(command: Command) -> None:
    p = command("run", "run a plan: one worktree and tmux pane per task", cmd_run)
    p.add_argument(
        "plan",
        nargs="?",
        default=None,
        help="plan file (default limitless.yaml); text that is no file is a goal to plan",
    )
    p.add_argument("--goal", default=None, help="plan this goal with a planner, then run it")
    p.add_argument("--planner", default=None, help="planner profile for a goal (demo: offline)")
    p.add_argument("--prompt", default=None, help="run one task with this prompt")
    p.add_argument("--agent", default=None, help="agent profile of the --prompt task")
    p.add_argument("--yes", "-y", action="store_true", help="start a planned goal without asking")
    _add_run_flags(p)

    p = command("demo", "run a demo plan with simulated agents in a throwaway repository", cmd_demo)
    p.add_argument("--tasks", type=int, default=7, help="number of demo tasks (default 7)")
    p.add_argument("--speed", type=float, default=1.0, help="speed factor (2 = twice as fast)")
    p.add_argument("--headless", action="store_true", help="no attach: print progress, then exit")
    p.add_argument("--detach", action="store_true", help="start and print how to attach")
    p.add_argument("--dir", default=None, help="where to create the demo repository")
    p.add_argument("--layout", default=None)

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


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--detach", action="store_true", help="start, print the run id, return")
    mode.add_argument(
        "--headless", action="store_true", help="stream progress; exit with the run's code"
    )
    p.add_argument("--max-concurrency", "--workers", type=int, default=None, metavar="N")
    p.add_argument("--sequential", action="store_true", help="same as --max-concurrency 1")
    p.add_argument("--parallel", action="store_true", help="the default; accepted")
    p.add_argument("--schedule", choices=("deps", "waves"), default="deps")
    p.add_argument("--no-merge", action="store_true", help="leave branches unmerged")
    p.add_argument("--merge-strategy", choices=("merge", "regular", "squash", "rebase"))
    p.add_argument("--no-auto-merge", action="store_true", help="land manually (land: manual)")
    p.add_argument("--layout", default=None)
    p.add_argument("--json", action="store_true", help="print the run as JSON (implies --detach)")
    p.add_argument(
        "--skip-unreachable",
        action="store_true",
        help="run without the plan's hosts that cannot be reached (default: refuse, exit 3)",
    )


# ---------------------------------------------------------------- run


def cmd_run(args: argparse.Namespace) -> int:
    from limitless.plan import userconfig
    from limitless.plan.model import DEFAULT_PLAN_FILE
    from limitless.run.forms import is_goal, prompt_plan
    from limitless.run.launcher import RunOptions

    config = userconfig.load_config()
    goal = args.goal
    if args.plan and goal is None and is_goal(args.plan):
        goal = args.plan
    elif args.plan and goal is not None:
        msg = f"give either a plan file ({args.plan}) or --goal, not both"
        raise UsageError(msg)
    if args.prompt is not None and (goal is not None or args.plan):
        raise UsageError("--prompt runs one task on its own; drop the plan file or goal")
    if args.agent and args.prompt is None:
        raise UsageError("--agent goes with --prompt (a plan names its agents itself)")
    if args.prompt is not None:
        plan = prompt_plan(args.prompt, args.agent, config)
    elif goal is not None:
        planned = _goal_plan(goal, args, config)
        if planned is None:
            print("not started", file=sys.stderr)
            return 1
        plan = planned
    else:
        plan = userconfig.load_plan(Path(args.plan or DEFAULT_PLAN_FILE), config)
    options = RunOptions(
        max_concurrency=1 if args.sequential else args.max_concurrency,
        schedule=args.schedule,
        no_merge=args.no_merge,
        merge_strategy=args.merge_strategy,
        layout=args.layout,
        land="manual" if args.no_auto_merge else None,
        skip_unreachable=args.skip_unreachable,
    )
    mode = "json" if args.json else "headless" if args.headless else "detach" if args.detach else ""
    return _start_and_follow(plan, options, Path.cwd(), mode)


def _goal_plan(goal: str, args: argparse.Namespace, config: UserConfig) -> Plan | None:
    """Plan `goal`, save and show the plan, ask to start it (unless --yes); None if declined."""
    from limitless.agents.planner import plan_goal, save_plan
    from limitless.cli.plan import planner_line
    from limitless.plan import userconfig
    from limitless.plan.graph import Dag
    from limitless.run.forms import goal_plan_path

    repo = git_repo.find_repo(Path.cwd())
    interactive = sys.stdin.isatty() and not args.json
    if not args.yes and not interactive:
        msg = "a planned goal is shown before it runs; pass --yes to start it without asking"
        raise UsageError(msg)
    planned = plan_goal(goal, args.planner, config, repo.root, on_line=planner_line)
    path = goal_plan_path(git_repo.state_dir(repo), planned.plan.name)
    save_plan(planned, path)
    shown = sys.stderr if args.json else sys.stdout
    print(Dag.from_tasks(planned.plan.tasks).render_ascii(), file=shown)
    print(f"plan saved as {path} ({len(planned.plan.tasks)} tasks)", file=shown, flush=True)
    if not args.yes:
        answer = input("start this run? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            return None
    return userconfig.load_plan(path, config)


def _start_and_follow(plan: Plan, options: RunOptions, cwd: Path, mode: str) -> int:
    from limitless.run.context import socket_name
    from limitless.run.launcher import start_run

    started = start_run(plan, cwd=cwd, options=options, socket_name=socket_name(None))
    run = started.run
    if mode == "json":
        print(json.dumps({"run": run.id, "session": run.tmux_session, "status": str(run.status)}))
        return 0
    if mode == "detach":
        # from elsewhere (a demo's new repository) the commands need -C to find the run
        here = Path.cwd().resolve()
        repo = Path(run.repo_root).resolve()
        at = "" if here == repo or repo in here.parents else f"-C {shlex.quote(str(repo))} "
        print(f"run {run.id} started in tmux session {run.tmux_session}")
        print(f"  watch it:   limitless {at}attach {run.id}")
        print(f"  status:     limitless {at}status {run.id}")
        print(f"  wait:       limitless {at}wait {run.id}")
        return 0
    if mode == "headless":
        return follow(run.id, Path(run.repo_root), timeout=None)
    return started.session.attach()


def follow(
    run_id: str,
    repo_root: Path,
    timeout: float | None,
    quiet: bool = False,
    until_input: bool = False,
) -> int:
    """Print a run's progress until it ends (or needs input, or `timeout`); its exit code."""
    from limitless.run.context import open_context
    from limitless.run.processes import supervisor_alive
    from limitless.views.follow import (
        NEEDS_INPUT_EXIT,
        NeedsInput,
        SupervisorGone,
        SupervisorWatch,
        summary_lines,
    )
    from limitless.views.follow import follow as follow_run

    with open_context(repo_root) as ctx:
        if not quiet:
            print(f"following run {run_id} (attach with `limitless attach {run_id}`)", flush=True)
        summary = follow_run(
            ctx.store,
            run_id,
            timeout=timeout,
            out=(lambda line: None) if quiet else print_flush,
            live=False if quiet else None,
            until_input=until_input,
            watch=SupervisorWatch(supervisor_alive),
        )
    if isinstance(summary, NeedsInput):
        for line in summary.lines():
            print(line)
        return NEEDS_INPUT_EXIT
    if isinstance(summary, SupervisorGone):
        for line in summary.lines():
            print(line, file=sys.stderr)
        return 1
    if summary is None:
        print(f"run {run_id} still going after {timeout:.0f}s", file=sys.stderr)
        return 1
    for line in summary_lines(summary):
        print(line)
    return summary.exit_code


def cmd_demo(args: argparse.Namespace) -> int:
    from limitless.demo import repo as demo
    from limitless.plan import loader as plan_mod
    from limitless.run.launcher import RunOptions

    if not 1 <= args.tasks <= 64:
        raise UsageError(f"--tasks {args.tasks} is out of range; use 1..64")
    if args.speed <= 0:
        raise UsageError(f"--speed {args.speed} must be above 0 (2 = twice as fast)")
    parent = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="limitless-demo-"))
    made = demo.create_demo_repo(parent, tasks=args.tasks, speed=args.speed)
    print(f"demo repository: {made.repo}")
    plan = plan_mod.load(made.plan_path)
    mode = "headless" if args.headless else "detach" if args.detach else ""
    return _start_and_follow(plan, RunOptions(layout=args.layout), made.repo, mode)


def cmd_add(args: argparse.Namespace) -> int:
    from limitless.run.adding import add_task
    from limitless.run.context import open_context

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
        print_json({"run": run.id, "task": added.id, "tasks": list(added.tasks)})
    else:
        print(f"added {added.id} to run {run.id}; the supervisor starts it when it is ready")
        if added.tasks != (added.id,):
            print(f"  as the plan's stages: {', '.join(added.tasks)}")
        print(f"  wait: limitless wait {run.id}")
    return 0
