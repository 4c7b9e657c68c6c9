"""Conflict prediction: which task branches git expects to conflict, before they are merged.

`git merge-tree --write-tree --name-only --no-messages -z A B` (git >= 2.38)
between every pair of task branches with commits beyond base, and between
base and each branch that base has moved away from. Results are cached per
pair of commit ids, so a poll only asks git about branches that moved. The
supervisor stores them (`update_predictions`) for the dashboard and status.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from limitless.errors import GitError
from limitless.git import refs
from limitless.git.runner import failure, git, is_object_id
from limitless.states import TaskStatus
from limitless.store import Prediction, Store, TaskRow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictedConflict:
    """Git predicts that merging `task_id` with `other` ("" = base) conflicts in `files`."""

    task_id: str
    other: str
    files: tuple[str, ...]


class _Cache:
    """Results of git questions about fixed commit ids: they never change."""

    def __init__(self, limit: int = 50_000) -> None:
        self.limit = limit
        self.lock = threading.Lock()
        self.data: dict[tuple[str, ...], object] = {}

    def get(self, key: tuple[str, ...]) -> object | None:
        with self.lock:
            return self.data.get(key)

    def put(self, key: tuple[str, ...], value: object) -> None:
        with self.lock:
            if len(self.data) >= self.limit:
                self.data.clear()
            self.data[key] = value


_CACHE = _Cache()


def merge_tree_conflicts(repo_root: Path, a: str, b: str) -> tuple[str, ...]:
    """The files a merge of `a` and `b` would conflict in; () when it is clean.

    GitError for an unknown ref: git exits 1 for it as for a conflict, so a
    conflict is told by stdout starting with a tree id.
    """
    args = ("merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", a, b)
    result = git(Path(repo_root), *args, check=False)
    fields = result.stdout.split("\0")
    if result.returncode in (0, 1) and is_object_id(fields[0]):
        if result.returncode == 0:
            return ()
        return tuple(dict.fromkeys(name for name in fields[1:] if name))
    raise failure(Path(repo_root), args, result.returncode, result.stderr or result.stdout)


def _cached_conflicts(repo: str, a: str, b: str) -> tuple[str, ...]:
    key = ("tree", repo, *sorted((a, b)))
    hit = _CACHE.get(key)
    if isinstance(hit, tuple):
        return hit
    files = merge_tree_conflicts(Path(repo), a, b)
    _CACHE.put(key, files)
    return files


def _cached_ancestor(repo: str, a: str, b: str) -> bool:
    key = ("ancestor", repo, a, b)
    hit = _CACHE.get(key)
    if isinstance(hit, bool):
        return hit
    value = refs.is_ancestor(Path(repo), a, b)
    _CACHE.put(key, value)
    return value


def predict_conflicts(
    repo_root: Path, base_ref: str, branches: Mapping[str, str]
) -> list[PredictedConflict]:
    """Conflicts git predicts between task branches, and between each and base.

    `branches` maps task ids to refs; refs that name no commit are left out.
    Pairs are checked only among branches with commits beyond base; a branch is
    checked against base only when base has commits the branch lacks.
    """
    repo = str(Path(repo_root))
    base = refs.rev_parse(Path(repo), base_ref)
    if base is None:
        msg = f"base {base_ref!r} names no commit in {repo}"
        raise GitError(msg)
    tips: dict[str, str] = {}
    for task_id, ref in branches.items():
        tip = refs.rev_parse(Path(repo), ref)
        if tip is None:
            log.debug("branch skipped", extra={"task": task_id, "ref": ref})
            continue
        tips[task_id] = tip
    ahead = {task_id: tip for task_id, tip in tips.items() if not _cached_ancestor(repo, tip, base)}
    jobs: list[tuple[str, str, str, str]] = []
    for task_id, tip in ahead.items():
        if not _cached_ancestor(repo, base, tip):
            jobs.append((task_id, "", base, tip))
    names = list(ahead)
    for index, first in enumerate(names):
        for second in names[index + 1 :]:
            if ahead[first] != ahead[second]:
                jobs.append((first, second, ahead[first], ahead[second]))
    if len(jobs) > 4:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
            results = list(pool.map(lambda job: _cached_conflicts(repo, job[2], job[3]), jobs))
    else:
        results = [_cached_conflicts(repo, job[2], job[3]) for job in jobs]
    return [
        PredictedConflict(task_id, other, files)
        for (task_id, other, _a, _b), files in zip(jobs, results, strict=True)
        if files
    ]


def update_predictions(store: Store, run_id: str) -> int:
    """Predict the run's conflicts and store them (written only when they changed).

    Only branches of running (or waiting) and done tasks take part: a failed,
    killed or blocked task's branch is not going to be merged. Epic members
    share a branch: its predictions are filed under the member that runs now,
    or else the one that started last. Returns how many there are.
    """
    run = store.get_run(run_id)
    rows = [row for row in store.get_tasks(run_id) if _may_merge(row)]
    by_branch: dict[str, TaskRow] = {}
    for row in rows:
        held = by_branch.get(row.branch)
        if held is None or _representative_key(row) > _representative_key(held):
            by_branch[row.branch] = row
    repo = Path(run.repo_root)
    base_ref = f"refs/heads/{run.base}"
    if refs.rev_parse(repo, base_ref) is None:
        base_ref = run.base_sha
    found = predict_conflicts(
        repo, base_ref, {row.id: f"refs/heads/{b}" for b, row in by_branch.items()}
    )
    wanted = {(p.task_id, p.other, p.files) for p in found}
    stored = {(p.task_id, p.other, tuple(p.files)) for p in store.predictions(run_id)}
    if wanted != stored:
        now = time.time()
        store.set_predictions(
            run_id, [Prediction(run_id, p.task_id, p.other, p.files, now) for p in found]
        )
        log.debug("predictions stored", extra={"run": run_id, "count": len(found)})
    return len(found)


def _may_merge(row: TaskRow) -> bool:
    return row.status.active or row.status is TaskStatus.DONE


def _representative_key(row: TaskRow) -> tuple[int, float, int]:
    return (1 if row.status.active else 0, row.started_at or 0.0, -row.position)
