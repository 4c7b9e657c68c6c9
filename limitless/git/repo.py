"""Which repository limitless works on: the checkout it was started in, where it keeps its state."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from limitless.errors import EnvironmentProblem
from limitless.git.runner import git as _git
from limitless.git.runner import out as _out


@dataclass(frozen=True)
class RepoInfo:
    """The checkout limitless was started in."""

    root: Path
    """Top level of the checkout (a linked worktree's own folder when started in one)."""
    common_dir: Path
    """The repository's common git folder (absolute), shared by all its worktrees."""
    current_branch: str | None
    """Short name of the checked-out branch; None when HEAD is detached."""
    head_sha: str | None


def find_repo(path: Path) -> RepoInfo:
    """The git checkout containing `path`; EnvironmentProblem outside one or before a commit."""
    start = Path(path).absolute()
    while not start.is_dir() and start != start.parent:
        start = start.parent
    result = _git(start, "rev-parse", "--show-toplevel", "--git-common-dir", check=False)
    lines = result.stdout.splitlines()
    if result.returncode != 0 or len(lines) != 2:
        msg = (
            f"not inside a git repository: {path}; "
            "run limitless from a git checkout (or name one with `limitless -C DIR ...`), "
            "or `git init` one first"
        )
        raise EnvironmentProblem(msg)
    root = Path(lines[0])
    common_dir = (start / lines[1]).resolve()
    head = _git(start, "rev-parse", "-q", "--verify", "HEAD^{commit}", check=False)
    if head.returncode != 0:
        msg = (
            f"the git repository at {root} has no commits yet; "
            "make a first commit (e.g. `git commit --allow-empty -m init`) and run limitless again"
        )
        raise EnvironmentProblem(msg)
    branch = _git(start, "symbolic-ref", "-q", "--short", "HEAD", check=False)
    current = branch.stdout.strip() if branch.returncode == 0 else None
    return RepoInfo(
        root=root,
        common_dir=common_dir,
        current_branch=current or None,
        head_sha=head.stdout.strip(),
    )


@functools.lru_cache(maxsize=16)
def common_dir(checkout: Path) -> Path:
    """The common git folder of the repository `checkout` (any of its worktrees) belongs
    to, absolute and resolved; asked of git once per process."""
    return Path(_out(checkout, "rev-parse", "--path-format=absolute", "--git-common-dir")).resolve()


def state_dir(info: RepoInfo) -> Path:
    """Where limitless keeps its store and logs: `<git-common-dir>/limitless`."""
    return info.common_dir / "limitless"


def default_worktree_root(repo_root: Path) -> Path:
    """`<repo>/../<repo-name>.worktrees`: beside the checkout, never inside it."""
    return repo_root.parent / f"{repo_root.name}.worktrees"
