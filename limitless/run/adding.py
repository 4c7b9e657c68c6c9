"""`limitless add`: a task added to a live run, checked as the plan loader checks tasks;
its supervisor picks it up (and grows the run's slots if it needs more).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from limitless.errors import UsageError
from limitless.git import refs as git_refs
from limitless.git import worktrees
from limitless.plan.stored import plan_of
from limitless.states import RunStatus, TaskStatus
from limitless.store import Store, TaskRow


def _check_task_id(task_id: str) -> None:
    """The plan loader's own rule for task ids, with its message."""
    import yaml

    from limitless.errors import PlanError
    from limitless.plan.loader import loads

    text = yaml.safe_dump({"tasks": [{"id": task_id, "prompt": "x", "agent": "shell"}]})
    try:
        loads(text, source="--id", base_dir=Path.cwd())
    except PlanError as exc:
        reasons = "; ".join(problem.message for problem in exc.problems)
        raise UsageError(f"--id {task_id!r}: {reasons}") from None


def add_task(
    store: Store,
    run_id: str,
    *,
    prompt: str,
    task_id: str | None = None,
    agent: str | None = None,
    depends_on: tuple[str, ...] = (),
    stages: bool = True,
) -> AddedTask:
    """Add a task to a live run (its supervisor picks it up).

    With the plan's `stages` (unless `stages` is False) the task becomes one task
    per stage, `<id>.<stage>`, as the plan's own tasks do. A dependency named by a
    staged task's id waits for that task's last stage.
    """
    from limitless.plan.graph import Dag
    from limitless.plan.model import Task
    from limitless.plan.stages import stage_chain, stage_ends

    if not prompt.strip():
        raise UsageError("--prompt is empty; say what the agent must do")
    with store.transaction():
        run = store.get_run(run_id)
        if run.status is not RunStatus.RUNNING:
            msg = (
                f"run {run_id} is {run.status}, so it takes no new tasks; "
                "start a new one with `limitless run --prompt TEXT`"
            )
            raise UsageError(msg)
        plan = plan_of(run)
        ends = stage_ends(plan)
        known = {task.id for task in plan.tasks} | set(ends)
        if task_id is None:
            number = len(plan.tasks) + 1
            while f"task-{number}" in known:
                number += 1
            task_id = f"task-{number}"
        _check_task_id(task_id)
        if task_id in known:
            msg = f"run {run_id} has a task {task_id!r} already; pick another --id"
            raise UsageError(msg)
        unknown = [dep for dep in depends_on if dep not in known]
        if unknown:
            msg = (
                f"--depends-on {unknown[0]!r}: run {run_id} has no such task; "
                f"its tasks are: {', '.join(sorted(known))}"
            )
            raise UsageError(msg)
        agent_name = agent or plan.agent
        if agent_name not in plan.agents:
            msg = (
                f"--agent {agent_name!r} is no agent profile of run {run_id}; "
                f"known: {', '.join(sorted(plan.agents))}"
            )
            raise UsageError(msg)
        waits_for = tuple(dict.fromkeys(ends.get(dep, dep) for dep in depends_on))
        task = Task(id=task_id, prompt=prompt, agent=agent_name, depends_on=waits_for)
        added = stage_chain(task, plan.stages) if stages and plan.stages else [task]
        clash = next((new.id for new in added if new.id in known), None)
        if clash is not None:
            msg = f"run {run_id} has a task {clash!r} already; pick another --id"
            raise UsageError(msg)
        grown = dataclasses.replace(plan, tasks=(*plan.tasks, *added))
        Dag.from_tasks(grown.tasks)  # GraphError names any cycle
        rows = store.get_tasks(run_id)
        store.update_run(run_id, plan_json=grown.to_json())
        store.add_tasks(
            run_id,
            [
                TaskRow(
                    run_id=run_id,
                    id=new.id,
                    position=len(rows) + offset,
                    agent=new.agent,
                    branch=git_refs.branch_name(run_id, new.worktree_key),
                    worktree=str(
                        worktrees.worktree_path(Path(run.worktree_root), run_id, new.worktree_key)
                    ),
                    status=TaskStatus.PENDING,
                )
                for offset, new in enumerate(added)
            ],
        )
        for new in added:
            store.add_event(run_id, "task_added", new.id, depends_on=list(new.depends_on))
    return AddedTask(task_id, tuple(new.id for new in added))


@dataclass(frozen=True)
class AddedTask:
    """What `add_task` added: the task as named, and the tasks it became (its stages)."""

    id: str
    tasks: tuple[str, ...]
