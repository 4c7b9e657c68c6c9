"""Stages: a task with stages becomes a chain `id.stage`, each after the previous; the
plan's dependants of the task depend on its last stage.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass

from yaml.nodes import Node

from limitless.plan.model import (
    Plan,
    Stage,
    Task,
)
from limitless.plan.yamlread import (
    _Reader,
    _show,
)


@dataclass
class _Draft:
    """A task as written, before stage expansion, with the nodes its checks point at."""

    task: Task
    path: str
    node: Node
    id_node: Node | None
    refs: list[tuple[str, str, Node]]  # (field, task id, node) for depends_on and after
    epic_node: Node | None
    staged: bool


_STAGE_FIELDS = re.compile(r"\{(prompt|task)\}")


def _stage_prompt(template: str, task: Task) -> str:
    """Fill {prompt} and {task} in one pass, so braces in the prompt stay as written."""
    return _STAGE_FIELDS.sub(lambda m: task.prompt if m.group(1) == "prompt" else task.id, template)


def _expand(reader: _Reader, drafts: Sequence[_Draft], stages: Sequence[Stage]) -> tuple[Task, ...]:
    """One task per stage for staged tasks, chained in one epic; others keep their shape."""
    if not stages:
        return tuple(draft.task for draft in drafts)
    last = {d.task.id: f"{d.task.id}.{stages[-1].name}" for d in drafts if d.staged}

    def renamed(ids: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(last.get(task_id, task_id) for task_id in ids)

    tasks: list[Task] = []
    for draft in drafts:
        task = draft.task
        if not draft.staged:
            tasks.append(
                dataclasses.replace(
                    task, depends_on=renamed(task.depends_on), after=renamed(task.after)
                )
            )
            continue
        chained = dataclasses.replace(
            task, depends_on=renamed(task.depends_on), after=renamed(task.after)
        )
        tasks.extend(stage_chain(chained, stages))
    _check_expanded_ids(reader, drafts, tasks)
    return tuple(tasks)


def stage_chain(task: Task, stages: Sequence[Stage]) -> list[Task]:
    """`task` as one task per stage (`<id>.<stage>`), chained in one epic and worktree:
    the first stage waits for what the task waits for, each next one for the one before."""
    # A staged task's estimate covers all its stages, so each stage takes a share.
    share = task.estimate_s / len(stages) if task.estimate_s is not None else None
    chain: list[Task] = []
    previous: str | None = None
    for stage in stages:
        stage_id = f"{task.id}.{stage.name}"
        chain.append(
            dataclasses.replace(
                task,
                id=stage_id,
                prompt=_stage_prompt(stage.prompt, task),
                agent=stage.agent or task.agent,
                model=stage.model or task.model,
                depends_on=task.depends_on if previous is None else (previous,),
                after=task.after if previous is None else (),
                epic=task.epic or task.id,
                estimate_s=share,
                stage=stage.name,
                origin=task.id,
            )
        )
        previous = stage_id
    return chain


def stage_ends(plan: Plan) -> dict[str, str]:
    """For each staged task as written, the id of its last stage (what depends on it waits for)."""
    if not plan.stages:
        return {}
    last = plan.stages[-1].name
    return {task.origin: task.id for task in plan.tasks if task.origin and task.stage == last}


def _check_expanded_ids(reader: _Reader, drafts: Sequence[_Draft], tasks: Sequence[Task]) -> None:
    plain = {d.task.id for d in drafts if not d.staged}
    for draft in drafts:
        if not draft.staged or draft.id_node is None:
            continue
        for task in tasks:
            if task.origin == draft.task.id and task.id in plain:
                msg = (
                    f"stage {task.stage} of task {_show(draft.task.id)} is named {_show(task.id)}, "
                    "like another task; rename one of them"
                )
                reader.fail(draft.id_node, f"{draft.path}.id", msg)


# JSON back into values
