"""Which folders a sparse task worktree checks out (plan key `sparse`, git's cone mode).

Cone mode names folders: each one is checked out whole, with the files directly
inside each of its parents and at the top. A task's declared `files` globs are
cut at their first wildcard (`apps/web/**` -> `apps/web`, `src/*.py` -> `src`);
a glob with a wildcard in its first part (`**/*.py`) needs the whole tree, and
so does a task that declares no files: they get a full checkout.
"""

from __future__ import annotations

from collections.abc import Sequence

from limitless.plan.model import Plan, Task

_WILDCARDS = frozenset("*?[")


def leading_folder(glob: str) -> str:
    """The part of `glob` before its first wildcard component ("" when it starts with one)."""
    kept: list[str] = []
    for part in glob.strip("/").split("/"):
        if not part or part == "." or _WILDCARDS & set(part):
            if part and part != ".":
                break
            continue
        kept.append(part)
    return "/".join(kept)


def cone(files: Sequence[str], extra: Sequence[str]) -> tuple[str, ...] | None:
    """The cone folders for declared `files` plus `extra` folders; None means the whole tree."""
    if not files:
        return None
    folders: list[str] = []
    for glob in (*files, *extra):
        folder = leading_folder(glob)
        if not folder:
            return None
        folders.append(folder)
    unique = sorted(dict.fromkeys(folders))
    # a folder inside another one adds nothing to the cone
    return tuple(f for f in unique if not any(f.startswith(g + "/") for g in unique if g != f))


def task_cone(plan: Plan, task: Task) -> tuple[str, ...] | None:
    """The cone of `task`'s worktree, or None for a full checkout (no `sparse` in the plan,
    no declared files, or a glob that reaches everywhere). Tasks sharing the worktree
    (an epic, stages) share the cone: every one of them must declare its files."""
    if plan.sparse is None:
        return None
    sharing = [other for other in plan.tasks if other.worktree_key == task.worktree_key]
    if any(not other.files for other in sharing):
        return None
    return cone([glob for other in sharing for glob in other.files], plan.sparse)
