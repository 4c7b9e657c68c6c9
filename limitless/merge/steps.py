"""One merge step in the merge worktree: bring a task's commit in, run the gate, or undo it.

The plan's strategy decides how a task's work is brought onto the merged branch:

- `merge`: `git merge --no-ff`, one merge commit per task,
  "limitless: merge <task> (<run>)";
- `squash`: the change from where the task's work began to its commit as one
  commit, "<task>: <first line of its prompt>";
- `rebase`: the task's non-merge commits replayed on the merged branch with
  `git rebase --onto <merged> <merged> <sha>` on a detached HEAD, so the task
  branch itself is never moved; commits already on the merged branch (same
  patch) and commits that become empty are dropped, as `git rebase` does.

The commits follow the repository's rules, as the user's own would (see
`git.runner`): its hooks run (`pre-merge-commit`, `commit-msg`, `pre-commit`
for a squash, `pre-rebase`, ...; plan `commit_hooks: skip` leaves them out) and
they are signed when `commit.gpgSign` is on. A hook's refusal is
`CommitRejected`. A conflict is left in place for the caller to resolve or
`undo`. The gate (`merge.gate`) runs with `bash -c` in the merge worktree.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from limitless.errors import GitError
from limitless.git import runner as gitrun
from limitless.git.runner import failure, git, out
from limitless.git.status import conflicted_files, head_ref, head_sha, operation_in_progress
from limitless.plan.model import Strategy

log = logging.getLogger(__name__)

GATE_TAIL_LINES = 15


_REBASE_FLAGS = ("--no-update-refs", "--no-rebase-merges", "--no-autosquash", "--no-fork-point")


_MARKER = re.compile(rb"^(?:<{7}|>{7})(?: |\r?$)", re.MULTILINE)


class StepKind(StrEnum):
    MERGED = "merged"
    """A new commit on the merged branch."""
    EMPTY = "empty"
    """Nothing to bring: the branch's changes are already there."""
    CONFLICT = "conflict"
    """The conflict is left in place in the worktree."""


@dataclass(frozen=True)
class Step:
    kind: StepKind
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class GateResult:
    ok: bool
    exit_code: int
    tail: str
    log_path: Path


def has_markers(worktree: Path, files: Sequence[str]) -> list[str]:
    """The files among `files` that still hold conflict markers (<<<<<<< or >>>>>>>)."""
    found: list[str] = []
    for rel in files:
        path = worktree / rel
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            continue
        if _MARKER.search(data):
            found.append(rel)
    return found


def merge_step(
    worktree: Path,
    branch: str,
    source: str,
    strategy: Strategy,
    message: str,
    *,
    start: str | None = None,
    hooks: bool = True,
) -> Step:
    """Bring commit `source` into the merged `branch` checked out in `worktree`.

    `start` (squash only) is where the task's own work began: the squash brings
    the change from `start` to `source`, so a dependency's work already squashed
    onto the branch is not offered twice. The commits follow the repository's
    rules (hooks unless `hooks` is False, signing as configured). A conflict is
    left in place (undo with `undo`); a hook's refusal raises CommitRejected and
    any other failure GitError, and the caller undoes what is left.
    """
    if strategy == "rebase":
        return _rebase_step(worktree, branch, source, hooks)
    if strategy == "squash":
        return _squash_step(worktree, source, start, message, hooks)
    args = ("merge", "--no-ff", "--no-edit", "-m", message, source)
    result = gitrun.commit(worktree, *args, hooks=hooks)
    if not result.ok:
        files = conflicted_files(worktree)
        if files:
            return Step(StepKind.CONFLICT, files)
        raise _refusal(worktree, args, result, "the merge commit")
    return Step(StepKind.MERGED)


def _refusal(
    worktree: Path, args: Sequence[str], result: gitrun.CommitResult, what: str
) -> GitError:
    """CommitRejected when a hook refused, else the GitError of the failed command."""
    return gitrun.rejected(result, worktree, what) or failure(
        worktree, args, result.process.returncode, result.output
    )


def _squash_step(worktree: Path, source: str, start: str | None, message: str, hooks: bool) -> Step:
    """Apply the change start..source as one commit (a 3-way merge based at `start`).

    Done as `cherry-pick --no-commit` of a throwaway commit holding `source`'s
    tree on top of `start`; without a `start`, the merge base of HEAD and
    `source` is used, which is what `git merge --squash` does.
    """
    if start is None:
        found = git(worktree, "merge-base", "HEAD", source, check=False).stdout.strip()
        start = found or None
    if start is None:
        args: tuple[str, ...] = ("merge", "--squash", "--allow-unrelated-histories", source)
    else:
        virtual = out(
            worktree,
            "commit-tree",
            "--no-gpg-sign",  # a throwaway: never kept, so never signed
            f"{source}^{{tree}}",
            "-p",
            start,
            "-m",
            "limitless: squash",
        )
        args = ("cherry-pick", "--no-commit", virtual)
    result = git(worktree, *gitrun.NO_HOOKS, *args, check=False)
    if result.returncode != 0:
        files = conflicted_files(worktree)
        if files:
            return Step(StepKind.CONFLICT, files)
        raise failure(worktree, args, result.returncode, result.stderr or result.stdout)
    if git(worktree, "diff", "--cached", "--quiet", check=False).returncode == 0:
        return Step(StepKind.EMPTY)
    commit_change(worktree, message, hooks)
    return Step(StepKind.MERGED)


def commit_change(worktree: Path, message: str, hooks: bool) -> None:
    """Commit what is staged with `message` (title, blank line, body) by the repository's rules."""
    title, _, body = message.partition("\n\n")
    args = ["commit", "-q", "-m", title]
    if body:
        args += ["-m", body]
    result = gitrun.commit(worktree, *args, hooks=hooks)
    if not result.ok:
        raise _refusal(worktree, args, result, "the squashed commit")


def _rebase_step(worktree: Path, branch: str, source: str, hooks: bool) -> Step:
    prev = head_sha(worktree)
    args = ("rebase", "-q", *_REBASE_FLAGS, "--onto", prev, prev, source)
    result = gitrun.commit(worktree, *args, hooks=hooks)
    if not result.ok:
        files = conflicted_files(worktree)
        if files and operation_in_progress(worktree) == "rebase":
            return Step(StepKind.CONFLICT, files)
        undo(worktree, branch, prev)
        raise _refusal(worktree, args, result, "the rebase")
    return finish_rebase(worktree, branch, prev)


def finish_rebase(worktree: Path, branch: str, prev: str) -> Step:
    """Move `branch` to the detached HEAD a finished rebase left, and check it out."""
    new = head_sha(worktree)
    if new == prev:
        git(worktree, "checkout", "-q", branch)
        return Step(StepKind.EMPTY)
    git(worktree, "update-ref", "-m", "limitless: rebase", f"refs/heads/{branch}", new, prev)
    git(worktree, "symbolic-ref", "HEAD", f"refs/heads/{branch}")
    return Step(StepKind.MERGED)


def undo(worktree: Path, branch: str, sha: str) -> None:
    """Abandon whatever is under way in `worktree` and put `branch` (checked out) at `sha`."""
    op = operation_in_progress(worktree)
    if op == "rebase":
        git(worktree, "rebase", "--quit", check=False)
    elif op in ("cherry-pick", "revert"):
        git(worktree, op, "--quit", check=False)
    if head_ref(worktree) != f"refs/heads/{branch}":
        git(worktree, "checkout", "-q", "-f", branch)
    git(worktree, "reset", "-q", "--hard", sha)
    log.info("merge undone", extra={"worktree": str(worktree), "sha": sha})


def run_gate(
    worktree: Path, gate: str, log_path: Path, env: Mapping[str, str] | None = None
) -> GateResult:
    """Run `bash -c gate` in `worktree`, output to `log_path`; the tail of it comes back."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as handle:
        handle.write(f"$ {gate}\n".encode())
        handle.flush()
        result = subprocess.run(
            ["bash", "-c", gate],
            cwd=worktree,
            env=gitrun.env(env),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            check=False,
        )
    tail = _tail(log_path)
    log.info("gate ran", extra={"gate": gate, "exit_code": result.returncode})
    return GateResult(result.returncode == 0, result.returncode, tail, log_path)


def _tail(path: Path, lines: int = GATE_TAIL_LINES) -> str:
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 8192))
        data = handle.read()
    text = data.decode("utf-8", errors="replace").rstrip()
    return "\n".join(text.splitlines()[-lines:])
