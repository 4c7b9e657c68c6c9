"""Starting a run: validate everything, then create the store rows and the tmux session.

Nothing is created before every check has passed: a bad plan, a missing base
branch or a missing tmux leaves no branch, worktree, session or store row.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from limitless.errors import EnvironmentProblem, LimitlessError, TmuxError, UsageError
from limitless.git import refs as git_refs
from limitless.git import repo as git_repo
from limitless.git import repochecks, worktrees
from limitless.plan.graph import Dag
from limitless.plan.model import Plan
from limitless.run import firstwave
from limitless.states import RunStatus, TaskStatus
from limitless.store import Run, Store, TaskRow
from limitless.tmux.layouts import Layout, load_layout
from limitless.tmux.pane_programs import (
    SUPERVISE_COMMAND,
    dashboard_argv,
    idle_argv,
    pane_env,
    start_socket,
    supervise_argv,
    wake_channel,
)
from limitless.tmux.session import TmuxSession
from limitless.tmux.session import session_name as tmux_session_name
from limitless.versions import GIT, MIN_GIT, MIN_TMUX, TMUX, git_version, tmux_version

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """What the command line may change about a plan for one run."""

    max_concurrency: int | None = None
    schedule: str = "deps"
    no_merge: bool = False
    merge_strategy: str | None = None
    layout: str | None = None
    land: str | None = None
    dashboard: bool = True
    skip_unreachable: bool = False


@dataclass(frozen=True)
class StartedRun:
    run: Run
    session: TmuxSession


def apply_options(plan: Plan, options: RunOptions) -> Plan:
    """The plan with command-line overrides applied (validated like the plan's own)."""
    changes: dict[str, object] = {}
    if options.max_concurrency is not None:
        if not 1 <= options.max_concurrency <= 64:
            msg = f"--max-concurrency {options.max_concurrency} is out of range; use 1..64"
            raise UsageError(msg)
        changes["max_concurrency"] = options.max_concurrency
    if options.layout:
        changes["layout"] = options.layout
    merge_changes: dict[str, object] = {}
    if options.merge_strategy:
        merge_changes["strategy"] = (
            "merge" if options.merge_strategy == "regular" else options.merge_strategy
        )
    if options.land:
        merge_changes["land"] = options.land
    if merge_changes:
        changes["merge"] = dataclasses.replace(plan.merge, **merge_changes)  # type: ignore[arg-type]
    return dataclasses.replace(plan, **changes) if changes else plan  # type: ignore[arg-type]


def check_agent_programs(plan: Plan) -> None:
    """Every agent program the plan's tasks start is on PATH, new enough and allowed to run
    as the plan asks, or EnvironmentProblem (exit 3) before anything is created."""
    from limitless.agents.check import plan_problems

    problems = plan_problems(plan)
    if problems:
        raise EnvironmentProblem("; ".join(problem.message for problem in problems))


def check_environment() -> None:
    """tmux and git present and new enough, or EnvironmentProblem (exit 3)."""
    version = tmux_version()
    if version is None:
        msg = f"tmux is not installed (or not on PATH); limitless needs tmux >= {TMUX.wanted}"
        raise EnvironmentProblem(msg)
    if version < MIN_TMUX:
        msg = f"tmux {version[0]}.{version[1]} is too old; limitless needs tmux >= {TMUX.wanted}"
        raise EnvironmentProblem(msg)
    git = git_version()
    if git is None or git < MIN_GIT:
        msg = f"git >= {GIT.wanted} is needed (for `git merge-tree --write-tree`); upgrade git"
        raise EnvironmentProblem(msg)


def start_run(
    plan: Plan,
    *,
    cwd: Path,
    options: RunOptions,
    socket_name: str | None,
) -> StartedRun:
    """Validate, create the run's rows and tmux session, and start its supervisor."""
    check_environment()
    repo = git_repo.find_repo(cwd)
    plan = apply_options(plan, options)
    check_agent_programs(plan)
    base = plan.base or repo.current_branch
    if not base:
        msg = (
            "HEAD is detached and the plan names no base branch; "
            "add `base: <branch>` to the plan or check out a branch"
        )
        raise UsageError(msg)
    base_sha = git_refs.rev_parse(repo.root, f"refs/heads/{base}")
    if base_sha is None:
        msg = (
            f"base branch {base!r} does not exist in {repo.root}; "
            "set `base:` in the plan to an existing branch"
        )
        raise UsageError(msg)
    repochecks.check(repo.root, base_sha)  # signing without a terminal, git-lfs
    control = ""
    if plan.remote:
        from limitless.hosts.ssh import control_dir
        from limitless.run.hostcheck import check_plan_hosts, fit_hosts

        checks = check_plan_hosts(plan, git_repo.state_dir(repo))  # installs where stale
        plan = fit_hosts(plan, checks, skip_unreachable=options.skip_unreachable)
        control = str(control_dir(git_repo.state_dir(repo)))
    layout = load_layout(plan.layout)
    worktree_root = plan.worktree_root or git_repo.default_worktree_root(repo.root)
    slots = min(plan.max_concurrency, len(plan.tasks))

    warm = _spawn_supervisor_start(git_repo.state_dir(repo))  # before any store connection
    store = Store.open(git_repo.state_dir(repo))
    run_id = _free_run_id(store, plan.name, socket_name)
    session_name = tmux_session_name(run_id)
    run = Run(
        id=run_id,
        plan_name=plan.name,
        plan_path=str(plan.source) if plan.source else None,
        plan_json=plan.to_json(),
        repo_root=str(repo.root),
        base=base,
        base_sha=base_sha,
        worktree_root=str(worktree_root),
        status=RunStatus.RUNNING,
        created_at=time.time(),
        tmux_socket=socket_name,
        tmux_session=session_name,
        max_concurrency=plan.max_concurrency,
        schedule=options.schedule,
        no_merge=options.no_merge,
        merge_strategy=plan.merge.strategy,
        layout=layout.name,
        control_dir=control,
    )
    store.create_run(run)
    store.add_tasks(
        run_id,
        [
            TaskRow(
                run_id=run_id,
                id=task.id,
                position=position,
                agent=plan.profile(task).name,
                branch=git_refs.branch_name(run_id, task.worktree_key),
                worktree=str(worktrees.worktree_path(worktree_root, run_id, task.worktree_key)),
                status=TaskStatus.PENDING,
            )
            for position, task in enumerate(plan.tasks)
        ],
    )
    store.add_event(run_id, "run_started", base=base, base_sha=base_sha, tasks=len(plan.tasks))
    _check_out_first_wave(store, run, plan, slots)
    try:
        session = create_session(store, run, layout, slots, repo.root, options.dashboard, warm)
    except TmuxError as exc:
        reason = f"could not create its tmux session: {exc}"
        store.update_run(run_id, status=RunStatus.FAILED, ended_at=time.time(), reason=reason)
        store.close()
        raise
    run = _wait_for_supervisor(store, run_id)
    store.close()
    return StartedRun(run=run, session=session)


def _check_out_first_wave(store: Store, run: Run, plan: Plan, slots: int) -> None:
    """Start checking out the first tasks' worktrees now, while the session and the
    supervisor start (`run/firstwave`)."""
    wave = firstwave.first_wave(plan, Dag.from_tasks(plan.tasks), slots)
    rows = {row.id: row for row in store.get_tasks(run.id)}
    folder = store.run_dir(run.id) / firstwave.FOLDER
    try:
        firstwave.start(run, plan, [rows[task_id] for task_id in wave], folder, store.state_dir)
    except OSError as exc:
        log.info("first wave left to the supervisor", extra={"error": str(exc)})


SUPERVISOR_PRELOAD = ("limitless.cli.main", "limitless.cli.internal", "limitless.run.supervisor")
START_WAIT_S = 15.0  # the start server's life when no control pane comes to it


def _spawn_supervisor_start(state_dir: Path) -> Path | None:
    """Fork a one-shot fork server from this process, already warm, for the control pane
    to have the run's supervisor forked from (no second interpreter start-up and imports
    on the run's start). None when it cannot be: the pane then starts it cold."""
    from limitless.forkserver.child import Target
    from limitless.forkserver.server import spawn

    # `python -m limitless _supervise ...` is all it may fork
    targets = (Target("limitless", "limitless.cli.main:main", (SUPERVISE_COMMAND,)),)
    socket = start_socket(state_dir, os.getpid())
    try:
        socket.parent.mkdir(parents=True, exist_ok=True)
        spawn(socket, targets, SUPERVISOR_PRELOAD, once=True, wait_s=START_WAIT_S)
    except (LimitlessError, OSError) as exc:
        log.info("the supervisor starts cold", extra={"error": str(exc)})
        return None
    return socket


def _wait_for_supervisor(store: Store, run_id: str, timeout: float = 15.0) -> Run:
    """Return once the supervisor recorded its pid, so `run --detach` followed at once by
    `resume`, `kill` or `done` finds the run supervised (not a second supervisor)."""
    deadline = time.monotonic() + timeout
    run = store.get_run(run_id)
    while not run.supervisor_pid and time.monotonic() < deadline:
        time.sleep(0.02)
        run = store.get_run(run_id)
    return run


def _free_run_id(store: Store, plan_name: str, socket_name: str | None) -> str:
    """The next run id whose tmux session name is free on the server.

    Run ids count per repository, so another repository's run of a plan with the
    same name may hold `limitless-<plan>-<n>` on a shared tmux server: skip it.
    """
    for _ in range(100):
        run_id = store.next_run_id(plan_name)
        if not TmuxSession(socket_name, run_id).exists():
            return run_id
    msg = f"100 tmux sessions named limitless-{plan_name}-N exist already; clean some up"
    raise EnvironmentProblem(msg)


# Variables that describe the client's own tmux, not the user's environment.
NOT_CARRIED = frozenset({"TMUX", "TMUX_PANE"})
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def session_environment(run: Run) -> dict[str, str]:
    """The environment the run's panes start with: the one `limitless run` was started in.

    A tmux server keeps the environment it was started with; a session made on a server
    that was already running (the user's own, usually) would otherwise give the agents
    that old environment — an API key exported since would not reach them."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in NOT_CARRIED and ENV_NAME.fullmatch(name)
    }
    env.update(pane_env(run.id, run.tmux_socket))
    return env


ESCAPE_TIME_MS = 10  # tmux's own default since 3.5


def create_session(
    store: Store,
    run: Run,
    layout: Layout,
    slots: int,
    cwd: Path,
    dashboard: bool,
    warm: Path | None = None,
) -> TmuxSession:
    ours = not TmuxSession(run.tmux_socket, run.id).server_running()
    # An older server's environment is not this one's, so it is given. A server this
    # process starts takes its environment: given as `-e NAME=value`, every variable (API
    # keys) would stay in the server's command line, shown by `ps`, for its whole life.
    env = pane_env(run.id, run.tmux_socket) if ours else session_environment(run)
    session, panes = TmuxSession.create(
        run.tmux_socket,
        run.id,
        layout=layout,
        slots=slots,
        cwd=cwd,
        control_argv=supervise_argv(run.id, store.state_dir, warm),
        dashboard_argv=dashboard_argv(run.id, textual=_has_dashboard()) if dashboard else None,
        idle_argv=idle_argv(),
        env=env,
        wake_channel=wake_channel(run.id),
    )
    if ours:
        # tmux's default 500 ms makes Esc then a key typed quickly reach the dashboard as
        # Alt+key; a server the user started keeps the user's setting
        session.set_server_option("escape-time", str(ESCAPE_TIME_MS))
    store.update_run(
        run.id,
        slot_panes=",".join(panes.slots),
        control_pane=panes.control,
        dashboard_pane=panes.dashboard or "",
    )
    return session


def _has_dashboard() -> bool:
    import importlib.util

    return importlib.util.find_spec("limitless.dashboard.app") is not None
