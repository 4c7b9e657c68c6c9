"""The supervisor: schedules ready tasks into slots, notices their end, merges.

It runs in the `control` window of the run's tmux session (`limitless
_supervise`). It holds nothing that cannot be rebuilt from the store, git and
tmux: killed at any point, `limitless resume` starts a new one that adopts what
still runs and goes on.

The loop is here; its parts have rooms of their own: `picture` (what one tick
sees), `requests` (kill, done, retry), `liveness` (lost wrappers), `retries`,
`gates` (may one more task start), `background` (worktrees and predictions made
in threads) and `ending` (the end of the run).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from limitless.agents.remote import end_agents, lost_host
from limitless.agents.state import StateWatcher
from limitless.agents.wrapper import REATTACH_ENV
from limitless.crashpoints import crashpoint
from limitless.errors import LimitlessError, TmuxError
from limitless.fmt import duration
from limitless.forkserver.child import Target
from limitless.forkserver.server import spawn
from limitless.git import refs as git_refs
from limitless.git import worktrees
from limitless.git.sparse import task_cone
from limitless.hosts.ssh import connect, disconnect
from limitless.merge import phase as merge
from limitless.plan.hosts import LOCAL, Host
from limitless.plan.model import Task
from limitless.plan.overlap import conflicts_by_task, overlapping_pairs
from limitless.plan.stored import dag_of, plan_of
from limitless.programs.profiles import can_resume
from limitless.run import handon
from limitless.run.background import BackgroundWork
from limitless.run.ending import end_run
from limitless.run.gates import DEFAULT_MEMORY_FLOOR, StartGates
from limitless.run.hooks import HookRunner
from limitless.run.liveness import LostWrappers
from limitless.run.picture import ACTIVE, MARKED_DONE, NOT_DONE_TERMINAL, Picture, Slot
from limitless.run.placement import busy_hosts, choose_host
from limitless.run.processes import pane_runs_wrapper, wrapper_alive, wrapper_ports
from limitless.run.requests import apply_request
from limitless.run.retries import Retries
from limitless.states import RunStatus, TaskStatus, task_state
from limitless.store import Run, Store, TaskRow
from limitless.tmux.pane_programs import (
    EXEC_COMMAND,
    exec_argv,
    fork_socket,
    idle_argv,
    pane_env,
    wake_channel,
)
from limitless.tmux.session import TmuxSession

log = logging.getLogger(__name__)

TITLE_INTERVAL_S = 2.0
WRAPPER_FINISH_S = 30.0  # how long a slot waits for a done task's wrapper to finish
HOST_PROBE_S = 10.0  # how often a lost host is tried again
HANDOFF_WAIT_S = 0.5
"""How long a loop pass waits for a dependency merge into a worktree checked out ahead
(tens of ms), to launch its task in this pass rather than wake for the next."""


class Supervisor:
    """One run's scheduling loop. Use from one thread; `run_loop()` returns the exit code."""

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
        self.plan = plan_of(self.run)
        self.dag = dag_of(self.run)
        self.tmux = tmux
        self.poll_interval = poll_interval
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
        self.handed_on: set[str] = set()  # tasks whose worktree went to a dependant
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.last_titles = 0.0
        self.gate_reason = ""
        self.finishing_since: dict[str, float] = {}
        self.hooks = HookRunner(store, run_id, self.plan.hooks, self.repo_root, out=self._say)
        self.watcher = StateWatcher(store, run_id, self.plan, tmux)
        self.fork_socket: Path | None = None  # the run's fork server, when main() made one
        self.gates = StartGates(
            store,
            run_id,
            self.plan.budget,
            slots=len(self.slots),
            memory_floor=memory_floor,
            say=self._say,
        )
        self.retries = Retries(
            store, run_id, self.gates.throttle, self._say, on_host_lost=self._host_lost
        )
        self.lost_hosts: dict[str, float] = {}  # host → when it was last probed
        self.hosts_back: set[str] = set()  # filled by probe threads
        self.lost = LostWrappers(store, run_id, self._say)
        self.background = BackgroundWork(store, self.run, self._say, on_ready=self.wake.set)

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
                self.lost.check(picture, self.plan)
                self.watcher.tick(picture.rows, picture.panes)
                self._settle(picture)
                self.gates.block_unstarted_when_spent(
                    picture, slots_busy=any(slot.task_id for slot in self.slots)
                )
                self.gates.alert_budget(picture)
                if self._all_terminal(picture):
                    break
                self._probe_lost_hosts()
                self._schedule(picture)
                self._update_titles(picture)
                self.background.refresh_predictions()
                self.hooks.tick()
                self.wake.wait(self.poll_interval)
                self.wake.clear()
            return self._finish()
        finally:
            self.stopping.set()
            self.background.shutdown()
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
            if picture.panes and not row.pid and not pane_runs_wrapper(pane, row):
                self._requeue_unstarted(row)
            elif slot and pane and not pane.dead and wrapper_alive(row):
                slot.task_id = row.id
                slot.host = row.host
                # hold its place under the caps again, with the ports its agent has
                self.gates.lease(
                    row.id, self._ports(self.plan.task(row.id)), wrapper_ports(row, pane)
                )
                self._say(f"adopted {row.id} still running in slot {slot.index + 1}")
                self.store.add_event(self.run_id, "task_adopted", row.id)
        for row in picture.rows.values():
            if row.status is TaskStatus.DONE or row.attempt > 0:
                self.started.add(row.id)
        for row in picture.rows.values():
            if row.status in ACTIVE and self._lost_pane_on_host(row, picture):
                self._take_up(row)

    def _lost_pane_on_host(self, row: TaskRow, picture: Picture) -> bool:
        """A task running on another host whose pane (and wrapper) went away here: its
        agent may still run there, and a new pane can take the attempt up again."""
        if not row.host or row.host == LOCAL or not picture.panes or not row.pid:
            return False
        if any(slot.task_id == row.id for slot in self.slots):
            return False
        # a new tmux server numbers its panes afresh: the row's pane id may name another pane
        pane = picture.panes.get(row.pane_id or "")
        return not wrapper_alive(row) and not pane_runs_wrapper(pane, row)

    def _take_up(self, row: TaskRow) -> None:
        """Give a task whose agent runs on a host a new pane with a wrapper that watches
        it to its end (the attempt is not started again)."""
        slot = next((slot for slot in self.slots if slot.task_id is None), None)
        if slot is None:
            return  # no pane free: the lost wrapper is judged as any
        lease_env = self.gates.lease(row.id, self._ports(self.plan.task(row.id))) or {}
        self.store.update_task(self.run_id, row.id, pane_id=slot.pane_id, slot=slot.index, pid=None)
        try:
            self.tmux.respawn(
                slot.pane_id,
                exec_argv(self.run_id, row.id, self.store.state_dir, None),
                cwd=Path(row.worktree),
                env={**pane_env(self.run_id, self.run.tmux_socket), **lease_env, REATTACH_ENV: "1"},
            )
        except TmuxError as exc:
            self.gates.release(row.id)
            self._say(f"could not give {row.id} a new pane: {exc}")
            return
        slot.task_id, slot.host = row.id, row.host
        self._say(f"{row.id} still runs on {row.host}: watched again in slot {slot.index + 1}")

    def _requeue_unstarted(self, row: TaskRow) -> None:
        """Marked running, but the last supervisor died before the pane started its wrapper."""
        if self.store.transition(
            self.run_id,
            row.id,
            ACTIVE,
            TaskStatus.READY,
            event=("task_requeued", {}),
            attempt=max(row.attempt - 1, 0),
            pane_id=None,
            started_at=None,
            reason="",
        ):
            self._say(f"{row.id} was never started (the supervisor died first): queued again")

    def _slot_of_pane(self, pane_id: str | None) -> Slot | None:
        return next((slot for slot in self.slots if slot.pane_id == pane_id), None)

    # ---------------------------------------------------------------- requests

    def _handle_requests(self, picture: Picture) -> None:
        for request in self.store.pending_requests(self.run_id):
            try:
                result = apply_request(self.store, self.run_id, self.dag, request, picture.rows)
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
                self.gates.release(slot.task_id)
                slot.task_id = None
                slot.freed_at = now
        for task_id in self.dag.topological_order():
            row = picture.rows[task_id]
            retried = self.retries.retry_failed(row, self.plan.task(task_id), now)
            if retried is not None:
                picture.rows[task_id] = retried
                continue
            if row.status is not TaskStatus.PENDING:
                continue
            picture.rows[task_id] = self._settle_pending(row, picture)

    def _settle_pending(self, row: TaskRow, picture: Picture) -> TaskRow:
        """A pending task becomes blocked (a dependency did not end done) or ready (all did)."""
        deps = self.dag.dependencies(row.id)
        bad = [d for d in deps if picture.status(d) in NOT_DONE_TERMINAL]
        moved: TaskRow | None = None
        if bad:
            moved = self.store.transition(
                self.run_id,
                row.id,
                (TaskStatus.PENDING,),
                TaskStatus.BLOCKED,
                event=("task_blocked", {"by": bad[0]}),
                reason=f"blocked: {bad[0]} {picture.status(bad[0])}",
            )
        elif all(picture.status(d) is TaskStatus.DONE for d in deps):
            moved = self.store.transition(
                self.run_id, row.id, (TaskStatus.PENDING,), TaskStatus.READY, reason=""
            )
        return moved or self.store.get_task(self.run_id, row.id)

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
        if now - since < WRAPPER_FINISH_S and wrapper_alive(row):
            return True
        self.finishing_since.pop(row.id, None)
        return False

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

    def _soon(self, picture: Picture) -> list[str]:
        """Tasks that become ready when running ones end: every dependency has started
        and none failed. Only those with a worktree of their own (not an epic's shared
        one, which a running task may hold) and on their first attempt."""
        rows = picture.rows
        soon = [
            row.id
            for row in rows.values()
            if row.status is TaskStatus.PENDING
            and row.attempt == 0
            and self.plan.task(row.id).worktree_key == row.id
            and all(
                rows[dep].status in ACTIVE or rows[dep].status is TaskStatus.DONE
                for dep in self.dag.dependencies(row.id)
                if dep in rows
            )
        ]
        # a task that takes over a dependency's worktree when it becomes ready needs none
        soon = [
            task_id
            for task_id in soon
            if not handon.inherits(self.plan, self.dag, rows, task_id, self.started)
        ]
        ordered = self.dag.ready_order(soon, started=self.started)
        # the one whose last dependency started first is expected to become ready first
        position = {task_id: i for i, task_id in enumerate(ordered)}

        def last_dependency_start(task_id: str) -> float:
            starts = [rows[dep].started_at or 0.0 for dep in self.dag.dependencies(task_id)]
            return max(starts, default=0.0)

        return sorted(ordered, key=lambda tid: (last_dependency_start(tid), position[tid]))

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
        free_slots = sum(1 for slot in self.slots if slot.task_id is None)
        donors = self._donors(picture, self.background.to_prepare(order, free_slots))
        self.background.prepare_ahead(order, free_slots, self.plan, self.dag, donors)
        self.background.check_out_ahead(self._soon(picture), len(self.slots), self.plan)
        self._prepare_merge_ahead(picture)
        active = [row for row in picture.rows.values() if row.status in ACTIVE]
        running_exclusive = any(self.plan.task(row.id).exclusive for row in active)
        free = sorted((s for s in self.slots if s.task_id is None), key=lambda s: s.freed_at)
        gate = ""
        waiting_to_start = set(order)
        held = 0  # free slots kept for earlier tasks whose worktree is not ready yet
        for task_id in order:
            if not free or running_exclusive:
                break
            task = self.plan.task(task_id)
            if any(
                other in waiting_to_start and other not in self.started
                for other in self.dag.soft_predecessors(task_id)
            ):
                continue  # `after:` a ready task whose worktree is still being prepared
            if task.exclusive and (active or len(free) < len(self.slots)):
                gate = f"{task_id} is exclusive: waiting for running tasks to end"
                break
            beside = sorted(self.kept_apart.get(task_id, set()) & {row.id for row in active})
            if beside:
                continue  # overlap: serialize — its declared files overlap a running task's
            gate = self.gates.closed(picture, len(active))
            if gate:
                break
            future = self.background.prepared_worktree(task_id, HANDOFF_WAIT_S)
            if future is None:
                # its worktree is still being checked out: hold a slot for it, so a task
                # after it in the order (lower priority) cannot take its place meanwhile
                held += 1
                continue
            if len(free) <= held:
                continue
            try:
                prepared = future.result()
            except LimitlessError as exc:
                self._fail_before_start(task_id, f"worktree not prepared: {exc}")
                continue
            host = choose_host(
                self.plan,
                task,
                picture.rows,
                busy_hosts(s.host for s in self.slots if s.task_id is not None),
                self.lost_hosts,
            )
            if host is None:
                continue  # its host (pinned, or its epic's) has no free slot yet
            slot = free.pop(0)
            if self._launch(picture.rows[task_id], task, prepared, slot, host):
                active.append(picture.rows[task_id])
                if task.exclusive:
                    break
        if gate != self.gate_reason:
            self.gate_reason = gate
            self.store.update_run(self.run_id, reason=gate)
            if gate:
                self._say(gate)

    def _donors(self, picture: Picture, tasks: list[str]) -> dict[str, handon.Donor]:
        """For ready `tasks` about to be prepared, the finished dependency whose worktree
        each takes over (`run/handon`); each worktree goes to one task only."""
        held = {slot.task_id for slot in self.slots if slot.task_id}
        donors: dict[str, handon.Donor] = {}
        for task_id in tasks:
            if self.background.checking_out(task_id):
                continue
            donor = handon.donor_for(
                self.plan, self.dag, picture.rows, task_id, held=held, taken=self.handed_on
            )
            if donor is not None:
                donors[task_id] = donor
                self.handed_on.add(donor.task_id)
        return donors

    def _current_wave(self, picture: Picture, ready: list[str]) -> list[str]:
        """`--schedule waves`: only the lowest wave with unfinished tasks may start."""
        open_waves = [self.wave_of[r.id] for r in picture.rows.values() if not r.status.terminal]
        if not open_waves:
            return []
        current = min(open_waves)
        return [task_id for task_id in ready if self.wave_of[task_id] == current]

    def _prepare_merge_ahead(self, picture: Picture) -> None:
        """Check out the merge worktree once the first agents work, so merging starts at once.

        Not before: the first wave's checkouts come first.
        """
        if self.run.no_merge or not self.started:
            return
        ready = any(row.status is TaskStatus.READY for row in picture.rows.values())
        if ready and any(slot.task_id is None for slot in self.slots):
            return
        self.background.prepare_merge_ahead()

    # ---------------------------------------------------------------- launch

    def _fail_before_start(self, task_id: str, reason: str) -> None:
        self.background.forget(task_id)
        if self.store.transition(
            self.run_id,
            task_id,
            (TaskStatus.READY,),
            TaskStatus.FAILED,
            event=("task_failed", {"reason": reason}),
            reason=reason,
            ended_at=time.time(),
        ):
            self._say(f"✗ {task_id} failed before start: {reason}")

    def _continues_conversation(self, row: TaskRow, task: Task) -> bool:
        """A retried interactive task with a known session resumes it on its own work."""
        return can_resume(self.plan.profile(task), row.session_id, row.attempt + 1)

    def _ports(self, task: Task) -> int:
        return task.ports if task.ports is not None else self.plan.ports

    def _launch(
        self,
        row: TaskRow,
        task: Task,
        prepared: worktrees.PreparedWorktree,
        slot: Slot,
        host: str = LOCAL,
    ) -> bool:
        attempt = row.attempt + 1
        start_sha = row.start_sha or prepared.start_sha
        if row.attempt > 0 and not self._continues_conversation(row, task):
            try:
                worktrees.reset_for_retry(
                    self.repo_root,
                    prepared.path,
                    start_sha=start_sha,
                    keep_ref=git_refs.attempt_ref(self.run_id, task.id, row.attempt),
                )
            except LimitlessError as exc:
                self._fail_before_start(task.id, f"could not reset the worktree: {exc}")
                return False
        lease_env = self.gates.lease(task.id, self._ports(task))
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
            # a host's worktree is made afresh for each attempt: its setup runs again
            setup_done=host == LOCAL and (row.setup_done or not prepared.created),
            progress=None,
            host=host,
        ):
            self.gates.release(task.id)
            return False
        crashpoint("respawn")
        try:
            self.tmux.respawn(
                slot.pane_id,
                exec_argv(self.run_id, task.id, self.store.state_dir, self.fork_socket),
                cwd=prepared.path,
                env={**pane_env(self.run_id, self.run.tmux_socket), **lease_env},
            )
        except TmuxError as exc:
            self.gates.release(task.id)
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
        slot.host = host
        self.started.add(task.id)
        self.background.forget(task.id)
        self.store.add_event(
            self.run_id, "task_launched", task.id, attempt=attempt, slot=slot.index, host=host
        )
        if prepared.handed_on_from is not None:
            self.store.add_event(
                self.run_id, "worktree_handed_on", task.id, **{"from": prepared.handed_on_from}
            )
        elif prepared.created:
            self.store.add_event(
                self.run_id,
                "worktree_checked_out",
                task.id,
                seconds=round(prepared.checkout_s, 3),
                sparse=task_cone(self.plan, task) is not None,
                **_span(prepared),
            )
        where = "" if host == LOCAL else f" on {host}"
        self._say(f"▶ {task.id} started in slot {slot.index + 1}{where} (attempt {attempt})")
        with contextlib.suppress(TmuxError):
            self.tmux.set_title(slot.pane_id, f"{task.id} · running · 0s")
        return True

    # ---------------------------------------------------------------- added tasks

    def _pick_up_added(self, picture: Picture) -> None:
        """Tasks added to the live run (`limitless add`): re-read the plan, rebuild the Dag."""
        known = set(self.dag.ids)
        if not set(picture.rows) - known:
            return
        self.run = self.store.get_run(self.run_id)
        self.plan = plan_of(self.run)
        self.dag = dag_of(self.run)
        # `add` writes a task's row and the plan in one transaction, but the rows were read
        # (`_look`) before this plan: a task added in between is in the plan only
        missing = set(self.dag.ids) - set(picture.rows)
        if missing:
            fresh = self.store.get_tasks(self.run_id)
            picture.rows.update({row.id: row for row in fresh if row.id in missing})
        added = sorted(set(self.dag.ids) - known)
        self.wave_of = {tid: i for i, wave in enumerate(self.dag.waves()) for tid in wave}
        self.watcher.plan = self.plan
        self._say(f"picked up added task{'s' if len(added) > 1 else ''}: {', '.join(added)}")
        self.store.add_event(self.run_id, "plan_reloaded", tasks=len(self.dag.ids), added=added)
        self._grow_slots()

    def _grow_slots(self) -> None:
        """A run started with fewer slots than its tasks now need (a one-task run that
        was given more) gets new slot panes, up to max_concurrency."""
        from limitless.tmux.layouts import load_layout

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
        self.gates.throttle.slots = len(self.slots)
        self.store.update_run(self.run_id, slot_panes=",".join(slot.pane_id for slot in self.slots))
        self._say(f"{len(panes)} slot{'s' if len(panes) > 1 else ''} added: {len(self.slots)} now")

    # ---------------------------------------------------------------- titles

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
        merged = None if self.store.get_run(self.run_id).no_merge else self._merge_phase()
        end = end_run(self.store, self.run_id, merged, tmux=self.tmux)
        self._say(f"run {self.run_id} {end.status}: {end.reason}")
        self._disconnect_hosts()
        return end.exit_code

    def _host_lost(self, name: str) -> None:
        """A task's attempt was lost with host `name`: nothing starts there until it answers."""
        if name in self.lost_hosts:
            return
        self.lost_hosts[name] = time.monotonic()
        self.store.add_event(self.run_id, "host_lost", host=name)
        self._say(f"host {name} lost: its tasks go elsewhere until it answers again")

    def _probe_lost_hosts(self) -> None:
        """Try each lost host now and then (in a thread: a connect may take seconds);
        take back those that answered."""
        for name in sorted(self.hosts_back & set(self.lost_hosts)):
            self.lost_hosts.pop(name, None)
            self.store.add_event(self.run_id, "host_back", host=name)
            self._say(f"host {name} is back")
        self.hosts_back.clear()
        now = time.monotonic()
        for name, probed in list(self.lost_hosts.items()):
            if now - probed < HOST_PROBE_S or not self.run.control_dir:
                continue
            self.lost_hosts[name] = now
            host, control = self.plan.host(name), Path(self.run.control_dir)
            left = sorted(
                {a.task_id for a in self.store.attempts(self.run_id) if lost_host(a.reason) == name}
            )

            def probe(host: Host = host, control: Path = control, left: list[str] = left) -> None:
                """Reach the host; stop the agents its lost attempts left there; take it back."""
                with contextlib.suppress(LimitlessError, OSError):
                    connect(host, control)
                    end_agents(host, control, self.run_id, left)
                    self.hosts_back.add(host.name)
                    self.wake.set()

            threading.Thread(target=probe, name=f"probe-{name}", daemon=True).start()

    def _disconnect_hosts(self) -> None:
        """End the run's ssh master connections (the worktrees there stay, as here)."""
        if not self.run.control_dir:
            return
        for host in self.plan.all_hosts:
            if not host.is_local:
                with contextlib.suppress(LimitlessError, OSError):
                    disconnect(host, Path(self.run.control_dir))

    def _merge_phase(self) -> merge.MergeOutcome:
        self.background.wait_for_merge_checkout()
        self.store.update_run(self.run_id, status=RunStatus.MERGING)
        return merge.run_merge_phase(self.store, self.run_id, out=self._say)

    def _say(self, line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        with contextlib.suppress(OSError, ValueError):
            self.out(f"{stamp} {line}")


def main(run_id: str, state_dir: Path) -> int:
    """Entry point of `limitless _supervise`: schedule the run until it ends."""
    socket = _start_fork_server(state_dir, run_id)
    with Store.open(state_dir) as store:
        run = _wait_for_panes(store, run_id)
        tmux = TmuxSession(run.tmux_socket, run.id)
        supervisor = Supervisor(store, run_id, tmux=tmux)
        supervisor.fork_socket = socket
        return supervisor.run_loop()


FORK_TARGETS = (Target("limitless", "limitless.cli.main:main", (EXEC_COMMAND,)),)
"""What the fork server may start: `python -m limitless _exec ...` and nothing else."""
FORK_PRELOAD = (
    "limitless.cli.main",
    "limitless.cli.internal",
    "limitless.agents.wrapper",
    "limitless.agents.remote",
    "limitless.agents.depsummary",
    "limitless.agents.state",
    "limitless.tmux.session",
    "limitless.git.refguard",
)
"""What a forked wrapper needs imported, so that it imports nothing after the fork."""


def _start_fork_server(state_dir: Path, run_id: str) -> Path | None:
    """Fork the run's fork server from this process, before any thread or store
    connection exists (a forked sqlite connection is unsafe). Failing, panes start cold."""
    socket = fork_socket(state_dir, run_id, os.getpid())
    try:
        socket.parent.mkdir(parents=True, exist_ok=True)
        spawn(socket, FORK_TARGETS, FORK_PRELOAD)
    except (LimitlessError, OSError) as exc:
        log.warning("no fork server: every pane starts its wrapper cold", extra={"error": str(exc)})
        print(f"no fork server ({exc}): every task's wrapper starts cold", flush=True)
        return None
    return socket


def _wait_for_panes(store: Store, run_id: str, timeout: float = 10.0) -> Run:
    """`run` records the slot panes just after tmux made them: wait for that row."""
    deadline = time.monotonic() + timeout
    while True:
        run = store.get_run(run_id)
        if run.slot_panes or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


def _span(prepared: worktrees.PreparedWorktree) -> dict[str, float]:
    """When the worktree's git work began and ended (epoch seconds, ms), for the event."""
    if prepared.began_at is None or prepared.ended_at is None:
        return {}
    return {"began_at": round(prepared.began_at, 3), "ended_at": round(prepared.ended_at, 3)}
