"""What the supervisor has done in threads beside its loop: the worktrees of the next
ready tasks checked out ahead, the worktrees of tasks whose dependencies still run
checked out from base ahead (when the last dependency ends, only its branches are
merged in: the hand-off), the merge worktree checked out once agents work, and
predicted merge conflicts refreshed every few seconds. A finished preparation wakes
the supervisor's loop (`on_ready`), so a task starts the moment its worktree is ready.

SQLite connections are per thread: each worker thread opens its own store.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from pathlib import Path

from limitless.errors import LimitlessError
from limitless.git import refs as git_refs
from limitless.git import worktrees
from limitless.git.sparse import task_cone
from limitless.merge import phase as merge
from limitless.merge import predict
from limitless.plan.graph import Dag
from limitless.plan.model import Plan
from limitless.run import firstwave
from limitless.run.handon import Donor
from limitless.store import Run, Store

log = logging.getLogger(__name__)

PREDICTION_INTERVAL_S = 5.0
PREPARE_WORKERS = 4
AHEAD_WORKERS = 2
"""Checkouts ahead at once: each is disk-bound and already parallel inside git
(`checkout.workers`); more at a time only share the same disk."""


class BackgroundWork:
    """The thread pools of one supervisor; `shutdown()` when the run ends."""

    def __init__(
        self,
        store: Store,
        run: Run,
        say: Callable[[str], None],
        on_ready: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.run = run
        self.say = say
        self.on_ready = on_ready
        self.prepared: dict[str, Future[worktrees.PreparedWorktree]] = {}
        # worktrees checked out from base while the task's dependencies run
        self.based: dict[str, Future[worktrees.PreparedWorktree]] = {}
        # tasks taking over a finished dependency's worktree (`run/handon`)
        self.handed: set[str] = set()
        # Two pools, so that a hand-off (the merge of a dependency's branch into a worktree
        # checked out ahead, ~50 ms) never queues behind another chain's checkout (0.2-1.4 s
        # of disk): `pool` prepares the worktrees of ready tasks, `ahead_pool` checks out
        # from base those of tasks whose dependencies still run.
        self.pool = ThreadPoolExecutor(max_workers=PREPARE_WORKERS, thread_name_prefix="worktree")
        self.ahead_pool = ThreadPoolExecutor(
            max_workers=AHEAD_WORKERS, thread_name_prefix="checkout-ahead"
        )
        self.merge_checkout: Future[bool] | None = None
        self.merge_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="merge-checkout")
        self.predictor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self.predicting: Future[int] | None = None
        self.last_prediction = 0.0
        self._thread_stores = threading.local()

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.ahead_pool.shutdown(wait=True, cancel_futures=True)
        self.predictor.shutdown(wait=True, cancel_futures=True)
        self.merge_pool.shutdown(wait=True, cancel_futures=True)

    # ---------------------------------------------------------------- task worktrees

    def to_prepare(self, order: list[str], free_slots: int) -> list[str]:
        """The next ready tasks whose worktrees `prepare_ahead` would start preparing."""
        return [task_id for task_id in order[: free_slots + 2] if task_id not in self.prepared]

    def prepare_ahead(
        self,
        order: list[str],
        free_slots: int,
        plan: Plan,
        dag: Dag,
        donors: dict[str, Donor] | None = None,
    ) -> None:
        """Check out worktrees of the next ready tasks (`order`) while others run; a task
        with a `donors` entry takes over that finished dependency's worktree instead."""
        for task_id in self.to_prepare(order, free_slots):
            donor = (donors or {}).get(task_id)
            if donor is not None:
                self.handed.add(task_id)
            future = self.pool.submit(self._prepare, task_id, plan, dag, donor)
            future.add_done_callback(lambda _: self.on_ready())
            self.prepared[task_id] = future

    def checking_out(self, task_id: str) -> bool:
        """A checkout ahead of `task_id`'s worktree was started (it then takes no donor's)."""
        return task_id in self.based

    def check_out_ahead(self, soon: Sequence[str], limit: int, plan: Plan) -> None:
        """Check out from base the worktrees of `soon` tasks (dependencies still running,
        the one expected to become ready first first): their hand-off is then only the
        merge of their dependencies' branches. At most `limit` such worktrees wait unused,
        and only as many checkouts are handed to the pool as it runs at once, so a task
        that comes first in a later pass is not queued behind ones picked earlier."""
        unused = [tid for tid in self.based if tid not in self.prepared]
        in_flight = sum(1 for tid in unused if not self.based[tid].done())
        for task_id in soon:
            if len(unused) >= limit or in_flight >= AHEAD_WORKERS:
                return
            if task_id in self.based or task_id in self.prepared:
                continue
            future = self.ahead_pool.submit(self._check_out_base, task_id, plan)
            # a finished checkout lets the next one be picked (and a dependant that became
            # ready meanwhile be launched)
            future.add_done_callback(lambda _: self.on_ready())
            self.based[task_id] = future
            unused.append(task_id)
            in_flight += 1

    def merge_only(self, task_id: str) -> bool:
        """Whether `task_id`'s preparation is only the merge of its dependencies into a
        worktree already checked out ahead, or taken over from a dependency (tens of
        milliseconds): worth waiting for."""
        if task_id in self.handed:
            return True
        ahead = self.based.get(task_id)
        return ahead is not None and ahead.done() and ahead.exception() is None

    def prepared_worktree(
        self, task_id: str, wait_for_merge_s: float = 0.0
    ) -> Future[worktrees.PreparedWorktree] | None:
        """The preparation of `task_id`'s worktree, once it has finished (None before).
        When only its dependency merge is left (`merge_only`), wait up to
        `wait_for_merge_s` for it: the task is then launched in this loop pass, not the
        next one."""
        future = self.prepared.get(task_id)
        if future is None:
            return None
        if not future.done() and wait_for_merge_s > 0 and self.merge_only(task_id):
            with contextlib.suppress(FutureTimeout):
                future.exception(timeout=wait_for_merge_s)
        return future if future.done() else None

    def forget(self, task_id: str) -> None:
        """The task started (or failed before): a later attempt prepares afresh."""
        self.prepared.pop(task_id, None)
        self.based.pop(task_id, None)
        self.handed.discard(task_id)

    def _check_out_base(self, task_id: str, plan: Plan) -> worktrees.PreparedWorktree:
        return self._make_worktree(task_id, plan, ())

    def _prepare(
        self, task_id: str, plan: Plan, dag: Dag, donor: Donor | None = None
    ) -> worktrees.PreparedWorktree:
        checked_out = firstwave.take(self.store.run_dir(self.run.id) / firstwave.FOLDER, task_id)
        if checked_out is not None:  # by `limitless run`, while the supervisor started
            return checked_out
        task = plan.task(task_id)
        base: worktrees.PreparedWorktree | None = None
        ahead = self.based.get(task_id)
        if ahead is not None:
            with contextlib.suppress(LimitlessError):  # the full preparation says it again
                base = ahead.result()
        merge_branches = sorted(
            {
                git_refs.branch_name(self.run.id, plan.task(dep).worktree_key)
                for dep in dag.dependencies(task_id)
                if plan.task(dep).worktree_key != task.worktree_key
            }
        )
        if base is None and donor is not None and self._hand_on(task_id, donor):
            prepared = self._make_worktree(task_id, plan, merge_branches, fresh=True)
            return replace(prepared, created=True, handed_on_from=donor.task_id)
        prepared = self._make_worktree(
            task_id, plan, merge_branches, fresh=base is not None and base.created
        )
        if base is not None and base.created:
            # made by the checkout ahead: new for the task (its setup commands still run)
            return replace(prepared, created=True, checkout_s=base.checkout_s)
        return prepared

    def _hand_on(self, task_id: str, donor: Donor) -> bool:
        """Take over the finished dependency's worktree (see `run/handon`)."""
        row = self.store_for_thread().get_task(self.run.id, task_id)
        try:
            return worktrees.hand_on(
                Path(self.run.repo_root),
                donor=donor.path,
                donor_branch=donor.branch,
                path=Path(row.worktree),
                branch=row.branch,
                lock_dir=self.store.state_dir,
            )
        except LimitlessError as exc:
            log.info("worktree not handed on", extra={"task": task_id, "error": str(exc)})
            return False

    def _make_worktree(
        self, task_id: str, plan: Plan, merge_branches: Sequence[str], *, fresh: bool = False
    ) -> worktrees.PreparedWorktree:
        task = plan.task(task_id)
        row = self.store_for_thread().get_task(self.run.id, task_id)
        return worktrees.prepare_worktree(
            Path(self.run.repo_root),
            path=Path(row.worktree),
            branch=row.branch,
            base_sha=self.run.base_sha,
            merge_branches=merge_branches,
            copy=plan.copy,
            link=plan.link,
            lock_dir=self.store.state_dir,
            hooks=plan.commit_hooks == "run",
            sparse=task_cone(plan, task),
            fresh=fresh,
        )

    # ---------------------------------------------------------------- merge worktree

    def prepare_merge_ahead(self) -> None:
        """Check out the merge worktree (once), so merging starts at once when tasks end.

        Only `git worktree add --no-checkout` takes the worktree lock, so the
        checkout itself delays no task's worktree.
        """
        if self.merge_checkout is None:
            self.merge_checkout = self.merge_pool.submit(self._check_out_merge)

    def wait_for_merge_checkout(self) -> None:
        """The merge phase may start: the checkout ahead holds the run's merge lock while
        it works."""
        if self.merge_checkout is not None:
            with contextlib.suppress(Exception):
                self.merge_checkout.result()

    def _check_out_merge(self) -> bool:
        try:
            return merge.prepare_ahead(self.store_for_thread(), self.run.id)
        except LimitlessError as exc:
            log.info("merge worktree not prepared ahead", extra={"error": str(exc)})
            return False

    # ---------------------------------------------------------------- predictions

    def refresh_predictions(self) -> None:
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
            return predict.update_predictions(self.store_for_thread(), self.run.id)
        except LimitlessError as exc:
            self.say(f"conflict prediction skipped: {exc}")
            return 0

    def store_for_thread(self) -> Store:
        """SQLite connections are per thread: worker threads open their own."""
        store: Store | None = getattr(self._thread_stores, "store", None)
        if store is None:
            store = Store.open(self.store.state_dir)
            self._thread_stores.store = store
        return store
