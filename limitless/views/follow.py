"""Following a run from outside tmux: `run --headless` and `wait` print what happens.

On a terminal it draws a live rich table; otherwise one plain line per event,
so CI logs read well. Both end with a short summary and the run's exit code.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from limitless.states import TaskStatus, Waiting
from limitless.store import Event, Run, Store
from limitless.views.report import build_report, short_lines
from limitless.views.status import reason_of
from limitless.views.summary import RunSummary

POLL_S = 0.2
NEEDS_INPUT_EXIT = 4
"""`limitless wait --until-input` exits with this when a task needs input."""


@dataclass(frozen=True)
class NeedsInput:
    """A task of a followed run that asks a question or a permission."""

    run_id: str
    task_id: str
    reason: str
    pane_id: str | None

    def lines(self) -> list[str]:
        why = f" — {self.reason}" if self.reason else ""
        return [
            f"? {self.task_id} needs input{why}",
            f"answer it in its pane: limitless attach {self.run_id}"
            + (f" (pane {self.pane_id})" if self.pane_id else ""),
        ]


SUPERVISOR_GRACE_S = 15.0
"""How long a running run may have no live supervisor before a follower says so (a new
one, from `run` or `resume`, records its pid within a few seconds of its start)."""


@dataclass(frozen=True)
class SupervisorGone:
    """A followed run whose supervisor died before it ended the run."""

    run_id: str
    pid: int | None

    def lines(self) -> list[str]:
        which = f" (pid {self.pid})" if self.pid else ""
        return [
            f"run {self.run_id}: its supervisor{which} is gone, so nothing starts or ends; "
            f"its pane shows why (limitless attach {self.run_id})",
            f"limitless resume {self.run_id} starts a new supervisor, which takes up "
            "the tasks still running",
        ]


@dataclass
class SupervisorWatch:
    """Whether a run's supervisor has been gone for SUPERVISOR_GRACE_S (`alive` is the
    run layer's `supervisor_alive`, handed in from above)."""

    alive: Callable[[Run], bool]
    grace_s: float = SUPERVISOR_GRACE_S
    dead_since: float | None = None
    pid: int | None = None

    def gone(self, run: Run) -> SupervisorGone | None:
        if run.status.finished or self.alive(run):
            self.dead_since = None
            return None
        now = time.monotonic()
        if self.dead_since is None or run.supervisor_pid != self.pid:
            self.dead_since, self.pid = now, run.supervisor_pid
            return None
        if now - self.dead_since < self.grace_s:
            return None
        return SupervisorGone(run.id, run.supervisor_pid)


def needs_input(store: Store, run_id: str) -> NeedsInput | None:
    """The first task of the run that needs input, if any."""
    for row in store.get_tasks(run_id):
        if row.status is TaskStatus.WAITING and row.waiting_kind is Waiting.INPUT:
            return NeedsInput(run_id, row.id, reason_of(row), row.pane_id)
    return None


@dataclass(frozen=True)
class FinishedRun:
    """A followed run that ended: its figures and the short form of its report."""

    summary: RunSummary
    lines: tuple[str, ...]

    @property
    def exit_code(self) -> int:
        """The run's exit code (1 when it recorded none)."""
        code = self.summary.exit_code
        return code if code is not None else 1


def finished_run(store: Store, run: Run) -> FinishedRun:
    """A finished run's summary, with the short form of its report."""
    report = build_report(store, run.id)
    return FinishedRun(report.summary, tuple(short_lines(report)))


def summary_lines(finished: FinishedRun) -> list[str]:
    """The lines `run --headless` and `wait` end with."""
    return list(finished.lines)


def _tasks(count: object) -> str:
    return "1 task" if count == 1 else f"{count} tasks"


def describe(event: Event) -> str | None:
    """One human line for an event, or None for events not worth a line."""
    task = event.task_id or ""
    data = event.data
    reason = f" — {data['reason']}" if data.get("reason") else ""
    lines: dict[str, str] = {
        "run_started": f"run started on {data.get('base')} with {_tasks(data.get('tasks'))}",
        "task_launched": f"▶ {task} started (slot {int(str(data.get('slot', 0))) + 1}, "
        f"attempt {data.get('attempt')})",
        "task_done": f"✓ {task} done",
        "task_failed": f"✗ {task} failed{reason}",
        "task_killed": f"☠ {task} killed",
        "task_blocked": f"⊘ {task} blocked by {data.get('by')}",
        "task_retry": f"↻ {task} will be retried",
        "task_waiting": (
            f"? {task} needs input{reason}"
            if data.get("waiting") == "input"
            else f"… {task} is waiting{reason}"
        ),
        "task_idle": f"◌ {task} finished its turn{reason}",
        "task_countdown": f"◌ {task} is done in {data.get('seconds')}s unless you type in its pane",
        "task_countdown_cancelled": f"◌ {task} stays open: {data.get('reason')}",
        "task_closing": f"◌ {task}: closing the agent — {data.get('reason')}",
        "task_dialog": f"· {task}: {data.get('answer') or data.get('reason')}",
        "merge_started": "merge phase started",
        "task_merged": f"⇢ {task} merged",
        "merge_conflict": f"⚠ {task} conflicts: {', '.join(map(str, data.get('files', []) or []))}",  # type: ignore[call-overload]
        "gate_failed": f"⚠ {task} failed the gate",
        "landed": f"landed on {data.get('base')} at {str(data.get('sha', ''))[:10]}",
        "run_done": f"run finished: {data.get('status')}",
        "hook_failed": f"⚠ {data.get('reason')} (log: {data.get('log')})",
        "budget_alert": f"⚠ budget alert: ${data.get('cost_usd')} spent "
        f"of ${data.get('max_cost_usd')} (alert at {data.get('alert_at')})",
    }
    if event.kind == "merge_done" and not (data.get("ok") and data.get("landed")):
        # a stop, a dirty checkout or `land: manual`: the message says how to go on
        return str(data.get("message") or "") or None
    return lines.get(event.kind)


def follow(
    store: Store,
    run_id: str,
    *,
    timeout: float | None = None,
    out: Callable[[str], None] = print,
    live: bool | None = None,
    until_input: bool = False,
    watch: SupervisorWatch | None = None,
) -> FinishedRun | NeedsInput | SupervisorGone | None:
    """Print events until the run ends (or, `until_input`, until a task needs input, or,
    with `watch`, its supervisor is gone); None when `timeout` passed first."""
    live = sys.stdout.isatty() if live is None else live
    if live:
        return _follow_live(store, run_id, timeout, until_input, watch)
    deadline = time.monotonic() + timeout if timeout else None
    after = 0
    while True:
        for event in store.events(run_id, after_id=after):
            after = event.id
            line = describe(event)
            if line and event.kind == "task_waiting" and event.data.get("waiting") == "input":
                line += f" (answer in its pane: limitless attach {run_id})"
            if line:
                out(f"{time.strftime('%H:%M:%S', time.localtime(event.ts))} {line}")
        run = store.get_run(run_id)
        if run.status.finished:
            return finished_run(store, run)
        asking = needs_input(store, run_id) if until_input else None
        if asking is not None:
            return asking
        gone = watch.gone(run) if watch is not None else None
        if gone is not None:
            return gone
        if deadline is not None and time.monotonic() > deadline:
            return None
        time.sleep(POLL_S)


def _follow_live(
    store: Store,
    run_id: str,
    timeout: float | None,
    until_input: bool,
    watch: SupervisorWatch | None,
) -> FinishedRun | NeedsInput | SupervisorGone | None:
    from rich.console import Console
    from rich.live import Live

    from limitless.views.status import status_document, status_renderable

    deadline = time.monotonic() + timeout if timeout else None
    console = Console(highlight=False)
    with Live(console=console, auto_refresh=False, transient=False) as live:
        while True:
            live.update(status_renderable(status_document(store, run_id)), refresh=True)  # type: ignore[arg-type]
            run = store.get_run(run_id)
            if run.status.finished:
                return finished_run(store, run)
            asking = needs_input(store, run_id) if until_input else None
            if asking is not None:
                return asking
            gone = watch.gone(run) if watch is not None else None
            if gone is not None:
                return gone
            if deadline is not None and time.monotonic() > deadline:
                return None
            time.sleep(POLL_S)
