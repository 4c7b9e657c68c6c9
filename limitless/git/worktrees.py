"""Worktree and branch lifecycle: find the repository, create, inspect, reset, remove, recover.

Every task (or epic) of a run works in its own git worktree at
`<worktree_root>/<run>/<key>` on branch `limitless/<run>/<key>`. This module is,
with `merge.py`, the only place in limitless that runs git.

How git is run
    Through the one runner in `gitrun` (plain `git` subprocesses). GitPython adds
    nothing for porcelain commands like `worktree add` or `merge` (`repo.git.X`
    is itself a subprocess wrapper) and would cost two long-lived `cat-file`
    children per `Repo`; plain calls are one fork each, need no closing, are
    thread-safe and let every call scrub `GIT_DIR`, `GIT_WORK_TREE`,
    `GIT_INDEX_FILE` (and the other repository-locating variables) from its
    environment. Git never reads stdin and never opens an editor; a failure
    becomes a `GitError` naming the command, the folder and git's own words.

Commits limitless makes
    Dependency merges into a dependant's worktree and the wrapper's commit of
    what an agent left uncommitted follow the repository's rules: its hooks
    run (plan `commit_hooks: skip` leaves them out) and they are signed when
    `commit.gpgSign` is on (see `gitrun`). A hook's refusal is `CommitRejected`
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
    Concurrent `git worktree add` calls corrupt `.git/worktrees`, so adding,
    removing and pruning take an exclusive `fcntl.flock` on
    `<lock_dir>/worktree.lock` (it works across threads and processes: two runs
    on one repository share it). Only the bookkeeping happens under the lock:
    the worktree is added with `--no-checkout` and its files are checked out
    afterwards, in parallel with other checkouts (git's `post-checkout` hook is
    therefore not run for limitless worktrees).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import NoReturn

from limitless.crashpoints import crashpoint
from limitless.errors import EnvironmentProblem, GitError, UsageError
from limitless.git import runner as gitrun
from limitless.git import submodules
from limitless.git.runner import CommitRejected as CommitRejected
from limitless.git.runner import env as _env
from limitless.git.runner import failure as _failure
from limitless.git.runner import git as _git
from limitless.git.runner import out as _out

log = logging.getLogger(__name__)

BRANCH_PREFIX = "limitless"
"""Task branches live under `refs/heads/limitless/`."""

ATTEMPT_REF_PREFIX = "refs/limitless"
"""Kept attempts live under `refs/limitless/` (not `refs/heads/`: see `attempt_ref`)."""

LOCK_FILE = "worktree.lock"


_SHA_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_SHORTSTAT_RE = re.compile(r"(\d+) (file|insertion|deletion)")
_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


# ----------------------------------------------------------------------------- values


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


@dataclass(frozen=True)
class WorktreeState:
    """What the dashboard shows about one worktree."""

    head: str | None
    """None when the worktree folder is gone."""
    ahead: int
    files_changed: int
    insertions: int
    deletions: int
    dirty_files: tuple[str, ...]


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


# ----------------------------------------------------------------------------- running git


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
    common = _out(repo_root, "rev-parse", "--git-common-dir")
    return (repo_root / common).resolve() / "limitless"


# ----------------------------------------------------------------------------- names


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


def state_dir(info: RepoInfo) -> Path:
    """Where limitless keeps its store and logs: `<git-common-dir>/limitless`."""
    return info.common_dir / "limitless"


def default_worktree_root(repo_root: Path) -> Path:
    """`<repo>/../<repo-name>.worktrees`: beside the checkout, never inside it."""
    return repo_root.parent / f"{repo_root.name}.worktrees"


def _check_ref_part(kind: str, value: str) -> None:
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
    _check_ref_part("run id", run_id)
    _check_ref_part("task key", key)
    return f"{BRANCH_PREFIX}/{run_id}/{key}"


def worktree_path(root: Path, run_id: str, key: str) -> Path:
    """`<root>/<run>/<key>`; ValueError when the parts would leave `root`."""
    _check_ref_part("run id", run_id)
    _check_ref_part("task key", key)
    base = Path(os.path.normpath(Path(root).absolute()))
    result = Path(os.path.normpath(base / run_id / key))
    if result.parent.parent != base:
        msg = f"worktree path {result} for run {run_id!r}, key {key!r} is outside {base}"
        raise ValueError(msg)
    return result


def attempt_ref(run_id: str, key: str, n: int) -> str:
    """`refs/limitless/<run>/<key>/attempt-<n>`, where a failed attempt's commits are kept.

    Not under `refs/heads/`: git cannot hold both a branch `limitless/r/t` and
    `limitless/r/t/attempt-1`, as one would be a file and the other a folder.
    """
    _check_ref_part("run id", run_id)
    _check_ref_part("task key", key)
    if n < 1:
        msg = f"attempt number must be 1 or more, got {n}"
        raise ValueError(msg)
    return f"{ATTEMPT_REF_PREFIX}/{run_id}/{key}/attempt-{n}"


# ----------------------------------------------------------------------------- refs


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


def _local_branches(repo_root: Path) -> set[str]:
    out = _out(repo_root, "for-each-ref", "--format=%(refname)", "refs/heads/")
    return {line.removeprefix("refs/heads/") for line in out.splitlines() if line}


# ----------------------------------------------------------------------------- create


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
    (see `submodules`).
    """
    repo_root = Path(repo_root)
    path = Path(os.path.normpath(Path(path).absolute()))
    sources = _match_globs(repo_root, copy, "copy") + _match_globs(repo_root, link, "link")

    with worktree_lock(lock_dir):
        created = _add_worktree(repo_root, path, branch, base_sha)
    crashpoint("worktree")
    started = time.monotonic()
    _check_out_if_needed(path, branch, sparse if created else None)
    checkout_s = time.monotonic() - started

    merged: list[str] = []
    if merge_branches:
        merged = _merge_dependencies(path, branch, merge_branches, fresh=created, hooks=hooks)
    started = time.monotonic()
    submodules.sync(path, repo_root)
    checkout_s += time.monotonic() - started
    for kind, source, rel in sources:
        try:
            _place(kind, source, path / rel)
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
    )


def _add_worktree(repo_root: Path, path: Path, branch: str, base_sha: str) -> bool:
    """Register the worktree (without checking files out); False when it already exists."""
    entry = _entry_at(_list_worktrees(repo_root), path)
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


def _check_out_if_needed(path: Path, branch: str, sparse: Sequence[str] | None = None) -> None:
    """Fill a worktree added with `--no-checkout` (it has no index yet)."""
    lines = _out(path, "rev-parse", "--absolute-git-dir", "--symbolic-full-name", "HEAD")
    git_dir, head_ref = [*lines.splitlines(), "", ""][:2]
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


def _merge_dependencies(
    path: Path, branch: str, dependencies: Sequence[str], *, fresh: bool, hooks: bool
) -> list[str]:
    """Merge each dependency branch HEAD lacks; abort and raise on a conflict."""
    todo: list[str] = []
    for dep in dict.fromkeys(dependencies):
        if rev_parse(path, dep) is None:
            msg = f"dependency branch {dep} of {branch} does not exist"
            raise GitError(msg)
        if not is_ancestor(path, dep, "HEAD"):
            todo.append(dep)
    if todo and not fresh:
        dirty = _dirty_files(path)
        if dirty:
            _undo_interrupted_merge(path, branch, todo, dirty)
    for dep in todo:
        message = f"limitless: merge {dep} into {branch}"
        args = ("merge", "--no-edit", "--no-ff", "-m", message, dep)
        result = gitrun.commit(path, *args, hooks=hooks)
        if result.ok:
            log.info("dependency merged", extra={"path": str(path), "dependency": dep})
            continue
        conflicted = _conflicted_files(path)
        if _merge_in_progress(path):
            _git(path, "merge", "--abort")
        if conflicted:
            log.info("dependency conflicted", extra={"dependency": dep, "files": conflicted})
            raise DependencyConflict(dep, branch, conflicted)
        rejection = gitrun.rejected(result, path, f"the merge of dependency branch {dep}")
        if rejection is not None:
            raise rejection
        raise _failure(path, args, result.process.returncode, result.output)
    return todo


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


def fill_checkout(path: Path) -> bool:
    """Check out the files of a worktree added with `--no-checkout` whose checkout a crash
    cut off (it has no index yet); whether it had to."""
    git_dir = Path(_out(path, "rev-parse", "--absolute-git-dir"))
    if (git_dir / "index").exists():
        return False
    _git(path, *checkout_flags(path), "reset", "-q", "--hard", "HEAD")
    return True


def _conflicted_files(path: Path) -> list[str]:
    out = _git(path, "diff", "--name-only", "--diff-filter=U", "-z").stdout
    return [name for name in out.split("\0") if name]


def _merge_in_progress(path: Path) -> bool:
    result = _git(path, "rev-parse", "-q", "--verify", "MERGE_HEAD", check=False)
    return result.returncode == 0


def _match_globs(
    repo_root: Path, patterns: Iterable[str], kind: str
) -> list[tuple[str, Path, Path]]:
    """(kind, resolved source, path relative to the root) for every match; UsageError if unsafe."""
    lexical_root = Path(os.path.normpath(repo_root.absolute()))
    real_root = repo_root.resolve()
    found: list[tuple[str, Path, Path]] = []
    for pattern in patterns:
        if not pattern or Path(pattern).is_absolute():
            msg = (
                f"{kind} glob {pattern!r} must be a relative path inside the repository {real_root}"
            )
            raise UsageError(msg)
        for match in sorted(lexical_root.glob(pattern)):
            normal = Path(os.path.normpath(match))
            if not normal.is_relative_to(lexical_root) or not match.resolve().is_relative_to(
                real_root
            ):
                _refuse(match, kind, pattern, real_root)
            rel = normal.relative_to(lexical_root)
            if rel.parts[:1] == (".git",) or rel == Path("."):
                continue
            found.append((kind, match.resolve(), rel))
            if kind == "copy" and match.is_dir():
                for sub in sorted(match.rglob("*")):
                    if not sub.resolve().is_relative_to(real_root):
                        _refuse(sub, kind, pattern, real_root)
    return found


def _refuse(match: Path, kind: str, pattern: str, root: Path) -> NoReturn:
    msg = (
        f"{kind} glob {pattern!r} matched {match}, which resolves to {match.resolve()}, "
        f"outside the repository {root}; only files inside it can be brought along"
    )
    raise UsageError(msg)


def _place(kind: str, source: Path, dest: Path) -> None:
    """Copy or symlink `source` to `dest`, keeping whatever already exists there."""
    if dest.exists() or dest.is_symlink():
        if kind == "copy" and source.is_dir() and dest.is_dir() and not dest.is_symlink():
            _copy_tree(source, dest)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    if kind == "link":
        dest.symlink_to(source, target_is_directory=source.is_dir())
        log.debug("file linked", extra={"source": str(source), "dest": str(dest)})
    elif source.is_dir():
        _copy_tree(source, dest)
    else:
        shutil.copy2(source, dest)
        log.debug("file copied", extra={"source": str(source), "dest": str(dest)})


def _copy_tree(source: Path, dest: Path) -> None:
    for folder, _dirs, files in os.walk(source):
        target = dest / Path(folder).relative_to(source)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            out = target / name
            if not (out.exists() or out.is_symlink()):
                shutil.copy2(Path(folder) / name, out)


def _entry_at(entries: Iterable[WorktreeEntry], path: Path) -> WorktreeEntry | None:
    wanted = os.path.realpath(path)
    for entry in entries:
        if os.path.realpath(entry.path) == wanted:
            return entry
    return None


# ----------------------------------------------------------------------------- work


def commit_all(
    worktree: Path, message: str, *, hooks: bool = False, signing: bool = False
) -> str | None:
    """Stage everything not ignored and commit it; the new commit id, or None if nothing changed.

    With the defaults it is a snapshot (a retry's or a cleanup's safety copy,
    never merged): no hooks, no signature. `hooks` runs the repository's commit
    hooks, `signing` signs as `commit.gpgSign` says (see `gitrun`). A hook that
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


def exclude_untracked(worktree: Path, patterns: Sequence[str]) -> list[str]:
    """Name `patterns` in the repository's `info/exclude` (shared by all its worktrees).

    Files an agent program keeps for itself (aider's chat history) then stay out
    of `commit_all` and out of the dirty count, without a `.gitignore` in the
    user's tree; tracked files are not affected. Patterns already there are
    left alone; returns those added.
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
            handle.write(lead + "".join(f"{pattern}\n" for pattern in missing))
    return missing


def _dirty_files(worktree: Path) -> list[str]:
    out = _git(worktree, "--no-optional-locks", "status", "--porcelain=v2", "-z").stdout
    return _parse_status(out)[1]


def _parse_status(out: str) -> tuple[str | None, list[str]]:
    """(HEAD from `# branch.oid`, changed paths) of `status --porcelain=v2 -z [--branch]`."""
    head: str | None = None
    files: list[str] = []
    fields = iter(out.split("\0"))
    for field in fields:
        if not field:
            continue
        kind = field[0]
        if field.startswith("# branch.oid "):
            oid = field.removeprefix("# branch.oid ")
            head = oid if _SHA_RE.match(oid) else None
        elif kind == "1":
            files.append(field.split(" ", 8)[8])
        elif kind == "2":
            files.append(field.split(" ", 9)[9])
            next(fields, None)  # the original path of a rename or copy
        elif kind == "u":
            files.append(field.split(" ", 10)[10])
        elif kind in "?!":
            files.append(field[2:])
    return head, files


def inspect(worktree: Path, base_sha: str) -> WorktreeState:
    """HEAD, commits ahead of `base_sha`, diffstat since it, dirty files (three git calls)."""
    worktree = Path(worktree)
    if not (worktree / ".git").exists():
        return WorktreeState(None, 0, 0, 0, 0, ())
    calls = {
        "status": ("--no-optional-locks", "status", "--porcelain=v2", "--branch", "-z"),
        "count": ("rev-list", "--count", f"{base_sha}..HEAD"),
        "stat": ("diff", "--no-ext-diff", "--no-color", "--shortstat", f"{base_sha}...HEAD"),
    }
    env = _env({"LC_ALL": "C"})  # `--shortstat` words are translated otherwise
    procs = {
        name: subprocess.Popen(
            ["git", *args],
            cwd=worktree,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="surrogateescape",
        )
        for name, args in calls.items()
    }
    out: dict[str, str] = {}
    failure: GitError | None = None
    for name, proc in procs.items():
        stdout, stderr = proc.communicate()
        if proc.returncode != 0 and failure is None:
            failure = _failure(worktree, calls[name], proc.returncode, stderr)
        out[name] = stdout
    if failure is not None:
        if not (worktree / ".git").exists():
            return WorktreeState(None, 0, 0, 0, 0, ())
        raise failure
    head, dirty = _parse_status(out["status"])
    numbers = {word: int(n) for n, word in _SHORTSTAT_RE.findall(out["stat"])}
    return WorktreeState(
        head=head,
        ahead=int(out["count"].strip() or 0),
        files_changed=numbers.get("file", 0),
        insertions=numbers.get("insertion", 0),
        deletions=numbers.get("deletion", 0),
        dirty_files=tuple(dirty),
    )


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
    if _dirty_files(worktree):
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


# ----------------------------------------------------------------------------- list, remove


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
        if _entry_at(_list_worktrees(repo_root), path) is None:
            msg = f"{path} is not a worktree of {repo_root}; nothing was removed"
            raise GitError(msg)
        if not force:
            dirty = _dirty_files(path)
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


def recover(
    repo_root: Path, expected: Mapping[str, Path], *, lock_dir: Path | None = None
) -> dict[str, WorktreeHealth]:
    """Check each branch -> worktree path the store expects against git; prunes stale records."""
    repo_root = Path(repo_root)
    entries = list_worktrees(repo_root, lock_dir=lock_dir)
    branches = _local_branches(repo_root)
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


EXCLUDE_NOTE = "# written by limitless: files it puts into task worktrees, kept out of commits"


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
    exclude = Path(_out(worktree, "rev-parse", "--git-path", "info/exclude"))
    if not exclude.is_absolute():
        exclude = worktree / exclude
    pattern = "/" + relative.lstrip("/")
    exclude.parent.mkdir(parents=True, exist_ok=True)
    with open(exclude, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # several wrappers start at once
        handle.seek(0)
        text = handle.read()
        if pattern not in (line.strip() for line in text.splitlines()):
            lead = "" if not text or text.endswith("\n") else "\n"
            note = "" if EXCLUDE_NOTE in text else f"{EXCLUDE_NOTE}\n"
            handle.write(f"{lead}{note}{pattern}\n")
    return "excluded"


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
