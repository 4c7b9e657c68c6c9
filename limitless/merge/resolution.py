"""A conflict left to a resolver agent (`merge.on_conflict: agent`), and whether its work is taken.

The conflict is left in place in the merge worktree and a resolver runs
through the phase's `run_in_slot` callback (by default a slot pane of the
run's tmux session, see `resolver`; in `limitless merge` run from a terminal,
that terminal once the session is gone). Its result is accepted only if no
conflict markers are left, the merge ends committed (limitless stages and
commits a resolved but uncommitted result itself; for `rebase` it continues
the rebase, and a later commit that conflicts gets another resolver round) and
the gate passes. Otherwise the phase undoes the merge and stops at the task.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from limitless.errors import GitError, UsageError
from limitless.fmt import duration
from limitless.git import refs
from limitless.git import runner as gitrun
from limitless.git.runner import git, out
from limitless.git.status import (
    conflicted_files,
    head_ref,
    head_sha,
    operation_in_progress,
    tracked_changes,
)
from limitless.merge.ledger import Ledger
from limitless.merge.steps import GateResult, commit_change, finish_rebase, has_markers
from limitless.plan.model import MergePolicy, Plan
from limitless.programs import Program, adapter
from limitless.programs.base import Approve
from limitless.programs.headless_run import read_facts, view_argv
from limitless.programs.launch import AgentStart, agent_start, resolver_approve
from limitless.programs.profiles import AgentProfile
from limitless.states import RESOLVER_TIMED_OUT, MergeStatus
from limitless.store import Run, Store

RunInSlot = Callable[[list[str], Path, str], int]
"""`run_in_slot(argv, cwd, title) -> exit code`: runs a resolver agent in a slot pane."""


def find_runner(
    store: Store,
    run: Run,
    worktree: Path,
    policy: MergePolicy,
    *,
    foreground: bool,
    out: Callable[[str], object],
) -> RunInSlot | None:
    """A slot pane of the run's tmux session to run resolvers in, if it is alive; with
    `foreground`, else this process's terminal."""
    from limitless.merge.resolver import foreground_runner, slot_runner

    env = {"LIMITLESS_RUN": run.id, "LIMITLESS_MERGE_WORKTREE": str(worktree)}
    limit = policy.resolver_timeout_s
    runner = slot_runner(store, run, env=env, timeout_s=limit)
    if runner is None and foreground:
        out("the run's tmux session is gone: the resolver runs in this terminal")
        return foreground_runner(env, timeout_s=limit)
    return runner


class Resolution:
    """Resolver agents on the conflicts of one merge phase, and the judgement of their work.

    What it needs of the phase comes as callables: the commit a task merges
    (`source_of`), its commit message (`message_of`) and its gate run (`gate`).
    """

    def __init__(
        self,
        *,
        store: Store,
        run: Run,
        plan: Plan,
        policy: MergePolicy,
        worktree: Path,
        branch: str,
        hooks: bool,
        ledger: Ledger,
        out: Callable[[str], object],
        source_of: Callable[[str], str | None],
        message_of: Callable[[str], str],
        gate: Callable[[str], GateResult | None],
    ) -> None:
        self.store = store
        self.run_id = run.id
        self.base_sha = run.base_sha
        self.repo = Path(run.repo_root)
        self.plan = plan
        self.policy = policy
        self.worktree = worktree
        self.branch = branch
        self.hooks = hooks
        self.ledger = ledger
        self.out = out
        self.source_of = source_of
        self.message_of = message_of
        self.gate = gate

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

    def _budget_spent(self) -> str:
        """Why no resolver may start: the run's reported costs (its tasks' and resolvers')
        reached `budget.max_cost_usd` ("" when one may)."""
        limit = self.plan.budget.max_cost_usd
        if limit is None:
            return ""
        run = self.store.get_run(self.run_id)
        tasks = sum(row.cost_usd or 0.0 for row in self.store.get_tasks(self.run_id))
        spent = tasks + (run.resolver_cost_usd or 0.0)
        if spent < limit:
            return ""
        spent_of = f"${spent:.4f} of ${limit:.2f}"
        return f"budget spent: {spent_of} (budget.max_cost_usd): no resolver started"

    def resolve(
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
        program = adapter(profile.adapter)
        approve = resolver_approve(self.plan.approve) if program is not None else None
        rounds = 0
        limit = 1 + int(out(self.repo, "rev-list", "--count", f"{prev}..{source}") or 0)
        cost = 0.0
        while True:
            rounds += 1
            folder = self.store.run_dir(self.run_id) / "merge"
            start = agent_start(
                profile,
                self._resolver_prompt(task_id, files, approve),
                prompt_file=folder / f"resolve-{task_id}-{rounds}.md",
                cwd=self.worktree,
                task=task_id,
                branch=self.branch,
                model=model,
                approve=approve,
                # opencode works in $PWD rather than in its real folder
                extra_env={"PWD": str(self.worktree)} if program is not None else None,
                extra_args=program.resolver_args() if program is not None else (),
            )
            cannot = _cannot_start(profile, program, approve, start) or self._budget_spent()
            if cannot:
                return False, cannot
            facts_file: Path | None = None
            log_file: Path | None = None
            argv = start.argv_with_env()
            if program is not None and approve is not None and program.headless_stream:
                # its events become readable lines in the pane, its facts a file
                facts_file = folder / f"resolve-{task_id}-{rounds}.facts.json"
                log_file = folder / f"resolve-{task_id}-{rounds}.log"
                for old in (facts_file, log_file):
                    old.unlink(missing_ok=True)
                wrapped = view_argv(program.name, approve, facts_file, start.argv, log_file)
                argv = AgentStart(wrapped, start.cwd, start.env).argv_with_env()
            self.store.add_event(
                self.run_id, "resolver_started", task_id, profile=profile.name, files=list(files)
            )
            self.out(f"resolver {profile.name} started for {task_id}")
            code = run_in_slot(argv, self.worktree, f"resolve {task_id}")
            end = read_facts(facts_file) if facts_file is not None else None
            if end is not None and end.facts.cost_usd is not None:
                cost += end.facts.cost_usd
                self.store.add_resolver_cost(self.run_id, end.facts.cost_usd)
            self.store.add_event(
                self.run_id,
                "resolver_done",
                task_id,
                exit_code=code,
                **({"cost_usd": end.facts.cost_usd} if end and end.facts.cost_usd else {}),
                **({"reason": end.verdict} if end and end.verdict else {}),
            )
            if code == RESOLVER_TIMED_OUT:
                after = duration(self.policy.resolver_timeout_s)
                return False, f"the resolver was stopped after {after} (merge.resolver_timeout)"
            said = end.verdict if end is not None else ""
            see = f" (its lines: {log_file})" if log_file is not None else ""
            if end is not None and (end.rate_limit or end.facts.is_error):
                return False, f"the resolver {profile.name} failed: {said}{see}"
            if code != 0:
                last = f": {end.tail[-1]}" if end is not None and end.tail else ""
                return False, f"the resolver exited with {code}{last}{see}"
            left = has_markers(self.worktree, files)
            if left:
                why = f"; {said}" if said else ""
                return (
                    False,
                    f"the resolver left conflict markers in {', '.join(left)}{why}{see}",
                )
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
        gate = self.gate(task_id)
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
        paid = f" (${cost:.4f})" if cost else ""
        self.ledger.record_merged(
            task_id,
            f"conflict in {', '.join(files)} resolved by {profile.name}{paid}",
            sha=head_sha(self.worktree),
            new=True,
            how=self.policy.strategy,
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
                git(self.worktree, "add", "-A")
            result = gitrun.commit(self.worktree, "rebase", "--continue", hooks=self.hooks)
            if result.ok:
                return "", files
            again = conflicted_files(self.worktree)
            if again and operation_in_progress(self.worktree) == "rebase":
                return "again", again
            return f"git rebase --continue failed: {result.output}", files
        if op == "merge":
            git(self.worktree, "add", "-A")
            done = gitrun.commit(self.worktree, "commit", "-q", "--no-edit", hooks=self.hooks)
            if not done.ok:
                return f"the resolved merge could not be committed: {done.output}", files
            return "", files
        if op not in (None, "cherry-pick"):
            return f"the resolver left a {op} in progress", files
        if tracked_changes(self.worktree) or unmerged:
            git(self.worktree, "add", "-A")
            try:
                commit_change(self.worktree, self.message_of(task_id), self.hooks)
            except GitError as exc:
                return f"the resolved change could not be committed: {exc}", files
        return "", files

    def _check_resolution(self, source: str, prev: str) -> str:
        """Why the resolved result is not acceptable, or ""."""
        if self.policy.strategy == "rebase" and head_ref(self.worktree) is None:
            head = head_sha(self.worktree)
            if head == prev or not refs.is_ancestor(self.repo, prev, head):
                return "the result does not build on the merged branch"
            finish_rebase(self.worktree, self.branch, prev)
        if head_ref(self.worktree) != f"refs/heads/{self.branch}":
            return f"the resolver left the merge worktree off {self.branch}"
        head = head_sha(self.worktree)
        if head == prev or not refs.is_ancestor(self.repo, prev, head):
            return "the result does not build on the merged branch"
        if self.policy.strategy == "merge" and not refs.is_ancestor(self.repo, source, head):
            return "the result is not a merge of the task's branch"
        if conflicted_files(self.worktree) or tracked_changes(self.worktree):
            return "the result is not fully committed"
        changed = out(self.repo, "diff", "--name-only", "-z", prev, head).split("\0")
        left = has_markers(self.worktree, [name for name in changed if name])
        if left:
            return f"conflict markers committed in {', '.join(left)}"
        return ""

    def _resolver_prompt(self, task_id: str, files: Sequence[str], approve: Approve | None) -> str:
        row = self.ledger.rows[task_id]
        title = self.message_of(task_id).splitlines()[0]
        finish = {
            "merge": "then `git add` them and `git commit --no-edit`",
            "squash": f'then `git add` them and `git commit -m "{title}"`',
            "rebase": "then `git add` them and `git rebase --continue` "
            "(if the next commit conflicts too, resolve that one the same way)",
        }[self.policy.strategy]
        if approve is not None and approve != "all":
            # Its permissions let it edit files, not run git (Claude's acceptEdits, Codex's
            # workspace-write sandbox): limitless stages and commits what it leaves.
            then = "continues the rebase" if self.policy.strategy == "rebase" else "commits"
            finish = f"save them; limitless stages them and {then} itself (you need not run git)"
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
        if task_id not in {task.id for task in self.plan.tasks}:
            return "(not in the plan)"
        return self.plan.task(task_id).prompt.strip() or "(no prompt)"

    def _touching(self, files: Sequence[str], *, exclude: str) -> list[str]:
        """Merged tasks whose changes touch any of `files`."""
        wanted = set(files)
        found: list[str] = []
        for task_id, row in self.ledger.rows.items():
            if task_id == exclude or row.merge_status is not MergeStatus.MERGED:
                continue
            source = self.source_of(task_id)
            if source is None:
                continue
            changed = git(
                self.repo,
                "diff",
                "--name-only",
                "-z",
                f"{self.base_sha}...{source}",
                check=False,
            ).stdout
            if wanted & {name for name in changed.split("\0") if name}:
                found.append(task_id)
        return found


def _cannot_start(
    profile: AgentProfile, program: Program | None, approve: Approve | None, start: AgentStart
) -> str:
    """Why the resolver cannot start here (its command missing, its program refusing the
    permission policy), or ""."""
    env = start.environ()
    command = start.argv[0] if start.argv else ""
    if "/" in command:  # a path: relative to the merge worktree it runs in
        found = os.access(start.cwd / command, os.X_OK)
    else:
        found = bool(command) and shutil.which(command, path=env.get("PATH")) is not None
    if not found:
        how = f"install it ({program.install})" if program is not None else "install it"
        return (
            f"the resolver's command {command!r} (profile {profile.name}) is not on PATH; "
            f"{how}, or name another profile in merge.resolver"
        )
    if program is not None and approve is not None:
        refusal = program.refusal(approve, env, os.geteuid() == 0)
        if refusal is not None:
            return f"the resolver {profile.name} cannot run: {refusal.message}"
    return ""
