"""The repository's lock files: one worktree bookkeeping at a time, across threads and processes.

Concurrent `git worktree add` calls corrupt `.git/worktrees`, so adding,
removing and pruning take an exclusive `fcntl.flock` on
`<lock_dir>/worktree.lock`; commands that read every worktree's records take it
shared. The lock folder is `<git common dir>/limitless`, so two runs on one
repository share it. The merge phase's landing lock is another file there.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from limitless.git.repo import common_dir

LOCK_FILE = "worktree.lock"


@contextmanager
def repo_lock(lock_dir: Path, name: str, *, shared: bool = False) -> Iterator[None]:
    """Hold the lock file `<lock_dir>/<name>` (flock) until the block ends.

    Blocks until granted; works across threads and processes. Not reentrant:
    never take the same lock again inside the block.
    """
    lock_dir.mkdir(parents=True, exist_ok=True)
    with (lock_dir / name).open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def worktree_lock(lock_dir: Path, *, shared: bool = False) -> AbstractContextManager[None]:
    """The worktree lock of a repository (`<lock_dir>/worktree.lock`).

    Exclusive for anything that adds, moves or removes worktrees; shared for
    commands that read every worktree's records (`worktree list`, `branch -d`),
    which fail with "failed to read .git/worktrees/<x>/commondir" while one is
    being added.
    """
    return repo_lock(lock_dir, LOCK_FILE, shared=shared)


def lock_dir_of(repo_root: Path) -> Path:
    """Where a repository's limitless locks live (`<git common dir>/limitless`)."""
    return common_dir(repo_root) / "limitless"
