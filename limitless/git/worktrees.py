"""Task worktrees: create (with the dependency merges), reset for a retry, list, remove, recover.

Every task (or epic) of a run works in its own git worktree at
`<worktree_root>/<run>/<key>` on its branch (`refs.branch_name`). Git runs
through the one runner (`runner`); the other jobs around a worktree live
beside this module: names and refs (`refs`), its state (`status`), what is kept
out of its commits (`exclude`), the files brought into it (`copy_link`), its
submodules (`submodules`) and the lock its bookkeeping takes (`locks`).

Commits limitless makes
    Dependency merges into a dependant's worktree and the wrapper's commit of
    what an agent left uncommitted follow the repository's rules: its hooks
    run (plan `commit_hooks: skip` leaves them out) and they are signed when
    `commit.gpgSign` is on (see `runner`). A hook's refusal is `CommitRejected`
    with the hook's output. Snapshots (`commit_all` with its defaults: the
    leftovers kept before a retry or a cleanup, never merged) skip hooks and
    signing: they are a safety net and must not fail.

Checkouts
    A worktree is checked out with parallel checkout (`checkout.workers`, one
    worker per core, unless the user configured it), optionally sparse (git's
    cone mode), and its submodules are checked out from the user's checkout
    without network (`submodules`). Git LFS files are real files: git-lfs keeps
    its objects in the common git folder, which every worktree shares.

Creating worktrees concurrently
    Adding, removing and pruning take the repository's worktree lock (`locks`).
    Only the bookkeeping happens under the lock: the worktree is added with
    `--no-checkout` and its files are checked out afterwards, in parallel with
    other checkouts (git's `post-checkout` hook is therefore not run for
    limitless worktrees).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from limitless.crashpoints import crashpoint
from limitless.errors import GitError, UsageError
from limitless.git import runner as gitrun
from limitless.git import submodules
from limitless.git.copy_link import match_globs, place
from limitless.git.locks import lock_dir_of, worktree_lock
from limitless.git.refs import branch_exists, check_ref_part, local_branches, rev_parse
from limitless.git.repo import common_dir
from limitless.git.runner import failure as _failure
from limitless.git.runner import git as _git
from limitless.git.runner import out as _out
from limitless.git.status import conflicted_files, dirty_files, operation_in_progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedWorktree:
    """A task's worktree, ready for its agent."""

    path: Path
    branch: str
    start_sha: str
    """HEAD after the dependency merges: where a retry resets to."""
    created: bool
    """True when this call added the worktree, False when it already existed."""
    merged: tuple[str, ...] = ()
    """The dependency branches this call merged (those already in HEAD are left out)."""
    checkout_s: float = 0.0
    """Seconds spent checking out its files and submodules (0 when it existed already)."""
    handed_on_from: str | None = None
    """The finished dependency whose worktree this one was (`hand_on`), if any."""
    began_at: float | None = None
    ended_at: float | None = None
    """Epoch seconds around this call's git work (add, checkout, merges, files placed)."""


@dataclass(frozen=True)
class WorktreeEntry:
    """One record of `git worktree list --porcelain`."""

    path: Path
    head: str | None
    branch: str | None
    """Short branch name; None when detached (or for a bare repository)."""
    locked: bool
    prunable: bool


class WorktreeHealth(StrEnum):
    """What `recover` found for a task branch the store expects."""

    PRESENT = "present"
    """The branch is checked out in a worktree at the expected path."""
    MISSING = "missing"
    """The branch exists but its worktree is gone (stale records were pruned)."""
    ELSEWHERE = "elsewhere"
    """The branch is checked out in a worktree at another path."""
    BRANCH_MISSING = "branch_missing"
    """The branch does not exist."""


class DependencyConflict(GitError):
    """Merging a dependency's branch into a task's new worktree conflicted."""

    def __init__(self, dependency: str, branch: str, files: Sequence[str]) -> None:
        self.dependency = dependency
        self.branch = branch
        self.files = tuple(files)
        named = ", ".join(self.files) or "(no file named by git)"
        super().__init__(
            f"merging dependency branch {dependency} into {branch} conflicted in: {named}; "
            "the merge was aborted"
        )


def worktree_path(root: Path, run_id: str, key: str) -> Path:
    """`<root>/<run>/<key>`; ValueError when the parts would leave `root`."""
    check_ref_part("run id", run_id)
    check_ref_part("task key", key)
    base = Path(os.path.normpath(Path(root).absolute()))
    result = Path(os.path.normpath(base / run_id / key))
    if result.parent.parent != base:
        msg = f"worktree path {result} for run {run_id!r}, key {key!r} is outside {base}"
        raise ValueError(msg)
    return result


def prepare_worktree(
    repo_root: Path,
    *,
    path: Path,
    branch: str,
    base_sha: str,
    merge_branches: Sequence[str] = (),
    copy: Sequence[str] = (),
    link: Sequence[str] = (),
    lock_dir: Path,
    hooks: bool = True,
    sparse: Sequence[str] | None = None,
    fresh: bool = False,
) -> PreparedWorktree:
    """Make `path` a worktree on `branch` holding `merge_branches`, with `copy`/`link` files.

    A new worktree starts at `base_sha` on a new branch; an existing branch
    (left by a crash) is attached as it is, never reset or deleted. Calling it
    again on an existing worktree only merges the dependencies it lacks (epics
    reuse one worktree). A conflicting dependency merge is aborted and raises
    DependencyConflict naming the files; one a repository hook refuses
    (`hooks`) raises CommitRejected. Copy/link globs are checked before any
    file is placed. `sparse` (cone folders) checks out only those folders and
    the top-level files; submodules are checked out from the user's checkout
    (see `submodules`). `fresh`: an earlier call of this process made the worktree
    (checked out ahead) and nothing has run in it since, so its checks (repository,
    branch, a dependency merge a crash cut short) are not repeated: a hand-off then runs
    only the merges and one `rev-parse`.
    """
    began_at = time.time()
    repo_root = Path(repo_root)
    path = Path(os.path.normpath(Path(path).absolute()))
    sources = match_globs(repo_root, copy, "copy") + match_globs(repo_root, link, "link")

    if (path / ".git").is_file():
        # Ours already (checked out ahead, an epic's, a crash's): git's bookkeeping is not
        # touched, so neither the lock nor `worktree list` is needed; the HEAD check below
        # refuses a worktree on another branch.
        created = False
    else:
        with worktree_lock(lock_dir):
            created = _add_worktree(repo_root, path, branch, base_sha)
    crashpoint("worktree")
    started = time.monotonic()
    if created or not fresh:
        _check_out_if_needed(
            path, branch, sparse if created else None, common_dir(repo_root), merge_branches
        )
    checkout_s = time.monotonic() - started

    merged: list[str] = []
    if merge_branches:
        merged = _merge_dependencies(
            path, branch, merge_branches, fresh=created or fresh, hooks=hooks
        )
    started = time.monotonic()
    submodules.sync(path, repo_root)
    checkout_s += time.monotonic() - started
    for kind, source, rel in sources:
        try:
            place(kind, source, path / rel)
        except OSError as exc:
            msg = f"could not {kind} {source} to {path / rel}: {exc}"
            raise UsageError(msg) from exc
    start_sha = _out(path, "rev-parse", "HEAD")
    log.info(
        "worktree prepared",
        extra={"path": str(path), "branch": branch, "new": created, "merged": merged},
    )
    return PreparedWorktree(
        path=path,
        branch=branch,
        start_sha=start_sha,
        created=created,
        merged=tuple(merged),
        checkout_s=checkout_s if created else 0.0,
        began_at=began_at,
        ended_at=time.time(),
    )


def hand_on(
    repo_root: Path, *, donor: Path, donor_branch: str, path: Path, branch: str, lock_dir: Path
) -> bool:
    """Give the worktree of a finished dependency (`donor`, on `donor_branch`) to its
    dependant: move it to `path` and start `branch` there at the dependency's tip.

    No file is checked out: the dependant's hand-off is then only the merge of its other
    dependencies. Its files are the dependency's committed work, and its ignored files
    (build output, caches) stay. False, with nothing changed, when the donor is not a
    clean worktree on `donor_branch`, when `branch` or `path` exists already, or when git
    refuses the move (a worktree holding submodules cannot be moved): the dependant's
    worktree is then checked out as usual.
    """
    donor = Path(os.path.normpath(Path(donor).absolute()))
    path = Path(os.path.normpath(Path(path).absolute()))
    if path.exists() or not (donor / ".git").is_file() or branch_exists(repo_root, branch):
        return False
    head = _git(donor, "symbolic-ref", "-q", "HEAD", check=False).stdout.strip()
    if head != f"refs/heads/{donor_branch}" or dirty_files(donor):
        return False
    with worktree_lock(lock_dir):
        moved = _git(repo_root, "worktree", "move", str(donor), str(path), check=False)
    if moved.returncode != 0:
        log.info("worktree not handed on", extra={"donor": str(donor), "error": moved.stderr})
        return False
    crashpoint("hand_on")
    _finish_hand_on(path, branch)
    log.info("worktree handed on", extra={"from": str(donor), "to": str(path), "branch": branch})
    return True


def _finish_hand_on(path: Path, branch: str) -> None:
    """Start `branch` at the handed-on worktree's HEAD (only the ref and HEAD change)."""
    _git(path, "checkout", "-q", "-b", branch)


def _add_worktree(repo_root: Path, path: Path, branch: str, base_sha: str) -> bool:
    """Register the worktree (without checking files out); False when it already exists."""
    entry = entry_at(_list_worktrees(repo_root), path)
    if entry is not None and not entry.prunable:
        if entry.branch != branch:
            on = f"branch {entry.branch}" if entry.branch else "a detached HEAD"
            msg = (
                f"worktree {path} is on {on}, not {branch}; "
                f"remove it (`git worktree remove {path}`) or pick another run id"
            )
            raise GitError(msg)
        return False
    if entry is not None:
        _git(repo_root, "worktree", "prune")
        log.info("stale worktree pruned", extra={"path": str(path)})
    if branch_exists(repo_root, branch):
        _git(repo_root, "worktree", "add", "--no-checkout", str(path), branch)
        log.info("worktree attached", extra={"path": str(path), "branch": branch})
    else:
        _git(repo_root, "worktree", "add", "--no-checkout", "-b", branch, str(path), base_sha)
        log.info("worktree created", extra={"path": str(path), "branch": branch})
    return True


def _check_out_if_needed(
    path: Path,
    branch: str,
    sparse: Sequence[str] | None,
    common: Path,
    handed_from: Sequence[str] = (),
) -> None:
    """Fill a worktree added with `--no-checkout` (it has no index yet), after checking
    that it is a worktree of this repository on `branch`."""
    lines = _out(
        path,
        "rev-parse",
        "--path-format=absolute",
        "--git-common-dir",
        "--absolute-git-dir",
        "--symbolic-full-name",
        "HEAD",
    )
    its_common, git_dir, head_ref = [*lines.splitlines(), "", "", ""][:3]
    if Path(its_common).resolve() != common:
        msg = (
            f"{path} is a worktree of another repository ({its_common}); "
            "remove it or set another worktree_root"
        )
        raise GitError(msg)
    if (
        head_ref.removeprefix("refs/heads/") in handed_from
        and head_ref != f"refs/heads/{branch}"
        and not branch_exists(path, branch)
    ):
        # a hand-on (`hand_on`) that a crash cut short after the move
        _finish_hand_on(path, branch)
        head_ref = f"refs/heads/{branch}"
    if head_ref != f"refs/heads/{branch}":
        on = head_ref.removeprefix("refs/heads/") if head_ref.startswith("refs/") else None
        msg = (
            f"worktree {path} is on {f'branch {on}' if on else 'a detached HEAD'}, "
            f"not {branch}; check out {branch} there or remove the worktree"
        )
        raise GitError(msg)
    if not (Path(git_dir) / "index").exists():
        if sparse is not None:
            # git keeps the cone in this worktree's own config (extensions.worktreeConfig)
            _git(path, "sparse-checkout", "set", "--cone", "--", *sparse)
        _git(path, *checkout_flags(path), "reset", "-q", "--hard", "HEAD")
        log.debug("worktree checked out", extra={"path": str(path)})


def checkout_flags(path: Path) -> tuple[str, ...]:
    """Parallel checkout (`checkout.workers`, one per core) unless the user set it."""
    mine = _git(path, "config", "--get", "checkout.workers", check=False).stdout.strip()
    return () if mine else ("-c", "checkout.workers=0")


def fill_checkout(path: Path) -> bool:
    """Check out the files of a worktree added with `--no-checkout` whose checkout a crash
    cut off (it has no index yet); whether it had to."""
    git_dir = Path(_out(path, "rev-parse", "--absolute-git-dir"))
    if (git_dir / "index").exists():
        return False
    _git(path, *checkout_flags(path), "reset", "-q", "--hard", "HEAD")
    return True


def _merge_dependencies(
    path: Path, branch: str, dependencies: Sequence[str], *, fresh: bool, hooks: bool
) -> list[str]:
    """Merge each dependency branch HEAD lacks; abort and raise on a conflict."""
    todo = _unmerged(path, list(dict.fromkeys(dependencies)))
    for dep in dependencies:
        if dep not in todo and rev_parse(path, dep) is None:
            msg = f"dependency branch {dep} of {branch} does not exist"
            raise GitError(msg)
    if todo and not fresh:
        dirty = dirty_files(path)
        if dirty:
            _undo_interrupted_merge(path, branch, todo, dirty)
    for dep in todo:
        message = f"limitless: merge {dep} into {branch}"
        args = ("merge", "--no-edit", "--no-ff", "-m", message, dep)
        result = gitrun.commit(path, *args, hooks=hooks)
        if result.ok:
            log.info("dependency merged", extra={"path": str(path), "dependency": dep})
            continue
        conflicted = conflicted_files(path)
        if operation_in_progress(path) == "merge":
            _git(path, "merge", "--abort")
        if conflicted:
            log.info("dependency conflicted", extra={"dependency": dep, "files": conflicted})
            raise DependencyConflict(dep, branch, conflicted)
        rejection = gitrun.rejected(result, path, f"the merge of dependency branch {dep}")
        if rejection is not None:
            raise rejection
        raise _failure(path, args, result.process.returncode, result.output)
    return todo


def _unmerged(path: Path, branches: Sequence[str]) -> list[str]:
    """The `branches` HEAD lacks, in their order: one git call for all of them (a hand-off
    waits on this). A branch that does not exist is not listed."""
    refs = [f"refs/heads/{name}" for name in branches]
    listed = _out(path, "for-each-ref", "--no-merged=HEAD", "--format=%(refname)", *refs)
    lacking = set(listed.splitlines())
    return [name for name, ref in zip(branches, refs, strict=True) if ref in lacking]


def _undo_interrupted_merge(
    path: Path, branch: str, todo: Sequence[str], dirty: Sequence[str]
) -> None:
    """Clear what a dependency merge cut short by a crash left behind, or refuse.

    Such a merge leaves files it brought written and staged, but no commit.
    Only when every changed file is one the pending dependencies change is the
    change taken for that merge; it is still kept (`git stash create`) under
    `refs/<branch>/interrupted-<sha>` before the reset. Anything else is
    somebody's work: GitError, nothing touched.
    """
    brought: set[str] = set()
    for dep in todo:
        out = _git(path, "diff", "--name-only", "-z", f"HEAD...{dep}").stdout
        brought.update(name for name in out.split("\0") if name)
    if not set(dirty) <= brought:
        msg = (
            f"worktree {path} has uncommitted changes ({', '.join(dirty[:5])}); "
            f"commit them before merging {', '.join(todo)} into {branch}"
        )
        raise GitError(msg)
    kept = _out(path, "stash", "create", "limitless: an interrupted dependency merge")
    if kept:
        ref = f"refs/{branch}/interrupted-{kept[:12]}"
        _git(path, "update-ref", "-m", "limitless: keep", ref, kept)
    _git(path, "reset", "-q", "--hard", "HEAD")
    log.warning(
        "interrupted dependency merge cleared",
        extra={"path": str(path), "files": list(dirty), "kept": kept},
    )


def commit_all(
    worktree: Path, message: str, *, hooks: bool = False, signing: bool = False
) -> str | None:
    """Stage everything not ignored and commit it; the new commit id, or None if nothing changed.

    With the defaults it is a snapshot (a retry's or a cleanup's safety copy,
    never merged): no hooks, no signature. `hooks` runs the repository's commit
    hooks, `signing` signs as `commit.gpgSign` says (see `runner`). A hook that
    refuses the commit raises CommitRejected with its output; what was staged
    stays staged.
    """
    _git(worktree, "add", "-A")
    if _git(worktree, "diff", "--cached", "--quiet", check=False).returncode == 0:
        return None
    args = ["commit", "-q", "-m", message]
    if not signing:
        args.insert(1, "--no-gpg-sign")
    result = gitrun.commit(worktree, *args, hooks=hooks)
    rejection = gitrun.rejected(result, worktree, "the commit of the work left uncommitted")
    if rejection is not None:
        raise rejection
    if not result.ok:
        raise _failure(worktree, args, result.process.returncode, result.output)
    sha = _out(worktree, "rev-parse", "HEAD")
    log.info("work committed", extra={"worktree": str(worktree), "sha": sha})
    return sha


def reset_for_retry(
    repo_root: Path, worktree: Path, *, start_sha: str, keep_ref: str
) -> str | None:
    """Put `worktree` back at `start_sha` for a new attempt, keeping the old one at `keep_ref`.

    Leftover changes are committed first, and HEAD is saved at `keep_ref` when it
    moved, so the failed attempt stays reachable. Ignored files (`.env`,
    `node_modules`) survive. Returns the kept commit id, or None when there was
    nothing to keep. An existing `keep_ref` pointing elsewhere is never overwritten.
    """
    worktree = Path(worktree)
    if not (worktree / ".git").exists():
        msg = f"worktree {worktree} does not exist; prepare it again instead of resetting it"
        raise GitError(msg)
    if _git(worktree, "symbolic-ref", "-q", "HEAD", check=False).returncode != 0:
        msg = (
            f"worktree {worktree} has a detached HEAD (a rebase in progress?); "
            "finish or abort it, or check its branch out again, before retrying"
        )
        raise GitError(msg)
    if dirty_files(worktree):
        commit_all(worktree, f"limitless: leftovers before retry (kept at {keep_ref})")
    head = _out(worktree, "rev-parse", "HEAD")
    kept: str | None = None
    if head != start_sha:
        existing = rev_parse(repo_root, keep_ref)
        if existing is not None and existing != head:
            msg = (
                f"cannot keep the attempt of {worktree} at {keep_ref}: that ref already "
                f"holds {existing}; use the next attempt number"
            )
            raise GitError(msg)
        _git(
            repo_root, "update-ref", "-m", "limitless: keep attempt", keep_ref, head, existing or ""
        )
        kept = head
        log.info("attempt kept", extra={"ref": keep_ref, "sha": head})
    _git(worktree, "reset", "-q", "--hard", start_sha)
    _git(worktree, "clean", "-q", "-f", "-d")
    submodules.sync(worktree, repo_root)
    log.info("worktree reset", extra={"worktree": str(worktree), "sha": start_sha})
    return kept


def _parse_worktree_list(out: str) -> list[WorktreeEntry]:
    entries: list[WorktreeEntry] = []
    record: dict[str, str] = {}

    def flush() -> None:
        if "worktree" in record:
            branch = record.get("branch")
            entries.append(
                WorktreeEntry(
                    path=Path(record["worktree"]),
                    head=record.get("HEAD"),
                    branch=branch.removeprefix("refs/heads/") if branch else None,
                    locked="locked" in record,
                    prunable="prunable" in record,
                )
            )
        record.clear()

    for field in out.split("\0"):
        if not field:
            flush()
            continue
        key, _, value = field.partition(" ")
        record[key] = value
    flush()
    return entries


def _list_worktrees(repo_root: Path) -> list[WorktreeEntry]:
    return _parse_worktree_list(_git(repo_root, "worktree", "list", "--porcelain", "-z").stdout)


def list_worktrees(repo_root: Path, *, lock_dir: Path | None = None) -> list[WorktreeEntry]:
    """Every worktree git knows of, the main checkout first (`worktree list --porcelain`).

    Takes the shared worktree lock (`lock_dir` defaults to `<git-common-dir>/limitless`).
    """
    repo_root = Path(repo_root)
    with worktree_lock(lock_dir or lock_dir_of(repo_root), shared=True):
        return _list_worktrees(repo_root)


def entry_at(entries: Iterable[WorktreeEntry], path: Path) -> WorktreeEntry | None:
    """The entry of the worktree at `path` (compared with symlinks resolved), if any."""
    wanted = os.path.realpath(path)
    for entry in entries:
        if os.path.realpath(entry.path) == wanted:
            return entry
    return None


def remove_worktree(
    repo_root: Path, path: Path, *, force: bool = False, lock_dir: Path | None = None
) -> None:
    """Remove the worktree at `path`; refuses uncommitted changes unless `force`.

    Commits made in its submodules that the user's module repositories lack are
    kept there first (`submodules.keep_commits`). Ignored files go with it. A
    folder already deleted by hand only has its record pruned. The branch stays
    (see `delete_branch`).
    """
    repo_root = Path(repo_root)
    path = Path(path)
    lock = lock_dir or lock_dir_of(repo_root)
    if not path.exists():
        with worktree_lock(lock):
            _git(repo_root, "worktree", "prune")
        log.info("missing worktree pruned", extra={"path": str(path)})
        return
    with worktree_lock(lock):
        if entry_at(_list_worktrees(repo_root), path) is None:
            msg = f"{path} is not a worktree of {repo_root}; nothing was removed"
            raise GitError(msg)
        if not force:
            dirty = dirty_files(path)
            if dirty:
                shown = ", ".join(dirty[:5])
                if len(dirty) > 5:
                    shown += f" and {len(dirty) - 5} more"
                msg = (
                    f"worktree {path} has uncommitted changes: {shown}; "
                    "commit them, or remove it anyway with --force"
                )
                raise GitError(msg)
        args = ["worktree", "remove", str(path)]
        populated = submodules.keep_commits(path, repo_root)
        # git refuses a worktree holding submodules without --force; they were checked above
        if force or populated:
            args.insert(2, "--force")
        _git(repo_root, *args)
    log.info("worktree removed", extra={"path": str(path)})


def prune(repo_root: Path, *, lock_dir: Path | None = None) -> None:
    """Forget worktrees whose folders are gone (`git worktree prune`)."""
    with worktree_lock(lock_dir or lock_dir_of(Path(repo_root))):
        _git(Path(repo_root), "worktree", "prune")
    log.debug("worktrees pruned")


def recover(
    repo_root: Path, expected: Mapping[str, Path], *, lock_dir: Path | None = None
) -> dict[str, WorktreeHealth]:
    """Check each branch -> worktree path the store expects against git; prunes stale records."""
    repo_root = Path(repo_root)
    entries = list_worktrees(repo_root, lock_dir=lock_dir)
    branches = local_branches(repo_root)
    by_branch = {e.branch: e for e in entries if e.branch}
    found: dict[str, WorktreeHealth] = {}
    for branch, path in expected.items():
        entry = by_branch.get(branch)
        if branch not in branches:
            found[branch] = WorktreeHealth.BRANCH_MISSING
        elif entry is None or entry.prunable or not entry.path.exists():
            found[branch] = WorktreeHealth.MISSING
        elif os.path.realpath(entry.path) == os.path.realpath(path):
            found[branch] = WorktreeHealth.PRESENT
        else:
            found[branch] = WorktreeHealth.ELSEWHERE
    if any(e.prunable for e in entries):
        prune(repo_root, lock_dir=lock_dir)
    log.info("worktrees recovered", extra={"counts": _count(found.values())})
    return found


def _count(values: Iterable[WorktreeHealth]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value.value] = counts.get(value.value, 0) + 1
    return counts
