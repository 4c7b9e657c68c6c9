"""`limitless resume`: bring a run back after its supervisor, tmux or the machine died.

The store says what was going on; tmux says which panes still live; the new
supervisor adopts running wrappers and judges lost ones by their retries.
"""

from __future__ import annotations

import time
from pathlib import Path

from limitless.plan.stored import plan_of
from limitless.run.launcher import create_session
from limitless.run.processes import supervisor_alive
from limitless.states import RunStatus
from limitless.store import Run, Store
from limitless.tmux.layouts import load_layout
from limitless.tmux.pane_programs import pane_env, supervise_argv
from limitless.tmux.session import TmuxSession


def resume_run(store: Store, run_id: str) -> tuple[str, TmuxSession | None]:
    """Start a new supervisor for `run_id` (and a new tmux session if it is gone)."""
    run = store.get_run(run_id)
    session = TmuxSession(run.tmux_socket, run.id)
    pending = store.pending_requests(run_id)
    if run.status.finished and not pending:
        return f"run {run_id} has ended ({run.status}); nothing to resume", None
    if supervisor_alive(run):
        return f"run {run_id} is being supervised already (pid {run.supervisor_pid})", session
    if run.status.finished:
        store.update_run(run_id, status=RunStatus.RUNNING, ended_at=None, exit_code=None)
    store.add_event(run_id, "run_resumed")
    control = supervise_argv(run_id, store.state_dir)
    if session.exists() and run.control_pane:
        session.respawn(
            run.control_pane, control, cwd=_cwd(run), env=pane_env(run.id, run.tmux_socket)
        )
        return f"resumed run {run_id}: a new supervisor took over in {run.tmux_session}", session
    plan = plan_of(run)
    slots = min(run.max_concurrency, len(plan.tasks))
    store.update_run(run_id, slot_panes="")
    session = create_session(
        store, store.get_run(run_id), load_layout(run.layout), slots, _cwd(run), True
    )
    _wait_supervised(store, run_id)
    return (
        f"resumed run {run_id}: tmux session {run.tmux_session} made anew; "
        "tasks whose panes were lost are retried or failed by their retries",
        session,
    )


def _cwd(run: Run) -> Path:
    return Path(run.repo_root)


def _wait_supervised(store: Store, run_id: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if supervisor_alive(store.get_run(run_id)):
            return
        time.sleep(0.05)
