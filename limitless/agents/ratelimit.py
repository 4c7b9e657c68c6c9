"""Rate limits: an agent refused by its provider is retried later, and the run slows down.

The in-pane wrapper ends an attempt whose agent exited non-zero shortly after
printing a line its profile's `rate_limit_regex` matches with a reason starting
`rate limited: `. The supervisor then retries the task after a back-off
without counting the attempt (up to `MAX_FREE_RETRIES` times per task), and
lowers the run's concurrency for a while: `Throttle` halves the number of
tasks that may run at once on each hit, and gives it back when the window ends.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from limitless.store import Attempt

REASON_PREFIX = "rate limited: "
BACKOFF_S = (30.0, 60.0, 120.0, 300.0, 600.0)
MAX_FREE_RETRIES = 5  # rate-limited attempts of one task that are not counted
RECENT_LINES = 30  # the rate-limit line must be among the agent's last lines
WINDOW_FACTOR = 2.0  # concurrency stays lowered for this many back-off delays


def reason_for(line: str) -> str:
    """The reason an attempt ended by a rate limit is recorded with."""
    return REASON_PREFIX + " ".join(line.split())[:160]


def is_rate_limited(reason: str | None) -> bool:
    return bool(reason) and str(reason).startswith(REASON_PREFIX)


def backoff_s(hits: int) -> float:
    """Seconds to wait before the retry after the `hits`-th rate limit of a task (1-based)."""
    return BACKOFF_S[min(max(hits, 1) - 1, len(BACKOFF_S) - 1)]


def free_attempts(attempts: Iterable[Attempt], current: int, current_reason: str) -> int:
    """How many of a task's attempts up to `current` do not count against its retries."""
    earlier = sum(1 for a in attempts if a.attempt < current and is_rate_limited(a.reason))
    return min(earlier + int(is_rate_limited(current_reason)), MAX_FREE_RETRIES)


@dataclass
class Throttle:
    """A run's concurrency, lowered for a while after rate limits."""

    slots: int
    cap: int | None = None
    until: float = 0.0
    why: str = ""

    def hit(self, now: float, delay: float, why: str) -> int:
        """A rate limit happened: halve the cap (at least 1); the new cap."""
        self.cap = max(1, (self.limit(now) or self.slots) // 2)
        self.until = max(self.until, now + WINDOW_FACTOR * delay)
        self.why = why
        return self.cap

    def limit(self, now: float) -> int | None:
        """How many tasks may run now, or None when the run is not throttled."""
        if self.cap is not None and now >= self.until:
            self.cap, self.why = None, ""
        return self.cap

    def gate(self, now: float, active: int) -> str:
        """Why no more task may start now ("" when one may)."""
        cap = self.limit(now)
        if cap is None or active < cap:
            return ""
        until = time.strftime("%H:%M:%S", time.localtime(self.until))
        return (
            f"rate limited: at most {cap} task{'s' if cap != 1 else ''} at once until {until} "
            f"(after {self.why.removeprefix(REASON_PREFIX)})"
        )
