"""Command line of the run engine: run, demo, attach, logs, kill, retry, wait, resume, cleanup.

Parsing and printing only; the work happens in launcher, supervisor, execpane,
worktrees and tmux.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from limitless.errors import UsageError
from limitless.states import ControlAction
from limitless.store.store import Store

if TYPE_CHECKING:
    from limitless.plan.loader import Plan
    from limitless.plan.userconfig import UserConfig

Handler = Callable[[argparse.Namespace], int]
Command = Callable[[str, str, Handler], argparse.ArgumentParser]


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

    p = command("attach", "attach to a run's tmux session", cmd_attach)
    p.add_argument("run", nargs="?", default=None)

    p = command("logs", "print a task's log", cmd_logs)
    p.add_argument("run")
    p.add_argument("task")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing as it grows")

    for name, action, help_text in (
        ("kill", ControlAction.KILL, "kill a task (its process tree)"),
        ("retry", ControlAction.RETRY, "run a failed, killed or blocked task again"),
        ("done", ControlAction.DONE, "mark a running or waiting task done"),
    ):
        p = command(name, help_text, _control_handler(action))
        p.add_argument("run")
        p.add_argument("task")

    p = command(
        "wait",
        "wait until a run ends; exit with its code (a task that needs input is named as it asks)",
        cmd_wait,
    )
    p.add_argument("run", nargs="?", default=None)
    p.add_argument("--timeout", type=float, default=None, help="seconds; exit 1 when reached")
    p.add_argument("--quiet", "-q", action="store_true")
    p.add_argument(
        "--until-input",
        action="store_true",
        help="return as soon as a task needs input (a question or a permission), naming it "
        "and where to answer; exit 4",
    )

    p = command("resume", "go on with a run after a crash of its supervisor or tmux", cmd_resume)
    p.add_argument("run", nargs="?", default=None)
    p.add_argument("--headless", action="store_true")
    p.add_argument("--detach", action="store_true")

    p = command("cleanup", "remove a run's worktrees, session and merged branches", cmd_cleanup)
    p.add_argument("run", nargs="?", default=None)
    p.add_argument("--all", action="store_true", help="every finished run")
    p.add_argument("--keep-branches", action="store_true")
    p.add_argument("--force", action="store_true", help="also delete unmerged branches")

    p = command("dashboard", "open the dashboard of a run (in any terminal)", cmd_dashboard)
    p.add_argument("run", nargs="?", default=None)
    p.add_argument("--interval", type=float, default=1.0, help="seconds between polls")

    p = command("merge", "run (or finish) the merge phase of a run", cmd_merge)
    p.add_argument("run", nargs="?", default=None)

    p = command("_exec", argparse.SUPPRESS, cmd_exec)
    p.add_argument("--run", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--state-dir", required=True)

    p = command("_supervise", argparse.SUPPRESS, cmd_supervise)
    p.add_argument("--run", required=True)
    p.add_argument("--state-dir", required=True)


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


# ---------------------------------------------------------------- run


def cmd_run(args: argparse.Namespace) -> int:
    from limitless.plan import userconfig
    from limitless.run.launcher import RunOptions

    config = userconfig.load_config()
    goal = args.goal
    if args.plan and goal is None and _is_goal(args.plan):
        goal = args.plan
    elif args.plan and goal is not None:
        msg = f"give either a plan file ({args.plan}) or --goal, not both"
        raise UsageError(msg)
    if args.prompt is not None and (goal is not None or args.plan):
        raise UsageError("--prompt runs one task on its own; drop the plan file or goal")
    if args.agent and args.prompt is None:
        raise UsageError("--agent goes with --prompt (a plan names its agents itself)")
    if args.prompt is not None:
        plan = _prompt_plan(args.prompt, args.agent, config)
    elif goal is not None:
        planned = _goal_plan(goal, args, config)
        if planned is None:
            print("not started", file=sys.stderr)
            return 1
        plan = planned
    else:
        path = Path(args.plan) if args.plan else Path(DEFAULT_PLAN)
        plan = userconfig.load_plan(path, config)
    options = RunOptions(
        max_concurrency=1 if args.sequential else args.max_concurrency,
        schedule=args.schedule,
        no_merge=args.no_merge,
        merge_strategy=args.merge_strategy,
        layout=args.layout,
        land="manual" if args.no_auto_merge else None,
    )
    mode = "json" if args.json else "headless" if args.headless else "detach" if args.detach else ""
    return _start_and_follow(plan, options, Path.cwd(), mode)


DEFAULT_PLAN = "limitless.yaml"


def _is_goal(arg: str) -> bool:
    """A first argument that names no existing file and does not look like one is a goal."""
    path = Path(arg)
    if path.exists():
        return False
    return path.suffix.lower() not in (".yaml", ".yml", ".json") or any(c.isspace() for c in arg)


def _prompt_plan(prompt: str, agent: str | None, config: UserConfig) -> Plan:
    """The plan of a one-task run: `run --prompt TEXT [--agent NAME]`."""
    import yaml

    from limitless.plan import userconfig

    if not prompt.strip():
        raise UsageError("--prompt is empty; say what the agent must do")
    document: dict[str, object] = {"name": "prompt"}
    if agent:
        document["agent"] = agent
    document["tasks"] = [{"id": "task", "prompt": prompt}]
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    return userconfig.load_plan_text(text, Path.cwd(), config, source="--prompt")


def _goal_plan(goal: str, args: argparse.Namespace, config: UserConfig) -> Plan | None:
    """Plan `goal`, save and show the plan, ask to start it (unless --yes); None if declined."""
    from limitless.agents.planner import save_plan
    from limitless.cli.plan import make_goal_plan
    from limitless.git.repo import find_repo, state_dir
    from limitless.plan import userconfig
    from limitless.plan.graph import Dag

    repo = find_repo(Path.cwd())
    interactive = sys.stdin.isatty() and not args.json
    if not args.yes and not interactive:
        msg = "a planned goal is shown before it runs; pass --yes to start it without asking"
        raise UsageError(msg)
    planned = make_goal_plan(goal, args.planner, config, repo.root)
    folder = state_dir(repo) / "plans"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"{planned.plan.name}-{stamp}.yaml"
    number = 1
    while path.exists():
        number += 1
        path = folder / f"{planned.plan.name}-{stamp}-{number}.yaml"
    save_plan(planned, path)
    shown = sys.stderr if args.json else sys.stdout
    print(Dag.from_tasks(planned.plan.tasks).render_ascii(), file=shown)
    print(f"plan saved as {path} ({len(planned.plan.tasks)} tasks)", file=shown, flush=True)
    if not args.yes:
        answer = input("start this run? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            return None
    return userconfig.load_plan(path, config)


def _start_and_follow(plan: object, options: object, cwd: Path, mode: str) -> int:
    from limitless.plan.loader import Plan
    from limitless.run.context import socket_name
    from limitless.run.launcher import RunOptions, start_run

    assert isinstance(plan, Plan) and isinstance(options, RunOptions)
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
        return _follow(run.id, Path(run.repo_root), timeout=None)
    return started.session.attach()


def _follow(
    run_id: str,
    repo_root: Path,
    timeout: float | None,
    quiet: bool = False,
    until_input: bool = False,
) -> int:
    from limitless.run.context import open_context
    from limitless.views.follow import NEEDS_INPUT_EXIT, NeedsInput, follow, summary_lines

    with open_context(repo_root) as ctx:
        print(f"following run {run_id} (attach with `limitless attach {run_id}`)", flush=True)
        summary = follow(
            ctx.store,
            run_id,
            timeout=timeout,
            out=(lambda line: None) if quiet else _print_flush,
            live=False if quiet else None,
            until_input=until_input,
        )
    if isinstance(summary, NeedsInput):
        for line in summary.lines():
            print(line)
        return NEEDS_INPUT_EXIT
    if summary is None:
        print(f"run {run_id} still going after {timeout:.0f}s", file=sys.stderr)
        return 1
    for line in summary_lines(summary):
        print(line)
    return summary.exit_code


def _print_flush(line: str) -> None:
    print(line, flush=True)


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


# ---------------------------------------------------------------- run-time commands


def cmd_attach(args: argparse.Namespace) -> int:
    from limitless.run.context import open_context
    from limitless.tmux.session import TmuxSession

    with open_context() as ctx:
        run = ctx.run(args.run)
    session = TmuxSession(run.tmux_socket, run.id)
    if not session.exists():
        msg = (
            f"run {run.id} has no tmux session ({run.tmux_session}); it is {run.status}. "
            f"`limitless resume {run.id}` brings it back if it did not finish"
        )
        raise UsageError(msg)
    return session.attach()


def cmd_logs(args: argparse.Namespace) -> int:
    from limitless.run.context import open_context

    with open_context() as ctx:
        run = ctx.run(args.run)
        ctx.store.get_task(run.id, args.task)
        path = ctx.store.log_path(run.id, args.task)
        if not path.exists():
            print(f"no log yet for {args.task} (it has not started)", file=sys.stderr)
            return 0 if not args.follow else _wait_for_log(path)
        with open(path, "rb") as handle:
            _copy(handle)
            if not args.follow:
                return 0
            while True:
                if not _copy(handle):
                    if ctx.store.get_task(run.id, args.task).status.terminal:
                        return 0
                    time.sleep(0.2)


def _wait_for_log(path: Path) -> int:
    while not path.exists():
        time.sleep(0.2)
    return 0


def _copy(handle: object) -> bool:
    data = handle.read()  # type: ignore[attr-defined]
    if data:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return bool(data)


def _control_handler(action: ControlAction) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        from limitless.run.context import open_context
        from limitless.run.recovery import resume_run, supervisor_alive

        with open_context() as ctx:
            run = ctx.run(args.run)
            row = ctx.store.get_task(run.id, args.task)
            if not supervisor_alive(run) and action is not ControlAction.RETRY:
                msg = f"run {run.id} is not supervised ({run.status}); {args.task} is {row.status}"
                raise UsageError(f"{msg}, so there is nothing to {action}")
            request_id = ctx.store.request(run.id, action, args.task, source="cli")
            if not supervisor_alive(run):
                message, _ = resume_run(ctx.store, run.id)
                print(message)
            result = _await_request(ctx.store, run.id, request_id, timeout=10.0)
        print(f"{action} {args.task}: {result or 'queued for the supervisor'}")
        return 0 if not result.startswith("not ") else 1

    return handler


def _await_request(store: Store, run_id: str, request_id: int, timeout: float = 5.0) -> str:
    """The supervisor's answer to a request, if it comes within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for request in store.requests(run_id):
            if request.id == request_id and request.result is not None:
                return request.result
        time.sleep(0.1)
    return ""


def cmd_wait(args: argparse.Namespace) -> int:
    from limitless.run.context import open_context

    with open_context() as ctx:
        run = ctx.run(args.run)
    return _follow(
        run.id,
        Path(run.repo_root),
        timeout=args.timeout,
        quiet=args.quiet,
        until_input=args.until_input,
    )


def cmd_resume(args: argparse.Namespace) -> int:
    from limitless.run.context import open_context
    from limitless.run.recovery import resume_run

    with open_context() as ctx:
        run = ctx.run(args.run)
        message, session = resume_run(ctx.store, run.id)
    print(message)
    if session is None:
        return 0
    if args.headless:
        return _follow(run.id, Path(run.repo_root), timeout=None)
    if args.detach or not sys.stdin.isatty():
        return 0
    return session.attach()


def cmd_cleanup(args: argparse.Namespace) -> int:
    from limitless.run.cleanup import cleanup_run
    from limitless.run.context import open_context

    with open_context() as ctx:
        if args.all:
            runs = [run for run in ctx.store.list_runs() if run.status.finished]
        else:
            runs = [ctx.run(args.run)]
        for run in runs:
            for line in cleanup_run(
                ctx.store, run.id, keep_branches=args.keep_branches, force=args.force
            ):
                print(line)
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from limitless.dashboard.app import run_dashboard
    from limitless.run.context import open_context, socket_name

    with open_context() as ctx:
        run = ctx.run(args.run)
        state_dir = ctx.store.state_dir
    if args.interval <= 0:
        raise UsageError(f"--interval {args.interval} must be above 0 seconds")
    return run_dashboard(
        state_dir, run.id, socket_name=run.tmux_socket or socket_name(None), interval=args.interval
    )


def cmd_merge(args: argparse.Namespace) -> int:
    """`limitless merge [RUN]`: run, resume or redo the merge phase of an ended run.

    The phase prints its own summary (how to continue after a conflict, where
    the result is); the run's status and exit code are updated to match.
    """
    from limitless.merge.phase import run_merge_phase
    from limitless.run.context import open_context
    from limitless.run.recovery import supervisor_alive
    from limitless.states import RunStatus, TaskStatus

    with open_context() as ctx:
        run = ctx.run(args.run)
        if supervisor_alive(run):
            msg = (
                f"run {run.id} is still supervised (pid {run.supervisor_pid}); its merge phase "
                f"starts when every task has ended — `limitless wait {run.id}`"
            )
            raise UsageError(msg)
        terminal = sys.stdin.isatty() and sys.stdout.isatty()
        outcome = run_merge_phase(ctx.store, run.id, out=_print_flush, foreground=terminal)
        rows = ctx.store.get_tasks(run.id)
        ok = outcome.ok and all(row.status is TaskStatus.DONE for row in rows)
        ctx.store.update_run(
            run.id,
            status=RunStatus.DONE if ok else RunStatus.FAILED,
            exit_code=0 if ok else 1,
            ended_at=time.time(),
            no_merge=False,
        )
    return 0 if ok else 1


def cmd_exec(args: argparse.Namespace) -> int:
    from limitless.agents.wrapper import main as exec_main

    return exec_main(args.run, args.task, Path(args.state_dir))


def cmd_supervise(args: argparse.Namespace) -> int:
    from limitless.run.supervisor import main as supervise_main

    os.environ.setdefault("LIMITLESS_RUN", args.run)
    return supervise_main(args.run, Path(args.state_dir))
