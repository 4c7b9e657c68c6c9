"""Whether a worktree's HEAD, branch tip or index changed, read from files under `.git`:
no git process, so it can be asked of every worktree on every poll."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def head_token(worktree: Path) -> tuple[str, ...] | None:
    """What changes when a worktree's HEAD, branch tip or index changes, read from files.

    None when the folder is not a linked worktree (yet, or any more). Reading a
    few small files costs far less than a git process.
    """
    return HeadWatch().token(worktree)


def git_dirs(worktree: Path) -> tuple[str, str] | None:
    """(its git dir, the common git dir) of a linked worktree, from its `.git` file."""
    try:
        pointer = (worktree / ".git").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    if not pointer.startswith("gitdir:"):
        return None
    gitdir = Path(pointer.removeprefix("gitdir:").strip())
    if not gitdir.is_absolute():
        gitdir = worktree / gitdir
    common = gitdir
    with contextlib.suppress(OSError):
        relative = (gitdir / "commondir").read_text(encoding="utf-8").strip()
        common = (gitdir / relative).resolve() if relative else gitdir
    return str(gitdir), str(common)


def _token_in(worktree: Path, gitdir: str, common: str) -> tuple[str, ...] | None:
    """`head_token` once the git dirs are known: one stat, two small reads, one stat."""
    try:
        os.stat(os.path.join(worktree, ".git"))
        with open(os.path.join(gitdir, "HEAD"), encoding="utf-8", errors="replace") as handle:
            head = handle.read().strip()
    except OSError:
        return None
    tip = ""
    if head.startswith("ref:"):
        ref = head.removeprefix("ref:").strip()
        try:
            with open(os.path.join(common, ref), encoding="utf-8", errors="replace") as handle:
                tip = handle.read().strip()
        except OSError:
            tip = f"packed:{_mtime(Path(common) / 'packed-refs')}"
    return (head, tip, str(_mtime(Path(gitdir) / "index")))


class HeadWatch:
    """`head_token` for many worktrees, poll after poll, with their git dirs read once."""

    def __init__(self) -> None:
        self._dirs: dict[Path, tuple[str, str]] = {}

    def token(self, worktree: Path) -> tuple[str, ...] | None:
        dirs = self._dirs.get(worktree)
        if dirs is None:
            dirs = git_dirs(worktree)
            if dirs is None:
                return None
            self._dirs[worktree] = dirs
        token = _token_in(worktree, *dirs)
        if token is None:
            del self._dirs[worktree]  # gone, or made again elsewhere: read its .git next time
        return token


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0
