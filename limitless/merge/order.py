"""What the merge phase brings home, in which order: the tasks' order, the strategy, and for
each task the commit to merge, where its own work began and its commit message.

Epics
    Members of an epic share one branch and run one after another. Each member is
    merged at its own place in the order, from the commit its branch had when the
    member finished (`TaskRow.head_sha`); the epic's last member (and any member
    whose recorded commit is gone from the branch) takes the branch tip. So every
    member gets its own merge commit and gate run, and a failed member's partial
    work (committed on the shared branch after the last done member) is not merged.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Mapping
from pathlib import Path

from limitless.git import refs
from limitless.git.runner import is_object_id
from limitless.plan.graph import Dag
from limitless.plan.model import MergePolicy, Plan, Strategy
from limitless.store import Run, TaskRow

_STRATEGIES: dict[str, Strategy] = {
    "merge": "merge",
    "regular": "merge",
    "squash": "squash",
    "rebase": "rebase",
}


def policy_of(plan: Plan, run: Run) -> MergePolicy:
    """The plan's merge policy, with the run's strategy (a `--merge-strategy` override)."""
    strategy = _STRATEGIES.get(run.merge_strategy)
    if strategy is None or strategy == plan.merge.strategy:
        return plan.merge
    return dataclasses.replace(plan.merge, strategy=strategy)


def merge_order(dag: Dag, rows: Mapping[str, TaskRow]) -> list[str]:
    """Dependencies first; among tasks free to go, the one that finished first."""
    ids = [task_id for task_id in dag.ids if task_id in rows]
    missing = {task_id: 0 for task_id in ids}
    users: dict[str, list[str]] = {task_id: [] for task_id in ids}
    for task_id in ids:
        for dep in dag.dependencies(task_id):
            if dep in missing:
                missing[task_id] += 1
                users[dep].append(task_id)

    def key(task_id: str) -> tuple[int, float, int, str]:
        row = rows[task_id]
        ended = row.ended_at
        return (0 if ended is not None else 1, ended or 0.0, row.position, task_id)

    heap = [key(task_id) for task_id in ids if missing[task_id] == 0]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        task_id = heapq.heappop(heap)[3]
        order.append(task_id)
        for user in users[task_id]:
            missing[user] -= 1
            if missing[user] == 0:
                heapq.heappush(heap, key(user))
    return order


def source_of(repo: Path, dag: Dag, rows: Mapping[str, TaskRow], task_id: str) -> str | None:
    """The commit to merge for a task (see "Epics" above); None when its branch is gone."""
    row = rows[task_id]
    tip = refs.rev_parse(repo, f"refs/heads/{row.branch}")
    members = [other for other, r in rows.items() if r.branch == row.branch]
    if len(members) > 1 and row.head_sha:
        last = max(members, key=lambda other: dag.ids.index(other))
        recorded = refs.rev_parse(repo, row.head_sha)
        if (
            task_id != last
            and recorded is not None
            and (tip is None or refs.is_ancestor(repo, recorded, tip))
        ):
            return recorded
    if tip is None and row.head_sha:
        return refs.rev_parse(repo, row.head_sha)
    return tip


def start_of(repo: Path, row: TaskRow, source: str) -> str | None:
    """Where the task's own work began (its recorded start), if that is in `source`."""
    start = row.start_sha
    if not start or not is_object_id(start):
        return None
    if refs.rev_parse(repo, start) != start:
        return None
    return start if refs.is_ancestor(repo, start, source) else None


def message_of(plan: Plan, strategy: Strategy, row: TaskRow, run_id: str) -> str:
    """The commit message of a task's merge: for `squash`, its prompt's first line."""
    task_id = row.id
    if strategy == "squash":
        known = {task.id for task in plan.tasks}
        prompt = plan.task(task_id).prompt if task_id in known else ""
        first = next((line.strip() for line in prompt.splitlines() if line.strip()), "")
        title = f"{task_id}: {first}" if first else task_id
        if len(title) > 100:
            title = title[:99] + "…"
        return f"{title}\n\nSquashed from {row.branch} (limitless run {run_id})."
    return f"limitless: merge {task_id} ({run_id})"
