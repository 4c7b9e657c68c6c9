"""The merge phase: bring a run's done tasks home, one by one, then land the result (DESIGN §6).

Works in the merge worktree `<worktree_root>/<run>/_merge` on branch
`limitless/<run>/merged`, started from the run's base sha; never in the user's
checkout. Done tasks are merged one by one in dependency order (ties: the order
they finished in) with the plan's strategy (`steps`). After each merge the gate
(`merge.gate`) decides; a failing gate resets the merged branch to the previous
result. A task whose dependency was not merged is skipped: its branch carries
that dependency's work. After each merge the worktree's submodules are checked
out at the commits it records, so the gate sees them. A repository hook that
refuses a commit stops the phase at that task: its merge is undone, nothing
lands, and the message names the hook and what it printed.

The rooms of the phase: this module orchestrates; `steps` is one merge step
(merge, gate, undo); `ledger` records each task's merge status; `resolution`
lets a resolver agent finish a conflict; `landing` moves base forward;
`predict` foresees conflicts while the run goes on; `resolver` runs a resolver
in a slot pane.

Conflicts (`merge.on_conflict`)
    `stop` aborts the merge, records the files and stops; the message says how to
    continue (a manual `git merge` in the merge worktree, whatever the strategy,
    because ancestry is how a resolution is recognised). `skip` records and goes
    on. `agent` leaves the conflict to a resolver agent (`resolution`); with no
    live session the phase stops as with `stop`.

Idempotence
    `run_merge_phase` can be called again at any time (`limitless merge`): tasks
    recorded as merged on an existing merged branch, and tasks whose commit is
    already an ancestor of it (a conflict resolved by hand with `git merge`), are
    not merged again. A merge interrupted by a crash (row left `merging`) is
    undone first; its partial result is kept under `refs/limitless/<run>/merged/`.

Base moved (`merge.land: auto`)
    If base moved on (`landing` finds it), the merged branch (kept under
    `refs/limitless/<run>/merged/redo-<n>`) is rebuilt from the new tip,
    `Run.base_sha` becomes that tip, and every task is merged again; when base
    had already moved before the phase began, it starts on the new tip at once.
    The store is told before the branch is reset, so a crash in between leaves
    rows that say "unmerged", never "merged" on a branch without those merges.

About 700 lines: what is left is `_Phase`'s orchestration with its outcome messages
beside the decisions that produce them; steps, landing, ordering, the ledger, the
resolver and the merge worktree each have their own module.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from limitless.crashpoints import crashpoint
from limitless.errors import LimitlessError, UsageError
from limitless.git import refs, repochecks, submodules, worktrees
from limitless.git import runner as gitrun
from limitless.git.runner import is_object_id
from limitless.git.status import head_sha
from limitless.merge.landing import Landing, LandingKind, checkout_of, land
from limitless.merge.ledger import Ledger
from limitless.merge.merge_worktree import MERGED_KEY, MergeWorktree
from limitless.merge.order import merge_order, message_of, policy_of, source_of, start_of
from limitless.merge.resolution import Resolution, RunInSlot, find_runner
from limitless.merge.steps import GateResult, StepKind, merge_step, run_gate, undo
from limitless.plan.stored import dag_of, plan_of
from limitless.states import MergeStatus, RunStatus, TaskStatus
from limitless.store import Run, Store

log = logging.getLogger(__name__)

MAX_REDOS = 3
"""How many times the merge is redone on a base that keeps moving before giving up."""

_MERGING_PREFIX = "merging onto "


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
        with store.transaction():
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
        self.plan = plan_of(run)
        self.policy = policy_of(self.plan, run)
        self.dag = dag_of(run)
        self.site = MergeWorktree.of(run)
        self.repo = self.site.repo
        self.branch = self.site.branch
        self.worktree = self.site.path
        self.ledger = Ledger(store, run.id, out)
        self.foreground = False
        self.hooks = self.plan.commit_hooks == "run"

    # -- before anything ---------------------------------------------------------

    def check_ready(self) -> None:
        busy = [row.id for row in self.ledger.rows.values() if not row.status.terminal]
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
        if not any(row.status is TaskStatus.DONE for row in self.ledger.rows.values()):
            # no merge worktree, no setup in it, no gate: there is nothing to bring home
            for task_id, row in self.ledger.rows.items():
                self.ledger.skip(task_id, f"task {row.status}, not done")
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
                self.ledger.leave_rest_unmerged(stop.task_id)
                return self._outcome(ok=False, landed=False, message=stop.message)
            merged_sha = head_sha(self.worktree)
            self.store.update_run(self.run_id, merged_sha=merged_sha)
            summary = self.ledger.summary()
            if self.policy.land == "manual":
                message = (
                    f"{summary}; the result is on {self.branch} (land: manual). "
                    f"{self._how_to_land()}"
                )
                return self._outcome(ok=self.ledger.clean(), landed=False, message=message)
            if not self.ledger.merged and not self.ledger.already:
                message = f"{summary}; nothing to land, {self.run_row.base} left as it was"
                return self._outcome(ok=self.ledger.clean(), landed=False, message=message)
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
            with self.store.transaction():
                self.store.update_run(self.run_id, landed=True, merged_sha=merged_sha)
                self.store.add_event(
                    self.run_id, "landed", base=base, sha=merged_sha, how=landing.detail
                )
            message = f"{summary}; landed on {base} at {merged_sha[:12]} ({landing.detail})"
            moved = submodules.moved(self.repo, self.run_row.base_sha, merged_sha)
            if moved and landing.checkout is not None:
                message += (
                    f". Submodule pointers moved ({', '.join(moved)}): `git submodule update` "
                    f"in {landing.checkout} checks them out"
                )
            return self._outcome(ok=self.ledger.clean(), landed=True, message=message)
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
        checkout = checkout_of(self.repo, self.run_row.base)
        if checkout is not None:
            return f"Land it with `git merge --ff-only {self.branch}` in {checkout}."
        return f"Land it with `git fetch . {self.branch}:{self.run_row.base}` in {self.repo}."

    def _outcome(self, *, ok: bool, landed: bool, message: str) -> MergeOutcome:
        sha = refs.rev_parse(self.repo, f"refs/heads/{self.branch}")
        return MergeOutcome(
            ok=ok,
            merged=list(self.ledger.merged),
            conflicts=list(self.ledger.conflicts),
            gate_failed=list(self.ledger.gate_failed),
            skipped=list(self.ledger.skipped),
            landed=landed,
            merged_sha=sha,
            message=message,
            already_merged=list(self.ledger.already),
        )

    # -- the merge worktree ------------------------------------------------------

    def _prepare(self) -> str | None:
        """Create or reuse the merge worktree; a refusal message when it is not usable."""
        self.check_out()
        self._recover_interrupted()
        busy = self.site.busy()
        if busy:
            return busy
        kept = self.site.back_on_branch()
        if kept:
            self.out(f"merge worktree was on a detached HEAD; kept it at {kept}")
        self.site.sync_submodules()
        dirty = self.site.dirty()
        if dirty:
            return dirty
        self._run_setup()
        self.ledger.number_from_rows()
        return None

    def check_out(self) -> bool:
        """Create the merge worktree unless it is there; whether it was created.

        A merged branch made afresh holds no merge, whatever the rows said.
        """
        existed = refs.branch_exists(self.repo, self.branch)
        created = not self.site.exists()
        if not created:
            worktrees.fill_checkout(self.worktree)
        else:
            self._setup_marker().unlink(missing_ok=True)
            self.site.create(
                self.run_row.base_sha,
                copy=self.plan.copy,
                link=self.plan.link,
                lock_dir=self.store.state_dir,
            )
        if not existed:
            self.ledger.forget_merges("the merged branch was created afresh")
        return created

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

    def _recover_interrupted(self) -> None:
        """Undo a merge a crash left half done (its row still says `merging`)."""
        for task_id, row in self.ledger.rows.items():
            if row.merge_status is not MergeStatus.MERGING:
                continue
            prev = row.merge_reason.removeprefix(_MERGING_PREFIX).strip()
            if is_object_id(prev) and refs.rev_parse(self.repo, prev) == prev:
                head = head_sha(self.worktree)
                if head != prev:
                    refs.keep(self.repo, self.site.kept_ref(f"interrupted-{task_id}"), head)
                undo(self.worktree, self.branch, prev)
                self.out(f"undid the interrupted merge of {task_id}")
            self.ledger.mark(task_id, MergeStatus.UNMERGED, "merge interrupted; merged again")

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
        with self.store.transaction():
            self.store.update_run(self.run_id, base_sha=new_tip)
            self.run_row = self.store.get_run(self.run_id)
        self.ledger.forget_merges(f"{self.run_row.base} moved; merged again on {new_tip[:12]}")
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
        self.ledger.start_over()

    def _redo_ref(self, number: int) -> str:
        return self.site.kept_ref(f"redo-{number}")

    # -- task by task ------------------------------------------------------------

    def _merge_all(self) -> None:
        state: dict[str, str] = {}
        for task_id in merge_order(self.dag, self.ledger.rows):
            row = self.ledger.rows[task_id]
            if row.merge_status is MergeStatus.MERGED and self._still_merged(task_id):
                state[task_id] = "merged"
                self.ledger.already.append(task_id)
                continue
            if row.status is not TaskStatus.DONE:
                state[task_id] = str(row.status)
                self.ledger.skip(task_id, f"task {row.status}, not done")
                continue
            missing = [dep for dep in self.dag.dependencies(task_id) if state.get(dep) != "merged"]
            if missing:
                dep = missing[0]
                state[task_id] = "skipped"
                self.ledger.skip(
                    task_id, f"dependency {dep} not merged ({state.get(dep, 'unmerged')})"
                )
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
        self.ledger.mark(
            task_id,
            MergeStatus.UNMERGED,
            "its merge is no longer on the merged branch; merged again",
            merge_order=None,
        )
        self.out(f"{task_id} is no longer on {self.branch}: merging it again")
        return False

    def _source(self, task_id: str) -> str | None:
        return source_of(self.repo, self.dag, self.ledger.rows, task_id)

    def _message(self, task_id: str) -> str:
        return message_of(self.plan, self.policy.strategy, self.ledger.rows[task_id], self.run_id)

    def _merge_task(self, task_id: str) -> str:
        """Merge one task; returns its merge status as a word for its dependants."""
        row = self.ledger.rows[task_id]
        source = self._source(task_id)
        if source is None:
            self.ledger.skip(task_id, f"branch {row.branch} is gone")
            return "skipped"
        prev = head_sha(self.worktree)
        if refs.is_ancestor(self.repo, source, prev):
            nothing = refs.is_ancestor(self.repo, source, self.run_row.base_sha)
            why = "no commits beyond base" if nothing else "already on the merged branch"
            self._record_merged(task_id, why, new=False)
            return "merged"
        self._check_history(task_id, source, prev)
        self.ledger.mark(task_id, MergeStatus.MERGING, f"{_MERGING_PREFIX}{prev}")
        crashpoint("merge")
        squash = self.policy.strategy == "squash"
        try:
            step = merge_step(
                self.worktree,
                self.branch,
                source,
                self.policy.strategy,
                self._message(task_id),
                start=start_of(self.repo, row, source) if squash else None,
                hooks=self.hooks,
            )
            self.site.sync_submodules()
        except gitrun.CommitRejected as exc:
            undo(self.worktree, self.branch, prev)
            self.site.sync_submodules()
            self.ledger.mark(
                task_id,
                MergeStatus.UNMERGED,
                f"merge rejected: {exc}",
                event=("commit_rejected", {"hook": exc.hook, "output": exc.output}),
            )
            self.out(f"the {exc.hook} hook rejected the merge of {task_id}; its merge was undone")
            raise _Stop(task_id, self._rejected_message(task_id, exc)) from exc
        except LimitlessError as exc:
            undo(self.worktree, self.branch, prev)
            self.ledger.mark(task_id, MergeStatus.UNMERGED, f"merge failed: {exc}")
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
            self.site.sync_submodules()
            reason = f"gate failed (exit {gate.exit_code}, log {gate.log_path}):\n{gate.tail}"
            self.ledger.failed_gate(
                task_id, reason, exit_code=gate.exit_code, log=str(gate.log_path)
            )
            self.out(f"gate failed for {task_id} (exit {gate.exit_code}); its merge was undone")
            return "gate_failed"
        self._record_merged(task_id, "", new=True)
        return "merged"

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

    def _record_merged(self, task_id: str, reason: str, *, new: bool) -> None:
        sha = head_sha(self.worktree)
        self.ledger.record_merged(task_id, reason, sha=sha, new=new, how=self.policy.strategy)

    # -- conflicts ---------------------------------------------------------------

    def _resolution(self) -> Resolution:
        return Resolution(
            store=self.store,
            run=self.run_row,
            plan=self.plan,
            policy=self.policy,
            worktree=self.worktree,
            branch=self.branch,
            hooks=self.hooks,
            ledger=self.ledger,
            out=self.out,
            source_of=self._source,
            message_of=self._message,
            gate=self._gate,
        )

    def _on_conflict(self, task_id: str, source: str, prev: str, files: tuple[str, ...]) -> str:
        policy = self.policy.on_conflict
        self.store.add_event(
            self.run_id, "merge_conflict", task_id, files=list(files), on_conflict=policy
        )
        self.out(f"conflict merging {task_id}: {', '.join(files)}")
        if policy == "agent":
            if self.run_in_slot is None:
                self.run_in_slot = find_runner(
                    self.store,
                    self.run_row,
                    self.worktree,
                    self.policy,
                    foreground=self.foreground,
                    out=self.out,
                )
            if self.run_in_slot is None:
                undo(self.worktree, self.branch, prev)
                why = (
                    f"no slot to run a resolver in: the tmux session of run {self.run_id} "
                    "is gone (run `limitless merge` in a terminal to resolve there)"
                )
                self._stop_on_conflict(task_id, files, why)
            accepted, why = self._resolution().resolve(
                task_id, source, prev, files, self.run_in_slot
            )
            if accepted:
                return "merged"
            head = head_sha(self.worktree)
            if head != prev and not refs.is_ancestor(self.repo, head, prev):
                refs.keep(self.repo, self.site.kept_ref(f"resolve-{task_id}"), head)
            undo(self.worktree, self.branch, prev)
            self.out(f"resolution of {task_id} refused: {why}")
            self._stop_on_conflict(task_id, files, why)
        undo(self.worktree, self.branch, prev)
        if policy == "skip":
            reason = f"conflicted in {', '.join(files)}; skipped (on_conflict: skip)"
            self.ledger.conflicted(task_id, reason, files)
            return "conflict"
        self._stop_on_conflict(task_id, files, "")

    def _stop_on_conflict(self, task_id: str, files: Sequence[str], why: str) -> NoReturn:
        row = self.ledger.rows[task_id]
        reason = f"conflicted in {', '.join(files)}" + (f"; {why}" if why else "")
        self.ledger.conflicted(task_id, reason, files)
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
        if refs.share_history(self.repo, prev, source):
            return
        if not repochecks.is_shallow(self.repo):
            return  # unrelated histories: git's own words say it when merging
        row = self.ledger.rows[task_id]
        message = (
            f"merge stopped at task {task_id}: this repository is a shallow clone and lacks "
            f"the history {row.branch} shares with {self.branch} (based on "
            f"{self.run_row.base} at {self.run_row.base_sha[:12]}), so git cannot merge them. "
            f"Nothing was landed. Fetch the missing history with `git fetch --unshallow` in "
            f"{self.repo}, then run `limitless merge {self.run_id}` again."
        )
        self.ledger.mark(task_id, MergeStatus.UNMERGED, "shallow clone: history missing")
        raise _Stop(task_id, message)

    def _rejected_message(self, task_id: str, exc: gitrun.CommitRejected) -> str:
        said = f":\n{exc.output}\n" if exc.output else " (it printed nothing). "
        return (
            f"merge stopped at task {task_id}: the repository's {exc.hook} hook rejected "
            f"its merge into {self.branch}{said}"
            f"Nothing was landed; the merge worktree {self.worktree} is back where it was "
            f"and the task branch {self.ledger.rows[task_id].branch} is kept. Change what the hook "
            f"refuses (or set `commit_hooks: skip` in the plan to leave hooks out), then run "
            f"`limitless merge {self.run_id}` again."
        )

    def _failure_message(self, task_id: str, reason: str) -> str:
        return (
            f"merge stopped at task {task_id}: {reason}. Nothing was landed; the merge "
            f"worktree {self.worktree} is back where it was. Fix the cause and run "
            f"`limitless merge {self.run_id}` again."
        )
