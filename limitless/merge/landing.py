"""Landing the merged result on the base branch, which only ever moves forward.

The merged result lands only when the base tip is an ancestor of it (it still
points where the run started, or at this run's own earlier landing); otherwise
`land` says base MOVED and the phase redoes its merges on the new tip. Where
base is checked out, landing is `git merge --ff-only` in that checkout, and
only when it has no staged or unstaged changes to tracked files and no
operation in progress; untracked files do not count, and if one is in the way
git itself refuses the fast-forward and nothing changes. Where base is checked
out nowhere, landing is a compare-and-swap `git update-ref`. One landing at a
time per repository (`landing_lock`). Task branches are never deleted here.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from limitless.git import locks, refs, worktrees
from limitless.git.runner import git
from limitless.git.status import operation_in_progress, tracked_changes

log = logging.getLogger(__name__)


class LandingKind(StrEnum):
    LANDED = "landed"
    MOVED = "moved"
    """Base moved to a commit the merged result does not contain."""
    DIRTY = "dirty"
    """Base is checked out in a checkout with changes: not touched."""
    REFUSED = "refused"
    """Git refused the fast-forward (an untracked file in the way, a race)."""
    MISSING = "missing"
    """The base branch does not exist."""


@dataclass(frozen=True)
class Landing:
    kind: LandingKind
    tip: str | None
    """The base tip seen (after landing: the merged sha)."""
    detail: str = ""
    checkout: Path | None = None
    """The checkout where base is checked out, if any."""


LAND_LOCK_FILE = "land.lock"


def landing_lock(lock_dir: Path) -> AbstractContextManager[None]:
    """One landing at a time per repository, across processes.

    Two runs landing on the same checkout at once saw each other's half-done
    `git merge --ff-only` (index.lock held, files being rewritten) as a dirty
    checkout or a refusal; taken in turn, the second one finds base moved and
    redoes its merges on the new tip.
    """
    return locks.repo_lock(lock_dir, LAND_LOCK_FILE)


def checkout_of(repo_root: Path, branch: str) -> Path | None:
    """The checkout where `branch` is checked out, if any (the user's own, usually)."""
    for entry in worktrees.list_worktrees(repo_root):
        if entry.branch == branch and not entry.prunable and entry.path.exists():
            return entry.path
    return None


def land(
    repo_root: Path,
    base: str,
    merged_sha: str,
    *,
    message: str = "limitless: land",
    lock_dir: Path | None = None,
) -> Landing:
    """Move branch `base` forward to `merged_sha`, if that is a fast-forward and safe.

    Checked out somewhere: `git merge --ff-only` there, only when that checkout has
    no changes to tracked files. Checked out nowhere: compare-and-swap update-ref.
    Holds the repository's landing lock (`<lock_dir>/land.lock`) throughout.
    """
    repo_root = Path(repo_root)
    with landing_lock(lock_dir or locks.lock_dir_of(repo_root)):
        return _land(repo_root, base, merged_sha, message)


def _land(repo_root: Path, base: str, merged_sha: str, message: str) -> Landing:
    tip = refs.rev_parse(repo_root, f"refs/heads/{base}")
    if tip is None:
        return Landing(LandingKind.MISSING, None, f"branch {base} does not exist")
    checkout = checkout_of(repo_root, base)
    if tip == merged_sha:
        return Landing(LandingKind.LANDED, tip, "already there", checkout)
    if not refs.is_ancestor(repo_root, tip, merged_sha):
        return Landing(LandingKind.MOVED, tip, f"{base} moved to {tip[:12]}", checkout)
    if checkout is not None:
        changed = tracked_changes(checkout)
        op = operation_in_progress(checkout)
        if changed or op:
            shown = ", ".join(changed[:5]) + (
                f" and {len(changed) - 5} more" if len(changed) > 5 else ""
            )
            what = f"a {op} in progress" if op else f"uncommitted changes ({shown})"
            return Landing(LandingKind.DIRTY, tip, what, checkout)
        result = git(checkout, "merge", "--ff-only", "--no-edit", merged_sha, check=False)
        if result.returncode != 0:
            now = refs.rev_parse(repo_root, f"refs/heads/{base}")
            if now != tip and now is not None:
                return Landing(LandingKind.MOVED, now, f"{base} moved to {now[:12]}", checkout)
            words = (result.stderr or result.stdout).strip()
            return Landing(LandingKind.REFUSED, tip, words, checkout)
        log.info("base landed", extra={"base": base, "sha": merged_sha, "how": "ff"})
        return Landing(
            LandingKind.LANDED, merged_sha, f"git merge --ff-only in {checkout}", checkout
        )
    ref = f"refs/heads/{base}"
    result = git(repo_root, "update-ref", "-m", message, ref, merged_sha, tip, check=False)
    if result.returncode != 0:
        now = refs.rev_parse(repo_root, f"refs/heads/{base}")
        if now != tip and now is not None:
            return Landing(LandingKind.MOVED, now, f"{base} moved to {now[:12]}", None)
        return Landing(LandingKind.REFUSED, tip, result.stderr.strip(), None)
    log.info("base landed", extra={"base": base, "sha": merged_sha, "how": "update-ref"})
    return Landing(LandingKind.LANDED, merged_sha, "update-ref", None)
