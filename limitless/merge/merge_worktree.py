"""The merge worktree: where the merge phase works, never the user's checkout.

`<worktree_root>/<run>/_merge` on branch `limitless/<run>/merged`, started from
the run's base sha. What the phase keeps from being lost there (a detached
HEAD, an interrupted merge, a refused resolution, a result redone on a moved
base) is kept under `refs/limitless/<run>/merged/`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from limitless.git import refs, submodules, worktrees
from limitless.git.refs import ATTEMPT_REF_PREFIX
from limitless.git.runner import git
from limitless.git.status import head_ref, head_sha, operation_in_progress, tracked_changes
from limitless.store import Run

log = logging.getLogger(__name__)

MERGED_KEY = "merged"
"""`limitless/<run>/merged`: the branch the merge phase builds."""

MERGE_DIR = "_merge"
"""`<worktree_root>/<run>/_merge`: the merge worktree (task ids cannot start with '_')."""


@dataclass(frozen=True)
class MergeWorktree:
    """The merge worktree of a run: its repository, folder and branch."""

    repo: Path
    path: Path
    branch: str
    run_id: str

    @classmethod
    def of(cls, run: Run) -> MergeWorktree:
        return cls(
            repo=Path(run.repo_root),
            path=worktrees.worktree_path(Path(run.worktree_root), run.id, MERGE_DIR),
            branch=refs.branch_name(run.id, MERGED_KEY),
            run_id=run.id,
        )

    def kept_ref(self, name: str) -> str:
        """`refs/limitless/<run>/merged/<name>`: where something of it is kept."""
        return f"{ATTEMPT_REF_PREFIX}/{self.run_id}/{MERGED_KEY}/{name}"

    def exists(self) -> bool:
        """Whether git knows the merge worktree and its folder is there (on any HEAD)."""
        entry = worktrees.entry_at(worktrees.list_worktrees(self.repo), self.path)
        return entry is not None and not entry.prunable and entry.path.exists()

    def create(
        self, base_sha: str, *, copy: Sequence[str], link: Sequence[str], lock_dir: Path
    ) -> None:
        """Add the worktree (its branch at `base_sha` when it is new), with the plan's files."""
        worktrees.prepare_worktree(
            self.repo,
            path=self.path,
            branch=self.branch,
            base_sha=base_sha,
            copy=copy,
            link=link,
            lock_dir=lock_dir,
        )

    def busy(self) -> str | None:
        """Why the phase cannot work in it now (an operation in progress), or None."""
        op = operation_in_progress(self.path)
        if op is None:
            return None
        return (
            f"the merge worktree {self.path} has a {op} in progress; finish it "
            f"(resolve, git add, git commit) or abort it (git {op} --abort), then run "
            f"`limitless merge {self.run_id}` again"
        )

    def back_on_branch(self) -> str | None:
        """Check the merged branch out again after a detached HEAD, kept first; the ref kept."""
        if head_ref(self.path) == f"refs/heads/{self.branch}":
            return None
        head = head_sha(self.path)
        kept = self.kept_ref(f"detached-{head[:12]}")
        refs.keep(self.repo, kept, head)
        git(self.path, "checkout", "-q", self.branch)
        return kept

    def dirty(self) -> str | None:
        """Why its uncommitted changes stop the phase, or None when it has none."""
        changed = tracked_changes(self.path)
        if not changed:
            return None
        return (
            f"the merge worktree {self.path} has uncommitted changes "
            f"({', '.join(changed[:5])}); commit them on {self.branch} or discard them "
            f"(git reset --hard), then run `limitless merge {self.run_id}` again"
        )

    def sync_submodules(self) -> None:
        """Its submodules at the commits its HEAD records (for the gate)."""
        submodules.sync(self.path, self.repo)
