"""A small Python API for driving limitless from Python.

    from limitless import api

    problems = api.validate("limitless.yaml")      # [] when the plan is fine
    plan = api.load_plan("limitless.yaml")         # or raises PlanError listing every problem
    run = api.start(plan, repo=".")                # headless: returns once the run started
    for event in run.events(follow=True):          # until the run ends
        print(event.kind, event.task_id, event.data)
    report = run.wait(timeout=3600)                # a limitless.report.Report
    print(report.speedup, run.status().tasks)

A run started here is the same as `limitless run --detach`: it lives in its own
tmux session (`limitless attach RUN` shows it) with its supervisor, so it goes
on if the Python process ends; `api.open_run(run_id)` picks it up again. Every
call opens the repository's store briefly, so handles are cheap and can be
used from any thread. Errors are `limitless.errors.LimitlessError` subclasses;
`wait` raises `TimeoutError` when its timeout passes first.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from limitless.errors import LimitlessError, PlanError, Problem
from limitless.plan.model import Plan
from limitless.states import RunStatus, TaskStatus
from limitless.store import Event, Store
from limitless.views.report import Report, build_report

__all__ = [
    "Event",
    "Plan",
    "Report",
    "RunHandle",
    "RunState",
    "load_plan",
    "open_run",
    "runs",
    "start",
    "validate",
]

POLL_S = 0.2


def load_plan(path: str | Path) -> Plan:
    """Load and validate a plan file; `PlanError` (with `.problems`) if anything is wrong."""
    from limitless.plan import loader as plan_mod

    return plan_mod.load(Path(path))


def validate(path: str | Path) -> list[Problem]:
    """Every problem of a plan file (`file:line:column: message` when printed); [] if none."""
    try:
        load_plan(path)
    except PlanError as exc:
        return list(exc.problems)
    return []


@dataclass(frozen=True)
class RunState:
    """A run at one moment: its status and each task's status."""

    run_id: str
    status: RunStatus
    exit_code: int | None
    reason: str
    tasks: Mapping[str, TaskStatus]

    @property
    def finished(self) -> bool:
        return self.status.finished


@dataclass(frozen=True)
class RunHandle:
    """A run of a repository: ask its status, follow its events, wait for its end."""

    run_id: str
    repo: Path
    state_dir: Path

    def _store(self) -> Store:
        return Store.open(self.state_dir)

    def status(self) -> RunState:
        """The run's status and its tasks' statuses, now."""
        with self._store() as store:
            run = store.get_run(self.run_id)
            rows = store.get_tasks(self.run_id)
        return RunState(
            run_id=run.id,
            status=run.status,
            exit_code=run.exit_code,
            reason=run.reason,
            tasks={row.id: row.status for row in rows},
        )

    def events(
        self, *, after: int = 0, follow: bool = False, poll_s: float = POLL_S
    ) -> Iterator[Event]:
        """The run's events after id `after`, oldest first; with `follow`, until the run ends."""
        with self._store() as store:
            while True:
                finished = store.get_run(self.run_id).status.finished
                for event in store.events(self.run_id, after_id=after):
                    after = event.id
                    yield event
                if not follow or finished:
                    return
                time.sleep(poll_s)

    def wait(self, timeout: float | None = None, *, poll_s: float = POLL_S) -> Report:
        """Block until the run ends and return its report; `TimeoutError` after `timeout` s,
        `LimitlessError` when its supervisor is gone (`limitless resume` starts another)."""
        from limitless.run.processes import supervisor_alive
        from limitless.views.follow import SupervisorWatch

        deadline = None if timeout is None else time.monotonic() + timeout
        watch = SupervisorWatch(supervisor_alive)
        while True:
            with self._store() as store:
                run = store.get_run(self.run_id)
            if run.status.finished:
                return self.report()
            gone = watch.gone(run)
            if gone is not None:
                raise LimitlessError(" ".join(gone.lines()))
            if deadline is not None and time.monotonic() > deadline:
                msg = f"run {self.run_id} still going after {timeout}s; wait again or attach"
                raise TimeoutError(msg)
            time.sleep(poll_s)

    def report(self) -> Report:
        """The run's report (figures, tasks, timeline); partial while it runs."""
        with self._store() as store:
            return build_report(store, self.run_id)


def start(
    plan: Plan | str | Path,
    *,
    repo: str | Path | None = None,
    max_concurrency: int | None = None,
    schedule: str = "deps",
    no_merge: bool = False,
    merge_strategy: str | None = None,
    land: str | None = None,
    layout: str | None = None,
    socket: str | None = None,
    dashboard: bool = False,
) -> RunHandle:
    """Start a run of `plan` (a Plan or a plan file) in `repo` (default: the working folder).

    Returns as soon as the run's tmux session and supervisor are up, like
    `limitless run --detach`. `socket` names the tmux server (`tmux -L`), default
    $LIMITLESS_TMUX_SOCKET or the default server. Nothing is created when the
    plan, the repository or the environment is wrong.
    """
    from limitless.git.repo import find_repo, state_dir
    from limitless.run.context import socket_name
    from limitless.run.launcher import RunOptions, start_run

    loaded = plan if isinstance(plan, Plan) else load_plan(plan)
    if schedule not in ("deps", "waves"):
        from limitless.errors import UsageError

        msg = f"schedule {schedule!r} is not known; use 'deps' or 'waves'"
        raise UsageError(msg)
    cwd = Path(repo) if repo is not None else Path.cwd()
    options = RunOptions(
        max_concurrency=max_concurrency,
        schedule=schedule,
        no_merge=no_merge,
        merge_strategy=merge_strategy,
        layout=layout,
        land=land,
        dashboard=dashboard,
    )
    started = start_run(loaded, cwd=cwd, options=options, socket_name=socket_name(socket))
    info = find_repo(cwd)
    return RunHandle(run_id=started.run.id, repo=info.root, state_dir=state_dir(info))


def open_run(run_id: str | None = None, *, repo: str | Path | None = None) -> RunHandle:
    """A handle on run `run_id` of `repo` (default: the newest run of the working folder's repo)."""
    from limitless.run.context import open_context

    cwd = Path(repo) if repo is not None else Path.cwd()
    with open_context(cwd) as ctx:
        run = ctx.run(run_id)
        return RunHandle(run_id=run.id, repo=ctx.repo.root, state_dir=ctx.store.state_dir)


def runs(*, repo: str | Path | None = None) -> list[str]:
    """The ids of every run of the repository, as `limitless list` orders them."""
    from limitless.run.context import open_context

    with open_context(Path(repo) if repo is not None else None) as ctx:
        return [run.id for run in ctx.store.list_runs()]
