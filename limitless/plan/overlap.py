"""Declared-scope overlap: tasks whose `files` globs may touch the same paths.

Two tasks overlap when they may run at the same time (neither depends on the
other, directly or not) and some path could match a glob of each. The plan's
`overlap: warn` reports such pairs (`validate`, run start); `overlap: serialize`
also keeps them from running side by side.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from limitless.plan.graph import Dag
from limitless.plan.model import Plan

_WILDCARDS = "*?["


@dataclass(frozen=True)
class Overlap:
    first: str
    second: str
    first_glob: str
    second_glob: str

    def describe(self) -> str:
        return (
            f"tasks {self.first!r} ({self.first_glob}) and {self.second!r} ({self.second_glob}) "
            "may run at the same time on overlapping files; order them with depends_on/after "
            "or set `overlap: serialize`"
        )


def _literal_prefix(pattern: str) -> str:
    cut = min((i for i, ch in enumerate(pattern) if ch in _WILDCARDS), default=len(pattern))
    return pattern[:cut]


def _as_directory_glob(pattern: str) -> str:
    """A bare directory name (`src/api`, `src/api/`) covers everything below it."""
    stripped = pattern.rstrip("/")
    if any(ch in stripped for ch in _WILDCARDS):
        return stripped
    return stripped + "/**"


def globs_overlap(first: str, second: str) -> bool:
    """Could one path match both globs? Errs on the side of yes (it only warns or orders)."""
    a, b = first.strip().lstrip("./"), second.strip().lstrip("./")
    if not a or not b:
        return False
    prefix_a, prefix_b = _literal_prefix(a), _literal_prefix(b)
    if not (prefix_a.startswith(prefix_b) or prefix_b.startswith(prefix_a)):
        return False
    wild_a = any(ch in a for ch in _WILDCARDS)
    wild_b = any(ch in b for ch in _WILDCARDS)
    if not wild_a and not wild_b:
        return a.rstrip("/") == b.rstrip("/") or _inside(a, b) or _inside(b, a)
    if not wild_a:
        return fnmatch.fnmatchcase(a, b) or fnmatch.fnmatchcase(a, _as_directory_glob(b))
    if not wild_b:
        return fnmatch.fnmatchcase(b, a) or fnmatch.fnmatchcase(b, _as_directory_glob(a))
    return True


def _inside(path: str, directory: str) -> bool:
    return path.startswith(directory.rstrip("/") + "/")


def overlapping_pairs(plan: Plan, dag: Dag | None = None) -> list[Overlap]:
    """Pairs of tasks that may run concurrently with overlapping declared files."""
    graph = dag or Dag.from_tasks(plan.tasks)
    scoped = [task for task in plan.tasks if task.files]
    found: list[Overlap] = []
    for i, one in enumerate(scoped):
        for other in scoped[i + 1 :]:
            if one.worktree_key == other.worktree_key:
                continue  # same epic: they run one after another in one worktree
            if graph.has_path(one.id, other.id) or graph.has_path(other.id, one.id):
                continue
            match = next(
                ((fa, fb) for fa in one.files for fb in other.files if globs_overlap(fa, fb)),
                None,
            )
            if match:
                found.append(Overlap(one.id, other.id, match[0], match[1]))
    return found


def overlap_warnings(plan: Plan) -> list[str]:
    return [pair.describe() for pair in overlapping_pairs(plan)]


def conflicts_by_task(pairs: list[Overlap]) -> dict[str, set[str]]:
    """For `overlap: serialize`: task id → the tasks it must not run beside."""
    table: dict[str, set[str]] = {}
    for pair in pairs:
        table.setdefault(pair.first, set()).add(pair.second)
        table.setdefault(pair.second, set()).add(pair.first)
    return table
