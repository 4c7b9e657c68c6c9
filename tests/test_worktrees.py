"""Tests for limitless.git.worktrees: real git repositories in temporary folders."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pytest

from limitless.errors import EnvironmentProblem, GitError, UsageError
from limitless.git import worktrees as wt
from limitless.git.exclude import exclude_untracked
from limitless.git.refs import (
    attempt_ref,
    branch_exists,
    branch_name,
    commits_between,
    delete_branch,
    diff_text,
    diffstat_text,
    is_ancestor,
    rev_parse,
)
from limitless.git.repo import default_worktree_root, find_repo, state_dir
from limitless.git.runner import CommitRejected
from limitless.git.status import WorktreeState, inspect
from limitless.versions import git_version
from tests.conftest import git

# ----------------------------------------------------------------------------- helpers


def lock_dir(repo: Path) -> Path:
    """The lock folder limitless uses for `repo` (its state dir)."""
    return state_dir(find_repo(repo))


def prep(repo: Path, key: str, **kwargs: object) -> wt.PreparedWorktree:
    """Prepare the worktree of task `key` of run `r1` from main's tip."""
    base = rev_parse(repo, "main")
    assert base is not None
    return wt.prepare_worktree(
        repo,
        path=wt.worktree_path(default_worktree_root(repo), "r1", key),
        branch=branch_name("r1", key),
        base_sha=base,
        lock_dir=lock_dir(repo),
        **kwargs,  # type: ignore[arg-type]
    )


def commit_file(cwd: Path, name: str, text: str, message: str | None = None) -> str:
    """Write `name` in `cwd`, commit it, return the new HEAD."""
    path = cwd / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    git(cwd, "add", name)
    git(cwd, "commit", "-q", "-m", message or f"add {name}")
    return git(cwd, "rev-parse", "HEAD")


def branch_with_file(repo: Path, branch: str, name: str, text: str) -> str:
    """Create `branch` from main holding one more commit that writes `name`."""
    git(repo, "branch", branch, "main")
    tmp = repo.parent / f"tmp-{branch.replace('/', '-')}"
    git(repo, "worktree", "add", "-q", str(tmp), branch)
    sha = commit_file(tmp, name, text)
    git(repo, "worktree", "remove", str(tmp))
    return sha


# ----------------------------------------------------------------------------- find_repo, names


def test_find_repo_from_subfolder(repo: Path) -> None:
    """find_repo from a subfolder reports the top level, common dir, branch and HEAD."""
    sub = repo / "a" / "b"
    sub.mkdir(parents=True)
    info = find_repo(sub)
    assert info.root == repo.resolve()
    assert info.common_dir == (repo / ".git").resolve()
    assert info.current_branch == "main"
    assert info.head_sha == git(repo, "rev-parse", "HEAD")
    assert state_dir(info) == (repo / ".git" / "limitless").resolve()


def test_find_repo_in_linked_worktree(repo: Path) -> None:
    """Inside a linked worktree the root is the worktree and the common dir the main .git."""
    made = prep(repo, "t")
    info = find_repo(made.path)
    assert info.root == made.path.resolve()
    assert info.common_dir == (repo / ".git").resolve()
    assert info.current_branch == "limitless/r1/t"


def test_find_repo_ignores_git_dir_variable(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIT_DIR and friends in the environment do not redirect limitless's git calls."""
    monkeypatch.setenv("GIT_DIR", str(repo.parent / "nowhere"))
    monkeypatch.setenv("GIT_WORK_TREE", str(repo.parent))
    monkeypatch.setenv("GIT_INDEX_FILE", str(repo.parent / "index"))
    assert find_repo(repo).root == repo.resolve()


def test_find_repo_outside_a_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside any repository find_repo raises EnvironmentProblem with the fix."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(EnvironmentProblem) as raised:
        find_repo(plain)
    assert str(raised.value) == (
        f"not inside a git repository: {plain}; "
        "run limitless from a git checkout (or name one with `limitless -C DIR ...`), "
        "or `git init` one first"
    )


def test_find_repo_without_commits(tmp_path: Path) -> None:
    """A repository with no commit yet is refused with a hint to commit."""
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q", "-b", "main")
    with pytest.raises(EnvironmentProblem, match="has no commits yet"):
        find_repo(empty)


def test_git_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """git_version reads the installed git; None when git cannot be found."""
    version = git_version()
    assert version is not None and version >= (2, 0)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert git_version() is None


def test_names(tmp_path: Path) -> None:
    """Branch, path, attempt ref and default root follow the documented shapes."""
    assert branch_name("shop-3", "api") == "limitless/shop-3/api"
    assert wt.worktree_path(tmp_path, "shop-3", "api.build") == tmp_path / "shop-3" / "api.build"
    assert attempt_ref("shop-3", "api", 2) == "refs/limitless/shop-3/api/attempt-2"
    assert default_worktree_root(tmp_path / "shop") == tmp_path / "shop.worktrees"


class UnsafeCase(NamedTuple):
    test_id: str
    run_id: str
    key: str


UNSAFE_CASES = [
    UnsafeCase("parent", "r1", ".."),
    UnsafeCase("slash", "r1", "a/b"),
    UnsafeCase("empty", "", "a"),
    UnsafeCase("dot-start", "r1", ".hidden"),
    UnsafeCase("space", "r1", "a b"),
    UnsafeCase("lock-suffix", "r1", "a.lock"),
    UnsafeCase("dash-start", "-r", "a"),
]


@pytest.mark.parametrize("case", UNSAFE_CASES, ids=[c.test_id for c in UNSAFE_CASES])
def test_unsafe_names_refused(case: UnsafeCase, tmp_path: Path) -> None:
    """Run ids and keys that could escape the root or break a ref name raise ValueError."""
    with pytest.raises(ValueError, match="unsafe"):
        wt.worktree_path(tmp_path, case.run_id, case.key)
    with pytest.raises(ValueError, match="unsafe"):
        branch_name(case.run_id, case.key)


def test_refs(repo: Path) -> None:
    """rev_parse, branch_exists and is_ancestor answer for known and unknown names."""
    first = git(repo, "rev-parse", "HEAD")
    second = commit_file(repo, "x.txt", "x\n")
    assert rev_parse(repo, "main") == second
    assert rev_parse(repo, "no-such-branch") is None
    assert rev_parse(repo, "--help") is None
    assert branch_exists(repo, "main")
    assert not branch_exists(repo, "limitless/r/t")
    assert is_ancestor(repo, first, second)
    assert not is_ancestor(repo, second, first)
    with pytest.raises(GitError, match="merge-base"):
        is_ancestor(repo, "no-such-branch", "main")


# ----------------------------------------------------------------------------- prepare_worktree


def test_prepare_from_base(repo: Path) -> None:
    """A task without dependencies gets a new branch at base, with the files checked out."""
    made = prep(repo, "t")
    assert made.created
    assert made.path == repo.parent / "repo.worktrees" / "r1" / "t"
    assert made.branch == "limitless/r1/t"
    assert made.start_sha == git(repo, "rev-parse", "main")
    assert (made.path / "README.md").read_text() == "# test repo\n"
    assert git(made.path, "status", "--porcelain") == ""
    assert git(made.path, "symbolic-ref", "--short", "HEAD") == "limitless/r1/t"


def test_prepare_merges_two_dependencies(repo: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A dependent task starts from base with both dependency branches merged in."""
    caplog.set_level(logging.DEBUG, logger="limitless")
    branch_with_file(repo, "limitless/r1/a", "a.txt", "from a\n")
    branch_with_file(repo, "limitless/r1/b", "b.txt", "from b\n")
    made = prep(repo, "c", merge_branches=["limitless/r1/a", "limitless/r1/b"])
    assert (made.path / "a.txt").read_text() == "from a\n"
    assert (made.path / "b.txt").read_text() == "from b\n"
    assert made.merged == ("limitless/r1/a", "limitless/r1/b")
    assert made.start_sha == git(made.path, "rev-parse", "HEAD")
    subjects = git(made.path, "log", "--merges", "--format=%s").splitlines()
    assert subjects == [
        "limitless: merge limitless/r1/b into limitless/r1/c",
        "limitless: merge limitless/r1/a into limitless/r1/c",
    ]
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("dependency merged") == 2
    assert "worktree created" in messages and "worktree prepared" in messages


def test_dependency_conflict(repo: Path) -> None:
    """Conflicting dependencies raise DependencyConflict naming files, with no half merge left."""
    branch_with_file(repo, "limitless/r1/a", "shared.txt", "a wrote this\n")
    branch_with_file(repo, "limitless/r1/b", "shared.txt", "b wrote that\n")
    path = wt.worktree_path(default_worktree_root(repo), "r1", "c")
    with pytest.raises(wt.DependencyConflict) as raised:
        prep(repo, "c", merge_branches=["limitless/r1/a", "limitless/r1/b"])
    assert isinstance(raised.value, GitError)
    assert raised.value.files == ("shared.txt",)
    assert raised.value.dependency == "limitless/r1/b"
    assert str(raised.value) == (
        "merging dependency branch limitless/r1/b into limitless/r1/c conflicted in: "
        "shared.txt; the merge was aborted"
    )
    assert git(path, "status", "--porcelain") == ""
    assert rev_parse(path, "MERGE_HEAD") is None
    assert (path / "shared.txt").read_text() == "a wrote this\n"


def test_unknown_dependency(repo: Path) -> None:
    """A dependency branch that does not exist is named in a GitError."""
    with pytest.raises(GitError, match="dependency branch limitless/r1/nope of limitless/r1/c"):
        prep(repo, "c", merge_branches=["limitless/r1/nope"])


def test_a_worktree_of_another_repository_at_the_path_is_refused(
    make_repo: Callable[..., Path],
) -> None:
    """Two repositories sharing a worktree root and a run id: the second never takes the
    first's worktree for its own (the path is named, nothing is changed)."""
    first, second = make_repo("first"), make_repo("second")
    path = first.parent / "shared-root" / "r1" / "t"
    wt.prepare_worktree(
        first,
        path=path,
        branch="limitless/r1/t",
        base_sha=git(first, "rev-parse", "main"),
        lock_dir=lock_dir(first),
    )
    head = git(path, "rev-parse", "HEAD")
    with pytest.raises(GitError, match="is a worktree of another repository"):
        wt.prepare_worktree(
            second,
            path=path,
            branch="limitless/r1/t",
            base_sha=git(second, "rev-parse", "main"),
            lock_dir=lock_dir(second),
        )
    assert git(path, "rev-parse", "HEAD") == head
    assert git(second, "branch", "--list", "limitless/*") == ""


def test_prepare_is_idempotent(repo: Path) -> None:
    """Preparing again changes nothing; a dependency added later is the only new merge."""
    branch_with_file(repo, "limitless/r1/a", "a.txt", "a\n")
    first = prep(repo, "epic", merge_branches=["limitless/r1/a"])
    again = prep(repo, "epic", merge_branches=["limitless/r1/a"])
    assert not again.created
    assert again.merged == ()
    assert again.start_sha == first.start_sha
    branch_with_file(repo, "limitless/r1/b", "b.txt", "b\n")
    third = prep(repo, "epic", merge_branches=["limitless/r1/a", "limitless/r1/b"])
    assert third.merged == ("limitless/r1/b",)
    assert (third.path / "b.txt").exists()
    assert is_ancestor(repo, first.start_sha, third.start_sha)


def test_a_hand_off_into_a_worktree_checked_out_ahead_merges_only(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The supervisor's hand-off (`fresh`: it checked the worktree out from base itself and
    nothing ran there since) merges the dependency with three git processes — no lock,
    re-check or status — and ends as a full preparation would."""
    ahead = prep(repo, "t")
    branch_with_file(repo, "limitless/r1/a", "a.txt", "a\n")
    calls: list[tuple[str, ...]] = []
    real = wt._git

    def counted(cwd: Path, *args: str, **kwargs: object) -> object:
        calls.append(args)
        return real(cwd, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(wt, "_git", counted)
    monkeypatch.setattr("limitless.git.runner.git", counted)
    handed = prep(repo, "t", merge_branches=["limitless/r1/a"], fresh=True)
    assert not handed.created and handed.merged == ("limitless/r1/a",)
    assert handed.start_sha == git(ahead.path, "rev-parse", "HEAD") != ahead.start_sha
    assert (ahead.path / "a.txt").read_text() == "a\n"
    assert git(ahead.path, "status", "--porcelain") == ""
    assert [args[0] for args in calls if args[0] != "-c"] == ["for-each-ref", "merge", "rev-parse"]


def test_dependency_merge_cut_short_by_a_crash_is_redone(repo: Path) -> None:
    """A crash mid-merge leaves the dependency's files staged; preparing again redoes the
    merge, and the half-done state is still kept under a ref."""
    made = prep(repo, "t")
    branch_with_file(repo, "limitless/r1/a", "a.txt", "a\n")
    git(made.path, "checkout", "limitless/r1/a", "--", "a.txt")  # what the cut merge left
    again = prep(repo, "t", merge_branches=["limitless/r1/a"])
    assert again.merged == ("limitless/r1/a",)
    assert git(made.path, "status", "--porcelain") == ""
    assert is_ancestor(repo, "limitless/r1/a", "limitless/r1/t")
    kept = git(repo, "for-each-ref", "--format=%(refname)", "refs/limitless/r1/t/").split()
    assert len(kept) == 1 and kept[0].startswith("refs/limitless/r1/t/interrupted-")
    assert git(repo, "show", f"{kept[0]}:a.txt") == "a"


def test_someones_change_is_not_taken_for_a_cut_merge(repo: Path) -> None:
    """A change to a file the dependency does not touch is somebody's work: refused, kept."""
    made = prep(repo, "t")
    branch_with_file(repo, "limitless/r1/a", "a.txt", "a\n")
    (made.path / "README.md").write_text("mine\n")
    with pytest.raises(GitError, match=r"has uncommitted changes \(README.md\)"):
        prep(repo, "t", merge_branches=["limitless/r1/a"])
    assert (made.path / "README.md").read_text() == "mine\n"
    assert not (made.path / "a.txt").exists()


def test_fill_checkout_after_a_crash_between_add_and_checkout(repo: Path) -> None:
    """`worktree add --no-checkout` then a crash: the folder has no files until filled."""
    path = repo.parent / "half"
    git(repo, "worktree", "add", "-q", "--no-checkout", "-b", "half", str(path))
    assert not (path / "README.md").exists()
    assert wt.fill_checkout(path) is True
    assert (path / "README.md").exists()
    assert git(path, "status", "--porcelain") == ""
    assert wt.fill_checkout(path) is False


def test_existing_branch_is_attached(repo: Path) -> None:
    """A branch left by a crash is checked out as it is, never reset to base."""
    tip = branch_with_file(repo, "limitless/r1/t", "work.txt", "kept\n")
    made = prep(repo, "t")
    assert made.created
    assert made.start_sha == tip
    assert (made.path / "work.txt").read_text() == "kept\n"


def test_worktree_deleted_by_hand_is_recreated(repo: Path) -> None:
    """A worktree folder removed without git is pruned and added again on its branch."""
    made = prep(repo, "t")
    commit_file(made.path, "work.txt", "kept\n")
    subprocess.run(["rm", "-rf", str(made.path)], check=True)
    again = prep(repo, "t")
    assert again.created
    assert (again.path / "work.txt").read_text() == "kept\n"


def test_prepare_refuses_worktree_on_other_branch(repo: Path) -> None:
    """A worktree at the path on another branch is reported, not taken over."""
    path = wt.worktree_path(default_worktree_root(repo), "r1", "t")
    git(repo, "worktree", "add", "-q", "-b", "other", str(path))
    with pytest.raises(GitError, match="is on branch other, not limitless/r1/t"):
        prep(repo, "t")


def test_copy_and_link_ignored_files(make_repo: Callable[..., Path]) -> None:
    """copy brings an ignored .env as a file, link as a symlink; existing files are kept."""
    repo = make_repo(files={".gitignore": ".env\nlocal/\nsecrets.txt\n", "README.md": "hi\n"})
    (repo / ".env").write_text("TOKEN=1\n")
    (repo / "local").mkdir()
    (repo / "local" / "conf.ini").write_text("[x]\n")
    (repo / "secrets.txt").write_text("s\n")
    copied = prep(repo, "c", copy=[".env", "local/*", "nothing-*"])
    assert (copied.path / ".env").read_text() == "TOKEN=1\n"
    assert not (copied.path / ".env").is_symlink()
    assert (copied.path / "local" / "conf.ini").read_text() == "[x]\n"

    linked = prep(repo, "l", link=[".env", "local"])
    assert (linked.path / ".env").is_symlink()
    assert (linked.path / ".env").resolve() == (repo / ".env").resolve()
    assert (linked.path / "local" / "conf.ini").read_text() == "[x]\n"

    (copied.path / ".env").write_text("TOKEN=mine\n")
    prep(repo, "c", copy=[".env", "secrets.txt"])
    assert (copied.path / ".env").read_text() == "TOKEN=mine\n"
    assert (copied.path / "secrets.txt").read_text() == "s\n"
    assert git(copied.path, "status", "--porcelain") == ""


class OutsideCase(NamedTuple):
    test_id: str
    kind: str
    pattern: str


OUTSIDE_CASES = [
    OutsideCase("copy-parent", "copy", "../outside.txt"),
    OutsideCase("copy-symlink", "copy", "escape.txt"),
    OutsideCase("link-symlink", "link", "escape.txt"),
    OutsideCase("copy-dir-with-symlink", "copy", "folder"),
    OutsideCase("copy-absolute", "copy", "/etc/hostname"),
]


@pytest.mark.parametrize("case", OUTSIDE_CASES, ids=[c.test_id for c in OUTSIDE_CASES])
def test_copy_refuses_outside(case: OutsideCase, repo: Path) -> None:
    """Globs reaching outside the repository are refused before the worktree is made."""
    outside = repo.parent / "outside.txt"
    outside.write_text("private\n")
    (repo / "escape.txt").symlink_to(outside)
    (repo / "folder").mkdir()
    (repo / "folder" / "inner").symlink_to(outside)
    with pytest.raises(UsageError) as raised:
        prep(repo, "t", **{case.kind: [case.pattern]})
    assert f"{case.kind} glob {case.pattern!r}" in str(raised.value)
    assert not wt.worktree_path(default_worktree_root(repo), "r1", "t").exists()
    assert not branch_exists(repo, "limitless/r1/t")


# ----------------------------------------------------------------------------- commit, inspect


def test_commit_all(make_repo: Callable[..., Path]) -> None:
    """commit_all commits new, changed and deleted files, skips ignored ones, None when clean."""
    repo = make_repo(files={".gitignore": "*.log\n", "a.txt": "a\n", "b.txt": "b\n"})
    made = prep(repo, "t")
    (made.path / "a.txt").write_text("changed\n")
    (made.path / "b.txt").unlink()
    (made.path / "new" / "c.txt").parent.mkdir()
    (made.path / "new" / "c.txt").write_text("c\n")
    (made.path / "debug.log").write_text("noise\n")
    sha = wt.commit_all(made.path, "limitless: leftovers of t")
    assert sha == git(made.path, "rev-parse", "HEAD")
    assert git(made.path, "log", "-1", "--format=%s") == "limitless: leftovers of t"
    names = git(made.path, "show", "--name-status", "--format=", "HEAD").splitlines()
    assert sorted(names) == ["A\tnew/c.txt", "D\tb.txt", "M\ta.txt"]
    assert wt.commit_all(made.path, "again") is None


def test_commit_all_skips_hooks_unless_asked(repo: Path) -> None:
    """A rejecting pre-commit hook does not stop a snapshot; hooks=True runs it: CommitRejected."""
    made = prep(repo, "t")
    hooks = repo / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    hook = hooks / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'hook said no' >&2\nexit 1\n")
    hook.chmod(0o755)
    (made.path / "x.txt").write_text("x\n")
    with pytest.raises(CommitRejected) as raised:
        wt.commit_all(made.path, "checked", hooks=True)
    assert raised.value.hook == "pre-commit"
    assert raised.value.output == "hook said no"
    assert git(made.path, "diff", "--cached", "--name-only") == "x.txt"  # still staged
    assert wt.commit_all(made.path, "snapshot") is not None


def test_inspect_numbers(repo: Path) -> None:
    """inspect counts commits ahead, the diffstat against base and dirty files."""
    made = prep(repo, "t")
    commit_file(made.path, "one.txt", "1\n2\n3\n")
    (made.path / "README.md").write_text("rewritten\n")
    git(made.path, "commit", "-q", "-am", "rewrite readme")
    (made.path / "README.md").write_text("dirty\n")
    (made.path / "untracked.txt").write_text("u\n")
    state = inspect(made.path, made.start_sha)
    assert state == WorktreeState(
        head=git(made.path, "rev-parse", "HEAD"),
        ahead=2,
        files_changed=2,
        insertions=4,
        deletions=1,
        dirty_files=("README.md", "untracked.txt"),
    )


def test_inspect_fresh_and_missing(repo: Path) -> None:
    """A fresh worktree shows zeros; a missing one shows no HEAD."""
    made = prep(repo, "t")
    assert inspect(made.path, made.start_sha) == WorktreeState(made.start_sha, 0, 0, 0, 0, ())
    gone = inspect(repo.parent / "nowhere", made.start_sha)
    assert gone == WorktreeState(None, 0, 0, 0, 0, ())


def test_reset_for_retry(make_repo: Callable[..., Path]) -> None:
    """A retry resets to the start, keeps ignored files and saves the attempt on its ref."""
    repo = make_repo(files={".gitignore": ".env\n", "README.md": "hi\n"})
    made = prep(repo, "t")
    (made.path / ".env").write_text("SECRET=1\n")
    first = commit_file(made.path, "attempt.txt", "try 1\n", "attempt one")
    (made.path / "README.md").write_text("half done\n")
    (made.path / "scratch.txt").write_text("leftover\n")
    ref = attempt_ref("r1", "t", 1)

    kept = wt.reset_for_retry(repo, made.path, start_sha=made.start_sha, keep_ref=ref)

    assert kept is not None
    assert rev_parse(repo, ref) == kept
    assert is_ancestor(repo, first, ref)
    assert git(repo, "show", f"{ref}:scratch.txt") == "leftover"
    assert git(repo, "show", f"{ref}:README.md") == "half done"
    assert git(made.path, "rev-parse", "HEAD") == made.start_sha
    assert git(made.path, "status", "--porcelain") == ""
    assert (made.path / ".env").read_text() == "SECRET=1\n"
    assert not (made.path / "attempt.txt").exists()
    assert wt.reset_for_retry(repo, made.path, start_sha=made.start_sha, keep_ref=ref) is None

    commit_file(made.path, "attempt.txt", "try 2\n", "attempt two")
    with pytest.raises(GitError, match="already holds"):
        wt.reset_for_retry(repo, made.path, start_sha=made.start_sha, keep_ref=ref)
    assert rev_parse(repo, ref) == kept
    second = attempt_ref("r1", "t", 2)
    assert wt.reset_for_retry(repo, made.path, start_sha=made.start_sha, keep_ref=second)
    assert git(repo, "show", f"{second}:attempt.txt") == "try 2"


def test_reset_refuses_detached_head(repo: Path) -> None:
    """A worktree left on a detached HEAD is not reset (its branch would not move)."""
    made = prep(repo, "t")
    commit_file(made.path, "a.txt", "a\n")
    git(made.path, "checkout", "-q", "--detach")
    ref = attempt_ref("r1", "t", 1)
    with pytest.raises(GitError, match="detached HEAD"):
        wt.reset_for_retry(repo, made.path, start_sha=made.start_sha, keep_ref=ref)
    assert rev_parse(repo, ref) is None


def test_commits_and_diffs(repo: Path) -> None:
    """commits_between lists oldest first; diffstat_text and diff_text show the change."""
    made = prep(repo, "t")
    one = commit_file(made.path, "a.txt", "alpha\n", "first change")
    two = commit_file(made.path, "b.txt", "beta\n", "second change")
    assert commits_between(repo, made.start_sha, made.branch) == [
        (one, "first change"),
        (two, "second change"),
    ]
    assert commits_between(made.path, made.branch, made.start_sha) == []
    stat = diffstat_text(repo, made.start_sha, made.branch)
    assert "a.txt" in stat and "2 files changed, 2 insertions(+)" in stat
    assert "+alpha" in diff_text(repo, made.start_sha, made.branch)


# ------------------------------------------------------------------- list, remove, recover


def test_list_remove_prune(repo: Path) -> None:
    """Worktrees are listed; a dirty one is kept unless forced; a deleted one is pruned."""
    a = prep(repo, "a")
    b = prep(repo, "b")
    entries = wt.list_worktrees(repo)
    assert [(e.path, e.branch) for e in entries] == [
        (repo.resolve(), "main"),
        (a.path.resolve(), "limitless/r1/a"),
        (b.path.resolve(), "limitless/r1/b"),
    ]
    assert entries[1].head == a.start_sha and not entries[1].locked

    (a.path / "README.md").write_text("dirty\n")
    with pytest.raises(GitError) as raised:
        wt.remove_worktree(repo, a.path)
    assert str(raised.value) == (
        f"worktree {a.path} has uncommitted changes: README.md; "
        "commit them, or remove it anyway with --force"
    )
    wt.remove_worktree(repo, a.path, force=True)
    assert not a.path.exists()
    assert branch_exists(repo, "limitless/r1/a")

    subprocess.run(["rm", "-rf", str(b.path)], check=True)
    assert wt.list_worktrees(repo)[1].prunable
    wt.remove_worktree(repo, b.path)
    assert [e.path for e in wt.list_worktrees(repo)] == [repo.resolve()]

    c = prep(repo, "c")
    subprocess.run(["rm", "-rf", str(c.path)], check=True)
    wt.prune(repo)
    assert len(wt.list_worktrees(repo)) == 1


def test_remove_refuses_non_worktree(repo: Path) -> None:
    """A folder that is not a worktree of the repository is left alone."""
    folder = repo.parent / "plain"
    folder.mkdir()
    with pytest.raises(GitError, match="is not a worktree of"):
        wt.remove_worktree(repo, folder)
    assert folder.exists()


def test_delete_branch(repo: Path) -> None:
    """An unmerged branch needs force; a merged one goes; a missing one returns False."""
    branch_with_file(repo, "limitless/r1/a", "a.txt", "a\n")
    with pytest.raises(GitError) as raised:
        delete_branch(repo, "limitless/r1/a")
    assert "branch limitless/r1/a is not merged into HEAD" in str(raised.value)
    assert "--force" in str(raised.value)
    assert branch_exists(repo, "limitless/r1/a")
    assert delete_branch(repo, "limitless/r1/a", force=True)
    assert not branch_exists(repo, "limitless/r1/a")

    git(repo, "branch", "limitless/r1/merged", "main")
    assert delete_branch(repo, "limitless/r1/merged")
    assert not delete_branch(repo, "limitless/r1/merged")


def test_recover(repo: Path) -> None:
    """recover tells present, missing, elsewhere and branch-missing apart and prunes."""
    present = prep(repo, "present")
    missing = prep(repo, "missing")
    elsewhere = prep(repo, "elsewhere")
    subprocess.run(["rm", "-rf", str(missing.path)], check=True)
    found = wt.recover(
        repo,
        {
            present.branch: present.path,
            missing.branch: missing.path,
            elsewhere.branch: repo.parent / "somewhere-else",
            "limitless/r1/gone": repo.parent / "gone",
        },
    )
    assert found == {
        present.branch: wt.WorktreeHealth.PRESENT,
        missing.branch: wt.WorktreeHealth.MISSING,
        elsewhere.branch: wt.WorktreeHealth.ELSEWHERE,
        "limitless/r1/gone": wt.WorktreeHealth.BRANCH_MISSING,
    }
    assert not any(e.prunable for e in wt.list_worktrees(repo))
    assert prep(repo, "missing").created


# ----------------------------------------------------------------------------- concurrency

PARALLEL = 20

_CHILD = """
import sys
from pathlib import Path
from limitless.git import worktrees as wt
from limitless.git.refs import branch_name
from limitless.git.repo import default_worktree_root
repo, key, base, lock = Path(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])
wt.prepare_worktree(repo, path=wt.worktree_path(default_worktree_root(repo), "r1", key),
                    branch=branch_name("r1", key), base_sha=base, lock_dir=lock)
"""


def test_parallel_prepare_threads(make_repo: Callable[..., Path]) -> None:
    """Twenty threads preparing worktrees at once all succeed and git lists all of them."""
    repo = make_repo(files={f"src/f{i}.txt": f"{i}\n" for i in range(50)})
    lock = lock_dir(repo)
    base = git(repo, "rev-parse", "HEAD")
    start = threading.Barrier(PARALLEL)

    def one(i: int) -> wt.PreparedWorktree:
        start.wait()
        return wt.prepare_worktree(
            repo,
            path=wt.worktree_path(default_worktree_root(repo), "r1", f"t{i}"),
            branch=branch_name("r1", f"t{i}"),
            base_sha=base,
            lock_dir=lock,
        )

    with ThreadPoolExecutor(PARALLEL) as pool:
        made = list(pool.map(one, range(PARALLEL)))
    assert all(m.created and m.start_sha == base for m in made)
    assert_all_listed(repo, PARALLEL)


def test_parallel_prepare_processes(make_repo: Callable[..., Path]) -> None:
    """Twenty processes preparing worktrees at once all succeed: the lock spans processes."""
    repo = make_repo(files={f"src/f{i}.txt": f"{i}\n" for i in range(50)})
    lock = lock_dir(repo)
    base = git(repo, "rev-parse", "HEAD")
    root = Path(__file__).resolve().parent.parent
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(repo), f"p{i}", base, str(lock)],
            cwd=root,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PARALLEL)
    ]
    errors = [err for p in procs if (err := p.communicate()[1]) and p.returncode != 0]
    assert errors == []
    assert_all_listed(repo, PARALLEL)


def test_listing_during_parallel_adds(make_repo: Callable[..., Path]) -> None:
    """list_worktrees never fails while other threads add worktrees (the shared lock)."""
    repo = make_repo()
    lock = lock_dir(repo)
    base = git(repo, "rev-parse", "HEAD")
    done = threading.Event()
    failures: list[str] = []
    listings = [0]

    def reader() -> None:
        while True:
            try:
                wt.list_worktrees(repo)
                listings[0] += 1
            except GitError as exc:
                failures.append(str(exc))
            if done.is_set():
                return

    def one(i: int) -> wt.PreparedWorktree:
        return wt.prepare_worktree(
            repo,
            path=wt.worktree_path(default_worktree_root(repo), "r1", f"t{i}"),
            branch=branch_name("r1", f"t{i}"),
            base_sha=base,
            lock_dir=lock,
        )

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for thread in readers:
        thread.start()
    try:
        with ThreadPoolExecutor(PARALLEL) as pool:
            list(pool.map(one, range(PARALLEL)))
    finally:
        done.set()
        for thread in readers:
            thread.join()
    assert failures == []
    assert listings[0] > 0
    assert len(wt.list_worktrees(repo)) == PARALLEL + 1


def assert_all_listed(repo: Path, count: int) -> None:
    """`git worktree list` shows the main checkout plus `count` healthy, filled worktrees."""
    listed = git(repo, "worktree", "list", "--porcelain").split("\n\n")
    assert len(listed) == count + 1
    assert not any("prunable" in record for record in listed)
    for entry in wt.list_worktrees(repo)[1:]:
        assert (entry.path / "src" / "f49.txt").read_text() == "49\n"
        assert git(entry.path, "status", "--porcelain") == ""


def test_exclude_untracked_names_patterns_once_for_every_worktree(repo: Path) -> None:
    """Patterns go to the shared info/exclude once; their files stay out of commit_all."""
    exclude = repo / ".git" / "info" / "exclude"
    exclude.write_text("# mine\n*.log")  # the user's own, without a last newline
    git(repo, "worktree", "add", "-q", "-b", "task", str(repo.parent / "task"))
    worktree = repo.parent / "task"
    patterns = ["/.aider.chat.history.md", "/.aider.tags.cache.v*/"]

    assert exclude_untracked(worktree, patterns) == patterns
    assert exclude_untracked(repo, patterns) == []

    assert exclude.read_text() == "# mine\n*.log\n/.aider.chat.history.md\n/.aider.tags.cache.v*/\n"
    (worktree / ".aider.chat.history.md").write_text("chat\n")
    (worktree / ".aider.tags.cache.v4").mkdir()
    (worktree / ".aider.tags.cache.v4" / "cache.db").write_text("x")
    (worktree / "work.txt").write_text("work\n")
    wt.commit_all(worktree, "work")
    assert git(worktree, "ls-files").splitlines() == ["README.md", "work.txt"]
