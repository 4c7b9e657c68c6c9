"""The merge phase, conflict prediction and landing (DESIGN §6).

Merge phase
    Works in the merge worktree `<worktree_root>/<run>/_merge` on branch
    `limitless/<run>/merged`, started from the run's base sha; never in the
    user's checkout. Done tasks are merged one by one in dependency order (ties:
    the order they finished in) with the plan's strategy:

    - `merge`: `git merge --no-ff`, one merge commit per task,
      "limitless: merge <task> (<run>)";
    - `squash`: `git merge --squash` and one commit per task,
      "<task>: <first line of its prompt>";
    - `rebase`: the task's non-merge commits replayed on the merged branch with
      `git rebase --onto <merged> <merged> <sha>` on a detached HEAD, so the task
      branch itself is never moved; commits already on the merged branch (same
      patch) and commits that become empty are dropped, as `git rebase` does.

    After each merge the gate (`merge.gate`, run with `bash -c` in the merge
    worktree) decides; a failing gate resets the merged branch to the previous
    result. A task whose dependency was not merged is skipped: its branch
    carries that dependency's work.

Epics
    Members of an epic share one branch and run one after another. Each member is
    merged at its own place in the order, from the commit its branch had when the
    member finished (`TaskRow.head_sha`); the epic's last member (and any member
    whose recorded commit is gone from the branch) takes the branch tip. So every
    member gets its own merge commit and gate run, and a failed member's partial
    work (committed on the shared branch after the last done member) is not merged.
    A member whose commit is already on the merged branch is recorded as merged.

Idempotence
    `run_merge_phase` can be called again at any time (`limitless merge`): tasks
    recorded as merged on an existing merged branch, and tasks whose commit is
    already an ancestor of it (a conflict resolved by hand with `git merge`), are
    not merged again. A merge interrupted by a crash (row left `merging`) is
    undone first; its partial result is kept under `refs/limitless/<run>/merged/`.

Commits and hooks
    Commits limitless makes in the merge worktree (merge commits, squashed
    commits, replayed commits) follow the repository's rules, as the user's own
    would (see `gitrun`): its hooks run (`pre-merge-commit`, `commit-msg`,
    `pre-commit` for a squash, `pre-rebase`, ...; plan `commit_hooks: skip`
    leaves them out) and they are signed when `commit.gpgSign` is on. A hook that
    refuses a commit stops the phase at that task: its merge is undone, nothing
    lands, and the message names the hook and what it printed. After each merge
    the worktree's submodules are checked out at the commits it records, so the
    gate sees them (see `submodules`).

Conflicts (`merge.on_conflict`)
    `stop` aborts the merge, records the files and stops; the message says how to
    continue (a manual `git merge` in the merge worktree, whatever the strategy,
    because ancestry is how a resolution is recognised). `skip` records and goes
    on. `agent` leaves the conflict in place and runs a resolver through the
    `run_in_slot` callback (by default a slot pane of the run's tmux session, see
    `merge_slot.py`; with no live session the phase stops as with `stop`); its
    result is accepted only if no conflict markers are
    left, the merge ends committed (limitless stages and commits a resolved but
    uncommitted result itself; for `rebase` it continues the rebase, and a later
    commit that conflicts gets another resolver round) and the gate passes.
    Otherwise the merge is undone and the phase stops as with `stop`.

Landing (`merge.land`)
    The base branch only moves forward: the merged result lands only when the
    base tip is an ancestor of it (it still points where the run started, or at
    this run's own earlier landing). If base moved on, the merged branch (kept
    under `refs/limitless/<run>/merged/redo-<n>`) is rebuilt from the new tip,
    `Run.base_sha` becomes that tip, and every task is merged again; when base
    had already moved before the phase began, it starts on the new tip at once.
    The store is told before the branch is reset, so a crash in between leaves
    rows that say "unmerged", never "merged" on a branch without those merges. Where base
    is checked out, landing is `git merge --ff-only` in that checkout, and only
    when it has no staged or unstaged changes to tracked files and no operation
    in progress; untracked files do not count, and if one is in the way git
    itself refuses the fast-forward and nothing changes. Where base is checked
    out nowhere, landing is a compare-and-swap `git update-ref`. Task branches
    are never deleted here.

Conflict prediction
    `git merge-tree --write-tree --name-only --no-messages -z A B` (git >= 2.38)
    between every pair of task branches with commits beyond base, and between
    base and each branch that base has moved away from. Results are cached per
    pair of commit ids, so a poll only asks git about branches that moved.
"""

from __future__ import annotations

import dataclasses
import fcntl
import heapq
import logging
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import NoReturn

from limitless.crashpoints import crashpoint
from limitless.errors import GitError, LimitlessError, UsageError
from limitless.fmt import duration
from limitless.git import locks, refs, repochecks, submodules, worktrees
from limitless.git import runner as gitrun
from limitless.git.runner import failure as _failure
from limitless.git.runner import git as _git
from limitless.git.runner import is_object_id
from limitless.git.runner import out as _out
from limitless.git.status import (
    conflicted_files,
    head_ref,
    head_sha,
    operation_in_progress,
    tracked_changes,
)
from limitless.plan.graph import Dag
from limitless.plan.loader import MergePolicy, Plan, Strategy
from limitless.programs.profiles import AgentContext, AgentProfile, render_argv
from limitless.states import RESOLVER_TIMED_OUT, MergeStatus, RunStatus, TaskStatus
from limitless.store.store import Prediction, Run, Store, TaskRow

log = logging.getLogger(__name__)

MERGED_KEY = "merged"
"""`limitless/<run>/merged`: the branch the merge phase builds."""

MERGE_DIR = "_merge"
"""`<worktree_root>/<run>/_merge`: the merge worktree (task ids cannot start with '_')."""

MAX_REDOS = 3
"""How many times the merge is redone on a base that keeps moving before giving up."""

GATE_TAIL_LINES = 15

RunInSlot = Callable[[list[str], Path, str], int]
"""`run_in_slot(argv, cwd, title) -> exit code`: runs a resolver agent in a slot pane."""

_REBASE_FLAGS = ("--no-update-refs", "--no-rebase-merges", "--no-autosquash", "--no-fork-point")
_MARKER = re.compile(rb"^(?:<{7}|>{7})(?: |\r?$)", re.MULTILINE)
_MERGING_PREFIX = "merging onto "


# ----------------------------------------------------------------------------- values


@dataclass(frozen=True)
class MergeOutcome:
    """What a merge phase did; `ok` is False after a conflict, a failed gate or no landing."""

    ok: bool
    merged: list[str]
    """Tasks merged by this call, in merge order."""
    conflicts: list[str]
    gate_failed: list[str]
    skipped: list[str]
    landed: bool
    merged_sha: str | None
    message: str
    already_merged: list[str] = field(default_factory=list)
    """Tasks found already merged (by an earlier call or by hand); not merged again."""


@dataclass(frozen=True)
class PredictedConflict:
    """Git predicts that merging `task_id` with `other` ("" = base) conflicts in `files`."""

    task_id: str
    other: str
    files: tuple[str, ...]


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


@dataclass(frozen=True)
class GateResult:
    ok: bool
    exit_code: int
    tail: str
    log_path: Path


# ----------------------------------------------------------------------------- git


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


# ----------------------------------------------------------------------------- merge steps


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
    return gitrun.rejected(result, worktree, what) or _failure(
        worktree, args, result.process.returncode, result.output
    )


def _squash_step(worktree: Path, source: str, start: str | None, message: str, hooks: bool) -> Step:
    """Apply the change start..source as one commit (a 3-way merge based at `start`).

    Done as `cherry-pick --no-commit` of a throwaway commit holding `source`'s
    tree on top of `start`; without a `start`, the merge base of HEAD and
    `source` is used, which is what `git merge --squash` does.
    """
    if start is None:
        found = _git(worktree, "merge-base", "HEAD", source, check=False).stdout.strip()
        start = found or None
    if start is None:
        args: tuple[str, ...] = ("merge", "--squash", "--allow-unrelated-histories", source)
    else:
        virtual = _out(
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
    result = _git(worktree, *gitrun.NO_HOOKS, *args, check=False)
    if result.returncode != 0:
        files = conflicted_files(worktree)
        if files:
            return Step(StepKind.CONFLICT, files)
        raise _failure(worktree, args, result.returncode, result.stderr or result.stdout)
    if _git(worktree, "diff", "--cached", "--quiet", check=False).returncode == 0:
        return Step(StepKind.EMPTY)
    _commit(worktree, message, hooks)
    return Step(StepKind.MERGED)


def _commit(worktree: Path, message: str, hooks: bool) -> None:
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
    return _finish_rebase(worktree, branch, prev)


def _finish_rebase(worktree: Path, branch: str, prev: str) -> Step:
    """Move `branch` to the detached HEAD a finished rebase left, and check it out."""
    new = head_sha(worktree)
    if new == prev:
        _git(worktree, "checkout", "-q", branch)
        return Step(StepKind.EMPTY)
    _git(worktree, "update-ref", "-m", "limitless: rebase", f"refs/heads/{branch}", new, prev)
    _git(worktree, "symbolic-ref", "HEAD", f"refs/heads/{branch}")
    return Step(StepKind.MERGED)


def undo(worktree: Path, branch: str, sha: str) -> None:
    """Abandon whatever is under way in `worktree` and put `branch` (checked out) at `sha`."""
    op = operation_in_progress(worktree)
    if op == "rebase":
        _git(worktree, "rebase", "--quit", check=False)
    elif op in ("cherry-pick", "revert"):
        _git(worktree, op, "--quit", check=False)
    if head_ref(worktree) != f"refs/heads/{branch}":
        _git(worktree, "checkout", "-q", "-f", branch)
    _git(worktree, "reset", "-q", "--hard", sha)
    log.info("merge undone", extra={"worktree": str(worktree), "sha": sha})


def _moved_submodules(repo: Path, old: str, new: str) -> list[str]:
    """Paths of submodules whose recorded commit differs between `old` and `new`."""
    out = _git(repo, "diff", "--raw", "-z", "--no-renames", old, new, check=False).stdout
    fields = out.split("\0")
    moved: list[str] = []
    for meta, path in zip(fields[::2], fields[1::2], strict=False):
        parts = meta.lstrip(":").split()
        if len(parts) >= 2 and "160000" in (parts[0], parts[1]):
            moved.append(path)
    return moved


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


# ----------------------------------------------------------------------------- landing


def _checkout_of(repo_root: Path, branch: str) -> Path | None:
    for entry in worktrees.list_worktrees(repo_root):
        if entry.branch == branch and not entry.prunable and entry.path.exists():
            return entry.path
    return None


LAND_LOCK_FILE = "land.lock"


def _landing_lock(lock_dir: Path) -> AbstractContextManager[None]:
    """One landing at a time per repository, across processes.

    Two runs landing on the same checkout at once saw each other's half-done
    `git merge --ff-only` (index.lock held, files being rewritten) as a dirty
    checkout or a refusal; taken in turn, the second one finds base moved and
    redoes its merges on the new tip.
    """
    return locks.repo_lock(lock_dir, LAND_LOCK_FILE)


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
    with _landing_lock(lock_dir or locks.lock_dir_of(repo_root)):
        return _land(repo_root, base, merged_sha, message)


def _land(repo_root: Path, base: str, merged_sha: str, message: str) -> Landing:
    tip = refs.rev_parse(repo_root, f"refs/heads/{base}")
    if tip is None:
        return Landing(LandingKind.MISSING, None, f"branch {base} does not exist")
    checkout = _checkout_of(repo_root, base)
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
        result = _git(checkout, "merge", "--ff-only", "--no-edit", merged_sha, check=False)
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
    result = _git(repo_root, "update-ref", "-m", message, ref, merged_sha, tip, check=False)
    if result.returncode != 0:
        now = refs.rev_parse(repo_root, f"refs/heads/{base}")
        if now != tip and now is not None:
            return Landing(LandingKind.MOVED, now, f"{base} moved to {now[:12]}", None)
        return Landing(LandingKind.REFUSED, tip, result.stderr.strip(), None)
    log.info("base landed", extra={"base": base, "sha": merged_sha, "how": "update-ref"})
    return Landing(LandingKind.LANDED, merged_sha, "update-ref", None)


# ----------------------------------------------------------------------------- the phase


def run_merge_phase(
    store: Store,
    run_id: str,
    *,
    out: Callable[[str], object] = print,
    run_in_slot: RunInSlot | None = None,
    foreground: bool = False,
) -> MergeOutcome:
    """Merge the run's done task branches, then land them on base (see the module notes).

    A resolver agent (`on_conflict: agent`) runs through `run_in_slot`, by default
    in a slot pane of the run's tmux session; with `foreground` (`limitless merge`
    in a terminal) it runs in this process's terminal when that session is gone.
    UsageError when a task is not terminal yet or another merge phase of the run
    is under way; git failures end the phase with `ok=False` and say why.
    """
    run = store.get_run(run_id)
    phase = _Phase(store, run, out, run_in_slot)
    phase.foreground = foreground
    phase.check_ready()
    with _exclusive(store.run_dir(run_id) / "merge.lock", run_id):
        store.update_run(run_id, status=RunStatus.MERGING)
        store.add_event(run_id, "merge_started", strategy=phase.policy.strategy)
        try:
            outcome = phase.run()
        except LimitlessError as exc:
            outcome = phase.failed(str(exc))
    store.add_event(
        run_id,
        "merge_done",
        ok=outcome.ok,
        merged=outcome.merged,
        already_merged=outcome.already_merged,
        conflicts=outcome.conflicts,
        gate_failed=outcome.gate_failed,
        skipped=outcome.skipped,
        landed=outcome.landed,
        merged_sha=outcome.merged_sha,
        message=outcome.message,
    )
    out(outcome.message)
    log.info("merge phase done", extra={"run": run_id, "ok": outcome.ok})
    return outcome


def prepare_ahead(store: Store, run_id: str) -> bool:
    """Check out the merge worktree while the run's last tasks still work.

    A checkout of a large repository takes a second or more; done ahead, the
    merge phase starts merging as soon as the last task ends. Nothing is
    merged here. Skipped (False) while a merge phase of the run is under way
    or when the worktree is already there; git failures are left for the
    merge phase itself to report.
    """
    run = store.get_run(run_id)
    phase = _Phase(store, run, lambda _line: None, None)
    if any(task.worktree_key == MERGED_KEY for task in phase.plan.tasks):
        return False
    try:
        with _exclusive(store.run_dir(run_id) / "merge.lock", run_id):
            return phase.check_out()
    except UsageError:
        return False


@contextmanager
def _exclusive(path: Path, run_id: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            msg = f"a merge phase of run {run_id} is already under way; wait for it to end"
            raise UsageError(msg) from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


_STRATEGIES: dict[str, Strategy] = {
    "merge": "merge",
    "regular": "merge",
    "squash": "squash",
    "rebase": "rebase",
}


def policy_of(plan: Plan, run: Run) -> MergePolicy:
    """The plan's merge policy, with the run's strategy (a `--merge-strategy` override)."""
    strategy = _STRATEGIES.get(run.merge_strategy)
    if strategy is None or strategy == plan.merge.strategy:
        return plan.merge
    return dataclasses.replace(plan.merge, strategy=strategy)


def merge_order(dag: Dag, rows: Mapping[str, TaskRow]) -> list[str]:
    """Dependencies first; among tasks free to go, the one that finished first."""
    ids = [task_id for task_id in dag.ids if task_id in rows]
    missing = {task_id: 0 for task_id in ids}
    users: dict[str, list[str]] = {task_id: [] for task_id in ids}
    for task_id in ids:
        for dep in dag.dependencies(task_id):
            if dep in missing:
                missing[task_id] += 1
                users[dep].append(task_id)

    def key(task_id: str) -> tuple[int, float, int, str]:
        row = rows[task_id]
        ended = row.ended_at
        return (0 if ended is not None else 1, ended or 0.0, row.position, task_id)

    heap = [key(task_id) for task_id in ids if missing[task_id] == 0]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        task_id = heapq.heappop(heap)[3]
        order.append(task_id)
        for user in users[task_id]:
            missing[user] -= 1
            if missing[user] == 0:
                heapq.heappush(heap, key(user))
    return order


class _Stop(Exception):
    """The phase stops at a task; the message says how to continue."""

    def __init__(self, task_id: str, message: str) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.message = message


class _Phase:
    """One call of the merge phase: its inputs, and what it has done so far."""

    def __init__(
        self, store: Store, run: Run, out: Callable[[str], object], run_in_slot: RunInSlot | None
    ) -> None:
        self.store = store
        self.run_row = run
        self.run_id = run.id
        self.out = out
        self.run_in_slot = run_in_slot
        self.plan = Plan.from_json(run.plan_json)
        self.policy = policy_of(self.plan, run)
        self.dag = Dag.from_tasks(self.plan.tasks)
        self.repo = Path(run.repo_root)
        self.branch = refs.branch_name(run.id, MERGED_KEY)
        self.worktree = worktrees.worktree_path(Path(run.worktree_root), run.id, MERGE_DIR)
        self.rows: dict[str, TaskRow] = {row.id: row for row in store.get_tasks(run.id)}
        self.merged: list[str] = []
        self.already: list[str] = []
        self.conflicts: list[str] = []
        self.gate_failed: list[str] = []
        self.skipped: list[str] = []
        self.next_order = 1
        self.foreground = False
        self.hooks = self.plan.commit_hooks == "run"

    # -- before anything ---------------------------------------------------------

    def check_ready(self) -> None:
        busy = [row.id for row in self.rows.values() if not row.status.terminal]
        if busy:
            msg = (
                f"run {self.run_id} still has unfinished tasks ({', '.join(busy)}); "
                "the merge phase runs once every task is done, failed, blocked or killed "
                f"(`limitless resume {self.run_id}` finishes them, `limitless kill` stops one)"
            )
            raise UsageError(msg)
        clash = [task.id for task in self.plan.tasks if task.worktree_key == MERGED_KEY]
        if clash:
            msg = (
                f"task {clash[0]!r} of run {self.run_id} uses the branch name "
                f"{self.branch}, which the merge phase needs; rename the task (or its epic)"
            )
            raise UsageError(msg)

    def failed(self, reason: str) -> MergeOutcome:
        """The outcome when git failed underneath the phase.

        A row left `merging` keeps its reason (the commit it was merged onto): the
        next call undoes that merge from it.
        """
        message = (
            f"merge phase of run {self.run_id} failed: {reason}. "
            f"Nothing was landed on {self.run_row.base}; fix the cause and run "
            f"`limitless merge {self.run_id}` again."
        )
        self.store.add_event(self.run_id, "merge_failed", reason=reason)
        return self._outcome(ok=False, landed=False, message=message)

    # -- the whole phase ---------------------------------------------------------

    def run(self) -> MergeOutcome:
        if not any(row.status is TaskStatus.DONE for row in self.rows.values()):
            # no merge worktree, no setup in it, no gate: there is nothing to bring home
            for task_id, row in self.rows.items():
                self._skip(task_id, f"task {row.status}, not done")
            message = f"nothing to merge: no task is done; {self.run_row.base} left as it was"
            return self._outcome(ok=True, landed=False, message=message)
        signer = repochecks.signing(self.repo)
        if signer is not None and not signer.ok:
            # a signer that stopped working since the run began (an expired gpg cache)
            return self._outcome(ok=False, landed=False, message=f"nothing merged: {signer.detail}")
        refusal = self._prepare()
        if refusal:
            return self._outcome(ok=False, landed=False, message=refusal)
        self._redo_early()
        for attempt in range(MAX_REDOS + 1):
            try:
                self._merge_all()
            except _Stop as stop:
                self._leave_rest_unmerged(stop.task_id)
                return self._outcome(ok=False, landed=False, message=stop.message)
            merged_sha = head_sha(self.worktree)
            self.store.update_run(self.run_id, merged_sha=merged_sha)
            summary = self._summary()
            if self.policy.land == "manual":
                message = (
                    f"{summary}; the result is on {self.branch} (land: manual). "
                    f"{self._how_to_land()}"
                )
                return self._outcome(ok=self._clean(), landed=False, message=message)
            if not self.merged and not self.already:
                message = f"{summary}; nothing to land, {self.run_row.base} left as it was"
                return self._outcome(ok=self._clean(), landed=False, message=message)
            crashpoint("land")
            landing = land(
                self.repo,
                self.run_row.base,
                merged_sha,
                message=f"limitless: land {self.run_id}",
                lock_dir=self.store.state_dir,
            )
            crashpoint("landed")
            if landing.kind is LandingKind.MOVED and landing.tip and attempt < MAX_REDOS:
                self._redo(landing.tip)
                continue
            return self._landed(landing, merged_sha, summary)
        msg = "unreachable: the redo loop always returns"
        raise AssertionError(msg)  # pragma: no cover

    def _landed(self, landing: Landing, merged_sha: str, summary: str) -> MergeOutcome:
        base = self.run_row.base
        if landing.kind is LandingKind.LANDED:
            self.store.update_run(self.run_id, landed=True, merged_sha=merged_sha)
            self.store.add_event(
                self.run_id, "landed", base=base, sha=merged_sha, how=landing.detail
            )
            message = f"{summary}; landed on {base} at {merged_sha[:12]} ({landing.detail})"
            moved = _moved_submodules(self.repo, self.run_row.base_sha, merged_sha)
            if moved and landing.checkout is not None:
                message += (
                    f". Submodule pointers moved ({', '.join(moved)}): `git submodule update` "
                    f"in {landing.checkout} checks them out"
                )
            return self._outcome(ok=self._clean(), landed=True, message=message)
        if landing.kind is LandingKind.DIRTY:
            message = (
                f"{summary}; {base} is checked out in {landing.checkout} with {landing.detail}: "
                f"it was not touched. The result is on {self.branch}; land it with "
                f"`git merge --ff-only {self.branch}` in {landing.checkout} once it is clean."
            )
        elif landing.kind is LandingKind.MOVED:
            message = (
                f"{summary}; {base} kept moving ({landing.detail}) while the merge was redone "
                f"{MAX_REDOS} times; the result is on {self.branch}; run "
                f"`limitless merge {self.run_id}` again."
            )
        elif landing.kind is LandingKind.MISSING:
            message = f"{summary}; {landing.detail}: the result is on {self.branch}."
        else:
            message = (
                f"{summary}; git refused to move {base} ({landing.detail}); the result is on "
                f"{self.branch}. {self._how_to_land()}"
            )
        self.store.add_event(
            self.run_id, "land_refused", base=base, landing=str(landing.kind), detail=landing.detail
        )
        return self._outcome(ok=False, landed=False, message=message)

    def _how_to_land(self) -> str:
        checkout = _checkout_of(self.repo, self.run_row.base)
        if checkout is not None:
            return f"Land it with `git merge --ff-only {self.branch}` in {checkout}."
        return f"Land it with `git fetch . {self.branch}:{self.run_row.base}` in {self.repo}."

    def _clean(self) -> bool:
        return not self.conflicts and not self.gate_failed

    def _summary(self) -> str:
        parts = [f"merged {len(self.merged)} task{'s' if len(self.merged) != 1 else ''}"]
        if self.already:
            parts.append(f"{len(self.already)} already merged")
        for label, names in (
            ("conflicted", self.conflicts),
            ("failed the gate", self.gate_failed),
            ("skipped", self.skipped),
        ):
            if names:
                parts.append(f"{label}: {', '.join(names)}")
        return f"run {self.run_id}: " + "; ".join(parts)

    def _outcome(self, *, ok: bool, landed: bool, message: str) -> MergeOutcome:
        sha = refs.rev_parse(self.repo, f"refs/heads/{self.branch}")
        return MergeOutcome(
            ok=ok,
            merged=list(self.merged),
            conflicts=list(self.conflicts),
            gate_failed=list(self.gate_failed),
            skipped=list(self.skipped),
            landed=landed,
            merged_sha=sha,
            message=message,
            already_merged=list(self.already),
        )

    # -- the merge worktree ------------------------------------------------------

    def _prepare(self) -> str | None:
        """Create or reuse the merge worktree; a refusal message when it is not usable."""
        self.check_out()
        self._recover_interrupted()
        op = operation_in_progress(self.worktree)
        if op is not None:
            return (
                f"the merge worktree {self.worktree} has a {op} in progress; finish it "
                f"(resolve, git add, git commit) or abort it (git {op} --abort), then run "
                f"`limitless merge {self.run_id}` again"
            )
        if head_ref(self.worktree) != f"refs/heads/{self.branch}":
            head = head_sha(self.worktree)
            kept = f"refs/limitless/{self.run_id}/{MERGED_KEY}/detached-{head[:12]}"
            refs.keep(self.repo, kept, head)
            _git(self.worktree, "checkout", "-q", self.branch)
            self.out(f"merge worktree was on a detached HEAD; kept it at {kept}")
        self._sync_submodules()
        changed = tracked_changes(self.worktree)
        if changed:
            return (
                f"the merge worktree {self.worktree} has uncommitted changes "
                f"({', '.join(changed[:5])}); commit them on {self.branch} or discard them "
                f"(git reset --hard), then run `limitless merge {self.run_id}` again"
            )
        self._run_setup()
        numbers = [
            row.merge_order
            for row in self.rows.values()
            if row.merge_status is MergeStatus.MERGED and row.merge_order is not None
        ]
        self.next_order = max(numbers, default=0) + 1
        return None

    def check_out(self) -> bool:
        """Create the merge worktree unless it is there; whether it was created.

        A merged branch made afresh holds no merge, whatever the rows said.
        """
        existed = refs.branch_exists(self.repo, self.branch)
        created = not self._worktree_exists()
        if not created:
            worktrees.fill_checkout(self.worktree)
        else:
            self._setup_marker().unlink(missing_ok=True)
            worktrees.prepare_worktree(
                self.repo,
                path=self.worktree,
                branch=self.branch,
                base_sha=self.run_row.base_sha,
                copy=self.plan.copy,
                link=self.plan.link,
                lock_dir=self.store.state_dir,
            )
        if not existed:
            self._forget_merges("the merged branch was created afresh")
        return created

    def _worktree_exists(self) -> bool:
        """Whether git knows the merge worktree and its folder is there (on any HEAD)."""
        wanted = os.path.realpath(self.worktree)
        return any(
            os.path.realpath(entry.path) == wanted and not entry.prunable and entry.path.exists()
            for entry in worktrees.list_worktrees(self.repo)
        )

    def _setup_marker(self) -> Path:
        return self.store.run_dir(self.run_id) / "merge" / "setup.done"

    def _run_setup(self) -> None:
        """The plan's setup commands, once per merge worktree, when a gate will run in it."""
        if not self.policy.gate or not self.plan.setup:
            return
        marker = self._setup_marker()
        if marker.exists():
            return
        for number, command in enumerate(self.plan.setup, 1):
            log_path = self.store.run_dir(self.run_id) / "gate" / f"_setup-{number}.log"
            result = run_gate(self.worktree, command, log_path, self._gate_env(""))
            if not result.ok:
                msg = (
                    f"setup command `{command}` exited with {result.exit_code} in the merge "
                    f"worktree {self.worktree} (log: {log_path}): {result.tail}"
                )
                raise LimitlessError(msg)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("done\n")

    def _forget_merges(self, reason: str) -> None:
        for task_id, row in self.rows.items():
            if row.merge_status is not MergeStatus.UNMERGED or row.merge_order is not None:
                self._mark(task_id, MergeStatus.UNMERGED, reason, merge_order=None)

    def _recover_interrupted(self) -> None:
        """Undo a merge a crash left half done (its row still says `merging`)."""
        for task_id, row in self.rows.items():
            if row.merge_status is not MergeStatus.MERGING:
                continue
            prev = row.merge_reason.removeprefix(_MERGING_PREFIX).strip()
            if is_object_id(prev) and refs.rev_parse(self.repo, prev) == prev:
                head = head_sha(self.worktree)
                if head != prev:
                    refs.keep(
                        self.repo,
                        f"refs/limitless/{self.run_id}/{MERGED_KEY}/interrupted-{task_id}",
                        head,
                    )
                undo(self.worktree, self.branch, prev)
                self.out(f"undid the interrupted merge of {task_id}")
            self._mark(task_id, MergeStatus.UNMERGED, "merge interrupted; merged again")

    def _redo_early(self) -> None:
        """Start on base's new tip at once when base moved before the merges were done.

        Landing would find the move anyway and redo every merge and gate; when
        base already moved (and the merged branch does not hold its new tip, as
        after this run's own landing), the phase starts over on the new tip.
        """
        if self.policy.land != "auto":
            return
        tip = refs.rev_parse(self.repo, f"refs/heads/{self.run_row.base}")
        if tip is None or tip == self.run_row.base_sha:
            return
        if refs.is_ancestor(self.repo, tip, head_sha(self.worktree)):
            return
        self._redo(tip)

    def _redo(self, new_tip: str) -> None:
        """Rebuild the merged branch on base's new tip; every task is merged again."""
        old_base = self.run_row.base_sha
        head = head_sha(self.worktree)
        number = 1
        while refs.rev_parse(self.repo, self._redo_ref(number)) is not None:
            number += 1
        kept = self._redo_ref(number) if head != old_base else ""
        if head != old_base:
            refs.keep(self.repo, kept, head)
        # The store first, then the branch: a crash in between leaves rows that
        # say "unmerged" on the old result, which the next call merges again and
        # redoes; the other order would leave rows saying "merged" on a branch
        # that no longer holds those merges.
        self.store.update_run(self.run_id, base_sha=new_tip)
        self.run_row = self.store.get_run(self.run_id)
        self._forget_merges(f"{self.run_row.base} moved; merged again on {new_tip[:12]}")
        undo(self.worktree, self.branch, new_tip)
        self.store.add_event(
            self.run_id,
            "merge_redone",
            old_base=old_base,
            new_base=new_tip,
            kept=kept,
        )
        self.out(
            f"{self.run_row.base} moved to {new_tip[:12]} during the run: merging on the new "
            f"tip" + (f" (previous result kept at {kept})" if head != old_base else "")
        )
        self.merged.clear()
        self.already.clear()
        self.conflicts.clear()
        self.gate_failed.clear()
        self.skipped.clear()
        self.next_order = 1

    def _redo_ref(self, number: int) -> str:
        return f"refs/limitless/{self.run_id}/{MERGED_KEY}/redo-{number}"

    # -- task by task ------------------------------------------------------------

    def _mark(self, task_id: str, status: MergeStatus, reason: str, **fields: object) -> None:
        self.store.update_task(
            self.run_id, task_id, merge_status=status, merge_reason=reason, **fields
        )
        self.rows[task_id] = self.store.get_task(self.run_id, task_id)

    def _merge_all(self) -> None:
        state: dict[str, str] = {}
        for task_id in merge_order(self.dag, self.rows):
            row = self.rows[task_id]
            if row.merge_status is MergeStatus.MERGED and self._still_merged(task_id):
                state[task_id] = "merged"
                self.already.append(task_id)
                continue
            if row.status is not TaskStatus.DONE:
                state[task_id] = str(row.status)
                self._skip(task_id, f"task {row.status}, not done")
                continue
            missing = [dep for dep in self.dag.dependencies(task_id) if state.get(dep) != "merged"]
            if missing:
                dep = missing[0]
                state[task_id] = "skipped"
                self._skip(task_id, f"dependency {dep} not merged ({state.get(dep, 'unmerged')})")
                continue
            state[task_id] = self._merge_task(task_id)

    def _still_merged(self, task_id: str) -> bool:
        """Whether a task recorded as merged is still on the merged branch.

        Told by ancestry, so only for the `merge` strategy (squash and rebase
        make new commits): a merged branch someone reset by hand gets the task
        merged again instead of landing without it.
        """
        if self.policy.strategy != "merge":
            return True
        source = self._source(task_id)
        if source is None or refs.is_ancestor(self.repo, source, head_sha(self.worktree)):
            return True
        self._mark(
            task_id,
            MergeStatus.UNMERGED,
            "its merge is no longer on the merged branch; merged again",
            merge_order=None,
        )
        self.out(f"{task_id} is no longer on {self.branch}: merging it again")
        return False

    def _skip(self, task_id: str, reason: str) -> None:
        self._mark(task_id, MergeStatus.SKIPPED, reason, merge_order=None, conflict_files=[])
        self.skipped.append(task_id)
        self.out(f"skipped {task_id}: {reason}")

    def _leave_rest_unmerged(self, stopped_at: str) -> None:
        for task_id, row in self.rows.items():
            if task_id == stopped_at or row.merge_status is MergeStatus.MERGED:
                continue
            if task_id in self.skipped or task_id in self.conflicts or task_id in self.gate_failed:
                continue
            self._mark(task_id, MergeStatus.UNMERGED, f"merge stopped at {stopped_at}")

    def _source(self, task_id: str) -> str | None:
        """The commit to merge for a task (see "Epics" in the module notes)."""
        row = self.rows[task_id]
        tip = refs.rev_parse(self.repo, f"refs/heads/{row.branch}")
        members = [other for other, r in self.rows.items() if r.branch == row.branch]
        if len(members) > 1 and row.head_sha:
            last = max(members, key=lambda other: self.dag.ids.index(other))
            recorded = refs.rev_parse(self.repo, row.head_sha)
            if (
                task_id != last
                and recorded is not None
                and (tip is None or refs.is_ancestor(self.repo, recorded, tip))
            ):
                return recorded
        if tip is None and row.head_sha:
            return refs.rev_parse(self.repo, row.head_sha)
        return tip

    def _start(self, task_id: str, source: str) -> str | None:
        """Where the task's own work began (its recorded start), if that is in `source`."""
        start = self.rows[task_id].start_sha
        if not start or not is_object_id(start):
            return None
        if refs.rev_parse(self.repo, start) != start:
            return None
        return start if refs.is_ancestor(self.repo, start, source) else None

    def _message(self, task_id: str) -> str:
        if self.policy.strategy == "squash":
            prompt = self.plan.task(task_id).prompt if task_id in self._plan_ids() else ""
            first = next((line.strip() for line in prompt.splitlines() if line.strip()), "")
            title = f"{task_id}: {first}" if first else task_id
            if len(title) > 100:
                title = title[:99] + "…"
            branch = self.rows[task_id].branch
            return f"{title}\n\nSquashed from {branch} (limitless run {self.run_id})."
        return f"limitless: merge {task_id} ({self.run_id})"

    def _plan_ids(self) -> set[str]:
        return {task.id for task in self.plan.tasks}

    def _merge_task(self, task_id: str) -> str:
        """Merge one task; returns its merge status as a word for its dependants."""
        row = self.rows[task_id]
        source = self._source(task_id)
        if source is None:
            self._skip(task_id, f"branch {row.branch} is gone")
            return "skipped"
        prev = head_sha(self.worktree)
        if refs.is_ancestor(self.repo, source, prev):
            nothing = refs.is_ancestor(self.repo, source, self.run_row.base_sha)
            why = "no commits beyond base" if nothing else "already on the merged branch"
            self._record_merged(task_id, why, new=False)
            return "merged"
        self._check_history(task_id, source, prev)
        self._mark(task_id, MergeStatus.MERGING, f"{_MERGING_PREFIX}{prev}")
        crashpoint("merge")
        try:
            step = merge_step(
                self.worktree,
                self.branch,
                source,
                self.policy.strategy,
                self._message(task_id),
                start=self._start(task_id, source) if self.policy.strategy == "squash" else None,
                hooks=self.hooks,
            )
            self._sync_submodules()
        except gitrun.CommitRejected as exc:
            undo(self.worktree, self.branch, prev)
            self._sync_submodules()
            self._mark(task_id, MergeStatus.UNMERGED, f"merge rejected: {exc}")
            self.store.add_event(
                self.run_id, "commit_rejected", task_id, hook=exc.hook, output=exc.output
            )
            self.out(f"the {exc.hook} hook rejected the merge of {task_id}; its merge was undone")
            raise _Stop(task_id, self._rejected_message(task_id, exc)) from exc
        except LimitlessError as exc:
            undo(self.worktree, self.branch, prev)
            self._mark(task_id, MergeStatus.UNMERGED, f"merge failed: {exc}")
            raise _Stop(task_id, self._failure_message(task_id, str(exc))) from exc
        if step.kind is StepKind.CONFLICT:
            return self._on_conflict(task_id, source, prev, step.files)
        if step.kind is StepKind.EMPTY:
            self._record_merged(
                task_id, "nothing left to bring: its changes were already there", new=True
            )
            return "merged"
        crashpoint("gate")
        gate = self._gate(task_id)
        if gate is not None and not gate.ok:
            undo(self.worktree, self.branch, prev)
            self._sync_submodules()
            reason = f"gate failed (exit {gate.exit_code}, log {gate.log_path}):\n{gate.tail}"
            self._mark(task_id, MergeStatus.GATE_FAILED, reason, merge_order=None)
            self.gate_failed.append(task_id)
            self.store.add_event(
                self.run_id,
                "gate_failed",
                task_id,
                exit_code=gate.exit_code,
                log=str(gate.log_path),
            )
            self.out(f"gate failed for {task_id} (exit {gate.exit_code}); its merge was undone")
            return "gate_failed"
        self._record_merged(task_id, "", new=True)
        return "merged"

    def _record_merged(self, task_id: str, reason: str, *, new: bool) -> None:
        sha = head_sha(self.worktree)
        self._mark(
            task_id,
            MergeStatus.MERGED,
            reason,
            merge_order=self.next_order,
            conflict_files=[],
        )
        self.next_order += 1
        if new:
            self.merged.append(task_id)
            self.store.add_event(self.run_id, "task_merged", task_id, sha=sha)
            self.out(f"merged {task_id} ({self.policy.strategy}) at {sha[:12]}")
        else:
            self.already.append(task_id)
            self.out(f"{task_id} was already merged")

    def _gate_env(self, task_id: str) -> dict[str, str]:
        return {
            "LIMITLESS_RUN": self.run_id,
            "LIMITLESS_TASK": task_id,
            "LIMITLESS_MERGE_WORKTREE": str(self.worktree),
        }

    def _gate(self, task_id: str) -> GateResult | None:
        if not self.policy.gate:
            return None
        log_path = self.store.run_dir(self.run_id) / "gate" / f"{task_id}.log"
        return run_gate(self.worktree, self.policy.gate, log_path, self._gate_env(task_id))

    # -- conflicts ---------------------------------------------------------------

    def _on_conflict(self, task_id: str, source: str, prev: str, files: tuple[str, ...]) -> str:
        policy = self.policy.on_conflict
        self.store.add_event(
            self.run_id, "merge_conflict", task_id, files=list(files), on_conflict=policy
        )
        self.out(f"conflict merging {task_id}: {', '.join(files)}")
        if policy == "agent":
            if self.run_in_slot is None:
                self.run_in_slot = self._slot_runner()
            if self.run_in_slot is None:
                undo(self.worktree, self.branch, prev)
                why = (
                    f"no slot to run a resolver in: the tmux session of run {self.run_id} "
                    "is gone (run `limitless merge` in a terminal to resolve there)"
                )
                self._stop_on_conflict(task_id, files, why)
            accepted, why = self._resolve(task_id, source, prev, files, self.run_in_slot)
            if accepted:
                return "merged"
            head = head_sha(self.worktree)
            if head != prev and not refs.is_ancestor(self.repo, head, prev):
                refs.keep(
                    self.repo, f"refs/limitless/{self.run_id}/{MERGED_KEY}/resolve-{task_id}", head
                )
            undo(self.worktree, self.branch, prev)
            self.out(f"resolution of {task_id} refused: {why}")
            self._stop_on_conflict(task_id, files, why)
        undo(self.worktree, self.branch, prev)
        if policy == "skip":
            self._mark(
                task_id,
                MergeStatus.CONFLICT,
                f"conflicted in {', '.join(files)}; skipped (on_conflict: skip)",
                conflict_files=list(files),
                merge_order=None,
            )
            self.conflicts.append(task_id)
            return "conflict"
        self._stop_on_conflict(task_id, files, "")

    def _slot_runner(self) -> RunInSlot | None:
        """A slot pane of the run's tmux session to run resolvers in, if it is alive."""
        from limitless.merge.resolver import foreground_runner, slot_runner

        env = {"LIMITLESS_RUN": self.run_id, "LIMITLESS_MERGE_WORKTREE": str(self.worktree)}
        limit = self.policy.resolver_timeout_s
        runner = slot_runner(self.store, self.run_row, env=env, timeout_s=limit)
        if runner is None and self.foreground:
            self.out("the run's tmux session is gone: the resolver runs in this terminal")
            return foreground_runner(env, timeout_s=limit)
        return runner

    def _stop_on_conflict(self, task_id: str, files: Sequence[str], why: str) -> NoReturn:
        row = self.rows[task_id]
        reason = f"conflicted in {', '.join(files)}" + (f"; {why}" if why else "")
        self._mark(
            task_id, MergeStatus.CONFLICT, reason, conflict_files=list(files), merge_order=None
        )
        self.conflicts.append(task_id)
        message = (
            f"merge stopped at task {task_id}: its branch {row.branch} conflicts with the "
            f"merged work in {', '.join(files)}" + (f" ({why})" if why else "") + ". "
            f"Nothing was landed: {self.run_row.base}, your checkout and every task branch are "
            f"unchanged. To continue: cd {self.worktree} && git merge {row.branch}, fix the "
            f"conflicts, git add them and git commit; then run `limitless merge {self.run_id}`."
        )
        raise _Stop(task_id, message)

    def _check_history(self, task_id: str, source: str, prev: str) -> None:
        """A shallow clone may lack the history two commits share: stop, asking for it."""
        if _git(self.repo, "merge-base", prev, source, check=False).returncode == 0:
            return
        shallow = _out(self.repo, "rev-parse", "--is-shallow-repository") == "true"
        if not shallow:
            return  # unrelated histories: git's own words say it when merging
        row = self.rows[task_id]
        message = (
            f"merge stopped at task {task_id}: this repository is a shallow clone and lacks "
            f"the history {row.branch} shares with {self.branch} (based on "
            f"{self.run_row.base} at {self.run_row.base_sha[:12]}), so git cannot merge them. "
            f"Nothing was landed. Fetch the missing history with `git fetch --unshallow` in "
            f"{self.repo}, then run `limitless merge {self.run_id}` again."
        )
        self._mark(task_id, MergeStatus.UNMERGED, "shallow clone: history missing")
        raise _Stop(task_id, message)

    def _rejected_message(self, task_id: str, exc: gitrun.CommitRejected) -> str:
        said = f":\n{exc.output}\n" if exc.output else " (it printed nothing). "
        return (
            f"merge stopped at task {task_id}: the repository's {exc.hook} hook rejected "
            f"its merge into {self.branch}{said}"
            f"Nothing was landed; the merge worktree {self.worktree} is back where it was "
            f"and the task branch {self.rows[task_id].branch} is kept. Change what the hook "
            f"refuses (or set `commit_hooks: skip` in the plan to leave hooks out), then run "
            f"`limitless merge {self.run_id}` again."
        )

    def _sync_submodules(self) -> None:
        """The merge worktree's submodules at the commits its HEAD records (for the gate)."""
        submodules.sync(self.worktree, self.repo)

    def _failure_message(self, task_id: str, reason: str) -> str:
        return (
            f"merge stopped at task {task_id}: {reason}. Nothing was landed; the merge "
            f"worktree {self.worktree} is back where it was. Fix the cause and run "
            f"`limitless merge {self.run_id}` again."
        )

    def _profile(self, task_id: str) -> tuple[AgentProfile, str | None]:
        resolver = self.policy.resolver
        if resolver:
            try:
                return self.plan.agents[resolver], None
            except KeyError:
                msg = f"merge.resolver names agent profile {resolver!r}, which the plan lacks"
                raise UsageError(msg) from None
        task = self.plan.task(task_id)
        return self.plan.profile(task), task.model

    def _resolve(
        self,
        task_id: str,
        source: str,
        prev: str,
        files: tuple[str, ...],
        run_in_slot: RunInSlot,
    ) -> tuple[bool, str]:
        """Let a resolver agent finish the conflicted merge; (accepted, why not)."""
        try:
            profile, model = self._profile(task_id)
        except UsageError as exc:
            return False, str(exc)
        rounds = 0
        limit = 1 + int(_out(self.repo, "rev-list", "--count", f"{prev}..{source}") or 0)
        while True:
            rounds += 1
            prompt = self._resolver_prompt(task_id, files)
            prompt_file = (
                self.store.run_dir(self.run_id) / "merge" / f"resolve-{task_id}-{rounds}.md"
            )
            prompt_file.parent.mkdir(parents=True, exist_ok=True)
            prompt_file.write_text(prompt, encoding="utf-8")
            argv = render_argv(
                profile,
                AgentContext(
                    prompt=prompt,
                    prompt_file=str(prompt_file),
                    task=task_id,
                    worktree=str(self.worktree),
                    branch=self.branch,
                    model=model,
                ),
            )
            self.store.add_event(
                self.run_id, "resolver_started", task_id, profile=profile.name, files=list(files)
            )
            if profile.env:
                assignments = [f"{name}={value}" for name, value in profile.env.items()]
                argv = ["env", "--", *assignments, *argv]
            self.out(f"resolver {profile.name} started for {task_id}")
            code = run_in_slot(argv, self.worktree, f"resolve {task_id}")
            self.store.add_event(self.run_id, "resolver_done", task_id, exit_code=code)
            if code == RESOLVER_TIMED_OUT:
                after = duration(self.policy.resolver_timeout_s)
                return False, f"the resolver was stopped after {after} (merge.resolver_timeout)"
            if code != 0:
                return False, f"the resolver exited with {code}"
            left = has_markers(self.worktree, files)
            if left:
                return False, f"the resolver left conflict markers in {', '.join(left)}"
            verdict, files = self._conclude(task_id, files)
            if verdict == "again":
                if rounds >= limit:
                    return False, "the rebase kept conflicting"
                continue
            if verdict:
                return False, verdict
            break
        why = self._check_resolution(source, prev)
        if why:
            return False, why
        gate = self._gate(task_id)
        if gate is not None and not gate.ok:
            self.store.add_event(
                self.run_id,
                "gate_failed",
                task_id,
                exit_code=gate.exit_code,
                log=str(gate.log_path),
            )
            return (
                False,
                f"the resolved merge failed the gate (exit {gate.exit_code}, log {gate.log_path})",
            )
        self._record_merged(
            task_id, f"conflict in {', '.join(files)} resolved by {profile.name}", new=True
        )
        return True, ""

    def _conclude(self, task_id: str, files: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
        """Commit what a resolver left resolved: "" done, "again" next conflict, else why not."""
        op = operation_in_progress(self.worktree)
        unmerged = conflicted_files(self.worktree)
        if unmerged:
            left = has_markers(self.worktree, unmerged)
            if left:
                return f"conflict markers left in {', '.join(left)}", files
        if op == "rebase":
            if tracked_changes(self.worktree) or unmerged:
                _git(self.worktree, "add", "-A")
            result = gitrun.commit(self.worktree, "rebase", "--continue", hooks=self.hooks)
            if result.ok:
                return "", files
            again = conflicted_files(self.worktree)
            if again and operation_in_progress(self.worktree) == "rebase":
                return "again", again
            return f"git rebase --continue failed: {result.output}", files
        if op == "merge":
            _git(self.worktree, "add", "-A")
            done = gitrun.commit(self.worktree, "commit", "-q", "--no-edit", hooks=self.hooks)
            if not done.ok:
                return f"the resolved merge could not be committed: {done.output}", files
            return "", files
        if op not in (None, "cherry-pick"):
            return f"the resolver left a {op} in progress", files
        if tracked_changes(self.worktree) or unmerged:
            _git(self.worktree, "add", "-A")
            try:
                _commit(self.worktree, self._message(task_id), self.hooks)
            except GitError as exc:
                return f"the resolved change could not be committed: {exc}", files
        return "", files

    def _check_resolution(self, source: str, prev: str) -> str:
        """Why the resolved result is not acceptable, or ""."""
        if self.policy.strategy == "rebase" and head_ref(self.worktree) is None:
            head = head_sha(self.worktree)
            if head == prev or not refs.is_ancestor(self.repo, prev, head):
                return "the result does not build on the merged branch"
            _finish_rebase(self.worktree, self.branch, prev)
        if head_ref(self.worktree) != f"refs/heads/{self.branch}":
            return f"the resolver left the merge worktree off {self.branch}"
        head = head_sha(self.worktree)
        if head == prev or not refs.is_ancestor(self.repo, prev, head):
            return "the result does not build on the merged branch"
        if self.policy.strategy == "merge" and not refs.is_ancestor(self.repo, source, head):
            return "the result is not a merge of the task's branch"
        if conflicted_files(self.worktree) or tracked_changes(self.worktree):
            return "the result is not fully committed"
        changed = _out(self.repo, "diff", "--name-only", "-z", prev, head).split("\0")
        left = has_markers(self.worktree, [name for name in changed if name])
        if left:
            return f"conflict markers committed in {', '.join(left)}"
        return ""

    def _resolver_prompt(self, task_id: str, files: Sequence[str]) -> str:
        row = self.rows[task_id]
        title = self._message(task_id).splitlines()[0]
        finish = {
            "merge": "then `git add` them and `git commit --no-edit`",
            "squash": f'then `git add` them and `git commit -m "{title}"`',
            "rebase": "then `git add` them and `git rebase --continue` "
            "(if the next commit conflicts too, resolve that one the same way)",
        }[self.policy.strategy]
        lines = [
            f"Resolve the git conflict in the worktree {self.worktree}.",
            "",
            f"limitless is bringing task {task_id!r} (branch {row.branch}) into {self.branch} "
            f"({self.policy.strategy} strategy), on top of work already merged there.",
            "Conflicted files:",
            *[f"- {name}" for name in files],
            "",
            "Edit each file so it keeps the intent of both sides and no conflict markers "
            f"(<<<<<<<, =======, >>>>>>>) remain; {finish}. Do not abort, reset or switch "
            "branches.",
            "",
            f"## Task {task_id} asked for",
            self._prompt_of(task_id),
        ]
        for other in self._touching(files, exclude=task_id):
            lines += ["", f"## Already merged task {other} asked for", self._prompt_of(other)]
        return "\n".join(lines).rstrip() + "\n"

    def _prompt_of(self, task_id: str) -> str:
        if task_id not in self._plan_ids():
            return "(not in the plan)"
        return self.plan.task(task_id).prompt.strip() or "(no prompt)"

    def _touching(self, files: Sequence[str], *, exclude: str) -> list[str]:
        """Merged tasks whose changes touch any of `files`."""
        wanted = set(files)
        found: list[str] = []
        for task_id, row in self.rows.items():
            if task_id == exclude or row.merge_status is not MergeStatus.MERGED:
                continue
            source = self._source(task_id)
            if source is None:
                continue
            out = _git(
                self.repo,
                "diff",
                "--name-only",
                "-z",
                f"{self.run_row.base_sha}...{source}",
                check=False,
            ).stdout
            if wanted & {name for name in out.split("\0") if name}:
                found.append(task_id)
        return found


# ----------------------------------------------------------------------------- prediction


class _Cache:
    """Results of git questions about fixed commit ids: they never change."""

    def __init__(self, limit: int = 50_000) -> None:
        self.limit = limit
        self.lock = threading.Lock()
        self.data: dict[tuple[str, ...], object] = {}

    def get(self, key: tuple[str, ...]) -> object | None:
        with self.lock:
            return self.data.get(key)

    def put(self, key: tuple[str, ...], value: object) -> None:
        with self.lock:
            if len(self.data) >= self.limit:
                self.data.clear()
            self.data[key] = value


_CACHE = _Cache()


def merge_tree_conflicts(repo_root: Path, a: str, b: str) -> tuple[str, ...]:
    """The files a merge of `a` and `b` would conflict in; () when it is clean.

    GitError for an unknown ref: git exits 1 for it as for a conflict, so a
    conflict is told by stdout starting with a tree id.
    """
    args = ("merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", a, b)
    result = _git(Path(repo_root), *args, check=False)
    fields = result.stdout.split("\0")
    if result.returncode in (0, 1) and is_object_id(fields[0]):
        if result.returncode == 0:
            return ()
        return tuple(dict.fromkeys(name for name in fields[1:] if name))
    raise _failure(Path(repo_root), args, result.returncode, result.stderr or result.stdout)


def _cached_conflicts(repo: str, a: str, b: str) -> tuple[str, ...]:
    key = ("tree", repo, *sorted((a, b)))
    hit = _CACHE.get(key)
    if isinstance(hit, tuple):
        return hit
    files = merge_tree_conflicts(Path(repo), a, b)
    _CACHE.put(key, files)
    return files


def _cached_ancestor(repo: str, a: str, b: str) -> bool:
    key = ("ancestor", repo, a, b)
    hit = _CACHE.get(key)
    if isinstance(hit, bool):
        return hit
    value = refs.is_ancestor(Path(repo), a, b)
    _CACHE.put(key, value)
    return value


def predict_conflicts(
    repo_root: Path, base_ref: str, branches: Mapping[str, str]
) -> list[PredictedConflict]:
    """Conflicts git predicts between task branches, and between each and base.

    `branches` maps task ids to refs; refs that name no commit are left out.
    Pairs are checked only among branches with commits beyond base; a branch is
    checked against base only when base has commits the branch lacks.
    """
    repo = str(Path(repo_root))
    base = refs.rev_parse(Path(repo), base_ref)
    if base is None:
        msg = f"base {base_ref!r} names no commit in {repo}"
        raise GitError(msg)
    tips: dict[str, str] = {}
    for task_id, ref in branches.items():
        tip = refs.rev_parse(Path(repo), ref)
        if tip is None:
            log.debug("branch skipped", extra={"task": task_id, "ref": ref})
            continue
        tips[task_id] = tip
    ahead = {task_id: tip for task_id, tip in tips.items() if not _cached_ancestor(repo, tip, base)}
    jobs: list[tuple[str, str, str, str]] = []
    for task_id, tip in ahead.items():
        if not _cached_ancestor(repo, base, tip):
            jobs.append((task_id, "", base, tip))
    names = list(ahead)
    for index, first in enumerate(names):
        for second in names[index + 1 :]:
            if ahead[first] != ahead[second]:
                jobs.append((first, second, ahead[first], ahead[second]))
    if len(jobs) > 4:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
            results = list(pool.map(lambda job: _cached_conflicts(repo, job[2], job[3]), jobs))
    else:
        results = [_cached_conflicts(repo, job[2], job[3]) for job in jobs]
    return [
        PredictedConflict(task_id, other, files)
        for (task_id, other, _a, _b), files in zip(jobs, results, strict=True)
        if files
    ]


def update_predictions(store: Store, run_id: str) -> int:
    """Predict the run's conflicts and store them (written only when they changed).

    Only branches of running (or waiting) and done tasks take part: a failed,
    killed or blocked task's branch is not going to be merged. Epic members
    share a branch: its predictions are filed under the member that runs now,
    or else the one that started last. Returns how many there are.
    """
    run = store.get_run(run_id)
    rows = [row for row in store.get_tasks(run_id) if _may_merge(row)]
    by_branch: dict[str, TaskRow] = {}
    for row in rows:
        held = by_branch.get(row.branch)
        if held is None or _representative_key(row) > _representative_key(held):
            by_branch[row.branch] = row
    repo = Path(run.repo_root)
    base_ref = f"refs/heads/{run.base}"
    if refs.rev_parse(repo, base_ref) is None:
        base_ref = run.base_sha
    found = predict_conflicts(
        repo, base_ref, {row.id: f"refs/heads/{b}" for b, row in by_branch.items()}
    )
    wanted = {(p.task_id, p.other, p.files) for p in found}
    stored = {(p.task_id, p.other, tuple(p.files)) for p in store.predictions(run_id)}
    if wanted != stored:
        now = time.time()
        store.set_predictions(
            run_id, [Prediction(run_id, p.task_id, p.other, p.files, now) for p in found]
        )
        log.debug("predictions stored", extra={"run": run_id, "count": len(found)})
    return len(found)


def _may_merge(row: TaskRow) -> bool:
    return row.status.active or row.status is TaskStatus.DONE


def _representative_key(row: TaskRow) -> tuple[int, float, int]:
    return (1 if row.status.active else 0, row.started_at or 0.0, -row.position)
