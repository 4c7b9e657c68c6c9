"""Start gates: whether one more task may start now.

A task starts only with memory to spare, budget left, a place under the
machine's `max_active_agents` (the port lease book counts agents of every run)
and under the run's concurrency while rate limits lower it. The first closed
gate says why nothing starts; it becomes the run's reason while it holds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable

import psutil

from limitless.agents import ratelimit
from limitless.errors import LimitlessError
from limitless.plan.model import Budget
from limitless.run.picture import ACTIVE, Picture
from limitless.run.ports import LeaseBook, lease_key, port_env
from limitless.states import TaskStatus
from limitless.store import Store
from limitless.views.stats import BudgetWatch

log = logging.getLogger(__name__)

DEFAULT_MEMORY_FLOOR = 1 << 30


class StartGates:
    """The gates of one run, and the leases of its running tasks."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        budget: Budget,
        *,
        slots: int,
        memory_floor: int = DEFAULT_MEMORY_FLOOR,
        say: Callable[[str], None],
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.budget = budget
        self.memory_floor = memory_floor
        self.say = say
        self.throttle = ratelimit.Throttle(slots=slots)
        self.leases = LeaseBook()
        self.max_active_agents = _max_active_agents()
        self.budget_watch = BudgetWatch(store, run_id, budget)

    def closed(self, picture: Picture, active: int) -> str:
        """Why no more task may start now ("" when one may)."""
        return (
            self.memory()
            or self.budget_spent(picture)
            or self.agents()
            or self.throttle.gate(time.time(), active)
        )

    def memory(self) -> str:
        available = psutil.virtual_memory().available
        if available < self.memory_floor:
            return (
                f"waiting for memory: {available >> 20} MiB available, "
                f"{self.memory_floor >> 20} MiB needed to start an agent"
            )
        return ""

    def budget_spent(self, picture: Picture) -> str:
        """Once the reported costs reach `budget.max_cost_usd`, no new task starts."""
        limit = self.budget.max_cost_usd
        if limit is None:
            return ""
        spent = sum(row.cost_usd or 0.0 for row in picture.rows.values())
        if spent < limit:
            return ""
        return (
            f"budget spent: ${spent:.2f} of ${limit:.2f} (budget.max_cost_usd); "
            "no new task starts, running ones finish"
        )

    def agents(self) -> str:
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

    def alert_budget(self, picture: Picture) -> None:
        """Record (once) a `budget_alert` event when the costs reach budget.alert_at."""
        message = self.budget_watch.tick(picture.rows)
        if message:
            self.say(message)

    def block_unstarted_when_spent(self, picture: Picture, slots_busy: bool) -> None:
        """Budget spent and nothing running: tasks not started end as blocked, so the run ends."""
        reason = self.budget_spent(picture)
        if not reason or any(row.status in ACTIVE for row in picture.rows.values()):
            return
        if slots_busy:
            return
        why = f"not started: {reason.split(';')[0]}"
        for row in list(picture.rows.values()):
            if row.status not in (TaskStatus.PENDING, TaskStatus.READY):
                continue
            blocked = self.store.transition(
                self.run_id,
                row.id,
                (TaskStatus.PENDING, TaskStatus.READY),
                TaskStatus.BLOCKED,
                event=("task_blocked", {"by": "budget"}),
                reason=why,
            )
            if blocked is not None:
                self.say(f"{row.id} {why}")
            picture.rows[row.id] = blocked or self.store.get_task(self.run_id, row.id)

    def lease(self, task_id: str, ports: int, keep: tuple[int, ...] = ()) -> dict[str, str] | None:
        """Lease the task's ports (and its place under max_active_agents); its env, or None.

        `keep`: the ports an adopted task's agent was given by the previous supervisor.
        """
        key = lease_key(self.store.state_dir, self.run_id, task_id)
        try:
            lease = self.leases.acquire(
                key, ports=ports, pid=os.getpid(), max_active=self.max_active_agents, keep=keep
            )
        except LimitlessError as exc:
            self.say(f"{task_id}: no port lease: {exc}")
            return None
        if lease is None:
            return None
        return port_env(lease.ports, self.run_id, task_id)

    def release(self, task_id: str) -> None:
        with contextlib.suppress(LimitlessError, OSError):
            self.leases.release(lease_key(self.store.state_dir, self.run_id, task_id))


def _max_active_agents() -> int | None:
    """The user config's cap on agents across runs (None: no cap, or an unreadable config)."""
    from limitless.plan.userconfig import load_config

    try:
        return load_config().max_active_agents
    except LimitlessError as exc:
        log.warning("user config ignored", extra={"error": str(exc)})
        return None
