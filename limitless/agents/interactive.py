"""Beside an interactive agent in its pane: first-run dialogs, `idle_done`, a clean close.

The wrapper (`execpane`) runs the agent in a pty and hands the driver what
passes by: the agent's output (`output`), the keys the user types in the pane
(`typed`) and the clock (`tick`, several times a second). The driver

- answers the dialogs the program shows before its first prompt
  (`Program.startup_dialog`: trust, API key, bypass warning), or stops the
  agent when one cannot be answered for the user (onboarding, login), saying why;
- once a turn has run and the task's state (decided by `agentstate` from the
  hooks and the screen) is idle — the turn ended, nothing asked — counts
  `idle_done` down; the deadline is the row's `idle_done_at`, which `status`,
  `explain` and the dashboard show. Typing in the pane cancels it until the
  next turn ends;
- at the deadline commits what the agent left while it is still open (`commit`,
  the wrapper's, in a thread so the pane stays live; the repository's hooks run).
  When a hook refuses it, its words are typed into the agent as a prompt
  (`hookfix`) and the countdown runs again after the agent's next turn; the
  `hookfix.MAX_REJECTIONS`-th refusal closes the agent and the task fails with
  the hook's output. Otherwise it closes the agent cleanly (`Program.close_keys`,
  `/exit` for Claude Code; its process tree after CLOSE_GRACE_S) and the task
  ends done — or failed, by the no-silent-success rules;
- when a turn ended on a lasting rate limit or overload (Claude Code's
  `StopFailure` hook, Codex's "exceeded retry limit" line), counts nothing down:
  records the task waiting as rate limited, waits the back-off
  (`ratelimit.backoff_s`), then types CONTINUE_PROMPT into the agent — unless
  the user typed first. After `ratelimit.MAX_FREE_RETRIES` hits the turn ends
  like any other and `idle_done` ends the task;
- prices the agent's session transcripts (`Program.transcript_cost`) whenever
  a turn ends, and once more at the end.

It never writes to the pane: the agent's TUI owns the screen while it runs
(what it types reaches the agent, as a person's keys would).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from limitless.agents import hookfix, ratelimit
from limitless.agents.hookrelay import hook_log_path
from limitless.errors import LimitlessError
from limitless.git.runner import CommitRejected
from limitless.programs import Program
from limitless.states import TaskStatus, Waiting
from limitless.store import Store, TaskRow

log = logging.getLogger(__name__)

POLL_S = 0.5  # how often the task's row is read
FLIP_GRACE_S = 2.0  # a turn longer than this shows as running (the watcher needs 0.5 s)
KEY_GAP_S = 0.3  # between the close keys (a TUI draws its command menu in between)
CLOSE_GRACE_S = 10.0  # after the close keys, the process tree is ended
DIALOG_PAUSE_S = 1.0  # the same dialog is not answered twice within this
TEXT_KEPT = 16_384  # characters of recent output searched for dialogs
# Terminal escape sequences (colours, cursor moves, titles, replies to queries).
ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1bP[^\x1b]*\x1b\\"
    r"|\x1b[@-Z\\-_0-9=>]"
    r"|\x1bO."
)
WHITESPACE = re.compile(r"\s+")
CONTINUE_SHOWS_S = 30.0  # a typed prompt's turn shows by then, or it is counted down
CONTINUING = " — continuing in "
CONTINUE_PROMPT = "The model was rate limited; continue where you stopped."
# The idle reason of a turn Claude Code ended on an error (hookrelay's StopFailure)
# that a wait cures: its `error` field is `rate_limit` or `overloaded`.
ERROR_TURN = "turn ended on an error"
PASSING_ERRORS = re.compile(r"(?i)\b(?:rate[ _-]?limit\w*|overloaded|429|529)\b")


def passing_error(reason: str) -> str:
    """The error a turn ended on, when a wait cures it ("" for any other reason)."""
    if not reason.startswith(ERROR_TURN):
        return ""
    said = reason.removeprefix(ERROR_TURN).lstrip(": ")
    return said if PASSING_ERRORS.search(said) else ""


def rate_limit_of(row: TaskRow) -> str:
    """What the row says about a turn that ended on a rate limit ("" when it did not)."""
    if row.status is not TaskStatus.WAITING:
        return ""
    reason = row.waiting_reason or ""
    if row.waiting_kind is Waiting.IDLE:
        return passing_error(reason)
    if row.waiting_kind is Waiting.OTHER and ratelimit.is_rate_limited(reason):
        if CONTINUING in reason:
            return ""  # the driver's own back-off, not a new rate limit
        return reason.removeprefix(ratelimit.REASON_PREFIX)
    return ""


def typed_keys(data: bytes) -> bool:
    """Whether input from the pane holds a key a person pressed, not only the
    terminal's answers to the program's queries (colours, focus, cursor reports)."""
    text = data.decode("utf-8", errors="replace")
    return bool(ESCAPES.sub("", text))


def rate_limited_row(row: TaskRow) -> bool:
    """The row reads rate limited (the screen's, a turn's end, or the driver's back-off)."""
    return (
        row.status is TaskStatus.WAITING
        and row.waiting_kind is Waiting.OTHER
        and ratelimit.is_rate_limited(row.waiting_reason)
    )


def idle_row(row: TaskRow) -> bool:
    return row.status is TaskStatus.WAITING and row.waiting_kind is Waiting.IDLE


class InteractiveDriver:
    """One attempt of one interactive agent, seen from beside its pty."""

    def __init__(
        self,
        store: Store,
        row: TaskRow,
        program: Program | None,
        idle_done_s: float,
        send: Callable[[bytes], None],
        stop: Callable[[], None],
        backoff: Callable[[int], float] = ratelimit.backoff_s,
        commit: Callable[[], str | None] | None = None,
    ) -> None:
        """`commit` commits the agent's leftovers (the new commit, or None: nothing to
        commit), raising CommitRejected when a hook refuses; None: nothing is committed
        before the close."""
        self.store = store
        self.run_id = row.run_id
        self.task_id = row.id
        self.attempt = row.attempt
        self.program = program
        self.idle_done_s = idle_done_s
        self.send = send
        self.stop = stop
        self.started = time.time()
        self.text = ""  # recent output, escapes and whitespace removed
        self.startup = program is not None  # dialogs are answered until a turn ran
        self.answered: dict[str, float] = {}
        self.turn_at: float | None = None  # the latest evidence of a turn (its start, a tool)
        self.idle_seen_at: float | None = None  # first poll of the row's current idle spell
        self.counting_for: float | None = None  # the turn whose end is being counted down
        self.cancelled_for: float | None = None  # the turn whose countdown the user stopped
        self.deadline: float | None = None
        self.closing_at: float | None = None
        self.keys: list[tuple[float, bytes]] = []
        self.closed = False  # it closed the agent after idle_done
        self.failure = ""  # why it stopped the agent (a dialog it cannot answer)
        self.notes: list[str] = []  # what it did, for the task log
        self.last_words = ""  # why the agent was idle when its countdown began
        self.counted = False  # a countdown began: the first turn is over
        self.last_poll = 0.0
        self.backoff = backoff
        self.rate_hits = 0  # turns of this attempt that ended on a rate limit
        self.limited_for: float | None = None  # the turn whose rate limit was handled
        self.continue_at: float | None = None  # when the continue prompt is due (epoch)
        self.rate_words = ""  # the latest rate limit, named when the task ends on it
        self.continued_at: float | None = None  # until the row leaves the old rate limit
        self.commit = commit
        self.committing: threading.Thread | None = None  # the commit before the close
        self.committed: str | Exception | None = None  # what the thread ended with
        self.typed_since_commit = False  # the user took over while it committed
        self.rejections = 0  # commits of this attempt a repository hook refused
        self.fixes_asked = 0  # of them, typed into the agent for it to fix
        self.fix_asked_at: float | None = None  # when the hook's words were typed (epoch)
        self.before_cost: Callable[[], None] | None = None  # brings a host's transcripts here

    # ------------------------------------------------------------ callbacks

    def output(self, data: bytes) -> None:
        """The agent printed `data`: a turn starting, or a dialog of its first start
        (answered before the first turn; the ones that fail it, until that turn ends —
        later the same words would more likely be a file's content on screen)."""
        if self.program is None or self.failure:
            return
        chunk = WHITESPACE.sub("", ESCAPES.sub("", data.decode("utf-8", errors="replace")))
        self.text = (self.text + chunk)[-TEXT_KEPT:]
        marker = self.program.busy_marker
        if marker and marker in self.text[-(len(chunk) + len(marker)) :].lower():
            self._turn_ran()
        if self.counted:
            return
        answer = self.program.startup_dialog(self.text)
        if answer is None:
            return
        if answer.fail:
            self.failure = answer.fail
            self._event("task_dialog", dialog=answer.name, answer="", reason=answer.fail)
            self.stop()
            return
        now = time.monotonic()
        if (
            not self.startup
            or now - self.answered.get(answer.name, -DIALOG_PAUSE_S) < DIALOG_PAUSE_S
        ):
            return
        self.answered[answer.name] = now
        self.text = ""
        self.send(answer.keys)
        self.notes.append(answer.note)
        self._event("task_dialog", dialog=answer.name, answer=answer.note)

    def typed(self, data: bytes) -> None:
        """The user typed `data` in the pane (it already went to the agent)."""
        if not typed_keys(data):
            return
        self.startup = False  # a person is at the keyboard: the dialogs are theirs
        if self.committing is not None:
            self.typed_since_commit = True
        if self.continue_at is not None:
            self.continue_at = None
            self.cancelled_for = self.turn_at
            self._update(not_before=None)
            self._event("task_continue_cancelled", reason="you typed in the pane")
        if self.deadline is not None and not self.closed:
            self.cancelled_for = self.counting_for
            self._stop_countdown()
            self._event("task_countdown_cancelled", reason="you typed in the pane")

    def tick(self) -> None:
        """Called several times a second: send due keys, read the row, count down."""
        now = time.monotonic()
        while self.keys and self.keys[0][0] <= now:
            self.send(self.keys.pop(0)[1])
        if self.closing_at is not None and now >= self.closing_at:
            self.closing_at = None
            self.stop()  # the close keys did not end it
        if self.committing is not None:
            if self.committing.is_alive():
                return  # nothing is judged while the leftovers are being committed
            self.committing = None
            self._committed()
        if now - self.last_poll < POLL_S:
            return
        self.last_poll = now
        try:
            row = self.store.get_task(self.run_id, self.task_id)
        except LimitlessError:
            return
        self._follow(row)

    # ------------------------------------------------------------ the countdown

    def _follow(self, row: TaskRow) -> None:
        """The countdown runs while the row is idle after the latest turn ended.

        "After": the idle state's evidence is newer than the turn's (its start in
        the output, or a working signal) — the Stop hook's time, or when this
        driver first saw the row idle. When neither is newer but the row has been
        idle for FLIP_GRACE_S since the turn's evidence, the turn was too short for
        the watcher to show it running: it is over too.
        """
        now = time.time()
        kind = (row.last_signal or "").partition(":")[0].strip()
        signal_at = row.last_signal_at or 0.0
        fresh = signal_at >= self.started - 1.0
        if fresh and kind == "working":
            self._turn_ran(signal_at)
        # codex: the screen's rate limit; claude: a StopFailure hook newer than the turn
        # (the row's reason alone may be an older turn's, or replaced by the screen's)
        limited = rate_limit_of(row) if row.waiting_kind is Waiting.OTHER else ""
        if not limited and idle_row(row) and fresh and kind == "idle":
            note = (row.last_signal or "").partition(":")[2].strip()
            limited = passing_error(note) if signal_at > (self.turn_at or 0) else ""
        if self.continued_at is not None:
            # the row reads the rate limit the continue answered until the watcher sees
            # what came after it — the continued turn may have begun and ended by then
            # (codex: a turn of under a second): not a new hit until the row left it
            if not rate_limited_row(row) or now - self.continued_at > CONTINUE_SHOWS_S:
                self.continued_at = None
            else:
                return
        if self.continue_at is not None:  # backing off: nothing is counted down
            # the row's not_before is the deadline (as for a retry), so it can be moved
            due = self.continue_at if row.not_before is None else row.not_before
            if now >= due:
                self._continue()
            return
        if limited and self.turn_at is not None and not self.closed:
            if self.limited_for != self.turn_at and self._rate_limited(limited):
                return
            if (
                self.limited_for == self.turn_at
                and self.rate_hits <= ratelimit.MAX_FREE_RETRIES
                and self.cancelled_for != self.turn_at
            ):
                return  # the continue was sent; its turn has not shown yet
        idle = idle_row(row)
        if limited and not idle and self.rate_hits >= ratelimit.MAX_FREE_RETRIES:
            idle = row.waiting_kind is Waiting.OTHER  # codex: the limit stays on screen
        if not idle:
            self.idle_seen_at = None
            self._stop_countdown()
            return
        if self.idle_seen_at is None:
            self.idle_seen_at = now
        turn = self.turn_at
        if turn is None or self.closed:
            return
        if self.counting_for is not None and self.counting_for != turn:
            self._stop_countdown()  # a new turn began while the row still read idle
        if self.counting_for == turn:
            if self.deadline is not None and now >= self.deadline:
                self._commit_then_close()
            return
        if self.cancelled_for == turn:
            return
        if (
            self.fix_asked_at is not None
            and turn <= self.fix_asked_at
            and now - self.fix_asked_at < CONTINUE_SHOWS_S
        ):
            return  # the hook's words were typed; the agent's turn has not shown yet
        ended = (
            (fresh and kind == "idle" and signal_at > turn)
            or self.idle_seen_at > turn
            or now - turn >= FLIP_GRACE_S
        )
        if not ended:
            return
        self.counting_for = turn
        self.counted = True
        self.last_words = row.waiting_reason
        if limited:
            self.last_words = (
                f"{ratelimit.reason_for(limited)} (after {self.rate_hits} hits, not continued)"
            )
        self.deadline = now + self.idle_done_s
        self._update(idle_done_at=self.deadline)
        self._event("task_countdown", seconds=self.idle_done_s, reason=row.waiting_reason)
        self.refresh_cost()

    def _rate_limited(self, limited: str) -> bool:
        """The latest turn ended on a rate limit: back off, then continue (True), or
        let `idle_done` end it after too many (False)."""
        self.limited_for = self.turn_at
        self.rate_words = limited
        self.rate_hits += 1
        if self.rate_hits > ratelimit.MAX_FREE_RETRIES:
            return False
        delay = self.backoff(self.rate_hits)
        self._stop_countdown()
        self.continue_at = time.time() + delay
        reason = f"{ratelimit.reason_for(limited)}{CONTINUING}{delay:g}s"
        self._update(
            status=TaskStatus.WAITING,
            waiting_kind=Waiting.OTHER,
            waiting_reason=reason,
            not_before=self.continue_at,
        )
        self._event("task_rate_limited", delay_s=delay, hit=self.rate_hits, reason=reason)
        self.notes.append(f"rate limited ({limited}); continued after {delay:g}s")
        return True

    def _continue(self) -> None:
        """The back-off is over: type the continue prompt, then Enter."""
        self.continue_at = None
        self.continued_at = time.time()
        self._update(not_before=None)
        now = time.monotonic()
        self.keys.append((now, CONTINUE_PROMPT.encode()))
        self.keys.append((now + KEY_GAP_S, b"\r"))
        self._event("task_continued", hit=self.rate_hits, prompt=CONTINUE_PROMPT)

    def _commit_then_close(self) -> None:
        """`idle_done` ran out: commit the leftovers while the agent is open, then close
        it — or, when a hook refuses the commit, hand the refusal to the agent."""
        self.deadline = None
        self._update(idle_done_at=None)
        if self.commit is None:
            self._close()
            return
        self.committed = None
        self.typed_since_commit = False
        self.committing = threading.Thread(
            target=self._commit_in_thread, name="leftovers-commit", daemon=True
        )
        self.committing.start()

    def settle(self) -> None:
        """The agent ended: wait for a commit still running (the wrapper commits next)."""
        if self.committing is not None:
            self.committing.join()
            self.committing = None

    def _commit_in_thread(self) -> None:
        assert self.commit is not None
        try:
            self.committed = self.commit()
        except Exception as exc:  # handed to the pty loop's thread, which judges it
            self.committed = exc

    def _committed(self) -> None:
        """The commit before the close ended (on the pty loop's thread)."""
        result, self.committed = self.committed, None
        if isinstance(result, CommitRejected):
            self._rejected(result)
            return
        if isinstance(result, str):
            self.notes.append(f"committed the work left uncommitted as {result[:10]}")
        elif isinstance(result, Exception):
            # not a hook's refusal (git failed): the wrapper's own commit at the end says so
            self.notes.append(f"committing before the close failed: {result}")
        if self.typed_since_commit:
            return  # the user typed meanwhile: the agent stays theirs until its next turn
        self._close()

    def _rejected(self, rejected: CommitRejected) -> None:
        """A repository hook refused the leftovers: type its words into the agent, or,
        after MAX_REJECTIONS, close it (the wrapper fails the task with the hook's words).
        A user who typed meanwhile keeps the agent: their next turn is counted down."""
        self.rejections += 1
        count, limit = self.rejections, hookfix.MAX_REJECTIONS
        if self.typed_since_commit:
            action = "left to you (you typed in the pane)"
        elif count >= limit:
            action = "the task fails"
        else:
            action = "asked the agent to fix it"
        self._event(
            "task_commit_rejected",
            hook=rejected.hook,
            output=rejected.output,
            rejection=count,
            limit=limit,
            action=action,
        )
        self.notes.append(f"the {rejected.hook} hook refused the commit ({count} of {limit})")
        if count >= limit and not self.typed_since_commit:
            self._close()
            return
        reason = hookfix.status_reason(rejected, count)
        self._update(reason=reason, waiting_reason=reason)
        if self.typed_since_commit:
            self.cancelled_for, self.counting_for = self.counting_for, None
            return
        self.counting_for = None
        self.fixes_asked += 1
        self.fix_asked_at = time.time()
        now = time.monotonic()
        self.keys.append((now, hookfix.fix_prompt(rejected).encode()))
        self.keys.append((now + KEY_GAP_S, b"\r"))

    def _stop_countdown(self) -> None:
        self.counting_for = None
        if self.deadline is not None:
            self.deadline = None
            self._update(idle_done_at=None)

    def _turn_ran(self, at: float | None = None) -> None:
        at = time.time() if at is None else at
        if self.turn_at is None or at > self.turn_at:
            self.turn_at = at
        self.startup = False

    def _close(self) -> None:
        self.closed = True
        self.deadline = None
        self._event(
            "task_closing",
            reason=f"its turn ended {self.idle_done_s:g}s ago with nothing asked (idle_done)",
        )
        keys = self.program.close_keys if self.program is not None else ()
        if not keys:
            self.stop()
            return
        now = time.monotonic()
        self.keys = [(now + KEY_GAP_S * index, key) for index, key in enumerate(keys)]
        self.closing_at = now + KEY_GAP_S * len(keys) + CLOSE_GRACE_S

    # ------------------------------------------------------------ cost

    def refresh_cost(self) -> float | None:
        """Price the transcripts of this attempt's sessions; record and return the cost."""
        if self.program is None:
            return None
        if self.before_cost is not None:
            self.before_cost()
        cost = self.program.transcript_cost(self.transcripts())
        if cost is not None:
            with contextlib.suppress(LimitlessError):
                self.store.record_cost(self.run_id, self.task_id, self.attempt, round(cost, 6))
        return cost

    def transcripts(self) -> list[Path]:
        """The transcript files this attempt's hooks named, in order."""
        path = Path(hook_log_path(str(self.store.state_dir), self.run_id, self.task_id))
        found: dict[str, None] = {}
        with contextlib.suppress(OSError), path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                transcript = entry.get("transcript_path") if isinstance(entry, dict) else None
                if entry.get("attempt") == self.attempt and isinstance(transcript, str):
                    found[transcript] = None
        return [Path(name) for name in found]

    # ------------------------------------------------------------ store

    def _update(self, **fields: object) -> None:
        with contextlib.suppress(LimitlessError):
            self.store.update_task(self.run_id, self.task_id, **fields)

    def _event(self, kind: str, **data: object) -> None:
        with contextlib.suppress(LimitlessError):
            self.store.add_event(self.run_id, kind, self.task_id, **data)
