"""Agent state from several signals: exit status, explicit signals, waiting_regex, idle time.

The supervisor calls `StateWatcher.tick()` every loop with what it saw; the
watcher reads the last screen lines of every active task's pane (one tmux call
for all of them) and moves tasks between `running` and `waiting`.

Signals, strongest first:

1. the wrapper's exit status (the wrapper records it; the watcher never
   overrides an ended task);
2. an explicit signal (`limitless signal waiting|idle|working`, from inside the
   pane or from the agent's hooks — `limitless.agents.hookrelay` for Claude Code),
   which holds until a newer signal or until the screen changes after it (a
   short grace lets the agent finish drawing);
3. the profile's `waiting_regex` on the last screen lines — or, for an
   interactive profile, its `rate_limit_regex` (a provider's "try again later";
   on a screen its program reads, only the line a turn ended on counts);
4. for an interactive program limitless knows (`Program.screen`), what its
   screen shows: a question or permission, a turn running, its idle prompt;
5. for an interactive profile, a screen unchanged for `idle_seconds`.

A waiting task waits for something (`TaskRow.waiting_kind`): `input` (a
question or a permission: shown as *needs input*), `idle` (its turn ended and
it asks nothing: the wrapper ends the task after `idle_done`), or neither
(rate limited, silent).

A state must be seen on two polls running before it changes, so a prompt
flashing by does not flicker the dashboard (a signal superseded within one poll
changes nothing either). Every change is a `task_waiting` / `task_idle` /
`task_working` event with its reason, and the watcher keeps its current evidence in
`<run_dir>/agentstate/<task>.json` for `limitless explain`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from limitless.agents import hookrelay as agenthook
from limitless.errors import LimitlessError, TmuxError, UsageError
from limitless.plan.model import Plan
from limitless.plan.stored import plan_of
from limitless.programs import Program, ScreenState, adapter
from limitless.programs.profiles import AgentProfile
from limitless.states import ControlAction, TaskStatus, Waiting, task_state
from limitless.store import Store, TaskRow
from limitless.tmux.panes import PaneState
from limitless.tmux.session import TmuxSession

log = logging.getLogger(__name__)

SCREEN_LINES = 12  # captured per pane; the whole of it counts as "the output" for idle time
REGEX_LINES = 5  # waiting_regex and rate_limit_regex look at the last lines only
CONFIRM_POLLS = 2  # a heuristic state must be seen on this many polls running
SIGNAL_GRACE_S = 2.0  # screen changes this soon after a signal do not make it stale
EVIDENCE_INTERVAL_S = 2.0  # rewrite an unchanged evidence file at most this often
SIGNAL_KINDS = ("done", "waiting", "idle", "working")
SIGNAL_WAITING = {"waiting": Waiting.INPUT, "idle": Waiting.IDLE}

Source = str  # "signal" | "regex" | "rate_limit" | "screen" | "idle" | "output"


@dataclass(frozen=True)
class Observation:
    """What one poll concluded for one task, and from which signal."""

    state: TaskStatus  # RUNNING or WAITING
    source: Source
    reason: str
    line: str = ""
    kind: Waiting = Waiting.OTHER  # what a WAITING task waits for

    @property
    def shown(self) -> str:
        return task_state(self.state, self.kind)


@dataclass(frozen=True)
class Evidence:
    """The watcher's view of one task at its last poll (written for `explain`)."""

    task_id: str
    attempt: int
    status: str
    observed: str
    source: str
    reason: str
    line: str
    checked_at: float
    screen_changed_at: float
    interactive: bool
    idle_seconds: float
    waiting_regex: str | None
    rate_limit_regex: str | None
    signal: str | None
    signal_at: float | None
    signal_stale: bool
    candidate: str | None
    candidate_polls: int
    last_lines: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Evidence:
        data = json.loads(text)
        names = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in data.items() if key in names})


@dataclass
class _Track:
    """What the watcher remembers about one attempt of one task between polls."""

    attempt: int
    screen: tuple[str, ...] | None = None
    changed_at: float = 0.0
    candidate: str | None = None  # a shown state (`needs_input`, `running`, ...)
    seen: int = 0
    signal_at: float | None = None
    signal_screen: tuple[str, ...] | None = None
    signal_stale: bool = False
    turn_seen: bool = False  # a turn ran in this attempt (an idle screen before one is startup)
    written: str = ""
    written_at: float = 0.0


def _backing_off(row: TaskRow, now: float) -> bool:
    """A waiting task whose driver continues it after a rate limit's back-off."""
    return (
        row.status is TaskStatus.WAITING
        and row.waiting_kind is Waiting.OTHER
        and row.waiting_reason.startswith("rate limited: ")
        and (row.not_before or 0.0) > now
    )


def split_signal(text: str | None) -> tuple[str, str]:
    """`("waiting", "needs permission")` from a stored `last_signal` "waiting: needs permission"."""
    if not text:
        return "", ""
    kind, _, note = text.partition(":")
    return kind.strip(), note.strip()


def evidence_path(store: Store, run_id: str, task_id: str) -> Path:
    """Where the watcher keeps the evidence of one task (beside the task logs)."""
    return store.log_path(run_id, task_id).parent.parent / "agentstate" / f"{task_id}.json"


def read_evidence(store: Store, run_id: str, task_id: str) -> Evidence | None:
    """The watcher's last evidence for a task, or None if it never looked at it."""
    path = evidence_path(store, run_id, task_id)
    try:
        return Evidence.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return None


def clock(ts: float) -> str:
    """`12:04:05` in local time."""
    return time.strftime("%H:%M:%S", time.localtime(ts))


def _matching_line(pattern: re.Pattern[str] | None, lines: Sequence[str]) -> str | None:
    """The last of the last REGEX_LINES lines that `pattern` matches, if any."""
    if pattern is None:
        return None
    for line in reversed(lines[-REGEX_LINES:]):
        if pattern.search(line):
            return line
    return None


class StateWatcher:
    """Decides running ↔ waiting for the run's active tasks."""

    def __init__(self, store: Store, run_id: str, plan: Plan, tmux: TmuxSession) -> None:
        self.store = store
        self.run_id = run_id
        self.plan = plan
        self.tmux = tmux
        self.tracks: dict[str, _Track] = {}
        self._compiled: dict[str, re.Pattern[str] | None] = {}

    # ------------------------------------------------------------ polling

    def tick(self, rows: Mapping[str, TaskRow], panes: Mapping[str, PaneState]) -> None:
        """Look at the active tasks' panes once; change states that held for two polls."""
        active: dict[str, TaskRow] = {}
        for task_id, row in rows.items():
            pane = panes.get(row.pane_id or "")
            if row.status.active and pane is not None and not pane.dead:
                active[task_id] = row
        for task_id in list(self.tracks):
            if task_id not in active:
                del self.tracks[task_id]
        if not active:
            return
        try:
            screens = self.tmux.capture(
                [row.pane_id or "" for row in active.values()], lines=SCREEN_LINES
            )
        except TmuxError:
            return  # tmux did not answer this poll: judge nothing
        now = time.time()
        for row in active.values():
            lines = screens.get(row.pane_id or "")
            if lines is None:
                continue
            try:
                self.look(row, lines, now)
            except LimitlessError as exc:  # e.g. a task added after this plan was read
                log.warning("agent state not judged", extra={"task": row.id, "error": str(exc)})

    def look(self, row: TaskRow, lines: Sequence[str], now: float) -> Observation:
        """Judge one task from its last screen lines at time `now`; act on the result."""
        track = self.tracks.get(row.id)
        if track is None or track.attempt != row.attempt:
            track = _Track(attempt=row.attempt, changed_at=now)
            self.tracks[row.id] = track
        screen = tuple(lines)
        if screen != track.screen:
            track.screen = screen
            track.changed_at = now
        profile = self._profile(row.id)
        observation = self._observe(row, profile, track, screen, now)
        status = self._settle(row, track, observation)
        self._keep_evidence(row, profile, track, observation, status, now)
        return observation

    # ------------------------------------------------------------ judging

    def _profile(self, task_id: str) -> AgentProfile:
        return self.plan.profile(self.plan.task(task_id))

    def _pattern(self, regex: str | None) -> re.Pattern[str] | None:
        if not regex:
            return None
        if regex not in self._compiled:
            try:
                self._compiled[regex] = re.compile(regex)
            except re.error:
                self._compiled[regex] = None
        return self._compiled[regex]

    def _observe(
        self,
        row: TaskRow,
        profile: AgentProfile,
        track: _Track,
        screen: tuple[str, ...],
        now: float,
    ) -> Observation:
        if _backing_off(row, now):
            # the interactive driver waits out a rate limit, then types a continue prompt:
            # its reason ("… — continuing in 30s") stands until then or until the user types
            return Observation(TaskStatus.WAITING, "rate_limit", row.waiting_reason)
        signalled = self._signal(row, track, screen, now)
        if signalled is not None:
            return signalled
        line = _matching_line(self._pattern(profile.waiting_regex), screen)
        if line is not None:
            return Observation(
                TaskStatus.WAITING, "regex", f"waiting_regex matched: {line}", line, Waiting.INPUT
            )
        if profile.interactive:
            seen = _screen_state(adapter(profile.adapter), screen)
            line = _rate_limit_line(self._pattern(profile.rate_limit_regex), seen, screen)
            if line is not None:
                return Observation(TaskStatus.WAITING, "rate_limit", f"rate limited: {line}", line)
            shown = _screen_observation(seen)
            started = row.started_at or 0.0
            if shown is not None and shown.state is TaskStatus.RUNNING:
                track.turn_seen = True
            elif seen is not None and seen.after_turn:
                # e.g. Codex's "■ Conversation interrupted" after an approval was refused:
                # a turn too short for any poll to see it running, and no notify for it
                track.turn_seen = True
            elif (row.last_signal_at or 0.0) >= started and row.last_signal:
                track.turn_seen = True  # its hooks report: a Stop will say when a turn ends
            if shown is not None and (track.turn_seen or shown.kind is not Waiting.IDLE):
                return shown
            idle = now - track.changed_at
            if profile.idle_seconds > 0 and idle >= profile.idle_seconds:
                return Observation(
                    TaskStatus.WAITING,
                    "idle",
                    f"no output for over {profile.idle_seconds:g}s (idle_seconds)",
                )
        return Observation(TaskStatus.RUNNING, "output", "output goes on, no prompt on screen")

    def _signal(
        self, row: TaskRow, track: _Track, screen: tuple[str, ...], now: float
    ) -> Observation | None:
        """The explicit signal given during this attempt, while the screen has not moved on."""
        kind, note = split_signal(row.last_signal)
        at = row.last_signal_at
        if kind not in ("waiting", "working") or at is None:
            return None
        if row.started_at is not None and at < row.started_at:
            return None  # given to an earlier attempt
        if track.signal_at != at:
            track.signal_at = at
            track.signal_screen = screen
            track.signal_stale = False
        elif not track.signal_stale and screen != track.signal_screen:
            if now - at <= SIGNAL_GRACE_S:
                track.signal_screen = screen
            else:
                track.signal_stale = True
        if track.signal_stale:
            return None
        waiting = SIGNAL_WAITING.get(kind)
        state = TaskStatus.RUNNING if waiting is None else TaskStatus.WAITING
        # what the signal says is the reason a user reads; `explain` shows when it came
        return Observation(
            state,
            "signal",
            note or f"signal {kind} at {clock(at)}",
            kind=waiting or Waiting.OTHER,
        )

    def _settle(self, row: TaskRow, track: _Track, observation: Observation) -> str:
        """Change the task's state once the observation held long enough; the state after
        (as shown: `running`, `needs_input`, `idle`, `waiting`)."""
        before = task_state(row.status, row.waiting_kind)
        if observation.shown == before:
            track.candidate, track.seen = None, 0
            if row.status is TaskStatus.WAITING and row.waiting_reason != observation.reason:
                self._update_reason(row, observation.reason)
            return before
        if track.candidate == observation.shown:
            track.seen += 1
        else:
            track.candidate, track.seen = observation.shown, 1
        if track.seen < CONFIRM_POLLS:
            return before
        track.candidate, track.seen = None, 0
        waiting = observation.state is TaskStatus.WAITING
        if not waiting:
            kind = "task_working"
        elif observation.kind is Waiting.IDLE:
            kind = "task_idle"
        else:
            kind = "task_waiting"
        event = {
            "source": observation.source,
            "reason": observation.reason,
            "line": observation.line,
            "waiting": str(observation.kind) if waiting else "",
        }
        changed = self.store.transition(
            self.run_id,
            row.id,
            (row.status,),
            observation.state,
            event=(kind, event),
            waiting_reason=observation.reason if waiting else "",
            waiting_kind=observation.kind if waiting else Waiting.OTHER,
        )
        if changed is None:
            return before
        return observation.shown

    def _update_reason(self, row: TaskRow, reason: str) -> None:
        with contextlib.suppress(LimitlessError):
            self.store.transition(
                self.run_id,
                row.id,
                (TaskStatus.WAITING,),
                TaskStatus.WAITING,
                waiting_reason=reason,
            )

    # ------------------------------------------------------------ evidence

    def _keep_evidence(
        self,
        row: TaskRow,
        profile: AgentProfile,
        track: _Track,
        observation: Observation,
        status: str,
        now: float,
    ) -> None:
        kind, _ = split_signal(row.last_signal)
        evidence = Evidence(
            task_id=row.id,
            attempt=row.attempt,
            status=status,
            observed=observation.shown,
            source=observation.source,
            reason=observation.reason,
            line=observation.line,
            checked_at=now,
            screen_changed_at=track.changed_at,
            interactive=profile.interactive,
            idle_seconds=profile.idle_seconds,
            waiting_regex=profile.waiting_regex,
            rate_limit_regex=profile.rate_limit_regex if profile.interactive else None,
            signal=row.last_signal if kind in SIGNAL_KINDS else None,
            signal_at=row.last_signal_at,
            signal_stale=track.signal_stale,
            candidate=track.candidate,
            candidate_polls=track.seen,
            last_lines=list(track.screen or ())[-REGEX_LINES:],
        )
        key = json.dumps({**asdict(evidence), "checked_at": 0})
        if key == track.written and now - track.written_at < EVIDENCE_INTERVAL_S:
            return
        path = evidence_path(self.store, self.run_id, row.id)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(evidence.to_json(), encoding="utf-8")
            temporary.replace(path)
        except OSError:
            return
        track.written, track.written_at = key, now


def _screen_state(program: Program | None, screen: Sequence[str]) -> ScreenState | None:
    """What a known interactive program's screen shows (None: not recognised)."""
    return program.screen(screen) if program is not None else None


def _rate_limit_line(
    pattern: re.Pattern[str] | None, seen: ScreenState | None, screen: Sequence[str]
) -> str | None:
    """The screen line saying the agent's turn ended on a rate limit, if it did.

    On a screen its program reads, a running turn or a question means the program is
    still at it: a rate-limit line above them is its own retry or an older turn's end
    (Codex's "■ exceeded retry limit" stays on screen while the continued turn runs).
    At the idle prompt, the line the turn left above it is the one that counts.
    """
    if pattern is None:
        return None
    if seen is not None and seen.state != "idle":
        return None
    if seen is not None and seen.line:
        return seen.line if pattern.search(seen.line) else None
    return _matching_line(pattern, screen)


def _screen_observation(seen: ScreenState | None) -> Observation | None:
    """What a known interactive program's screen shows, as an observation."""
    if seen is None:
        return None
    if seen.state == "working":
        return Observation(TaskStatus.RUNNING, "screen", seen.reason, seen.line)
    kind = Waiting.INPUT if seen.state == "input" else Waiting.IDLE
    return Observation(TaskStatus.WAITING, "screen", seen.reason, seen.line, kind)


# ---------------------------------------------------------------- signals


def record_signal(
    store: Store,
    run_id: str,
    task_id: str,
    kind: str,
    *,
    note: str = "",
    source: str = "cli",
    session_id: str | None = None,
) -> str:
    """Record `limitless signal KIND` for a task; `done` also asks the supervisor to end it.

    Returns what happened, in words; UsageError for an unknown kind, run or task
    or a task that is not running or waiting.
    """
    if kind not in SIGNAL_KINDS:
        msg = f"unknown signal {kind!r}; use one of: {', '.join(SIGNAL_KINDS)}"
        raise UsageError(msg)
    row = store.get_task(run_id, task_id)
    note = " ".join(note.split())[:200]
    fields: dict[str, object] = {}
    if session_id:
        fields["session_id"] = session_id
    if not row.status.active:
        if fields:
            store.update_task(run_id, task_id, **fields)
        msg = f"task {task_id} of run {run_id} is {row.status}, not running or waiting"
        raise UsageError(f"{msg}: signal {kind} ignored")
    now = time.time()
    fields.update(last_signal=f"{kind}: {note}" if note else kind, last_signal_at=now)
    store.update_task(run_id, task_id, **fields)
    with contextlib.suppress(OSError):  # the hook relay's memory of its last signal is old now
        os.unlink(agenthook.last_path(str(store.state_dir), run_id, task_id))
    store.add_event(run_id, "task_signal", task_id, signal=kind, note=note, source=source)
    if kind == "done":
        store.request(run_id, ControlAction.DONE, task_id, source=f"signal ({source})")
        return f"{task_id}: done requested; the supervisor ends it"
    return f"{task_id}: signal {kind} recorded"


# ---------------------------------------------------------------- explain

HISTORY_KINDS = frozenset(
    {
        "task_launched",
        "task_started",
        "task_signal",
        "task_waiting",
        "task_idle",
        "task_working",
        "task_dialog",
        "task_countdown",
        "task_countdown_cancelled",
        "task_closing",
        "task_done",
        "task_failed",
        "task_killed",
        "task_retry",
        "task_rate_limited",
        "task_continued",
        "task_continue_cancelled",
        "task_commit_rejected",
        "task_resumed",
        "request_handled",
    }
)
HISTORY_LIMIT = 15


@dataclass(frozen=True)
class Explanation:
    """A task's state and every signal behind it, strongest first (`limitless explain`)."""

    run_id: str
    task_id: str
    status: str
    attempt: int
    reason: str
    signals: list[tuple[str, str]]
    history: list[str]

    def lines(self) -> list[str]:
        shown = self.status.replace("_", " ")
        head = f"{self.task_id} ({self.run_id}, attempt {self.attempt}): {shown}"
        out = [head + (f" — {self.reason}" if self.reason else ""), "", "signals, strongest first:"]
        width = max(len(name) for name, _ in self.signals)
        out += [f"  {name.ljust(width)}  {text}" for name, text in self.signals]
        if self.history:
            out += ["", "history:"] + [f"  {line}" for line in self.history]
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            "run": self.run_id,
            "task": self.task_id,
            "status": self.status,
            "attempt": self.attempt,
            "reason": self.reason,
            "signals": [{"signal": name, "evidence": text} for name, text in self.signals],
            "history": self.history,
        }


def _ago(ts: float, now: float) -> str:
    return f"{clock(ts)} ({max(0.0, now - ts):.0f}s ago)"


def explain(store: Store, run_id: str, task_id: str, *, now: float | None = None) -> Explanation:
    """Why task `task_id` of run `run_id` is in its state, from the store and the watcher."""
    now = time.time() if now is None else now
    run = store.get_run(run_id)
    row = store.get_task(run_id, task_id)
    plan = plan_of(run)
    profile = plan.profile(plan.task(task_id))
    seen = read_evidence(store, run_id, task_id)
    if seen is not None and seen.attempt != row.attempt:
        seen = None
    live = seen is not None and row.status.active
    setup_failed = bool(plan.setup) and not row.setup_done and row.status.terminal
    signals: list[tuple[str, str]] = [("exit status", _exit_text(row, setup_failed))]
    kind, note = split_signal(row.last_signal)
    if row.last_signal_at is not None and kind:
        text = f"{kind} at {_ago(row.last_signal_at, now)}" + (f": {note}" if note else "")
        if live and seen is not None and seen.signal_stale:
            text += "; no longer counts: the screen changed after it"
        elif row.started_at is not None and row.last_signal_at < row.started_at:
            text += "; given to an earlier attempt"
    else:
        text = (
            "none (`limitless signal done|waiting|idle|working` in the pane, or the agent's hooks)"
        )
    signals.append(("explicit signal", text))
    signals.append(("waiting_regex", _regex_text(profile.waiting_regex, "regex", seen, live)))
    if profile.interactive:
        signals.append(
            ("rate_limit_regex", _regex_text(profile.rate_limit_regex, "rate_limit", seen, live))
        )
        program = adapter(profile.adapter)
        if program is not None and program.interactive:
            signals.append(("program screen", _screen_text(program, seen, live)))
        signals.append(("idle", _idle_text(profile, seen, live, now)))
        idle_done = plan.idle_done_of(plan.task(task_id))
        signals.append(("idle_done", _idle_done_text(row, idle_done, now)))
    else:
        signals.append(("idle", "not used: the profile is not interactive"))
    if seen is not None and live:
        poll = f"last poll {_ago(seen.checked_at, now)}; it sees {seen.observed} ({seen.source})"
        if seen.candidate:
            poll += f"; {seen.candidate} seen on {seen.candidate_polls} of {CONFIRM_POLLS} polls"
        signals.append(("watcher", poll))
        if seen.last_lines:
            signals.append(("screen", " ⏎ ".join(seen.last_lines)))
    session = row.session_id or "none seen"
    if row.session_id and profile.resume_command:
        session += f" (a retry runs: {' '.join(profile.resume_command)})"
    signals.append(("session", session))
    reason = row.waiting_reason if row.status is TaskStatus.WAITING else row.reason
    status = task_state(row.status, row.waiting_kind)
    history = [
        _event_text(event.ts, event.kind, event.data)
        for event in store.events(run_id)
        if event.task_id == task_id and event.kind in HISTORY_KINDS
    ][-HISTORY_LIMIT:]
    return Explanation(
        run_id=run_id,
        task_id=task_id,
        status=status,
        attempt=row.attempt,
        reason=reason,
        signals=signals,
        history=history,
    )


def _exit_text(row: TaskRow, setup_failed: bool = False) -> str:
    if row.status.active:
        return f"none yet: the wrapper (pid {row.pid or '?'}) still runs the agent"
    if setup_failed and row.exit_code is not None:
        return "none: the agent never started" + (f" — {row.reason}" if row.reason else "")
    if row.exit_code is not None:
        return f"the agent exited with {row.exit_code}" + (f" — {row.reason}" if row.reason else "")
    if row.status.terminal:
        return f"none: it is {row.status}" + (f" — {row.reason}" if row.reason else "")
    return f"none: not started ({row.status})"


def _regex_text(regex: str | None, source: str, seen: Evidence | None, live: bool) -> str:
    if not regex:
        return "the profile has none"
    if not live or seen is None:
        return f"{regex} — not being watched now"
    if seen.source == source:
        return f"matched {seen.line!r} — {regex}"
    return f"no match in the last {REGEX_LINES} screen lines — {regex}"


def _idle_text(profile: AgentProfile, seen: Evidence | None, live: bool, now: float) -> str:
    if profile.idle_seconds <= 0:
        return "off (idle_seconds: 0)"
    if not live or seen is None:
        return f"waiting after {profile.idle_seconds:g}s without output — not being watched now"
    idle = max(0.0, now - seen.screen_changed_at)
    return f"screen unchanged for {idle:.0f}s (waiting after {profile.idle_seconds:g}s)"


def _screen_text(program: Program, seen: Evidence | None, live: bool) -> str:
    if not live or seen is None:
        return f"what {program.display}'s screen shows — not being watched now"
    if seen.source == "screen":
        return f"{seen.observed.replace('_', ' ')}: {seen.reason}"
    shown = program.screen(seen.last_lines)
    if shown is None:
        return "no dialog, running turn or idle prompt recognised in the last lines"
    return f"{shown.state}: {shown.reason} (a stronger signal decides)"


def _idle_done_text(row: TaskRow, idle_done: float, now: float) -> str:
    rule = f"{idle_done:g}s after a turn ends with nothing asked, unless you type in the pane"
    if row.idle_done_at is not None and row.status.active:
        left = max(0.0, row.idle_done_at - now)
        return f"done at {clock(row.idle_done_at)} (in {left:.0f}s) unless you type ({rule})"
    return rule


def _event_text(ts: float, kind: str, data: Mapping[str, object]) -> str:
    if kind in ("task_waiting", "task_idle", "task_working"):
        return f"{clock(ts)} {kind} ({data.get('source')}): {data.get('reason')}"
    if kind == "task_signal":
        note = f": {data['note']}" if data.get("note") else ""
        return f"{clock(ts)} task_signal {data.get('signal')} from {data.get('source')}{note}"
    details = ", ".join(f"{key}={value}" for key, value in data.items() if value not in ("", None))
    return f"{clock(ts)} {kind}" + (f" ({details})" if details else "")
