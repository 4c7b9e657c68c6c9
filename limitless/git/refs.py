"""Branches and refs: the names limitless gives them, what they point at, what they hold.

Every task (or epic) of a run works on branch `limitless/<run>/<key>`; a failed
attempt's commits are kept at `refs/limitless/<run>/<key>/attempt-<n>`, and
whatever else limitless keeps from being lost (`keep`) lives under
`refs/limitless/` too.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from limitless.errors import GitError
from limitless.git.locks import lock_dir_of, worktree_lock
from limitless.git.runner import failure as _failure
from limitless.git.runner import git as _git
from limitless.git.runner import out as _out

log = logging.getLogger(__name__)

BRANCH_PREFIX = "limitless"
"""Task branches live under `refs/heads/limitless/`."""


ATTEMPT_REF_PREFIX = "refs/limitless"
"""Kept attempts live under `refs/limitless/` (not `refs/heads/`: see `attempt_ref`)."""


_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def check_ref_part(kind: str, value: str) -> None:
    """ValueError unless `value` is safe as one path component and one ref component."""
    if (
        not value
        or value in (".", "..")
        or "/" in value
        or ".." in value
        or "@{" in value
        or value.startswith((".", "-"))
        or value.endswith((".lock", "."))
        or _BAD_REF_CHARS.search(value)
    ):
        msg = (
            f"unsafe {kind} {value!r}: use letters, digits, '-', '_' and inner '.', "
            "without '/' or spaces"
        )
        raise ValueError(msg)


def branch_name(run_id: str, key: str) -> str:
    """The task branch `limitless/<run>/<key>`."""
    check_ref_part("run id", run_id)
    check_ref_part("task key", key)
    return f"{BRANCH_PREFIX}/{run_id}/{key}"


def attempt_ref(run_id: str, key: str, n: int) -> str:
    """`refs/limitless/<run>/<key>/attempt-<n>`, where a failed attempt's commits are kept.

    Not under `refs/heads/`: git cannot hold both a branch `limitless/r/t` and
    `limitless/r/t/attempt-1`, as one would be a file and the other a folder.
    """
    check_ref_part("run id", run_id)
    check_ref_part("task key", key)
    if n < 1:
        msg = f"attempt number must be 1 or more, got {n}"
        raise ValueError(msg)
    return f"{ATTEMPT_REF_PREFIX}/{run_id}/{key}/attempt-{n}"


def rev_parse(repo_root: Path, ref: str) -> str | None:
    """The commit id `ref` names, or None when it names no commit."""
    result = _git(
        repo_root,
        "rev-parse",
        "-q",
        "--verify",
        "--end-of-options",
        f"{ref}^{{commit}}",
        check=False,
    )
    if result.returncode == 0:
        return result.stdout.strip()
    if result.stderr.strip():
        args = ("rev-parse", "--verify", ref)
        raise _failure(repo_root, args, result.returncode, result.stderr)
    return None


def branch_exists(repo_root: Path, name: str) -> bool:
    """Whether `refs/heads/<name>` exists."""
    args = ("show-ref", "--verify", "-q", f"refs/heads/{name}")
    result = _git(repo_root, *args, check=False)
    if result.returncode == 0:
        return True
    if result.returncode == 1 and not result.stderr.strip():
        return False
    raise _failure(repo_root, args, result.returncode, result.stderr)


def is_ancestor(repo_root: Path, a: str, b: str) -> bool:
    """Whether commit `a` is reachable from `b` (a commit is its own ancestor)."""
    args = ("merge-base", "--is-ancestor", a, b)
    result = _git(repo_root, *args, check=False)
    if result.returncode in (0, 1) and not result.stderr.strip():
        return result.returncode == 0
    raise _failure(repo_root, args, result.returncode, result.stderr)


def share_history(repo_root: Path, a: str, b: str) -> bool:
    """Whether commits `a` and `b` have a common ancestor this repository holds."""
    return _git(repo_root, "merge-base", a, b, check=False).returncode == 0


def local_branches(repo_root: Path) -> set[str]:
    out = _out(repo_root, "for-each-ref", "--format=%(refname)", "refs/heads/")
    return {line.removeprefix("refs/heads/") for line in out.splitlines() if line}


def keep(repo_root: Path, ref: str, sha: str) -> None:
    """Point `ref` at `sha` so its commits stay reachable."""
    _git(repo_root, "update-ref", "-m", "limitless: keep", ref, sha)
    log.info("commit kept", extra={"ref": ref, "sha": sha})


def delete_branch(
    repo_root: Path,
    name: str,
    *,
    force: bool = False,
    into: str = "HEAD",
    lock_dir: Path | None = None,
) -> bool:
    """Delete branch `name`; refuses one not merged into `into` unless `force`.

    Returns False when there was no such branch. Git refuses a branch checked
    out in a worktree; remove the worktree first.
    """
    repo_root = Path(repo_root)
    if not branch_exists(repo_root, name):
        return False
    if not force and not is_ancestor(repo_root, f"refs/heads/{name}", into):
        msg = (
            f"branch {name} is not merged into {into}; its commits would only be reachable "
            "from the reflog; delete it anyway with --force"
        )
        raise GitError(msg)
    with worktree_lock(lock_dir or lock_dir_of(repo_root), shared=True):
        _git(repo_root, "branch", "-D", "--end-of-options", name)
    log.info("branch deleted", extra={"branch": name})
    return True


def moved_tip(repo: Path, branch: str, start_sha: str, landed_sha: str | None) -> str | None:
    """`branch`'s tip when it is no longer at `start_sha`: the stale-base warning.

    None while it is where the run started, and once the run's result (`landed_sha`)
    is on it (commits made on base after a landing are not news).
    """
    tip = rev_parse(repo, f"refs/heads/{branch}")
    if tip is None or tip == start_sha:
        return None
    if landed_sha and (tip == landed_sha or is_ancestor(repo, landed_sha, tip)):
        return None
    return tip


def commits_between(worktree_or_repo: Path, base: str, head: str) -> list[tuple[str, str]]:
    """(sha, subject) of the commits in `head` but not in `base`, oldest first."""
    out = _out(worktree_or_repo, "log", "--reverse", "-z", "--format=%H %s", f"{base}..{head}")
    commits: list[tuple[str, str]] = []
    for record in out.split("\0"):
        if record:
            sha, _, subject = record.partition(" ")
            commits.append((sha, subject))
    return commits


def diffstat_text(repo_root: Path, base: str, head: str) -> str:
    """`git diff --stat` of what `head` changed since it left `base`."""
    return _out(repo_root, "diff", "--no-ext-diff", "--no-color", "--stat", f"{base}...{head}")


def diff_text(repo_root: Path, base: str, head: str) -> str:
    """The full patch of what `head` changed since it left `base`."""
    return _out(repo_root, "diff", "--no-ext-diff", "--no-color", f"{base}...{head}")
