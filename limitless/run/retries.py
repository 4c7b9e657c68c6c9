"""Retries after a failed attempt: a counted retry after a back-off while the task has
retries left, or an uncounted one after a rate limit (which also lowers the run's
concurrency for a while, through the gates' throttle).
"""

from __future__ import annotations

from collections.abc import Callable

from limitless.agents import ratelimit
from limitless.plan.model import Task
from limitless.states import TaskStatus
from limitless.store import Store, TaskRow

RETRY_BACKOFF_S = (2.0, 5.0, 15.0, 30.0)


def retry_delay(attempt: int) -> float:
    return RETRY_BACKOFF_S[min(attempt - 1, len(RETRY_BACKOFF_S) - 1)]


class Retries:
    """Decides and records the retry of failed tasks of one run."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        throttle: ratelimit.Throttle,
        say: Callable[[str], None],
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.throttle = throttle
        self.say = say
        self.free_attempts: dict[str, tuple[int, int]] = {}  # task → (attempt, earlier free)

    def retry_failed(self, row: TaskRow, task: Task, now: float) -> TaskRow | None:
        """Queue the failed task `row` again if it may be retried: its row then (new, or
        as another process left it); None when it is not retried."""
        if row.status is not TaskStatus.FAILED:
            return None
        if self._rate_limit_retry(row, now):
            return self.store.get_task(self.run_id, row.id)
        if row.attempt - self._free_attempts(row) >= 1 + task.retries:
            return None
        delay = retry_delay(row.attempt)
        retried = self.store.transition(
            self.run_id,
            row.id,
            (TaskStatus.FAILED,),
            TaskStatus.READY,
            event=("task_retry", {"attempt": row.attempt}),
            not_before=now + delay,
            reason=f"retrying in {delay:.0f}s after: {row.reason}",
        )
        if retried is None:
            return self.store.get_task(self.run_id, row.id)
        self.say(f"{row.id}: retry {row.attempt + 1} in {delay:.0f}s")
        return retried

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
        # the event names the lowered concurrency, known only once this transition won
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
        self.say(
            f"{row.id}: {row.reason}; retry in {delay:.0f}s, not counted; "
            f"at most {cap} task{'s' if cap != 1 else ''} at once for a while"
        )
        return True
