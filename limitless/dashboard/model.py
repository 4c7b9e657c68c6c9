"""What the dashboard shows, gathered without textual: one `poll()` makes one `Snapshot`.

A poll is cheap by construction, because the dashboard runs it every second
beside twenty busy agents:

- the store: `PRAGMA data_version` first; only when another connection
  committed since the last poll are the run, its tasks, its conflict
  predictions and its new events read again;
- tmux: one chained call reads every pane's state and the last lines of the
  panes of running tasks (`TmuxSession.snapshot`); none at all while no task
  runs;
- processes: each running pane's process tree is walked through
  `/proc/<pid>/task/<tid>/children` (Linux; elsewhere one `psutil.process_iter`
  scan builds a parent → children map); CPU and memory are summed over the
  tree. The `Process` objects are kept between polls, so `cpu_percent`
  measures the time since the previous poll;
- git: a worktree is inspected (`worktrees.inspect`, three git processes) only
  when its HEAD, branch tip or index changed (read from files under `.git`,
  no git process), when its task changed status, or when its pane printed
  something new and the last inspection is `git_interval` (focused task) or
  `background_git_interval` (the others) seconds old.

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
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psutil

from limitless.errors import LimitlessError, TmuxError
from limitless.git import worktrees
from limitless.plan.loader import Plan
from limitless.states import (
    NEEDS_INPUT,
    ControlAction,
    MergeStatus,
    RunStatus,
    TaskStatus,
    Waiting,
    task_state,
)
from limitless.store.store import Attempt, Event, Prediction, Run, Store, TaskRow
from limitless.tmux.session import PaneState, TmuxSession
from limitless.views.follow import describe
from limitless.views.status import reason_of
from limitless.views.summary import RunSummary, summarize

log = logging.getLogger(__name__)

TAIL_LINES = 40
"""Lines read from each running task's pane per poll (the detail area shows them)."""
GIT_INTERVAL_S = 3.0
"""The focused task's worktree, when its only news is pane output, is inspected at most this
often (its dirty flag is what may have changed)."""
BACKGROUND_GIT_INTERVAL_S = 15.0
STALE_BASE_INTERVAL_S = 5.0
"""The same for the other tasks: twenty busy panes would otherwise cost ~7 git inspections
(20 git processes) a second."""
LOG_TAIL_BYTES = 16_384
"""How much of the end of a finished task's log is read for its last lines."""
ESTIMATE_CAP = 99.0
"""An estimated progress never claims to be finished."""
BASE = "base"
"""How a predicted conflict with the base branch is named."""

_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: titles, hyperlinks
    r"|\x1b[@-Z\\-_]"  # two-byte escapes
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

NoticeKind = Literal["failed", "waiting", "run_ended", "budget"]
Severity = Literal["information", "warning", "error"]


def strip_ansi(text: str) -> str:
    """`text` without terminal escape sequences and other control characters (tabs kept)."""
    return _CONTROL.sub("", _ANSI.sub("", text.replace("\r\n", "\n")))


# ----------------------------------------------------------------------------- values


@dataclass(frozen=True)
class TaskView:
    """One task as the dashboard shows it."""

    id: str
    status: TaskStatus
    attempt: int
    agent: str
    progress: float | None
    """0..100: the agent's own figure, else elapsed / estimate (at most 99); None if unknown."""
    progress_estimated: bool
    elapsed: float | None
    last_line: str
    ahead: int
    files_changed: int
    insertions: int
    deletions: int
    dirty: bool
    conflicts: tuple[str, ...]
    """Tasks (or `base`) git predicts this task's branch conflicts with."""
    cpu_percent: float | None
    """Of one core, summed over the pane's process tree; None when it does not run."""
    rss_mb: float | None
    cost: float | None
    reason: str
    pane_id: str | None
    merge_status: MergeStatus
    merge_order: int | None = None
    merge_reason: str = ""
    conflict_files: tuple[str, ...] = ()
    dirty_files: tuple[str, ...] = ()
    branch: str = ""
    worktree: str = ""
    start_sha: str | None = None
    head: str | None = None
    depends_on: tuple[str, ...] = ()
    tail: tuple[str, ...] = ()
    """The last lines of its pane (while it runs) or of its log (after)."""
    diffstat: str = ""
    """`git diff --stat` since its start point; only filled for the focused task."""
    waiting: Waiting = Waiting.OTHER
    """What a waiting task waits for: input (needs input), idle (its turn ended), other."""
    idle_done_at: float | None = None
    """When an idle interactive agent is closed (its task done) unless the user types."""

    @property
    def state(self) -> str:
        """`needs_input` or `idle` for those kinds of waiting, else the task's status."""
        return task_state(self.status, self.waiting)

    @property
    def needs_input(self) -> bool:
        return self.state == NEEDS_INPUT

    @property
    def shown_status(self) -> str:
        """The status a user cares about: the merge status once merging began, else the task's."""
        if self.merge_status in (MergeStatus.UNMERGED,):
            return self.state
        return str(self.merge_status)

    @property
    def active(self) -> bool:
        return self.status.active


@dataclass(frozen=True)
class Notice:
    """Something the user is told about at once: a failure, a question, the end of the run."""

    kind: NoticeKind
    task_id: str | None
    text: str
    severity: Severity


@dataclass(frozen=True)
class PollStats:
    """Where the time of one poll went (milliseconds) and how much git ran."""

    store_ms: float = 0.0
    tmux_ms: float = 0.0
    psutil_ms: float = 0.0
    git_ms: float = 0.0
    total_ms: float = 0.0
    store_read: bool = False
    tmux_calls: int = 0
    git_inspections: int = 0


@dataclass(frozen=True)
class Snapshot:
    """Everything the dashboard shows at one moment."""

    run_id: str
    plan_name: str
    base: str
    base_sha: str
    repo_root: str
    status: RunStatus
    reason: str
    exit_code: int | None
    created_at: float
    ended_at: float | None
    tmux_session: str
    at: float
    summary: RunSummary
    """Wall time, task time, speedup, done, slots, cost: the figures every view shares."""
    slots_used: int
    tasks: tuple[TaskView, ...]
    events: tuple[Event, ...] = ()
    notices: tuple[Notice, ...] = ()
    problems: tuple[str, ...] = ()
    """Sources that could not be read this poll (tmux gone, git failing), in words."""
    base_moved_to: str | None = None
    """Base's new tip when someone committed to base since the run started (stale base)."""
    stats: PollStats = field(default_factory=PollStats)

    def task(self, task_id: str | None) -> TaskView | None:
        return next((task for task in self.tasks if task.id == task_id), None)

    @property
    def wall_s(self) -> float:
        return self.summary.wall_s

    @property
    def task_s(self) -> float:
        return self.summary.task_s

    @property
    def speedup(self) -> float:
        return self.summary.speedup

    @property
    def done(self) -> int:
        return self.summary.done

    @property
    def total(self) -> int:
        return self.summary.total

    @property
    def slots_limit(self) -> int:
        return self.summary.slots

    @property
    def cost(self) -> float | None:
        return self.summary.cost_usd

    @property
    def finished(self) -> bool:
        return self.status.finished

    @property
    def statuses(self) -> dict[str, str]:
        """Task id → shown status, for drawings."""
        return {task.id: task.shown_status for task in self.tasks}


# ----------------------------------------------------------------------------- pure helpers


def budget_text(event: Event) -> str:
    """The words of a `budget_alert` event: what was spent of what budget, as far as it says."""
    data = event.data
    spent = _number(data, "cost_usd", "cost", "spent_usd", "spent")
    limit = _number(data, "max_cost_usd", "limit_usd", "limit", "budget")
    text = "budget alert"
    if spent is not None and limit:
        text += f": ${spent:.2f} of ${limit:.2f} spent ({100 * spent / limit:.0f}%)"
    elif spent is not None:
        text += f": ${spent:.2f} spent"
    detail = data.get("reason") or data.get("message")
    return f"{text} — {detail}" if detail else text


def _number(data: Mapping[str, object], *keys: str) -> float | None:
    for key in keys:
        value = data.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


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


def last_lines_of(data: bytes, count: int) -> tuple[str, ...]:
    """The last `count` non-blank lines of terminal output, escapes stripped."""
    text = strip_ansi(data.decode("utf-8", errors="replace"))
    lines = [line.rstrip() for line in re.split(r"[\r\n]", text)]
    return tuple(line for line in lines if line.strip())[-count:]


def head_token(worktree: Path) -> tuple[str, ...] | None:
    """What changes when a worktree's HEAD, branch tip or index changes, read from files.

    None when the folder is not a linked worktree (yet, or any more). Reading a
    few small files costs far less than a git process.
    """
    return HeadWatch().token(worktree)


def git_dirs(worktree: Path) -> tuple[str, str] | None:
    """(its git dir, the common git dir) of a linked worktree, from its `.git` file."""
    try:
        pointer = (worktree / ".git").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    if not pointer.startswith("gitdir:"):
        return None
    gitdir = Path(pointer.removeprefix("gitdir:").strip())
    if not gitdir.is_absolute():
        gitdir = worktree / gitdir
    common = gitdir
    with contextlib.suppress(OSError):
        relative = (gitdir / "commondir").read_text(encoding="utf-8").strip()
        common = (gitdir / relative).resolve() if relative else gitdir
    return str(gitdir), str(common)


def _token_in(worktree: Path, gitdir: str, common: str) -> tuple[str, ...] | None:
    """`head_token` once the git dirs are known: one stat, two small reads, one stat."""
    try:
        os.stat(os.path.join(worktree, ".git"))
        with open(os.path.join(gitdir, "HEAD"), encoding="utf-8", errors="replace") as handle:
            head = handle.read().strip()
    except OSError:
        return None
    tip = ""
    if head.startswith("ref:"):
        ref = head.removeprefix("ref:").strip()
        try:
            with open(os.path.join(common, ref), encoding="utf-8", errors="replace") as handle:
                tip = handle.read().strip()
        except OSError:
            tip = f"packed:{_mtime(Path(common) / 'packed-refs')}"
    return (head, tip, str(_mtime(Path(gitdir) / "index")))


class HeadWatch:
    """`head_token` for many worktrees, poll after poll, with their git dirs read once."""

    def __init__(self) -> None:
        self._dirs: dict[Path, tuple[str, str]] = {}

    def token(self, worktree: Path) -> tuple[str, ...] | None:
        dirs = self._dirs.get(worktree)
        if dirs is None:
            dirs = git_dirs(worktree)
            if dirs is None:
                return None
            self._dirs[worktree] = dirs
        token = _token_in(worktree, *dirs)
        if token is None:
            del self._dirs[worktree]  # gone, or made again elsewhere: read its .git next time
        return token


def _proc_children(pid: int) -> list[int]:
    """The children of `pid`, from `/proc/<pid>/task/<tid>/children` of each of its threads."""
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as handle:
                found.extend(int(child) for child in handle.read().split())
        except (OSError, ValueError):
            continue
    return found


_PROC_CHILDREN = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
"""Whether this kernel lists a thread's children in /proc (Linux with CONFIG_PROC_CHILDREN)."""


_PROC_STAT = os.path.exists(f"/proc/{os.getpid()}/stat")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if _PROC_STAT else 100
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if _PROC_STAT else 4096


@dataclass(frozen=True)
class ProcSample:
    """One process as `/proc/<pid>/stat` shows it: enough for CPU % between two samples."""

    started: int  # clock ticks after boot: a reused pid has another
    cpu_s: float  # user + system time so far
    rss: int  # bytes
    at: float  # time.monotonic() of the reading


def read_proc_stat(pid: int) -> ProcSample | None:
    """One read of `/proc/<pid>/stat` (Linux); None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ")"
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        utime, stime = int(fields[11]), int(fields[12])
        started, rss_pages = int(fields[19]), int(fields[21])
    except (IndexError, ValueError):
        return None
    return ProcSample(
        started=started,
        cpu_s=(utime + stime) / _CLOCK_TICKS,
        rss=rss_pages * _PAGE_SIZE,
        at=time.monotonic(),
    )


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


# ----------------------------------------------------------------------------- caches


@dataclass
class _GitSeen:
    token: tuple[str, ...] | None
    status: TaskStatus
    attempt: int
    checked_at: float
    state: worktrees.WorktreeState | None
    diffstat_head: str | None = None
    diffstat: str = ""


@dataclass
class _LogSeen:
    size: int
    mtime: int
    tail: tuple[str, ...]


@dataclass
class _Usage:
    cpu_percent: float
    rss_mb: float


# ----------------------------------------------------------------------------- the monitor


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
        self._seen_status: dict[str, tuple[str, int]] = {}
        self._asked: dict[str, int] = {}  # times each task came to need input
        self._run_finished: bool | None = None
        self._base_checked = 0.0
        self._base_moved_to: str | None = None
        self._notified: set[tuple[str, str | None, int, int]] = set()
        self._procs: dict[int, psutil.Process] = {}
        self._samples: dict[int, ProcSample] = {}
        self._heads = HeadWatch()
        self._git: dict[str, _GitSeen] = {}
        self._logs: dict[str, _LogSeen] = {}
        self._outputs: dict[str, tuple[str, ...]] = {}

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
                self._plan = Plan.from_json(self.run().plan_json)
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
        inspections = self._read_git(run, rows, captured, focus, now, problems)
        git_ms = (time.perf_counter() - mark) * 1000

        views = tuple(self._view(run, row, captured, usage, now, focus) for row in rows)
        notices = self._notices(run, rows, events)
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
            from limitless.views.status import base_moved

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
    ) -> dict[str, _Usage]:
        """CPU and memory of each running task's process tree, from one process scan."""
        roots: dict[str, int] = {}
        for row in rows:
            if not row.status.active:
                continue
            pane = panes.get(row.pane_id or "")
            pid = pane.pid if pane is not None and pane.pid else row.pid
            if pid:
                roots[row.id] = pid
        if not roots:
            self._procs.clear()
            self._samples.clear()
            return {}
        children_of = self._children_reader()
        usage: dict[str, _Usage] = {}
        kept: dict[int, psutil.Process] = {}
        samples: dict[int, ProcSample] = {}
        for task_id, root in roots.items():
            cpu = rss = 0.0
            todo = [root]
            seen: set[int] = set()
            while todo:
                pid = todo.pop()
                if pid in seen:
                    continue
                seen.add(pid)
                todo.extend(children_of(pid))
                if _PROC_STAT:
                    sample = read_proc_stat(pid)
                    if sample is None:
                        continue
                    cpu += self._cpu_since_last(pid, sample)
                    rss += sample.rss
                    samples[pid] = sample
                    continue
                # Last poll's object for a pid that was not reused, so cpu_percent
                # measures the time since then.
                member = self._process(pid)
                if member is None:
                    continue
                try:
                    with member.oneshot():
                        cpu += member.cpu_percent(None)
                        rss += member.memory_info().rss
                except psutil.Error:
                    continue
                kept[pid] = member
            usage[task_id] = _Usage(cpu_percent=cpu, rss_mb=rss / (1 << 20))
        self._procs = kept
        self._samples = samples
        return usage

    def _cpu_since_last(self, pid: int, sample: ProcSample) -> float:
        """CPU % of one core since the last poll's sample of the same process (0 at first)."""
        last = self._samples.get(pid)
        if last is None or last.started != sample.started or sample.at <= last.at:
            return 0.0
        return max(0.0, (sample.cpu_s - last.cpu_s) / (sample.at - last.at) * 100)

    def _children_reader(self) -> Callable[[int], list[int]]:
        """pid → its children's pids: from /proc (a few small reads per tree) where the
        kernel lists children, else from one scan of every process."""
        if _PROC_CHILDREN:
            return _proc_children
        children: dict[int, list[int]] = {}
        for proc in psutil.process_iter(["ppid"]):
            ppid = proc.info.get("ppid")
            if ppid is not None:
                children.setdefault(int(ppid), []).append(proc.pid)
        return lambda pid: children.get(pid, [])

    def _process(self, pid: int) -> psutil.Process | None:
        """The kept `Process` of `pid` (unless the pid was reused), else a new one."""
        kept = self._procs.get(pid)
        if kept is not None and kept.is_running():
            return kept
        try:
            return psutil.Process(pid)
        except psutil.Error:
            return None

    def _read_git(
        self,
        run: Run,
        rows: Sequence[TaskRow],
        captured: Mapping[str, tuple[str, ...]],
        focus: str | None,
        now: float,
        problems: list[str],
    ) -> int:
        """Inspect the worktrees that may have changed; returns how many were inspected."""
        inspections = 0
        for row in rows:
            if row.started_at is None and row.attempt == 0:
                continue  # never ran: no worktree worth reading yet
            worktree = Path(row.worktree)
            token = self._heads.token(worktree)
            seen = self._git.get(row.id)
            output = captured.get(row.pane_id or "", ()) if row.status.active else ()
            output_changed = output != self._outputs.get(row.id, ())
            self._outputs[row.id] = output
            interval = self.git_interval if row.id == focus else self.background_git_interval
            due = (
                seen is None
                or token != seen.token
                or row.status != seen.status
                or row.attempt != seen.attempt
                or (output_changed and now - seen.checked_at >= interval)
            )
            if due and token is not None:
                base = row.start_sha or run.base_sha
                try:
                    state: worktrees.WorktreeState | None = worktrees.inspect(worktree, base)
                except LimitlessError as exc:
                    problems.append(f"git in {worktree}: {exc}")
                    state = seen.state if seen else None
                inspections += 1
                previous = seen
                seen = _GitSeen(token, row.status, row.attempt, now, state)
                if previous is not None:
                    seen.diffstat_head, seen.diffstat = previous.diffstat_head, previous.diffstat
                self._git[row.id] = seen
            elif due:
                self._git[row.id] = _GitSeen(None, row.status, row.attempt, now, None)
            seen = self._git.get(row.id)
            if row.id == focus and seen is not None:
                self._refresh_diffstat(run, row, seen, problems)
        return inspections

    def _refresh_diffstat(
        self, run: Run, row: TaskRow, seen: _GitSeen, problems: list[str]
    ) -> None:
        head = seen.state.head if seen.state is not None else row.head_sha
        if head is None or head == seen.diffstat_head:
            return
        base = row.start_sha or run.base_sha
        try:
            seen.diffstat = worktrees.diffstat_text(Path(run.repo_root), base, head)
        except LimitlessError as exc:
            problems.append(f"git diff --stat of {row.id}: {exc}")
            seen.diffstat = ""
        seen.diffstat_head = head

    def _tail_of(
        self, run: Run, row: TaskRow, captured: Mapping[str, tuple[str, ...]]
    ) -> tuple[str, ...]:
        """The pane's last lines while the task runs there, else its log's last lines."""
        if row.status.active and row.pane_id in captured:
            return tuple(strip_ansi(line) for line in captured[row.pane_id or ""])
        if row.started_at is None and row.attempt == 0:
            return ()
        path = self.store().log_path(run.id, row.id)
        try:
            info = path.stat()
        except OSError:
            return ()
        seen = self._logs.get(row.id)
        if seen is not None and (seen.size, seen.mtime) == (info.st_size, info.st_mtime_ns):
            return seen.tail
        try:
            with path.open("rb") as handle:
                handle.seek(max(0, info.st_size - LOG_TAIL_BYTES))
                data = handle.read(LOG_TAIL_BYTES)
        except OSError:
            return ()
        tail = last_lines_of(data, self.tail_lines)
        self._logs[row.id] = _LogSeen(info.st_size, info.st_mtime_ns, tail)
        return tail

    def _view(
        self,
        run: Run,
        row: TaskRow,
        captured: Mapping[str, tuple[str, ...]],
        usage: Mapping[str, _Usage],
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
        seen = self._git.get(row.id)
        state = seen.state if seen is not None else None
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
            diffstat=seen.diffstat if seen is not None and row.id == focus else "",
            waiting=row.waiting_kind,
            idle_done_at=row.idle_done_at if row.status is TaskStatus.WAITING else None,
        )

    def _notices(self, run: Run, rows: Sequence[TaskRow], events: Sequence[Event]) -> list[Notice]:
        """Failures, questions and the run's end: from new events, and from status changes.

        Each time a task comes to need input is told once (an agent may ask many
        times in one attempt); an idle task is not told: it ends by itself."""
        notices: list[Notice] = []
        attempts = {row.id: row.attempt for row in rows}

        def add(
            kind: NoticeKind, task_id: str | None, text: str, severity: Severity, nth: int = 0
        ) -> None:
            key = (kind, task_id, attempts.get(task_id or "", 0), nth)
            if key not in self._notified:
                self._notified.add(key)
                notices.append(Notice(kind, task_id, text, severity))

        first = self._run_finished is None
        asked_now: set[str] = set()
        for event in events:
            text = describe(event) or event.kind
            if event.kind == "task_failed":
                add("failed", event.task_id, text, "error")
            elif event.kind == "task_waiting" and event.task_id:
                asked_now.add(event.task_id)
                self._asked[event.task_id] = self._asked.get(event.task_id, 0) + 1
                add("waiting", event.task_id, text, "warning", self._asked[event.task_id])
            elif event.kind == "run_done":
                add("run_ended", None, self._end_text(run, rows), self._end_severity(run))
            elif event.kind == "budget_alert":
                notices.append(Notice("budget", event.task_id, budget_text(event), "warning"))
        for row in rows:
            before = self._seen_status.get(row.id)
            now_seen = (task_state(row.status, row.waiting_kind), row.attempt)
            if not first and before != now_seen:
                detail = f" — {row.reason}" if row.reason else ""
                if row.status is TaskStatus.WAITING and row.waiting_kind is not Waiting.IDLE:
                    if row.id not in asked_now:  # its event came before this dashboard looked
                        self._asked[row.id] = self._asked.get(row.id, 0) + 1
                    why = row.waiting_reason or row.reason
                    asks = "needs input" if row.waiting_kind is Waiting.INPUT else "is waiting"
                    icon = "?" if row.waiting_kind is Waiting.INPUT else "…"
                    add(
                        "waiting",
                        row.id,
                        f"{icon} {row.id} {asks}" + (f" — {why}" if why else ""),
                        "warning",
                        self._asked.get(row.id, 0),
                    )
                elif row.status is TaskStatus.FAILED:
                    add("failed", row.id, f"✗ {row.id} failed{detail}", "error")
            self._seen_status[row.id] = now_seen
        finished = run.status.finished
        if not first and finished and not self._run_finished:
            add("run_ended", None, self._end_text(run, rows), self._end_severity(run))
        if first and finished:
            self._notified.add(("run_ended", None, 0, 0))
        self._run_finished = finished
        return notices

    @staticmethod
    def _end_text(run: Run, rows: Sequence[TaskRow]) -> str:
        reason = f": {run.reason}" if run.reason else ""
        merged = sum(1 for row in rows if row.merge_status is MergeStatus.MERGED)
        if run.landed and run.merged_sha:
            reason += f"; {merged} merged, landed on {run.base} at {run.merged_sha[:8]}"
        elif merged:
            reason += f"; {merged} merged on limitless/{run.id}/merged, not landed"
        return f"run {run.id} {run.status}{reason}"

    @staticmethod
    def _end_severity(run: Run) -> Severity:
        return "information" if run.status is RunStatus.DONE else "error"

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
        head = row.branch if worktrees.branch_exists(repo, row.branch) else row.head_sha
        if head is None:
            return ""
        return worktrees.diff_text(repo, base, head)

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


# ----------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class PollCost:
    """What `measure_poll` found."""

    polls: int
    tasks: int
    mean_ms: float
    median_ms: float
    max_ms: float
    cpu_ms_per_poll: float
    """CPU time of this process and its children (git, tmux) per poll."""
    tmux_calls_per_poll: float
    git_inspections_per_poll: float


def measure_poll(monitor: Monitor, *, polls: int = 20, interval: float = 1.0) -> PollCost:
    """Poll `polls` times, `interval` seconds apart, and report what a poll costs."""
    this = psutil.Process()
    timings: list[float] = []
    tmux_calls = inspections = 0
    tasks = 0
    cpu_before = _cpu_with_children(this)
    for number in range(polls):
        shot = monitor.poll(focus=None)
        tasks = len(shot.tasks)
        if number:  # the first poll fills the caches
            timings.append(shot.stats.total_ms)
            tmux_calls += shot.stats.tmux_calls
            inspections += shot.stats.git_inspections
        else:
            cpu_before = _cpu_with_children(this)
        time.sleep(interval)
    cpu_after = _cpu_with_children(this)
    counted = max(1, len(timings))
    ordered = sorted(timings) or [0.0]
    return PollCost(
        polls=len(timings),
        tasks=tasks,
        mean_ms=sum(timings) / counted,
        median_ms=ordered[len(ordered) // 2],
        max_ms=ordered[-1],
        cpu_ms_per_poll=(cpu_after - cpu_before) * 1000 / counted,
        tmux_calls_per_poll=tmux_calls / counted,
        git_inspections_per_poll=inspections / counted,
    )


def _cpu_with_children(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


__all__ = [
    "BASE",
    "Monitor",
    "Notice",
    "PollCost",
    "PollStats",
    "Snapshot",
    "TaskView",
    "budget_text",
    "conflicts_by_task",
    "estimated_progress",
    "head_token",
    "last_lines_of",
    "measure_poll",
    "strip_ansi",
]
