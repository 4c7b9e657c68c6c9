"""What the user is told at once: a failure, a question, a budget alert, the end of the run.

Found in the events that are new since the last poll, and in status changes whose
events came before the dashboard looked; each is told once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from limitless.dashboard.model.snapshot import Notice, NoticeKind, Severity
from limitless.states import MergeStatus, RunStatus, TaskStatus, Waiting, task_state
from limitless.store import Event, Run, TaskRow
from limitless.views.follow import describe


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


class Notices:
    """The notices of one run, poll after poll, each told once."""

    def __init__(self) -> None:
        self._seen_status: dict[str, tuple[str, int]] = {}
        self._asked: dict[str, int] = {}  # times each task came to need input
        self._run_finished: bool | None = None
        self._notified: set[tuple[str, str | None, int, int]] = set()

    def news(self, run: Run, rows: Sequence[TaskRow], events: Sequence[Event]) -> list[Notice]:
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
