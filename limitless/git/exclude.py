"""Keeping files out of a task's commits without a `.gitignore` in the user's tree.

`add_excludes` is the one writer of the repository's `info/exclude` (shared by
all its worktrees); several wrappers start at once, so it takes a file lock.
"""

from __future__ import annotations

import fcntl
from collections.abc import Sequence
from pathlib import Path

from limitless.git.runner import git as _git
from limitless.git.runner import out as _out

EXCLUDE_NOTE = "# written by limitless: files it puts into task worktrees, kept out of commits"


def exclude_untracked(
    worktree: Path, patterns: Sequence[str], *, note: str | None = None
) -> list[str]:
    """Name `patterns` in the repository's `info/exclude` (shared by all its worktrees).

    Files an agent program keeps for itself (aider's chat history) then stay out
    of `commit_all` and out of the dirty count, without a `.gitignore` in the
    user's tree; tracked files are not affected. Patterns already there are
    left alone; returns those added. A `note` (a `#` line) goes before them the
    first time.
    """
    found = Path(_out(worktree, "rev-parse", "--git-path", "info/exclude"))
    path = found if found.is_absolute() else worktree / found
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # several wrappers start at once
        handle.seek(0)
        text = handle.read()
        present = {line.strip() for line in text.splitlines()}
        missing = [pattern for pattern in patterns if pattern not in present]
        if missing:
            lead = "" if not text or text.endswith("\n") else "\n"
            heading = f"{note}\n" if note and note not in text else ""
            handle.write(lead + heading + "".join(f"{pattern}\n" for pattern in missing))
    return missing


def keep_out_of_commits(worktree: Path, relative: str) -> str:
    """Keep a file limitless writes into a worktree out of the task's commits, without
    adding a `.gitignore` to the user's tree: the repository's `info/exclude` names it
    (`"excluded"`), or — when the repository tracks it — the worktree's own index
    skips it (`"skip-worktree"`), leaving the main checkout's index alone.
    """
    listed = _git(worktree, "ls-files", "--error-unmatch", "--", relative, check=False)
    if listed.returncode == 0:
        _git(worktree, "update-index", "--skip-worktree", "--", relative)
        return "skip-worktree"
    exclude_untracked(worktree, ["/" + relative.lstrip("/")], note=EXCLUDE_NOTE)
    return "excluded"
