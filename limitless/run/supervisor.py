"""The supervisor: schedules ready tasks into slots, notices their end, merges.

It runs in the `control` window of the run's tmux session (`limitless
_supervise`). It holds nothing that cannot be rebuilt from the store, git and
tmux: killed at any point, `limitless resume` starts a new one that adopts what
still runs and goes on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from limitless.agents import ratelimit
from limitless.agents.state import StateWatcher
from limitless.agents.wrapper import wake_channel
from limitless.crashpoints import crashpoint
from limitless.errors import LimitlessError, TmuxError
from limitless.fmt import duration
from limitless.git import worktrees
from limitless.git.refs import attempt_ref, branch_name
from limitless.git.sparse import task_cone
from limitless.merge import phase as merge
from limitless.merge import predict
from limitless.plan.graph import Dag
from limitless.plan.loader import Plan, Task
from limitless.plan.overlap import conflicts_by_task, overlapping_pairs
from limitless.programs.profiles import can_resume
from limitless.run.hooks import HookRunner
from limitless.run.ports import LeaseBook, lease_key, port_env, ports_in_env
from limitless.states import ControlAction, RunStatus, TaskStatus, task_state
from limitless.store.store import ControlRequest, Run, Store, TaskRow
from limitless.tmux.session import PaneState, TmuxSession
from limitless.views.stats import BudgetWatch

log = logging.getLogger(__name__)

ACTIVE = (TaskStatus.RUNNING, TaskStatus.WAITING)
NOT_DONE_TERMINAL = (TaskStatus.FAILED, TaskStatus.BLOCKED, TaskStatus.KILLED)
DEFAULT_MEMORY_FLOOR = 1 << 30
RETRY_BACKOFF_S = (2.0, 5.0, 15.0, 30.0)
TIMEOUT_GRACE_S = 30.0
STATUS_WAIT_S = 3.0
"""How long a dead pane may lack its exit status before its task is judged without it."""
TITLE_INTERVAL_S = 2.0
PREDICTION_INTERVAL_S = 5.0
WRAPPER_FINISH_S = 30.0  # how long a slot waits for a done task's wrapper to finish
MARKED_DONE = "marked done by request"


def exec_argv(run_id: str, task_id: str, state_dir: Path) -> list[str]:
    """The command a slot pane runs for one attempt of one task."""
    return [
        sys.executable, "-m", "limitless", "_exec",
        "--run", run_id, "--task", task_id, "--state-dir", str(state_dir),
    ]  # fmt: skip


def retry_delay(attempt: int) -> float:
    return RETRY_BACKOFF_S[min(attempt - 1, len(RETRY_BACKOFF_S) - 1)]


@dataclass
class Slot:
    index: int
    pane_id: str
    task_id: str | None = None
    freed_at: float = 0.0


@dataclass
class Picture:
    """What the supervisor knows at one tick: rows from the store, panes from tmux."""

    rows: dict[str, TaskRow]
    panes: dict[str, PaneState] = field(default_factory=dict)

    def status(self, task_id: str) -> TaskStatus:
        return self.rows[task_id].status


class Supervisor:
    """One run's scheduling loop. Use from one thread; `run()` returns the exit code."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        *,
        tmux: TmuxSession,
        poll_interval: float = 0.25,
        memory_floor: int = DEFAULT_MEMORY_FLOOR,
        out: Callable[[str], None] = print,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.run: Run = store.get_run(run_id)
        self.plan = Plan.from_json(self.run.plan_json)
        self.dag = Dag.from_tasks(self.plan.tasks)
        self.tmux = tmux
        self.poll_interval = poll_interval
        self.memory_floor = memory_floor
        self.out = out
        self.repo_root = Path(self.run.repo_root)
        self.slots = [
            Slot(index=i, pane_id=pane) for i, pane in enumerate(self.run.slot_panes.split(","))
        ]
        self.wave_of = {tid: i for i, wave in enumerate(self.dag.waves()) for tid in wave}
        self.kept_apart = (
            conflicts_by_task(overlapping_pairs(self.plan, self.dag))
            if self.plan.overlap == "serialize"
            else {}
        )
        self.started: set[str] = set()
        self.prepared: dict[str, Future[worktrees.PreparedWorktree]] = {}
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="worktree")
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.last_titles = 0.0
        self.gate_reason = ""
        self.merge_message = ""
        self.dead_unreported: dict[str, float] = {}
        self.hooks = HookRunner(store, run_id, self.plan.hooks, self.repo_root, out=self._say)
        self.budget = BudgetWatch(store, run_id, self.plan.budget)
        self.watcher = StateWatcher(store, run_id, self.plan, tmux)
        self.throttle = ratelimit.Throttle(slots=len(self.slots))
        self.free_attempts: dict[str, tuple[int, int]] = {}  # task → (attempt, earlier free)
        self.finishing_since: dict[str, float] = {}
        self.predictor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self.predicting: Future[int] | None = None
        self.last_prediction = 0.0
        self.leases = LeaseBook()
        self.merge_checkout: Future[bool] | None = None
        self.merge_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="merge-checkout")
        self.max_active_agents = _max_active_agents()

    # ---------------------------------------------------------------- loop

    def run_loop(self) -> int:
        self.store.update_run(self.run_id, supervisor_pid=os.getpid())
        self.store.add_event(self.run_id, "supervisor_started", pid=os.getpid())
        self._say(f"supervisor of {self.run_id} started (pid {os.getpid()})")
        waker = threading.Thread(target=self._listen, name="waker", daemon=True)
        waker.start()
        try:
            picture = self._look()
            self._adopt(picture)
            while True:
                crashpoint("tick")
                picture = self._look()
                self._pick_up_added(picture)
                self._handle_requests(picture)
                self._check_panes(picture)
                self.watcher.tick(picture.rows, picture.panes)
                self._settle(picture)
                self._stop_on_spent_budget(picture)
                self._check_budget(picture)
                if self._all_terminal(picture):
                    break
                self._schedule(picture)
                self._update_titles(picture)
                self._refresh_predictions()
                self.hooks.tick()
                self.wake.wait(self.poll_interval)
                self.wake.clear()
            return self._finish()
        finally:
            self.stopping.set()
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.predictor.shutdown(wait=True, cancel_futures=True)
            self.merge_pool.shutdown(wait=True, cancel_futures=True)
            self.hooks.close()

    def _listen(self) -> None:
        """Wake the loop as soon as a wrapper signals its end (tmux wait-for)."""
        channel = wake_channel(self.run_id)
        while not self.stopping.is_set():
            try:
                if self.tmux.wait(channel, timeout=5.0):
                    self.wake.set()
            except (TmuxError, OSError):
                if self.stopping.wait(1.0):
                    return

    def _look(self) -> Picture:
        rows = {row.id: row for row in self.store.get_tasks(self.run_id)}
        try:
            panes = {pane.pane_id: pane for pane in self.tmux.panes()}
        except TmuxError:
            panes = {}
        return Picture(rows=rows, panes=panes)

    # ---------------------------------------------------------------- adopt

    def _adopt(self, picture: Picture) -> None:
        """After a restart: reclaim slots whose wrapper still runs; fail the lost ones."""
        for row in picture.rows.values():
            if row.status not in ACTIVE:
                continue
            self.started.add(row.id)
            slot = self._slot_of_pane(row.pane_id)
            pane = picture.panes.get(row.pane_id or "")
            if picture.panes and not row.pid and not _pane_runs_wrapper(pane, row):
                self._requeue_unstarted(row)
            elif slot and pane and not pane.dead and _wrapper_alive(row):
                slot.task_id = row.id
                # hold its place under the caps again, with the ports its agent has
                self._lease(self.plan.task(row.id), keep=_wrapper_ports(row))
                self._say(f"adopted {row.id} still running in slot {slot.index + 1}")
                self.store.add_event(self.run_id, "task_adopted", row.id)
        for row in picture.rows.values():
            if row.status is TaskStatus.DONE or row.attempt > 0:
                self.started.add(row.id)

    def _requeue_unstarted(self, row: TaskRow) -> None:
        """Marked running, but the last supervisor died before the pane started its wrapper."""
        if self.store.transition(
            self.run_id,
            row.id,
            ACTIVE,
            TaskStatus.READY,
            attempt=max(row.attempt - 1, 0),
            pane_id=None,
            started_at=None,
            reason="",
        ):
            self.store.add_event(self.run_id, "task_requeued", row.id)
            self._say(f"{row.id} was never started (the supervisor died first): queued again")

    def _slot_of_pane(self, pane_id: str | None) -> Slot | None:
        return next((slot for slot in self.slots if slot.pane_id == pane_id), None)

    # ---------------------------------------------------------------- requests

    def _handle_requests(self, picture: Picture) -> None:
        for request in self.store.pending_requests(self.run_id):
            try:
                result = self._apply(request, picture)
            except LimitlessError as exc:
                result = f"failed: {exc}"
            self.store.complete_request(request.id, result)
            self.store.add_event(
                self.run_id,
                "request_handled",
                request.task_id,
                action=str(request.action),
                result=result,
            )
            self._say(f"{request.action} {request.task_id or ''}: {result}")
            picture.rows = {row.id: row for row in self.store.get_tasks(self.run_id)}

    def _apply(self, request: ControlRequest, picture: Picture) -> str:
        if request.action is ControlAction.MERGE:
            return "the merge phase runs once every task is terminal"
        task_id = request.task_id or ""
        if task_id not in picture.rows:
            return f"unknown task {task_id!r}"
        row = picture.rows[task_id]
        if request.action is ControlAction.KILL:
            return self._kill(row)
        if request.action is ControlAction.DONE:
            return self._mark_done(row)
        return self._retry(row)

    def _kill(self, row: TaskRow) -> str:
        if row.status.terminal:
            return f"not killed: already {row.status}"
        now = time.time()
        if not self.store.transition(
            self.run_id,
            row.id,
            (row.status,),
            TaskStatus.KILLED,
            reason="killed by request",
            ended_at=now if row.status in ACTIVE else None,
        ):
            return "not killed: its status changed meanwhile"
        if row.status in ACTIVE:
            _stop_wrapper(row)  # its slot is freed once the wrapper has saved the work and exited
        self.store.add_event(self.run_id, "task_killed", row.id)
        return "killed"

    def _mark_done(self, row: TaskRow) -> str:
        if row.status not in ACTIVE:
            return f"not marked done: it is {row.status}, not running or waiting"
        if not self.store.transition(
            self.run_id, row.id, ACTIVE, TaskStatus.DONE, reason=MARKED_DONE
        ):
            return "not marked done: its status changed meanwhile"
        _stop_wrapper(row)
        return "marked done"

    def _retry(self, row: TaskRow) -> str:
        if row.status not in NOT_DONE_TERMINAL:
            return f"not retried: it is {row.status}"
        self.store.transition(
            self.run_id,
            row.id,
            (row.status,),
            TaskStatus.PENDING,
            reason="retry requested",
            not_before=None,
        )
        for dependant in self.dag.descendants(row.id):
            self.store.transition(
                self.run_id, dependant, (TaskStatus.BLOCKED,), TaskStatus.PENDING, reason=""
            )
        return "queued for retry"

    # ---------------------------------------------------------------- liveness

    def _check_panes(self, picture: Picture) -> None:
        """A task still `running` whose pane died or vanished lost its wrapper."""
        now = time.time()
        for row in list(picture.rows.values()):
            if row.status not in ACTIVE:
                continue
            pane = picture.panes.get(row.pane_id or "")
            timed_out = (
                self.plan.task(row.id).timeout_s is not None
                and row.started_at is not None
                and now - row.started_at > (self.plan.task(row.id).timeout_s or 0) + TIMEOUT_GRACE_S
            )
            if pane is not None and not pane.dead and not timed_out:
                continue
            if pane is not None and not timed_out and self._status_pending(row.id, pane, now):
                continue  # its terminal closed a moment before tmux reaped it: look again
            if picture.panes == {} and not timed_out:
                continue  # tmux did not answer this tick; do not judge
            fresh = self.store.get_task(self.run_id, row.id)
            if fresh.status not in ACTIVE:
                picture.rows[row.id] = fresh
                continue
            if timed_out:
                _stop_wrapper(fresh)
                reason = "timed out; the wrapper did not stop it, so the supervisor did"
            elif pane is None:
                reason = "its tmux pane vanished"
            else:
                reason = f"its wrapper died ({_how_pane_ended(pane)})"
            if self.store.transition(
                self.run_id, row.id, ACTIVE, TaskStatus.FAILED, reason=reason, ended_at=now
            ):
                self.store.add_event(self.run_id, "task_failed", row.id, reason=reason)
                self._say(f"{row.id} failed: {reason}")
            picture.rows[row.id] = self.store.get_task(self.run_id, row.id)

    # ---------------------------------------------------------------- settle

    def _settle(self, picture: Picture) -> None:
        """Free slots of ended tasks, retry or block after failures, mark ready tasks."""
        now = time.time()
        for slot in self.slots:
            if slot.task_id and picture.status(slot.task_id) not in ACTIVE:
                ended = picture.rows[slot.task_id]
                if self._wrapper_finishing(ended, now):
                    continue
                self._announce_end(ended)
                self._title(slot, ended, now)
                self._release_lease(slot.task_id)
                slot.task_id = None
                slot.freed_at = now
        for task_id in self.dag.topological_order():
            row = picture.rows[task_id]
            task = self.plan.task(task_id)
            if row.status is TaskStatus.FAILED and self._rate_limit_retry(row, now):
                picture.rows[task_id] = self.store.get_task(self.run_id, task_id)
                continue
            if (
                row.status is TaskStatus.FAILED
                and row.attempt - self._free_attempts(row) < 1 + task.retries
            ):
                delay = retry_delay(row.attempt)
                if self.store.transition(
                    self.run_id,
                    task_id,
                    (TaskStatus.FAILED,),
                    TaskStatus.READY,
                    not_before=now + delay,
                    reason=f"retrying in {delay:.0f}s after: {row.reason}",
                ):
                    self.store.add_event(self.run_id, "task_retry", task_id, attempt=row.attempt)
                    self._say(f"{task_id}: retry {row.attempt + 1} in {delay:.0f}s")
                picture.rows[task_id] = self.store.get_task(self.run_id, task_id)
                continue
            if row.status is not TaskStatus.PENDING:
                continue
            deps = self.dag.dependencies(task_id)
            bad = [d for d in deps if picture.status(d) in NOT_DONE_TERMINAL]
            if bad:
                reason = f"blocked: {bad[0]} {picture.status(bad[0])}"
                if self.store.transition(
                    self.run_id, task_id, (TaskStatus.PENDING,), TaskStatus.BLOCKED, reason=reason
                ):
                    self.store.add_event(self.run_id, "task_blocked", task_id, by=bad[0])
            elif all(picture.status(d) is TaskStatus.DONE for d in deps):
                self.store.transition(
                    self.run_id, task_id, (TaskStatus.PENDING,), TaskStatus.READY, reason=""
                )
            picture.rows[task_id] = self.store.get_task(self.run_id, task_id)

    def _wrapper_finishing(self, row: TaskRow, now: float) -> bool:
        """A task marked done or killed keeps its slot while its wrapper saves the work.

        Until the wrapper records the end (for done, its reason replaces
        MARKED_DONE) or exits, the pane must not be respawned (`respawn-pane -k`
        would kill a commit in progress) and the merge phase must not start.
        """
        marked_done = row.status is TaskStatus.DONE and row.reason == MARKED_DONE
        if not (marked_done or row.status is TaskStatus.KILLED) or row.pid is None:
            return False
        since = self.finishing_since.setdefault(row.id, now)
        if now - since < WRAPPER_FINISH_S and _wrapper_alive(row):
            return True
        self.finishing_since.pop(row.id, None)
        return False

    # ---------------------------------------------------------------- rate limits

    def _free_attempts(self, row: TaskRow) -> int:
        """How many of the task's attempts were rate limited (they do not count)."""
        cached = self.free_attempts.get(row.id)
        if cached is None or cached[0] != row.attempt:
            attempts = self.store.attempts(self.run_id, row.id)
            cached = (row.attempt, ratelimit.free_attempts(attempts, row.attempt, ""))
            self.free_attempts[row.id] = cached
        free = cached[1] + int(ratelimit.is_rate_limited(row.reason))
        return min(free, ratelimit.MAX_FREE_RETRIES)

    def _rate_limit_retry(self, row: TaskRow, now: float) -> bool:
        """Retry a rate-limited task after a back-off, uncounted; lower the concurrency."""
        if not ratelimit.is_rate_limited(row.reason):
            return False
        hits = self._free_attempts(row)
        if self.free_attempts[row.id][1] >= ratelimit.MAX_FREE_RETRIES:
            return False  # rate limited too often: this one counts like any failure
        delay = ratelimit.backoff_s(hits)
        if not self.store.transition(
            self.run_id,
            row.id,
            (TaskStatus.FAILED,),
            TaskStatus.READY,
            not_before=now + delay,
            reason=f"{row.reason}; retrying in {delay:.0f}s (not counted as an attempt)",
        ):
            return True
        cap = self.throttle.hit(now, delay, row.reason)
        self.store.add_event(
            self.run_id,
            "task_rate_limited",
            row.id,
            attempt=row.attempt,
            delay_s=delay,
            concurrency=cap,
            reason=row.reason,
        )
        self._say(
            f"{row.id}: {row.reason}; retry in {delay:.0f}s, not counted; "
            f"at most {cap} task{'s' if cap != 1 else ''} at once for a while"
        )
        return True

    def _continues_conversation(self, row: TaskRow, task: Task) -> bool:
        """A retried interactive task with a known session resumes it on its own work."""
        return can_resume(self.plan.profile(task), row.session_id, row.attempt + 1)

    def _announce_end(self, row: TaskRow) -> None:
        mark = "✓" if row.status is TaskStatus.DONE else "✗"
        elapsed = (row.ended_at or time.time()) - (row.started_at or time.time())
        detail = f" — {row.reason}" if row.reason else ""
        self._say(f"{mark} {row.id} {row.status} after {duration(elapsed)}{detail}")

    def _all_terminal(self, picture: Picture) -> bool:
        return all(row.status.terminal for row in picture.rows.values()) and not any(
            slot.task_id for slot in self.slots
        )

    # ---------------------------------------------------------------- schedule

    def _schedule(self, picture: Picture) -> None:
        now = time.time()
        ready = [
            row.id
            for row in picture.rows.values()
            if row.status is TaskStatus.READY and (row.not_before or 0) <= now
        ]
        if self.run.schedule == "waves":
            ready = self._current_wave(picture, ready)
        order = self.dag.ready_order(ready, started=self.started)
        self._prepare_ahead(order)
        self._prepare_merge_ahead(picture)
        active = [row for row in picture.rows.values() if row.status in ACTIVE]
        running_exclusive = any(self.plan.task(row.id).exclusive for row in active)
        free = sorted((s for s in self.slots if s.task_id is None), key=lambda s: s.freed_at)
        gate = ""
        for task_id in order:
            if not free or running_exclusive:
                break
            task = self.plan.task(task_id)
            if task.exclusive and (active or len(free) < len(self.slots)):
                gate = f"{task_id} is exclusive: waiting for running tasks to end"
                break
            beside = sorted(self.kept_apart.get(task_id, set()) & {row.id for row in active})
            if beside:
                continue  # overlap: serialize — its declared files overlap a running task's
            gate = (
                self._resource_gate()
                or self._budget_gate(picture)
                or self._agents_gate()
                or self.throttle.gate(time.time(), len(active))
            )
            if gate:
                break
            future = self.prepared.get(task_id)
            if future is None or not future.done():
                continue
            try:
                prepared = future.result()
            except LimitlessError as exc:
                self._fail_before_start(task_id, f"worktree not prepared: {exc}")
                continue
            slot = free.pop(0)
            if self._launch(picture.rows[task_id], task, prepared, slot):
                active.append(picture.rows[task_id])
                if task.exclusive:
                    break
        if gate != self.gate_reason:
            self.gate_reason = gate
            self.store.update_run(self.run_id, reason=gate)
            if gate:
                self._say(gate)

    def _current_wave(self, picture: Picture, ready: list[str]) -> list[str]:
        """`--schedule waves`: only the lowest wave with unfinished tasks may start."""
        open_waves = [self.wave_of[r.id] for r in picture.rows.values() if not r.status.terminal]
        if not open_waves:
            return []
        current = min(open_waves)
        return [task_id for task_id in ready if self.wave_of[task_id] == current]

    def _resource_gate(self) -> str:
        available = psutil.virtual_memory().available
        if available < self.memory_floor:
            return (
                f"waiting for memory: {available >> 20} MiB available, "
                f"{self.memory_floor >> 20} MiB needed to start an agent"
            )
        return ""

    def _prepare_ahead(self, order: list[str]) -> None:
        """Check out worktrees of the next ready tasks while others run."""
        free = sum(1 for slot in self.slots if slot.task_id is None)
        for task_id in order[: free + 2]:
            if task_id not in self.prepared:
                self.prepared[task_id] = self.pool.submit(self._prepare, task_id)

    def _prepare_merge_ahead(self, picture: Picture) -> None:
        """Check out the merge worktree once the first agents work, so merging starts at once.

        Not before: the first wave's checkouts come first. Only `git worktree
        add --no-checkout` takes the worktree lock, so the checkout itself
        delays no task's worktree.
        """
        if self.merge_checkout is not None or self.run.no_merge or not self.started:
            return
        ready = any(row.status is TaskStatus.READY for row in picture.rows.values())
        if ready and any(slot.task_id is None for slot in self.slots):
            return
        self.merge_checkout = self.merge_pool.submit(self._check_out_merge)

    def _check_out_merge(self) -> bool:
        try:
            return merge.prepare_ahead(self.store_for_thread(), self.run_id)
        except LimitlessError as exc:
            log.info("merge worktree not prepared ahead", extra={"error": str(exc)})
            return False

    def _prepare(self, task_id: str) -> worktrees.PreparedWorktree:
        task = self.plan.task(task_id)
        row = self.store_for_thread().get_task(self.run_id, task_id)
        merge_branches = sorted(
            {
                branch_name(self.run_id, self.plan.task(dep).worktree_key)
                for dep in self.dag.dependencies(task_id)
                if self.plan.task(dep).worktree_key != task.worktree_key
            }
        )
        return worktrees.prepare_worktree(
            self.repo_root,
            path=Path(row.worktree),
            branch=row.branch,
            base_sha=self.run.base_sha,
            merge_branches=merge_branches,
            copy=self.plan.copy,
            link=self.plan.link,
            lock_dir=self.store.state_dir,
            hooks=self.plan.commit_hooks == "run",
            sparse=task_cone(self.plan, task),
        )

    _thread_stores: threading.local = threading.local()

    def store_for_thread(self) -> Store:
        """SQLite connections are per thread: worker threads open their own."""
        store: Store | None = getattr(self._thread_stores, "store", None)
        if store is None:
            store = Store.open(self.store.state_dir)
            self._thread_stores.store = store
        return store

    def _fail_before_start(self, task_id: str, reason: str) -> None:
        self.prepared.pop(task_id, None)
        if self.store.transition(
            self.run_id,
            task_id,
            (TaskStatus.READY,),
            TaskStatus.FAILED,
            reason=reason,
            ended_at=time.time(),
        ):
            self.store.add_event(self.run_id, "task_failed", task_id, reason=reason)
            self._say(f"✗ {task_id} failed before start: {reason}")

    def _launch(
        self, row: TaskRow, task: Task, prepared: worktrees.PreparedWorktree, slot: Slot
    ) -> bool:
        attempt = row.attempt + 1
        start_sha = row.start_sha or prepared.start_sha
        if row.attempt > 0 and not self._continues_conversation(row, task):
            try:
                worktrees.reset_for_retry(
                    self.repo_root,
                    prepared.path,
                    start_sha=start_sha,
                    keep_ref=attempt_ref(self.run_id, task.id, row.attempt),
                )
            except LimitlessError as exc:
                self._fail_before_start(task.id, f"could not reset the worktree: {exc}")
                return False
        lease_env = self._lease(task)
        if lease_env is None:
            return False
        now = time.time()
        if not self.store.transition(
            self.run_id,
            task.id,
            (TaskStatus.READY,),
            TaskStatus.RUNNING,
            attempt=attempt,
            pane_id=slot.pane_id,
            slot=slot.index,
            started_at=now,
            ended_at=None,
            exit_code=None,
            pid=None,
            reason="",
            start_sha=start_sha,
            setup_done=row.setup_done or not prepared.created,
            progress=None,
        ):
            self._release_lease(task.id)
            return False
        crashpoint("respawn")
        try:
            self.tmux.respawn(
                slot.pane_id,
                exec_argv(self.run_id, task.id, self.store.state_dir),
                cwd=prepared.path,
                env={**self._pane_env(), **lease_env},
            )
        except TmuxError as exc:
            self._release_lease(task.id)
            self.store.transition(
                self.run_id,
                task.id,
                (TaskStatus.RUNNING,),
                TaskStatus.FAILED,
                reason=f"could not start its pane: {exc}",
                ended_at=time.time(),
            )
            return False
        slot.task_id = task.id
        self.started.add(task.id)
        self.prepared.pop(task.id, None)
        self.store.add_event(
            self.run_id, "task_launched", task.id, attempt=attempt, slot=slot.index
        )
        if prepared.created:
            self.store.add_event(
                self.run_id,
                "worktree_checked_out",
                task.id,
                seconds=round(prepared.checkout_s, 3),
                sparse=task_cone(self.plan, task) is not None,
            )
        self._say(f"▶ {task.id} started in slot {slot.index + 1} (attempt {attempt})")
        with contextlib.suppress(TmuxError):
            self.tmux.set_title(slot.pane_id, f"{task.id} · running · 0s")
        return True

    def _check_budget(self, picture: Picture) -> None:
        """Record (once) a `budget_alert` event when the costs reach budget.alert_at."""
        message = self.budget.tick(picture.rows)
        if message:
            self._say(message)

    # ---------------------------------------------------------------- budget, leases, added tasks

    def _budget_gate(self, picture: Picture) -> str:
        """Once the reported costs reach `budget.max_cost_usd`, no new task starts."""
        limit = self.plan.budget.max_cost_usd
        if limit is None:
            return ""
        spent = sum(row.cost_usd or 0.0 for row in picture.rows.values())
        if spent < limit:
            return ""
        return (
            f"budget spent: ${spent:.2f} of ${limit:.2f} (budget.max_cost_usd); "
            "no new task starts, running ones finish"
        )

    def _stop_on_spent_budget(self, picture: Picture) -> None:
        """Budget spent and nothing running: tasks not started end as blocked, so the run ends."""
        reason = self._budget_gate(picture)
        if not reason or any(row.status in ACTIVE for row in picture.rows.values()):
            return
        if any(slot.task_id for slot in self.slots):
            return
        for row in list(picture.rows.values()):
            if row.status not in (TaskStatus.PENDING, TaskStatus.READY):
                continue
            if self.store.transition(
                self.run_id,
                row.id,
                (TaskStatus.PENDING, TaskStatus.READY),
                TaskStatus.BLOCKED,
                reason=f"not started: {reason.split(';')[0]}",
            ):
                self.store.add_event(self.run_id, "task_blocked", row.id, by="budget")
                self._say(f"{row.id} not started: {reason.split(';')[0]}")
            picture.rows[row.id] = self.store.get_task(self.run_id, row.id)

    def _agents_gate(self) -> str:
        """`max_active_agents` of the user config: a cap across every run on this machine."""
        cap = self.max_active_agents
        if cap is None:
            return ""
        try:
            active = len(self.leases.active())
        except LimitlessError:
            return ""
        if active < cap:
            return ""
        return f"waiting: {active} agents run on this machine, max_active_agents is {cap}"

    def _lease(self, task: Task, keep: tuple[int, ...] = ()) -> dict[str, str] | None:
        """Lease the task's ports (and its place under max_active_agents); its env, or None.

        `keep`: the ports an adopted task's agent was given by the previous supervisor.
        """
        ports = task.ports if task.ports is not None else self.plan.ports
        key = lease_key(self.store.state_dir, self.run_id, task.id)
        try:
            lease = self.leases.acquire(
                key, ports=ports, pid=os.getpid(), max_active=self.max_active_agents, keep=keep
            )
        except LimitlessError as exc:
            self._say(f"{task.id}: no port lease: {exc}")
            return None
        if lease is None:
            return None
        return port_env(lease.ports, self.run_id, task.id)

    def _release_lease(self, task_id: str) -> None:
        with contextlib.suppress(LimitlessError, OSError):
            self.leases.release(lease_key(self.store.state_dir, self.run_id, task_id))

    def _pick_up_added(self, picture: Picture) -> None:
        """Tasks added to the live run (`limitless add`): re-read the plan, rebuild the Dag."""
        added = sorted(set(picture.rows) - set(self.dag.ids))
        if not added:
            return
        self.run = self.store.get_run(self.run_id)
        self.plan = Plan.from_json(self.run.plan_json)
        self.dag = Dag.from_tasks(self.plan.tasks)
        self.wave_of = {tid: i for i, wave in enumerate(self.dag.waves()) for tid in wave}
        self.watcher.plan = self.plan
        self._say(f"picked up added task{'s' if len(added) > 1 else ''}: {', '.join(added)}")
        self.store.add_event(self.run_id, "plan_reloaded", tasks=len(self.dag.ids), added=added)
        self._grow_slots()

    def _grow_slots(self) -> None:
        """A run started with fewer slots than its tasks now need (a one-task run that
        was given more) gets new slot panes, up to max_concurrency."""
        from limitless.run.launcher import idle_argv
        from limitless.tmux.session import load_layout

        wanted = min(self.run.max_concurrency, len(self.plan.tasks)) - len(self.slots)
        if wanted <= 0:
            return
        try:
            panes = self.tmux.add_slots(
                wanted,
                first_number=len(self.slots) + 1,
                layout=load_layout(self.run.layout),
                cwd=self.repo_root,
                idle_argv=idle_argv(),
                wake_channel=wake_channel(self.run_id),
            )
        except (LimitlessError, OSError) as exc:
            self._say(f"no more slots: {exc}")
            return
        self.slots += [
            Slot(index=len(self.slots) + i, pane_id=pane) for i, pane in enumerate(panes)
        ]
        self.throttle.slots = len(self.slots)
        self.store.update_run(self.run_id, slot_panes=",".join(slot.pane_id for slot in self.slots))
        self._say(f"{len(panes)} slot{'s' if len(panes) > 1 else ''} added: {len(self.slots)} now")

    def _refresh_predictions(self) -> None:
        """Recompute predicted merge conflicts in the background, at most every few seconds."""
        now = time.time()
        if self.predicting is not None and not self.predicting.done():
            return
        if now - self.last_prediction < PREDICTION_INTERVAL_S:
            return
        self.last_prediction = now
        self.predicting = self.predictor.submit(self._predict)

    def _predict(self) -> int:
        try:
            return predict.update_predictions(self.store_for_thread(), self.run_id)
        except LimitlessError as exc:
            self._say(f"conflict prediction skipped: {exc}")
            return 0

    def _pane_env(self) -> dict[str, str]:
        env = {"LIMITLESS_RUN": self.run_id}
        if self.run.tmux_socket:
            env["LIMITLESS_TMUX_SOCKET"] = self.run.tmux_socket
        return env

    def _free_slot(self, task_id: str) -> None:
        self._release_lease(task_id)
        for slot in self.slots:
            if slot.task_id == task_id:
                slot.task_id = None
                slot.freed_at = time.time()

    def _update_titles(self, picture: Picture) -> None:
        now = time.time()
        if now - self.last_titles < TITLE_INTERVAL_S:
            return
        self.last_titles = now
        for slot in self.slots:
            if slot.task_id is not None:
                self._title(slot, picture.rows[slot.task_id], now)

    def _title(self, slot: Slot, row: TaskRow, now: float) -> None:
        """`task · status · elapsed` on the pane's border."""
        elapsed = duration((row.ended_at or now) - (row.started_at or now))
        progress = (
            f" · {row.progress:.0f}%" if row.progress is not None and row.status in ACTIVE else ""
        )
        shown = task_state(row.status, row.waiting_kind).replace("_", " ")
        with contextlib.suppress(TmuxError):
            self.tmux.set_title(slot.pane_id, f"{row.id} · {shown}{progress} · {elapsed}")

    # ---------------------------------------------------------------- finish

    def _finish(self) -> int:
        rows = self.store.get_tasks(self.run_id)
        run = self.store.get_run(self.run_id)
        merge_ok = True
        if not run.no_merge:
            merge_ok = self._merge_phase()
        rows = self.store.get_tasks(self.run_id)
        done = sum(row.status is TaskStatus.DONE for row in rows)
        all_done = done == len(rows)
        ok = all_done and merge_ok
        status = RunStatus.DONE if ok else RunStatus.FAILED
        exit_code = 0 if ok else 1
        reason = self._final_reason(rows, merge_ok)
        self.store.update_run(
            self.run_id, status=status, ended_at=time.time(), exit_code=exit_code, reason=reason
        )
        self.store.add_event(self.run_id, "run_done", status=str(status), exit_code=exit_code)
        self._say(f"run {self.run_id} {status}: {reason}")
        with contextlib.suppress(TmuxError):
            self.tmux.signal(wake_channel(self.run_id) + "-done")
        return exit_code

    def _final_reason(self, rows: list[TaskRow], merge_ok: bool) -> str:
        done = sum(row.status is TaskStatus.DONE for row in rows)
        failed = [row.id for row in rows if row.status is not TaskStatus.DONE]
        text = f"{done}/{len(rows)} tasks done"
        if failed:
            text += f"; not done: {', '.join(failed)}"
        budget = next((r.reason for r in rows if r.reason.startswith("not started: budget")), "")
        if budget:
            text += f"; {budget.removeprefix('not started: ')}"
        run = self.store.get_run(self.run_id)
        if run.no_merge:
            text += "; merge skipped (--no-merge): branches left for `limitless merge`"
        elif not merge_ok:
            why = self.merge_message or f"`limitless events {self.run_id}` says why"
            text += f"; the merge phase did not finish: {why}"
        return text

    def _status_pending(self, task_id: str, pane: PaneState, now: float) -> bool:
        """A dead pane with no exit status or signal yet, seen for less than
        STATUS_WAIT_S: tmux reports the status once it reaps the process."""
        if pane.dead_status is not None or pane.dead_signal is not None:
            self.dead_unreported.pop(task_id, None)
            return False
        first = self.dead_unreported.setdefault(task_id, now)
        if now - first < STATUS_WAIT_S:
            return True
        del self.dead_unreported[task_id]  # judged now; a later death waits afresh
        return False

    def _merge_phase(self) -> bool:
        if self.merge_checkout is not None:
            # it holds the run's merge lock while it works
            with contextlib.suppress(Exception):
                self.merge_checkout.result()
        self.store.update_run(self.run_id, status=RunStatus.MERGING)
        result = merge.run_merge_phase(self.store, self.run_id, out=self._say)
        self.merge_message = result.message
        return bool(result.ok)

    def _say(self, line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        with contextlib.suppress(OSError, ValueError):
            self.out(f"{stamp} {line}")


def _max_active_agents() -> int | None:
    """The user config's cap on agents across runs (None: no cap, or an unreadable config)."""
    from limitless.plan.userconfig import load_config

    try:
        return load_config().max_active_agents
    except LimitlessError as exc:
        log.warning("user config ignored", extra={"error": str(exc)})
        return None


def _wrapper_alive(row: TaskRow) -> bool:
    """Is the recorded wrapper pid a live `limitless _exec` for this task?"""
    if not row.pid:
        return True  # launched, wrapper not yet up: the pane tells
    try:
        cmdline = psutil.Process(row.pid).cmdline()
    except psutil.Error:
        return False
    return "_exec" in cmdline and row.id in cmdline


def _wrapper_ports(row: TaskRow) -> tuple[int, ...]:
    """The ports the task's running wrapper was started with (none if unreadable)."""
    if not row.pid:
        return ()
    try:
        return ports_in_env(psutil.Process(row.pid).environ())
    except psutil.Error:
        return ()


def _pane_runs_wrapper(pane: PaneState | None, row: TaskRow) -> bool:
    """Does the pane live and run `limitless _exec` for this task (not the idle command)?"""
    if pane is None or pane.dead or not pane.pid:
        return False
    try:
        cmdline = psutil.Process(pane.pid).cmdline()
    except (psutil.Error, ValueError):
        return False
    return "_exec" in cmdline and row.id in cmdline


def _stop_wrapper(row: TaskRow) -> None:
    """SIGTERM the task's wrapper (it kills its agent's process tree and records the end)."""
    if row.pid and _wrapper_alive(row):
        with contextlib.suppress(psutil.Error):
            psutil.Process(row.pid).terminate()


def main(run_id: str, state_dir: Path) -> int:
    """Entry point of `limitless _supervise`: schedule the run until it ends."""
    with Store.open(state_dir) as store:
        run = _wait_for_panes(store, run_id)
        tmux = TmuxSession(run.tmux_socket, run.id)
        supervisor = Supervisor(store, run_id, tmux=tmux)
        return supervisor.run_loop()


def _wait_for_panes(store: Store, run_id: str, timeout: float = 10.0) -> Run:
    """`run` records the slot panes just after tmux made them: wait for that row."""
    deadline = time.monotonic() + timeout
    while True:
        run = store.get_run(run_id)
        if run.slot_panes or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


def _how_pane_ended(pane: PaneState) -> str:
    if pane.dead_signal is not None:
        return f"killed by signal {pane.dead_signal}"
    if pane.dead_status is not None:
        return f"pane exited with status {pane.dead_status}"
    return "its pane closed"
