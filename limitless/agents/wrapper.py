"""The in-pane wrapper behind `limitless _exec --run R --task T`.

It runs in the task's tmux pane: loads the task from the store, marks it
running, runs setup commands and then the agent (argv, never a shell) in a pty,
tees the output to the task log, parses progress, cost and session ids, commits
what the agent left uncommitted, records the end and wakes the supervisor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO

from limitless.agents import claude_hooks, hookfix, hookrelay, ratelimit, sandbox
from limitless.agents.headless import HeadlessOutput
from limitless.agents.interactive import InteractiveDriver
from limitless.agents.lines import ANSI, LineParser
from limitless.agents.pty import PtyProcess, PtyResult, end_strays
from limitless.agents.remote import (
    AGENT_COMMAND,
    Place,
    RemoteAttempt,
    RemoteGitFigures,
    RemoteResult,
    lost_host,
)
from limitless.agents.remote_hooks import RemoteHooks
from limitless.errors import LimitlessError
from limitless.fmt import duration, terminal_columns, wrap_words
from limitless.git import worktrees
from limitless.git.exclude import exclude_untracked
from limitless.git.runner import CommitRejected
from limitless.git.status import WorktreeState, inspect
from limitless.plan.hosts import LOCAL
from limitless.plan.model import Plan, Task
from limitless.plan.stored import plan_of
from limitless.programs import PaneLine, Program, adapter
from limitless.programs.launch import agent_env, agent_start
from limitless.programs.profiles import AgentProfile, OutputParsers, can_resume
from limitless.programs.verdict import Verdict, judge_changes
from limitless.states import TaskStatus
from limitless.store import Attempt, Run, Store, TaskRow
from limitless.tmux.pane_programs import wake_channel

log = logging.getLogger(__name__)

PROGRESS_WRITE_INTERVAL = 0.5
REATTACH_ENV = "LIMITLESS_TAKE_UP"
"""Set to 1 in a pane whose wrapper takes up an attempt already running on its host."""
MAX_ARGUMENT_BYTES = 128 * 1024  # Linux MAX_ARG_STRLEN, counting the closing NUL
BOLD, DIM, GREEN, RED, RESET = "\x1b[1m", "\x1b[2m", "\x1b[32m", "\x1b[31m", "\x1b[0m"
CYAN = "\x1b[36m"
LINE_STYLES = {"text": "", "action": CYAN, "dim": DIM, "good": GREEN, "bad": RED}


def argument_too_long(argv: list[str]) -> str | None:
    """Why Linux would refuse to start `argv` (one argument over 128 KiB), or None."""
    for index, part in enumerate(argv):
        size = len(os.fsencode(part))
        if size >= MAX_ARGUMENT_BYTES:
            return (
                f"argument {index} of the agent command is {size} bytes, more than one "
                f"argument may hold ({MAX_ARGUMENT_BYTES - 1}); the prompt is too long for "
                "{prompt}: use {prompt_file} in the agent's command instead"
            )
    return None


def events_path(store: Store, run_id: str, task_id: str) -> Path:
    """Where a headless program's raw events are kept (the task log has them as lines)."""
    return store.log_path(run_id, task_id).with_suffix(".events.jsonl")


def prompt_path(store: Store, run_id: str, task_id: str) -> Path:
    """Where a task's prompt is written: the store folder, never the worktree."""
    return store.run_dir(run_id) / "prompts" / f"{task_id}.md"


@dataclass
class Outcome:
    status: TaskStatus
    exit_code: int | None
    reason: str


class Wrapper:
    """One attempt of one task, from the store row to the recorded end."""

    def __init__(self, store: Store, run: Run, plan: Plan, task: Task, row: TaskRow) -> None:
        self.store = store
        self.run = run
        self.plan = plan
        self.task = task
        self.row = row
        self.profile: AgentProfile = plan.profile(task)
        self.program: Program | None = adapter(self.profile.adapter)
        self.headless: HeadlessOutput | None = None  # a program that prints events
        self.worktree = Path(row.worktree)
        self.log_file: BinaryIO | None = None
        self.process: PtyProcess | None = None
        self.driver: InteractiveDriver | None = None
        self.signalled: int | None = None
        self.log_error = ""  # set when the task log could not be written (a full disk)
        self.confined: sandbox.Session | None = None  # `sandbox: worktree`
        self.remote: RemoteAttempt | None = self._remote_attempt()  # a task on another host
        self.reattach = False  # take up an attempt already running on its host (`resume`)
        self.remote_said = ""  # a headless program's last words there (its renderer's facts)

    # ------------------------------------------------------------ lifecycle

    def execute(self) -> int:
        log_path = self.store.log_path(self.run.id, self.task.id)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab", buffering=0) as self.log_file:
            if self.reattach and self.remote is not None:
                self._mark_taken_up()
            else:
                self._mark_running()
            self._say(
                f"{BOLD}▶ {self.task.id}{RESET} · attempt {self.row.attempt} · "
                f"agent {self.profile.name} · {DIM}{self.row.branch}{RESET}"
            )
            try:
                outcome: Outcome | None
                if self.remote is not None:
                    outcome = self._run_remote(self.remote)
                    if outcome is None:  # detached: the agent goes on there
                        return 0
                else:
                    outcome = self._confine()
                    if outcome is None:
                        outcome = self._setup()
                    if outcome is None:
                        outcome = self._run_agent()
                self._finish(outcome)
            finally:
                if self.confined is not None:  # _finish did not get to it
                    self.confined.abandon()
        self._wake_supervisor()
        return 0 if outcome.status is TaskStatus.DONE else 1

    def _mark_running(self) -> None:
        now = time.time()
        self.store.update_task(
            self.run.id,
            self.task.id,
            pid=os.getpid(),
            pane_id=os.environ.get("TMUX_PANE", self.row.pane_id),
            started_at=now,
        )
        self.store.add_attempt(
            Attempt(
                run_id=self.run.id,
                task_id=self.task.id,
                attempt=self.row.attempt,
                started_at=now,
                host=self.row.host,
            )
        )
        self.store.add_event(
            self.run.id, "task_started", self.task.id, attempt=self.row.attempt, pid=os.getpid()
        )

    def _environment(self) -> dict[str, str]:
        """What the setup commands and the leftovers' commit run with: the agent's own."""
        approve = self.plan.approve_of(self.task)
        folder = self._state_folder()
        env = agent_env(self.profile, approve=approve, state_folder=folder, extra=self._task_env())
        return {**os.environ, **env}

    def _task_env(self) -> dict[str, str]:
        """The task's variables, and limitless's for the agent's own use."""
        return {
            **self.task.env,
            "LIMITLESS_RUN": self.run.id,
            "LIMITLESS_TASK": self.task.id,
            "LIMITLESS_WORKTREE": str(self.worktree),
            "LIMITLESS_BRANCH": self.row.branch,
            "LIMITLESS_ATTEMPT": str(self.row.attempt),
            "LIMITLESS_STATE_DIR": str(self.store.state_dir),
            # Some agents (opencode) work in $PWD rather than their real folder.
            "PWD": str(self.worktree),
        }

    def _state_folder(self) -> Path:
        """Where the task's agent program may keep state of its own (beside the task logs)."""
        folder = self.store.run_dir(self.run.id) / "agents" / self.task.id
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _confine(self) -> Outcome | None:
        """Make the task's sandbox when it has `sandbox: worktree`; failing that fails it."""
        try:
            self.confined = sandbox.Session.open(
                self.store, self.run, self.plan, self.task, self.row
            )
        except LimitlessError as exc:
            return Outcome(TaskStatus.FAILED, None, f"sandbox: {exc}")
        if self.confined is not None:
            self._say(f"{DIM}sandbox: worktree (bubblewrap){RESET}")
        return None

    def _launch(self, argv: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        """The command line and variables that start `argv`: in the sandbox, if any."""
        if self.confined is None:
            return argv, env
        inner = self.confined.environment(env)
        return self.confined.wrap(argv, inner), inner

    def _setup(self) -> Outcome | None:
        """Run the plan's setup commands once per worktree; None when all passed."""
        if self.row.setup_done or not self.plan.setup:
            return None
        for command in self.plan.setup:
            self._say(f"{DIM}$ {command}{RESET}")
            argv, env = self._launch(["bash", "-c", command], self._environment())
            process = PtyProcess(
                argv,
                cwd=str(self.worktree),
                env=env,
                on_output=self._log,
                on_tick=self.confined.tick if self.confined else None,
            )
            result = process.pump()
            if result.exit_code != 0:
                return Outcome(
                    TaskStatus.FAILED,
                    result.exit_code,
                    f"setup command `{command}` exited with {result.exit_code}",
                )
        self.store.update_task(self.run.id, self.task.id, setup_done=True)
        return None

    def _prompt_text(self) -> str:
        """The task's prompt, with `{deps_summary}` filled in when it is used."""
        from limitless.agents import depsummary

        if not depsummary.uses_summary(self.task.prompt):
            return self.task.prompt
        summary = depsummary.dependency_summary(self.store, self.run, self.plan, self.task)
        return depsummary.render_prompt(self.task.prompt, summary)

    def _run_agent(self) -> Outcome:
        start = agent_start(
            self.profile,
            self._prompt_text(),
            prompt_file=prompt_path(self.store, self.run.id, self.task.id),
            cwd=self.worktree,
            task=self.task.id,
            branch=self.row.branch,
            model=self.task.model,
            approve=self.plan.approve_of(self.task),
            resume_session=self._resumed_session(),
            state_folder=self._state_folder(),
            extra_env=self._task_env(),
            confined=self.confined is not None,
        )
        argv, env = start.argv, start.environ()
        if shutil.which(argv[0], path=env.get("PATH")) is None:
            install = f" ({self.program.install})" if self.program is not None else ""
            return Outcome(
                TaskStatus.FAILED,
                127,
                f"agent command {argv[0]!r} (profile {self.profile.name}) not found on PATH; "
                f"install it{install} or pick another agent for this task",
            )
        oversized = argument_too_long(argv)
        if oversized:
            return Outcome(TaskStatus.FAILED, 126, f"{oversized} (profile {self.profile.name})")
        hooks_failed = self._install_state_hooks()
        if hooks_failed is not None:
            return hooks_failed
        parser = LineParser(OutputParsers.for_profile(self.profile))
        self.headless = self._headless(env)
        if self.profile.interactive:
            self.driver = InteractiveDriver(
                self.store,
                self.store.get_task(self.run.id, self.task.id),
                self.program,
                self.plan.idle_done_of(self.task),
                send=self._send,
                stop=self._stop_agent,
                commit=self._commit_before_close if self.plan.autocommit else None,
            )
        self._exclude_private_files()
        driver, headless = self.driver, self.headless
        last_write = 0.0

        def on_output(data: bytes) -> None:
            nonlocal last_write
            if headless is not None:
                headless.show(parser, data)
            else:
                self._log(data)
                parser.feed(data)
            if driver is not None:
                driver.output(data)
            now = time.monotonic()
            if parser.changed and now - last_write >= PROGRESS_WRITE_INTERVAL:
                self._store_parsed(parser)
                last_write = now

        try:
            argv, env = self._launch(argv, env)
            self.process = PtyProcess(
                argv,
                cwd=str(self.worktree),
                env=env,
                on_output=on_output,
                echo_to_stdout=headless is None,
                on_input=driver.typed if driver is not None else None,
                on_tick=self._on_tick if driver or self.confined or headless else None,
            )
            with self.store.transaction():
                self.store.update_task(self.run.id, self.task.id, pid=os.getpid())
                # the hand-off's far end: the agent program is forked into its pty
                self.store.add_event(
                    self.run.id,
                    "agent_started",
                    self.task.id,
                    attempt=self.row.attempt,
                    pid=self.process.pid,
                )
            result = self.process.pump(timeout_s=self.task.timeout_s)
            if headless is not None:
                headless.finish(parser)
            else:
                parser.finish()
        finally:
            if headless is not None:
                headless.close()
            if driver is not None:
                driver.settle()
            self._end_strays()
        self._store_parsed(parser)
        if driver is not None:
            driver.refresh_cost()
            for note in driver.notes:
                self._log(f"limitless: {note}\n".encode())
        return (
            self._driver_outcome(result)
            or self._stream_verdict(result)
            or self._rate_limited(parser, result)
            or self._outcome(result)
        )

    # ------------------------------------------------------------ on another host

    def _remote_attempt(self) -> RemoteAttempt | None:
        """The host side of this attempt, when the task was placed on another machine."""
        if not self.row.host or self.row.host == LOCAL:
            return None
        host = self.plan.host(self.row.host)
        if host.is_local:
            return None
        return RemoteAttempt(
            host,
            Path(self.run.control_dir),
            Path(self.run.repo_root),
            run_id=self.run.id,
            task_id=self.task.id,
            worktree_key=self.task.worktree_key,
            branch=self.row.branch,
            base_sha=self.run.base_sha,
            start_sha=self.row.start_sha or self.run.base_sha,
            say=lambda line: self._say(f"{DIM}{line}{RESET}"),
        )

    def _mark_taken_up(self) -> None:
        """This wrapper watches an attempt a lost pane's wrapper started there."""
        self.store.update_task(
            self.run.id,
            self.task.id,
            pid=os.getpid(),
            pane_id=os.environ.get("TMUX_PANE", self.row.pane_id),
        )
        self.store.add_event(
            self.run.id, "task_taken_up", self.task.id, attempt=self.row.attempt, host=self.row.host
        )

    def _run_remote(self, remote: RemoteAttempt) -> Outcome | None:
        """Setup and agent on the task's host; its work fetched back into this worktree.
        None when this pane went away and the agent goes on there (`detach`)."""
        host = remote.host.name
        setup = () if self.row.setup_done else self.plan.setup
        if self.reattach:
            try:
                place = remote.locate()
            except LimitlessError as exc:
                why = str(exc) if lost_host(str(exc)) else f"could not reach {host}: {exc}"
                return Outcome(TaskStatus.FAILED, None, why)
            self._say(f"{DIM}taken up again on {host}: {place.worktree}{RESET}")
            setup = ()
            return self._watch_remote(remote, host, setup)
        try:
            prompt = self._prompt_text()
            started = time.monotonic()
            place = remote.prepare(prompt)
            self.store.add_event(
                self.run.id,
                "task_placed",
                self.task.id,
                host=host,
                worktree=place.worktree,
                sync_s=round(time.monotonic() - started, 3),
            )
            self._say(f"{DIM}on {host}: {place.worktree}{RESET}")
            env = {
                **self.task.env,
                "LIMITLESS_RUN": self.run.id,
                "LIMITLESS_TASK": self.task.id,
                "LIMITLESS_WORKTREE": place.worktree,
                "LIMITLESS_BRANCH": self.row.branch,
                "LIMITLESS_ATTEMPT": str(self.row.attempt),
                "LIMITLESS_HOST": host,
                "PWD": place.worktree,
            }
            start = agent_start(
                self.profile,
                prompt,
                prompt_file=prompt_path(self.store, self.run.id, self.task.id),
                prompt_file_seen_as=place.prompt,
                cwd=Path(place.worktree),
                task=self.task.id,
                branch=self.row.branch,
                model=self.task.model,
                approve=self.plan.approve_of(self.task),
                extra_env=env,
                python=place.python,
            )
            argv, agent_vars = start.argv, dict(start.env)
            if self.program is not None and self._rendered_there():
                approve = self.plan.approve_of(self.task)
                argv = remote.rendered(self.program.name, approve, start.argv)
                agent_vars[AGENT_COMMAND] = start.argv[0]
            elif self.program is not None and self.profile.interactive:
                argv = self._interactive_there(remote, place, argv, agent_vars)
            remote.start(argv, agent_vars, setup)
        except LimitlessError as exc:
            why = str(exc) if lost_host(str(exc)) else f"could not start on {host}: {exc}"
            return Outcome(TaskStatus.FAILED, None, why)
        return self._watch_remote(remote, host, setup)

    def _watch_remote(
        self, remote: RemoteAttempt, host: str, setup: tuple[str, ...]
    ) -> Outcome | None:
        """Watch the agent there to its end, judge it, bring its work back."""
        parser = LineParser(OutputParsers.for_profile(self.profile))
        last_write = 0.0
        rendered = self._rendered_there()
        driver = self.driver = self._remote_driver(remote, host)

        def on_data(data: bytes) -> None:
            nonlocal last_write
            self._log(ANSI.sub("", data.decode(errors="replace")).encode() if rendered else data)
            parser.feed(data)
            if driver is not None:
                driver.output(data)
            now = time.monotonic()
            if parser.changed and now - last_write >= PROGRESS_WRITE_INTERVAL:
                self._store_parsed(parser)
                last_write = now

        # an interactive agent's hook calls, spooled there, recorded here every tick
        spooled = (
            RemoteHooks(remote, self.store.state_dir, self.row.attempt, self._state_folder())
            if driver is not None
            else None
        )
        ticks: list[Callable[[], None]] = []
        if driver is not None and spooled is not None:
            driver.before_cost = spooled.fetch_transcripts
            ticks += [spooled.replay, driver.tick]
        if rendered:
            remote.figuring = True  # its renderer's cost and session, read with the log
            ticks.append(lambda: self._take_figures(remote, parser))
        ticks.append(RemoteGitFigures(remote, self._store_git_figures, self._start_sha()).tick)

        def on_tick() -> None:
            for tick in ticks:
                tick()

        self.store.update_task(self.run.id, self.task.id, pid=os.getpid())
        timeout_s = self.task.timeout_s
        if timeout_s is not None and self.row.started_at is not None:
            timeout_s = max(timeout_s - (time.time() - self.row.started_at), 1.0)
        watched = remote.watch(
            on_data,
            timeout_s=timeout_s,
            host_timeout_s=self.plan.host_timeout_s,
            on_input=driver.typed if driver is not None else None,
            on_tick=on_tick if ticks else None,
        )
        if watched.detached:
            if self._still_ours():
                return None  # the pane went away, not the task: the agent goes on there
            remote.kill()  # killed or marked done meanwhile: as a stop
            watched = RemoteResult(PtyResult(-1, False, True))
        parser.finish()
        result = watched.result
        if driver is not None and spooled is not None:
            spooled.replay()
            driver.settle()
            driver.refresh_cost()
            for note in driver.notes:
                self._log(f"limitless: {note}\n".encode())
        said = None
        if rendered and not watched.reason:
            said = self._remote_facts(remote, parser, result, host)
        self._store_parsed(parser)
        if setup and not watched.reason and not result.stopped and not result.timed_out:
            self.store.update_task(self.run.id, self.task.id, setup_done=True)
        outcome = (
            Outcome(TaskStatus.FAILED, result.exit_code, watched.reason)
            if watched.reason
            else said
            or self._driver_outcome(result)
            or self._rate_limited(parser, result)
            or self._outcome(result)
        )
        message = (
            f"limitless: {self.task.id} — work left uncommitted by the agent "
            f"(attempt {self.row.attempt}, on {host})"
            if self.plan.autocommit
            else ""
        )
        try:
            started = time.monotonic()
            sha = remote.bring_back(self.worktree, message)
            self.store.add_event(
                self.run.id,
                "task_fetched",
                self.task.id,
                host=host,
                head=sha,
                seconds=round(time.monotonic() - started, 3),
            )
            self._say(f"{DIM}fetched {self.row.branch} from {host} at {sha[:10]}{RESET}")
        except LimitlessError as exc:
            why = f"could not bring the work back from {host}: {exc}"
            reason = "; ".join(part for part in (outcome.reason, why) if part)
            status = TaskStatus.FAILED if outcome.status is TaskStatus.DONE else outcome.status
            return Outcome(status, outcome.exit_code, reason)
        return outcome

    def _interactive_there(
        self, remote: RemoteAttempt, place: Place, argv: list[str], agent_vars: dict[str, str]
    ) -> list[str]:
        """An interactive program there: its hooks (Claude Code's settings, Codex's notify)
        run the relay of the host's install, which spools their calls for `RemoteHooks`."""
        assert self.program is not None
        if self.program.state_hooks == "claude":
            text = claude_hooks.settings_for_host(self.worktree, place.python, place.relay)
            remote.write_hook_settings(claude_hooks.SETTINGS_FILE.as_posix(), text)
        agent_vars[hookrelay.SPOOL_VAR] = place.hook_spool
        return self.program.on_host(argv, place.python, place.relay)

    def _start_sha(self) -> str:
        return self.row.start_sha or self.run.base_sha

    def _store_git_figures(self, state: WorktreeState) -> None:
        """A remote task's worktree figures (its worktree here stays at its start commit
        until the end, so the dashboard shows these instead of reading it)."""
        self.store.update_task(
            self.run.id,
            self.task.id,
            commits=state.ahead,
            files_changed=state.files_changed,
            insertions=state.insertions,
            deletions=state.deletions,
        )

    def _take_figures(self, remote: RemoteAttempt, parser: LineParser) -> None:
        """The remote renderer's figures so far into the store, as a local stream's are."""
        figures = remote.figures
        if figures is None:
            return
        parser.take(figures.progress, figures.cost_usd, figures.session_id)
        if parser.changed:
            self._store_parsed(parser)

    def _remote_driver(self, remote: RemoteAttempt, host: str) -> InteractiveDriver | None:
        """The interactive driver of an agent there: it reads the output polled from the
        host's log, types through tmux there and commits there before closing."""
        if not self.profile.interactive:
            return None
        message = (
            f"limitless: {self.task.id} — work left uncommitted by the agent "
            f"(attempt {self.row.attempt}, on {host})"
        )
        return InteractiveDriver(
            self.store,
            self.store.get_task(self.run.id, self.task.id),
            self.program,
            self.plan.idle_done_of(self.task),
            send=remote.send_keys,
            stop=remote.request_stop,
            commit=(lambda: remote.commit_now(message)) if self.plan.autocommit else None,
        )

    def _rendered_there(self) -> bool:
        """Whether the task's program prints events limitless renders (on its host, through
        the install's `headless_run`): a headless program with an event reader."""
        program = self.program
        if program is None or not program.headless_stream or self.profile.interactive:
            return False
        return program.stream(self.worktree, {}) is not None

    def _remote_facts(
        self, remote: RemoteAttempt, parser: LineParser, result: PtyResult, host: str
    ) -> Outcome | None:
        """What the renderer there said about the program's run: cost, session and last
        words recorded; its own account of a failure (an error result, a refused write,
        a rate limit) as the outcome, as for a program here."""
        if result.timed_out or result.stopped:
            return None
        try:
            end = remote.facts()
        except LimitlessError:
            end = None
        if end is None:
            if result.exit_code != 0:
                return None  # judged by its exit code (the task script may say why)
            name = self.program.display if self.program is not None else self.profile.name
            return Outcome(
                TaskStatus.FAILED,
                result.exit_code,
                f"{name} on {host} left no account of its run (no facts from limitless's "
                "renderer there); its success cannot be told",
            )
        facts = end.facts
        parser.take(facts.progress, facts.cost_usd, facts.session_id)
        self.remote_said = facts.final_text
        if end.rate_limit:
            return Outcome(
                TaskStatus.FAILED, result.exit_code, ratelimit.reason_for(end.rate_limit)
            )
        if end.verdict:
            return Outcome(TaskStatus.FAILED, result.exit_code, end.verdict)
        return None

    def _headless(self, env: dict[str, str]) -> HeadlessOutput | None:
        """The reader of the program's events, for a headless program that prints them."""
        program = self.program
        if program is None or not program.headless_stream:
            return None
        stream = program.stream(self.worktree, env)
        if stream is None:
            return None
        headless = HeadlessOutput(
            program,
            stream,
            approve=self.plan.approve_of(self.task),
            idle_done_s=self.plan.idle_done_of(self.task),
            say_line=self._say_line,
            send=self._send,
            signal=self._signal,
        )
        headless.open_events(events_path(self.store, self.run.id, self.task.id))
        return headless

    def _end_strays(self) -> None:
        """End what the agent left running detached (Codex's background app-server)."""
        markers = self.program.stray_markers if self.program is not None else ()
        if not markers:
            return
        mine = {
            "LIMITLESS_RUN": self.run.id,
            "LIMITLESS_TASK": self.task.id,
            "LIMITLESS_ATTEMPT": str(self.row.attempt),
        }
        for command in end_strays(mine, markers):
            self._log(f"limitless: ended {command[:200]} (left running by the agent)\n".encode())

    def _install_state_hooks(self) -> Outcome | None:
        """Hooks that report the agent's state (Claude Code's), before it starts."""
        if self.program is None or self.program.state_hooks != "claude":
            return None
        try:
            claude_hooks.install(self.worktree)
        except LimitlessError as exc:
            return Outcome(TaskStatus.FAILED, None, f"Claude Code hooks not installed: {exc}")
        return None

    def _send(self, data: bytes) -> None:
        if self.process is not None:
            self.process.send(data)

    def _stop_agent(self) -> None:
        if self.process is not None:
            self.process.request_stop()

    def _driver_outcome(self, result: PtyResult) -> Outcome | None:
        """An interactive agent the driver stopped (a dialog) or closed (idle_done)."""
        if self.driver is None or result.timed_out or self.signalled is not None:
            return None
        if self.driver.failure:
            return Outcome(TaskStatus.FAILED, result.exit_code, self.driver.failure)
        if self.driver.closed:
            return Outcome(TaskStatus.DONE, result.exit_code, "")
        return None

    # ------------------------------------------------------------ questions

    def _exclude_private_files(self) -> None:
        """Keep the program's own files (aider's chat history) out of every commit."""
        if self.program is None or not self.program.private_files:
            return
        try:
            exclude_untracked(self.worktree, self.program.private_files)
        except (LimitlessError, OSError) as exc:
            self._say(
                f"{DIM}could not name {self.program.name}'s files in info/exclude: {exc}{RESET}"
            )

    def _signal(self, kind: str, note: str) -> None:
        from limitless.agents.state import record_signal

        with contextlib.suppress(LimitlessError):
            record_signal(self.store, self.run.id, self.task.id, kind, note=note, source="wrapper")

    def _say_line(self, line: PaneLine) -> None:
        """A rendered line: whole in the log, cut at spaces to the pane's width on it (a
        narrow pane would wrap it mid-word)."""
        self._log(line.text.encode() + b"\n")
        self._pane(line.text, LINE_STYLES[line.style])

    def _stream_verdict(self, result: PtyResult) -> Outcome | None:
        """A headless program's own account of a failure its exit code may hide."""
        reason = self.headless.failure(result) if self.headless is not None else None
        return None if reason is None else Outcome(TaskStatus.FAILED, result.exit_code, reason)

    def _resumed_session(self) -> str | None:
        """The conversation this attempt continues (the profile's resume command), if any."""
        session = self.row.session_id
        if not session or not can_resume(self.profile, session, self.row.attempt):
            return None
        self._say(f"{DIM}continuing conversation {session}{RESET}")
        self.store.add_event(
            self.run.id, "task_resumed", self.task.id, session=session, attempt=self.row.attempt
        )
        return session

    def _rate_limited(self, parser: LineParser, result: PtyResult) -> Outcome | None:
        """A failed end right after a rate-limit message: retried later, not counted."""
        line = parser.recent_rate_limit()
        if line is None or result.exit_code == 0 or result.timed_out or result.stopped:
            return None
        return Outcome(TaskStatus.FAILED, result.exit_code, ratelimit.reason_for(line))

    def _outcome(self, result: PtyResult) -> Outcome:
        if result.timed_out:
            return Outcome(
                TaskStatus.FAILED,
                result.exit_code,
                f"timed out after {duration(self.task.timeout_s or 0)}; process tree killed",
            )
        if result.stopped:
            current = self.store.get_task(self.run.id, self.task.id).status
            if current in (TaskStatus.DONE, TaskStatus.KILLED):
                return Outcome(current, result.exit_code, "")
            name = signal.Signals(self.signalled).name if self.signalled else "a signal"
            return Outcome(TaskStatus.FAILED, result.exit_code, f"wrapper stopped by {name}")
        if result.exit_code == 0:
            return Outcome(TaskStatus.DONE, 0, "")
        return Outcome(TaskStatus.FAILED, result.exit_code, f"agent exited with {result.exit_code}")

    def _store_parsed(self, parser: LineParser) -> None:
        fields: dict[str, object] = {}
        if parser.progress is not None:
            fields["progress"] = parser.progress
        if parser.cost is not None:
            self.store.record_cost(self.run.id, self.task.id, self.row.attempt, parser.cost)
        if parser.session:
            fields["session_id"] = parser.session
        if fields:
            self.store.update_task(self.run.id, self.task.id, **fields)
        parser.changed = False

    def _finish(self, outcome: Outcome) -> None:
        reason = "; ".join(part for part in (outcome.reason, self.log_error) if part)
        if self.confined is not None:
            self.confined.repair()
        if self.plan.autocommit:
            try:
                sha = self._commit_leftovers(
                    self._leftovers_message(),
                    hooks=self.plan.commit_hooks == "run",
                    signing=True,
                )
                if sha:
                    self._say(f"{DIM}committed leftovers as {sha[:10]}{RESET}")
            except CommitRejected as exc:
                # the repository's policy refused the agent's work: the task fails (an
                # interactive agent was shown the refusal and asked to fix it first)
                failed = TaskStatus.KILLED if outcome.status is TaskStatus.KILLED else None
                asked = self.driver.fixes_asked if self.driver is not None else 0
                fixes = hookfix.gave_up_reason(exc, asked) if asked else ""
                why = "; ".join(part for part in (outcome.reason, fixes, str(exc)) if part)
                outcome = Outcome(failed or TaskStatus.FAILED, outcome.exit_code, why)
                reason = "; ".join(part for part in (outcome.reason, self.log_error) if part)
                for line in str(exc).splitlines():
                    self._say(f"{RED}{line}{RESET}")
            except LimitlessError as exc:
                reason = f"{reason}; autocommit failed: {exc}".lstrip("; ")
        if self.confined is not None:
            refused = self.confined.finish().reason()
            self.confined = None
            if refused:
                status = TaskStatus.FAILED if outcome.status is TaskStatus.DONE else outcome.status
                outcome = Outcome(status, outcome.exit_code, refused)
                reason = "; ".join(part for part in (reason, refused) if part)
        state = inspect(self.worktree, self.row.start_sha or self.run.base_sha)
        unchanged = self._unchanged(outcome, state)
        if unchanged is not None:
            outcome = Outcome(TaskStatus.FAILED, outcome.exit_code, unchanged.reason)
            reason = "; ".join(part for part in (outcome.reason, self.log_error) if part)
        now = time.time()
        fields: dict[str, Any] = {
            "exit_code": outcome.exit_code,
            "ended_at": now,
            "reason": reason,
            "head_sha": state.head,
            "commits": state.ahead,
            "files_changed": state.files_changed,
            "insertions": state.insertions,
            "deletions": state.deletions,
        }
        if outcome.status is TaskStatus.DONE:
            fields["progress"] = 100.0
        said = {"exit_code": outcome.exit_code, "reason": reason}
        ended = self.store.transition(
            self.run.id,
            self.task.id,
            (TaskStatus.RUNNING, TaskStatus.WAITING, TaskStatus.DONE),
            outcome.status,
            event=(_end_event(outcome.status), said),
            **fields,
        )
        if ended is None:
            # ended by the supervisor first (killed, or failed as lost): its status stays,
            # the facts are ours
            with self.store.transaction():
                self.store.update_task(self.run.id, self.task.id, **fields)
                ended = self.store.get_task(self.run.id, self.task.id)
                self.store.add_event(self.run.id, _end_event(ended.status), self.task.id, **said)
        self.store.end_attempt(
            self.run.id,
            self.task.id,
            self.row.attempt,
            ended_at=now,
            exit_code=outcome.exit_code,
            reason=reason,
            ref=None,
        )
        final = ended.status
        elapsed = now - (ended.started_at or now)
        mark = f"{GREEN}✓" if final is TaskStatus.DONE else f"{RED}✗"
        detail = f" — {reason}" if reason else ""
        self._say(
            f"{BOLD}{mark} {self.task.id} {final}{RESET} in {duration(elapsed)} · "
            f"{state.ahead} commit{'s' if state.ahead != 1 else ''} · "
            f"{state.files_changed} file{'s' if state.files_changed != 1 else ''} "
            f"+{state.insertions} −{state.deletions}{detail}"
        )

    def _leftovers_message(self) -> str:
        return (
            f"limitless: {self.task.id} — work left uncommitted by the agent "
            f"(attempt {self.row.attempt})"
        )

    def _commit_before_close(self) -> str | None:
        """An interactive agent's leftovers, committed while it is still open (the
        driver's thread): CommitRejected reaches the driver, which tells the agent."""
        return self._commit_leftovers(
            self._leftovers_message(), hooks=self.plan.commit_hooks == "run", signing=True
        )

    def _commit_leftovers(self, message: str, *, hooks: bool, signing: bool) -> str | None:
        """Commit what the agent left (inside its sandbox when it has one: commit hooks
        may be the agent's files)."""
        if self.confined is None:
            return worktrees.commit_all(self.worktree, message, hooks=hooks, signing=signing)
        return self.confined.commit_all(message, self._environment(), hooks=hooks, signing=signing)

    def _on_tick(self) -> None:
        """Called by the pty loop a few times a second while the agent runs."""
        if self.driver is not None:
            self.driver.tick()
        if self.confined is not None:
            self.confined.tick()
        if self.headless is not None:
            self.headless.tick()

    def _unchanged(self, outcome: Outcome, state: WorktreeState) -> Verdict | None:
        """A done attempt that changed nothing, of a task that must change something."""
        if outcome.status is not TaskStatus.DONE or not self.plan.changes_required(self.task):
            return None
        if self.store.get_task(self.run.id, self.task.id).status is TaskStatus.DONE:
            return None  # marked done by the user: their word counts
        said = self.headless.stream.facts.final_text if self.headless is not None else ""
        said = said or self.remote_said
        if self.driver is not None and self.driver.closed:
            said = self.driver.last_words
        return judge_changes(state.ahead > 0 or bool(state.dirty_files), said)

    def _wake_supervisor(self) -> None:
        from limitless.tmux.session import TmuxSession

        with contextlib.suppress(LimitlessError, OSError):
            TmuxSession(self.run.tmux_socket, self.run.id).signal(wake_channel(self.run.id))

    # ------------------------------------------------------------ output

    def _log(self, data: bytes) -> None:
        if self.log_file is None or self.log_error:
            return
        try:
            self.log_file.write(data)
        except OSError as exc:
            path = self.store.log_path(self.run.id, self.task.id)
            self.log_error = f"the task log {path} could not be written: {exc.strerror or exc}"
            with contextlib.suppress(OSError):
                os.write(sys.stdout.fileno(), f"limitless: {self.log_error}\r\n".encode())

    def _say(self, line: str) -> None:
        """A line of limitless's own: whole in the log, cut at spaces to the pane."""
        self._pane(line)
        self._log(ANSI.sub("", line).encode() + b"\n")

    def _pane(self, line: str, colour: str = "") -> None:
        for piece in wrap_words(line, terminal_columns()):
            data = f"{colour}{piece}{RESET}\r\n" if colour else f"{piece}\r\n"
            with contextlib.suppress(OSError):
                os.write(sys.stdout.fileno(), data.encode())

    def _still_ours(self) -> bool:
        """Whether the task is still running for this wrapper (not killed, not done)."""
        try:
            status = self.store.get_task(self.run.id, self.task.id).status
        except LimitlessError:
            return False
        return status in (TaskStatus.RUNNING, TaskStatus.WAITING)

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signalled = signum
        if self.remote is not None and self.remote.place is not None:
            if signum == signal.SIGHUP:
                self.remote.detach()  # the pane went away, perhaps not the task: see watch
            else:
                self.remote.request_stop()
        elif self.process is not None:
            self.process.request_stop()
        else:
            raise SystemExit(128 + signum)


def _end_event(status: TaskStatus) -> str:
    """The event kind of an attempt that ended with the task `status`."""
    return {TaskStatus.DONE: "task_done", TaskStatus.KILLED: "task_killed"}.get(
        status, "task_failed"
    )


def main(run_id: str, task_id: str, state_dir: Path) -> int:
    """Entry point of `limitless _exec`: run one attempt of one task in this pane."""
    with Store.open(state_dir) as store:
        run = store.get_run(run_id)
        plan = plan_of(run)
        wrapper = Wrapper(store, run, plan, plan.task(task_id), store.get_task(run_id, task_id))
        wrapper.reattach = os.environ.get(REATTACH_ENV) == "1"
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(signum, wrapper.on_signal)
        return wrapper.execute()
