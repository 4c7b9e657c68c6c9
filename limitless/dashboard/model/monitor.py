"""The Monitor: one `poll()` gathers a run's state from the store, tmux, its processes and
git, and makes one `Snapshot`.

A poll is cheap by construction, because the dashboard runs it every second
beside twenty busy agents:

- the store: `PRAGMA data_version` first; only when another connection
  committed since the last poll are the run, its tasks, their attempts, its
  conflict predictions and its new events read again;
- tmux: one chained call reads every pane's state and the last lines of the
  panes of running tasks (`TmuxSession.snapshot`); none at all while no task
  runs;
- processes: `ProcessWatch` (processes.py) sums CPU and memory over each running
  pane's process tree;
- git: `GitWatch` (gitwatch.py) inspects a worktree only when it may have changed.

The Monitor is used by one thread at a time (the dashboard's ticks never
overlap), but not always the same thread: SQLite connections are per thread,
so each thread gets its own Store. Its other methods (`request`, `diff`,
`read_log`, `jump`, `zoom`, `alert`) may run in other threads meanwhile: they
touch no poll state.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from limitless.dashboard.model.gitwatch import GitWatch
from limitless.dashboard.model.notices import Notices
from limitless.dashboard.model.processes import ProcessWatch, Usage
from limitless.dashboard.model.snapshot import PollStats, Snapshot, TaskView
from limitless.dashboard.model.tails import LogTails, strip_ansi
from limitless.errors import LimitlessError, TmuxError
from limitless.git.refs import branch_exists, diff_text
from limitless.plan.model import Plan
from limitless.plan.stored import plan_of
from limitless.states import ControlAction, TaskStatus
from limitless.store import Attempt, Event, Prediction, Run, Store, TaskRow
from limitless.tmux.panes import PaneState
from limitless.tmux.session import TmuxSession
from limitless.views.status import base_moved, reason_of
from limitless.views.summary import summarize

log = logging.getLogger(__name__)

TAIL_LINES = 40
"""Lines read from each running task's pane per poll (the detail area shows them)."""
GIT_INTERVAL_S = 3.0
"""The focused task's worktree, when its only news is pane output, is inspected at most this
often (its dirty flag is what may have changed)."""
BACKGROUND_GIT_INTERVAL_S = 15.0
"""The same for the other tasks: twenty busy panes would otherwise cost ~7 git inspections
(20 git processes) a second."""
STALE_BASE_INTERVAL_S = 5.0
"""Whether base moved is asked of git at most this often."""
ESTIMATE_CAP = 99.0
"""An estimated progress never claims to be finished."""
BASE = "base"
"""How a predicted conflict with the base branch is named."""


def estimated_progress(elapsed: float | None, estimate_s: float | None) -> float | None:
    """elapsed / estimate as a percentage, capped at 99; None without both."""
    if elapsed is None or not estimate_s or estimate_s <= 0:
        return None
    return min(ESTIMATE_CAP, 100.0 * elapsed / estimate_s)


def conflicts_by_task(predictions: Iterable[Prediction]) -> dict[str, tuple[str, ...]]:
    """Task id → the tasks (or `base`) it is predicted to conflict with, both ways round."""
    found: dict[str, list[str]] = {}
    for prediction in predictions:
        if not prediction.files:
            continue
        found.setdefault(prediction.task_id, []).append(prediction.other or BASE)
        if prediction.other:
            found.setdefault(prediction.other, []).append(prediction.task_id)
    return {task: tuple(dict.fromkeys(others)) for task, others in found.items()}


class Monitor:
    """Gathers one run's state from the store, tmux, psutil and git, cheaply, per poll."""

    def __init__(
        self,
        state_dir: Path,
        run_id: str,
        socket_name: str | None,
        *,
        tail_lines: int = TAIL_LINES,
        git_interval: float = GIT_INTERVAL_S,
        background_git_interval: float | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.run_id = run_id
        self.socket_name = socket_name
        self.tail_lines = tail_lines
        self.git_interval = git_interval
        self.background_git_interval = (
            max(git_interval, BACKGROUND_GIT_INTERVAL_S)
            if background_git_interval is None
            else background_git_interval
        )
        self._local = threading.local()
        self._lock = threading.Lock()
        self._tmux: TmuxSession | None = None
        # poll state (one poller at a time)
        self._data_version: tuple[int, int] | None = None  # (connection, PRAGMA data_version)
        self._run: Run | None = None
        self._rows: list[TaskRow] = []
        self._attempts: list[Attempt] = []
        self._conflicts: dict[str, tuple[str, ...]] = {}
        self._plan: Plan | None = None
        self._event_cursor: int | None = None
        self._base_checked = 0.0
        self._base_moved_to: str | None = None
        self._notices = Notices()
        self._processes = ProcessWatch()
        self._git = GitWatch(self.git_interval, self.background_git_interval)
        self._logs = LogTails()

    # -- plumbing -----------------------------------------------------------------

    def store(self) -> Store:
        """This thread's Store (SQLite connections cannot cross threads)."""
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            store = Store.open(self.state_dir)
            self._local.store = store
        return store

    def run(self) -> Run:
        """The run row as last polled (read now if never polled)."""
        return self._run if self._run is not None else self.store().get_run(self.run_id)

    def tmux(self) -> TmuxSession:
        """The run's tmux session (on `socket_name`, else the socket the run recorded)."""
        with self._lock:
            if self._tmux is None:
                run = self.run()
                socket = self.socket_name if self.socket_name is not None else run.tmux_socket
                self._tmux = TmuxSession(socket, run.id)
            return self._tmux

    def plan(self) -> Plan | None:
        """The run's plan (None if its stored JSON cannot be read back)."""
        if self._plan is None:
            try:
                self._plan = plan_of(self.run())
            except LimitlessError as exc:
                log.warning("plan not read", extra={"run": self.run_id, "error": str(exc)})
                return None
        return self._plan

    def close(self) -> None:
        """Close this thread's Store (others close when their threads' objects are collected)."""
        store: Store | None = getattr(self._local, "store", None)
        if store is not None:
            store.close()
            self._local.store = None

    # -- one poll -----------------------------------------------------------------

    def poll(self, focus: str | None = None) -> Snapshot:
        """Read everything once and return what the dashboard shows; `focus` gets a diffstat."""
        started = time.perf_counter()
        problems: list[str] = []
        events, store_read = self._read_store()
        store_ms = (time.perf_counter() - started) * 1000
        run = self.run()
        rows = self._rows
        now = time.time()

        mark = time.perf_counter()
        panes, captured, tmux_calls = self._read_tmux(rows, problems)
        tmux_ms = (time.perf_counter() - mark) * 1000

        mark = time.perf_counter()
        usage = self._read_processes(rows, panes)
        psutil_ms = (time.perf_counter() - mark) * 1000

        mark = time.perf_counter()
        inspections = self._git.read(run, rows, captured, focus, now, problems)
        git_ms = (time.perf_counter() - mark) * 1000

        views = tuple(self._view(run, row, captured, usage, now, focus) for row in rows)
        notices = self._notices.news(run, rows, events)
        stats = PollStats(
            store_ms=store_ms,
            tmux_ms=tmux_ms,
            psutil_ms=psutil_ms,
            git_ms=git_ms,
            total_ms=(time.perf_counter() - started) * 1000,
            store_read=store_read,
            tmux_calls=tmux_calls,
            git_inspections=inspections,
        )
        return Snapshot(
            run_id=run.id,
            plan_name=run.plan_name,
            base=run.base,
            base_sha=run.base_sha,
            repo_root=run.repo_root,
            status=run.status,
            reason=run.reason,
            exit_code=run.exit_code,
            created_at=run.created_at,
            ended_at=run.ended_at,
            tmux_session=run.tmux_session,
            at=now,
            summary=summarize(run, rows, self._attempts, now=now),
            slots_used=sum(row.status.active for row in rows),
            tasks=views,
            events=tuple(events),
            notices=tuple(notices),
            problems=tuple(problems),
            base_moved_to=self._stale_base(run, now),
            stats=stats,
        )

    def _stale_base(self, run: Run, now: float) -> str | None:
        """Where base went, if it moved; asked of git at most every few seconds."""
        if now - self._base_checked >= STALE_BASE_INTERVAL_S:
            self._base_checked = now
            try:
                self._base_moved_to = base_moved(run)
            except LimitlessError:
                self._base_moved_to = None
        return self._base_moved_to

    def _read_store(self) -> tuple[list[Event], bool]:
        """New events; the cached rows are refreshed when the database changed."""
        store = self.store()
        # data_version is per connection, and a poll may run on another thread than the last.
        version = (id(store), store.data_version())
        if version == self._data_version and self._run is not None:
            return [], False
        run = store.get_run(self.run_id)
        rows = store.get_tasks(self.run_id)
        attempts = store.attempts(self.run_id)
        predictions = store.predictions(self.run_id)
        if self._event_cursor is None:
            # Opening the dashboard late must not replay old failures as news.
            self._event_cursor = store.last_event_id(self.run_id)
            events: list[Event] = []
        else:
            events = store.events(self.run_id, after_id=self._event_cursor)
            if events:
                self._event_cursor = events[-1].id
        self._run, self._rows, self._attempts = run, rows, attempts
        self._conflicts = conflicts_by_task(predictions)
        self._data_version = version
        return events, True

    def _read_tmux(
        self, rows: Sequence[TaskRow], problems: list[str]
    ) -> tuple[dict[str, PaneState], dict[str, tuple[str, ...]], int]:
        """Pane states and last lines of the running tasks' panes: one tmux call, or none."""
        wanted = [row.pane_id for row in rows if row.status.active and row.pane_id]
        if not wanted:
            return {}, {}, 0
        try:
            shot = self.tmux().snapshot(lines=self.tail_lines, pane_ids=wanted)
        except (TmuxError, OSError, ValueError) as exc:
            problems.append(f"tmux: {exc}")
            return {}, {}, 1
        panes = {pane.pane_id: pane for pane in shot.panes}
        return panes, {pane: tuple(lines) for pane, lines in shot.lines.items()}, 1

    def _read_processes(
        self, rows: Sequence[TaskRow], panes: Mapping[str, PaneState]
    ) -> dict[str, Usage]:
        """CPU and memory of each running task's process trees: the pane's, and the
        wrapper's when the fork server forked it (then it is not under the pane's client)."""
        roots: dict[str, tuple[int, ...]] = {}
        for row in rows:
            if not row.status.active:
                continue
            pane = panes.get(row.pane_id or "")
            pids = (pane.pid if pane is not None else None, row.pid)
            found = tuple(dict.fromkeys(pid for pid in pids if pid))
            if found:
                roots[row.id] = found
        return self._processes.usage(roots)

    def _tail_of(
        self, run: Run, row: TaskRow, captured: Mapping[str, tuple[str, ...]]
    ) -> tuple[str, ...]:
        """The pane's last lines while the task runs there, else its log's last lines."""
        if row.status.active and row.pane_id in captured:
            return tuple(strip_ansi(line) for line in captured[row.pane_id or ""])
        if row.started_at is None and row.attempt == 0:
            return ()
        return self._logs.tail(row.id, self.store().log_path(run.id, row.id), self.tail_lines)

    def _view(
        self,
        run: Run,
        row: TaskRow,
        captured: Mapping[str, tuple[str, ...]],
        usage: Mapping[str, Usage],
        now: float,
        focus: str | None,
    ) -> TaskView:
        plan = self.plan()
        task = None
        if plan is not None:
            with contextlib.suppress(LimitlessError):
                task = plan.task(row.id)
        elapsed = None
        if row.started_at is not None:
            elapsed = max(0.0, (row.ended_at or now) - row.started_at)
        progress = row.progress
        estimated = False
        if row.status is TaskStatus.DONE:
            progress = 100.0
        elif progress is None and row.status.active:
            progress = estimated_progress(elapsed, task.estimate_s if task else None)
            estimated = progress is not None
        state = self._git.state(row.id)
        tail = self._tail_of(run, row, captured)
        used = usage.get(row.id)
        return TaskView(
            id=row.id,
            status=row.status,
            attempt=row.attempt,
            agent=row.agent,
            progress=progress,
            progress_estimated=estimated,
            elapsed=elapsed,
            last_line=tail[-1] if tail else "",
            ahead=state.ahead if state else row.commits,
            files_changed=state.files_changed if state else row.files_changed,
            insertions=state.insertions if state else row.insertions,
            deletions=state.deletions if state else row.deletions,
            dirty=bool(state and state.dirty_files),
            conflicts=self._conflicts.get(row.id, ()),
            cpu_percent=used.cpu_percent if used else None,
            rss_mb=used.rss_mb if used else None,
            cost=row.cost_usd,
            reason=reason_of(row),
            pane_id=row.pane_id,
            merge_status=row.merge_status,
            merge_order=row.merge_order,
            merge_reason=row.merge_reason,
            conflict_files=tuple(row.conflict_files),
            dirty_files=state.dirty_files if state else (),
            branch=row.branch,
            worktree=row.worktree,
            start_sha=row.start_sha,
            head=(state.head if state and state.head else row.head_sha),
            depends_on=task.depends_on if task else (),
            tail=tail,
            diffstat=self._git.diffstat(row.id) if row.id == focus else "",
            waiting=row.waiting_kind,
            idle_done_at=row.idle_done_at if row.status is TaskStatus.WAITING else None,
        )

    # -- actions (any thread) ------------------------------------------------------

    def request(self, action: ControlAction, task_id: str) -> int:
        """Ask the supervisor to kill, retry or mark done `task_id`; returns the request id."""
        return self.store().request(self.run_id, action, task_id, source="dashboard")

    def diff(self, task_id: str) -> str:
        """The patch of the task's branch since its start point ("" when nothing changed)."""
        store = self.store()
        run = store.get_run(self.run_id)
        row = store.get_task(self.run_id, task_id)
        repo = Path(run.repo_root)
        base = row.start_sha or run.base_sha
        head = row.branch if branch_exists(repo, row.branch) else row.head_sha
        if head is None:
            return ""
        return diff_text(repo, base, head)

    def read_log(self, task_id: str, offset: int = 0, limit: int = 1 << 20) -> tuple[bytes, int]:
        """Bytes of the task's log from `offset` (at most `limit`; the last `limit` when
        starting from 0 on a bigger log) and the offset to continue from."""
        path = self.store().log_path(self.run_id, task_id)
        try:
            with path.open("rb") as handle:
                size = handle.seek(0, 2)
                if offset > size:
                    offset = 0  # the log was replaced
                if offset == 0 and size > limit:
                    offset = size - limit
                handle.seek(offset)
                data = handle.read(limit)
        except FileNotFoundError:
            return b"", 0
        return data, offset + len(data)

    def jump(self, pane_id: str) -> None:
        """Make the task's pane the current one in tmux (its window too)."""
        self.tmux().select(pane_id)

    def zoom(self, pane_id: str) -> None:
        """Select the task's pane and toggle its zoom."""
        self.tmux().zoom(pane_id)

    def keep_rows(self, pane_id: str, rows: int, leave: int) -> None:
        """Give the dashboard's own pane `rows` rows if the window has room."""
        server = os.environ.get("TMUX", "").split(",")[0]
        if server:
            self.tmux().keep_rows(pane_id, rows, leave=leave, server=server)

    def alert(self, text: str) -> None:
        """A tmux status-line message and a bell for every client of the run's session."""
        session = self.tmux()
        session.message(text)
        session.bell()
