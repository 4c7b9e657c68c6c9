"""The merge phase's record of its tasks: each task's merge status, in the store and in hand.

A `Ledger` holds the run's task rows as the phase last wrote them, and what
this call of the phase did with each task (merged, found already merged,
skipped, conflicted, failed the gate). Every change of a task's merge status
goes through `mark`: the row, and the event that tells of it, in one store
transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from limitless.states import MergeStatus
from limitless.store import Store, TaskRow


class Ledger:
    """The merge status of every task of a run, and what this phase did with each."""

    def __init__(self, store: Store, run_id: str, out: Callable[[str], object]) -> None:
        self.store = store
        self.run_id = run_id
        self.out = out
        self.rows: dict[str, TaskRow] = {row.id: row for row in store.get_tasks(run_id)}
        self.merged: list[str] = []
        """Tasks merged by this call, in merge order."""
        self.already: list[str] = []
        """Tasks found already merged (by an earlier call or by hand)."""
        self.conflicts: list[str] = []
        self.gate_failed: list[str] = []
        self.skipped: list[str] = []
        self.next_order = 1

    def mark(
        self,
        task_id: str,
        status: MergeStatus,
        reason: str,
        *,
        event: tuple[str, Mapping[str, object]] | None = None,
        **fields: Any,  # Any: a caller's **dict must not be taken for `event`
    ) -> None:
        """Set a task's merge status and reason (and `fields`), with its `event`, at once."""
        with self.store.transaction():
            self.store.update_task(
                self.run_id, task_id, merge_status=status, merge_reason=reason, **fields
            )
            if event is not None:
                kind, data = event
                self.store.add_event(self.run_id, kind, task_id, **data)
            self.rows[task_id] = self.store.get_task(self.run_id, task_id)

    def number_from_rows(self) -> None:
        """Go on numbering merges after the highest number a merged task holds."""
        numbers = [
            row.merge_order
            for row in self.rows.values()
            if row.merge_status is MergeStatus.MERGED and row.merge_order is not None
        ]
        self.next_order = max(numbers, default=0) + 1

    def record_merged(self, task_id: str, reason: str, *, sha: str, new: bool, how: str) -> None:
        """A task is on the merged branch (at `sha`): by this call (`new`), or already."""
        event = ("task_merged", {"sha": sha}) if new else None
        self.mark(
            task_id,
            MergeStatus.MERGED,
            reason,
            event=event,
            merge_order=self.next_order,
            conflict_files=[],
        )
        self.next_order += 1
        if new:
            self.merged.append(task_id)
            self.out(f"merged {task_id} ({how}) at {sha[:12]}")
        else:
            self.already.append(task_id)
            self.out(f"{task_id} was already merged")

    def skip(self, task_id: str, reason: str) -> None:
        self.mark(task_id, MergeStatus.SKIPPED, reason, merge_order=None, conflict_files=[])
        self.skipped.append(task_id)
        self.out(f"skipped {task_id}: {reason}")

    def conflicted(self, task_id: str, reason: str, files: Sequence[str]) -> None:
        self.mark(
            task_id,
            MergeStatus.CONFLICT,
            reason,
            conflict_files=list(files),
            merge_order=None,
        )
        self.conflicts.append(task_id)

    def failed_gate(self, task_id: str, reason: str, *, exit_code: int, log: str) -> None:
        self.mark(
            task_id,
            MergeStatus.GATE_FAILED,
            reason,
            event=("gate_failed", {"exit_code": exit_code, "log": log}),
            merge_order=None,
        )
        self.gate_failed.append(task_id)

    def forget_merges(self, reason: str) -> None:
        """Every task unmerged and unnumbered (the merged branch no longer holds them)."""
        for task_id, row in self.rows.items():
            if row.merge_status is not MergeStatus.UNMERGED or row.merge_order is not None:
                self.mark(task_id, MergeStatus.UNMERGED, reason, merge_order=None)

    def leave_rest_unmerged(self, stopped_at: str) -> None:
        """After the phase stopped at a task: the tasks it did not reach are unmerged."""
        for task_id, row in self.rows.items():
            if task_id == stopped_at or row.merge_status is MergeStatus.MERGED:
                continue
            if task_id in self.skipped or task_id in self.conflicts or task_id in self.gate_failed:
                continue
            self.mark(task_id, MergeStatus.UNMERGED, f"merge stopped at {stopped_at}")

    def start_over(self) -> None:
        """Forget what this call did (the merges are redone on a new base)."""
        self.merged.clear()
        self.already.clear()
        self.conflicts.clear()
        self.gate_failed.clear()
        self.skipped.clear()
        self.next_order = 1

    def clean(self) -> bool:
        """No task conflicted or failed the gate."""
        return not self.conflicts and not self.gate_failed

    def summary(self) -> str:
        parts = [f"merged {len(self.merged)} task{'s' if len(self.merged) != 1 else ''}"]
        if self.already:
            parts.append(f"{len(self.already)} already merged")
        for label, names in (
            ("conflicted", self.conflicts),
            ("failed the gate", self.gate_failed),
            ("skipped", self.skipped),
        ):
            if names:
                parts.append(f"{label}: {', '.join(names)}")
        return f"run {self.run_id}: " + "; ".join(parts)
