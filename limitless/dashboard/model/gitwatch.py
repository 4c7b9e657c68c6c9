"""Each task's worktree as git sees it (commits ahead, changes, dirty files, diffstat),
inspected only when it may have changed.

A worktree is inspected (`worktrees.inspect`, three git processes) only when its
HEAD, branch tip or index changed (read from files under `.git`, no git process),
when its task changed status, or when its pane printed something new and the last
inspection is `git_interval` (focused task) or `background_git_interval` (the
others) seconds old.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from limitless.dashboard.model.heads import HeadWatch
from limitless.errors import LimitlessError
from limitless.git.refs import diffstat_text
from limitless.git.status import WorktreeState, inspect
from limitless.plan.hosts import LOCAL
from limitless.states import TaskStatus
from limitless.store import Run, TaskRow


@dataclass
class _GitSeen:
    token: tuple[str, ...] | None
    status: TaskStatus
    attempt: int
    checked_at: float
    state: WorktreeState | None
    diffstat_head: str | None = None
    diffstat: str = ""


class GitWatch:
    """The worktrees of a run's tasks, inspected when they may have changed."""

    def __init__(self, git_interval: float, background_git_interval: float) -> None:
        self.git_interval = git_interval
        self.background_git_interval = background_git_interval
        self._heads = HeadWatch()
        self._seen: dict[str, _GitSeen] = {}
        self._outputs: dict[str, tuple[str, ...]] = {}

    def state(self, task_id: str) -> WorktreeState | None:
        """What the last inspection of the task's worktree found (None: not inspected)."""
        seen = self._seen.get(task_id)
        return seen.state if seen is not None else None

    def diffstat(self, task_id: str) -> str:
        """`git diff --stat` of the task's branch, as last read (only the focused task's is)."""
        seen = self._seen.get(task_id)
        return seen.diffstat if seen is not None else ""

    def read(
        self,
        run: Run,
        rows: Sequence[TaskRow],
        captured: Mapping[str, tuple[str, ...]],
        focus: str | None,
        now: float,
        problems: list[str],
    ) -> int:
        """Inspect the worktrees that may have changed; returns how many were inspected."""
        inspections = 0
        for row in rows:
            if row.started_at is None and row.attempt == 0:
                continue  # never ran: no worktree worth reading yet
            if row.status.active and row.host not in (None, LOCAL):
                # its worktree here stays at the start commit until the end: the figures
                # its wrapper reads on the host (the row's) are shown instead
                self._seen.pop(row.id, None)
                continue
            worktree = Path(row.worktree)
            token = self._heads.token(worktree)
            seen = self._seen.get(row.id)
            output = captured.get(row.pane_id or "", ()) if row.status.active else ()
            output_changed = output != self._outputs.get(row.id, ())
            self._outputs[row.id] = output
            interval = self.git_interval if row.id == focus else self.background_git_interval
            due = (
                seen is None
                or token != seen.token
                or row.status != seen.status
                or row.attempt != seen.attempt
                or (output_changed and now - seen.checked_at >= interval)
            )
            if due and token is not None:
                base = row.start_sha or run.base_sha
                try:
                    state: WorktreeState | None = inspect(worktree, base)
                except LimitlessError as exc:
                    problems.append(f"git in {worktree}: {exc}")
                    state = seen.state if seen else None
                inspections += 1
                previous = seen
                seen = _GitSeen(token, row.status, row.attempt, now, state)
                if previous is not None:
                    seen.diffstat_head, seen.diffstat = previous.diffstat_head, previous.diffstat
                self._seen[row.id] = seen
            elif due:
                self._seen[row.id] = _GitSeen(None, row.status, row.attempt, now, None)
            seen = self._seen.get(row.id)
            if row.id == focus and seen is not None:
                self._refresh_diffstat(run, row, seen, problems)
        return inspections

    def _refresh_diffstat(
        self, run: Run, row: TaskRow, seen: _GitSeen, problems: list[str]
    ) -> None:
        head = seen.state.head if seen.state is not None else row.head_sha
        if head is None or head == seen.diffstat_head:
            return
        base = row.start_sha or run.base_sha
        try:
            seen.diffstat = diffstat_text(Path(run.repo_root), base, head)
        except LimitlessError as exc:
            problems.append(f"git diff --stat of {row.id}: {exc}")
            seen.diffstat = ""
        seen.diffstat_head = head
