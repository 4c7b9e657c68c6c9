"""Which finished dependency's worktree a task continues in (the hand-on).

A dependant starts from its dependencies' work. Checking its worktree out from base
and merging them in costs a full checkout (0.2-1.4 s of disk and CPU for a 2,000-file
repository); taking over the worktree of a dependency that ended done costs a rename
and a new branch. So each task that ends done hands its worktree on to one dependant,
its heir: the dependant that comes first in the start order (priority, then longest
remaining path). The heir is not checked out ahead; its other dependencies' branches
are merged in when it becomes ready, as for any dependant.

A worktree is handed on only when nothing else can want it: the dependency ran here
(not on a host), ended done, no longer holds its slot, shares its worktree with no
other task (an epic's), has the same sparse cone as the heir, its agent program keeps
no files of its own there (aider's chat history, Claude Code's hook settings: the
record of that task's session), and the plan keeps no `artifacts` (they are collected
from each task's worktree at cleanup). The donor's
branch keeps its work; the store keeps its final figures; its folder becomes the
heir's. Anything unexpected there (changes, another branch, git refusing the move)
and the heir's worktree is checked out as usual.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from limitless.git.sparse import task_cone
from limitless.plan.graph import Dag
from limitless.plan.hosts import LOCAL
from limitless.plan.model import Plan
from limitless.programs import adapter
from limitless.run.picture import ACTIVE
from limitless.states import TaskStatus
from limitless.store import TaskRow


@dataclass(frozen=True)
class Donor:
    """The finished dependency whose worktree a task takes over."""

    task_id: str
    path: Path
    branch: str


def _own_worktree(plan: Plan, task_id: str) -> bool:
    """The task's worktree is its own: no epic or stage shares it."""
    task = plan.task(task_id)
    return task.worktree_key == task_id and not any(
        other.worktree_key == task_id for other in plan.tasks if other.id != task_id
    )


def _agent_keeps_files(plan: Plan, task_id: str) -> bool:
    """The task's agent program keeps files of its own in the worktree (aider's chat
    history, Claude Code's hook settings): they belong to that task, not to a dependant."""
    program = adapter(plan.profile(plan.task(task_id)).adapter)
    return program is not None and (bool(program.private_files) or program.state_hooks is not None)


def may_hand_on(plan: Plan, donor_id: str, heir_id: str) -> bool:
    """Whether the plan lets `donor_id`'s worktree go to its dependant `heir_id`."""
    return (
        not plan.artifacts
        and not _agent_keeps_files(plan, donor_id)
        and _own_worktree(plan, donor_id)
        and _own_worktree(plan, heir_id)
        and task_cone(plan, plan.task(donor_id)) == task_cone(plan, plan.task(heir_id))
    )


def heir_of(
    plan: Plan, dag: Dag, rows: Mapping[str, TaskRow], donor_id: str, started: Collection[str]
) -> str | None:
    """The dependant `donor_id` hands its worktree on to: the first in start order of those
    that have not started and may take it."""
    candidates = [
        task_id
        for task_id in dag.dependants(donor_id)
        if task_id in rows
        and rows[task_id].attempt == 0
        and rows[task_id].status in (TaskStatus.PENDING, TaskStatus.READY)
        and may_hand_on(plan, donor_id, task_id)
    ]
    order = dag.ready_order(candidates, started=started)
    return order[0] if order else None


def inherits(
    plan: Plan, dag: Dag, rows: Mapping[str, TaskRow], task_id: str, started: Collection[str]
) -> bool:
    """Whether `task_id` will take over a dependency's worktree when it becomes ready, so
    checking it out ahead would be wasted: it is the heir of a dependency that runs here
    or ended done here."""
    for dep in dag.dependencies(task_id):
        row = rows.get(dep)
        if row is None or (row.host or LOCAL) != LOCAL:
            continue
        if row.status not in ACTIVE and row.status is not TaskStatus.DONE:
            continue
        if heir_of(plan, dag, rows, dep, started) == task_id:
            return True
    return False


def donor_for(
    plan: Plan,
    dag: Dag,
    rows: Mapping[str, TaskRow],
    task_id: str,
    *,
    held: Collection[str],
    taken: Collection[str],
) -> Donor | None:
    """The dependency of ready `task_id` whose worktree it takes over now, if any: one
    that ended done here, holds no slot (`held`), was not handed on already (`taken`), and
    whose folder is still there. Its first such dependency in plan order."""
    row = rows.get(task_id)
    if row is None or row.attempt != 0 or Path(row.worktree).exists():
        return None
    for dep in dag.dependencies(task_id):
        dep_row = rows.get(dep)
        if (
            dep_row is None
            or dep_row.status is not TaskStatus.DONE
            or (dep_row.host or LOCAL) != LOCAL
            or dep in held
            or dep in taken
            or not may_hand_on(plan, dep, task_id)
            or not (Path(dep_row.worktree) / ".git").is_file()
        ):
            continue
        return Donor(dep, Path(dep_row.worktree), dep_row.branch)
    return None
