"""A headless program's output in its pane: its events (JSON lines, or text an adapter
reads) kept raw beside the task log and shown as readable lines; the yes/no questions
it stops on answered by the task's `approve`, or left to the user until `idle_done`;
its own account of a failure its exit code may hide.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from limitless.agents import ratelimit
from limitless.agents.lines import ANSI, LineParser
from limitless.agents.pty import PtyResult
from limitless.fmt import duration
from limitless.programs import EventStream, PaneLine, Program, Question
from limitless.programs.base import Approve
from limitless.programs.verdict import judge_stream


class HeadlessOutput:
    """One attempt's headless program, seen through its adapter's event reader."""

    def __init__(
        self,
        program: Program,
        stream: EventStream,
        *,
        approve: Approve,
        idle_done_s: float,
        say_line: Callable[[PaneLine], None],
        send: Callable[[bytes], None],
        signal: Callable[[str, str], None],
    ) -> None:
        self.program = program
        self.stream = stream
        self.approve = approve
        self.idle_done_s = idle_done_s
        self.say_line = say_line
        self.send = send
        self.signal = signal
        self.events: BinaryIO | None = None
        self.asking = ""  # the unfinished line the program asked its question on
        self.pending: tuple[Question, float] | None = None  # left to the user, until then

    def open_events(self, path: Path) -> None:
        """Keep the raw events in `path` (none kept when it cannot be opened)."""
        try:
            self.events = open(path, "ab", buffering=0)  # noqa: SIM115 - closed by close()
        except OSError:
            self.events = None

    def close(self) -> None:
        if self.events is not None:
            self.events.close()
            self.events = None

    def show(self, parser: LineParser, data: bytes) -> None:
        """The program's output as readable lines in the pane and the log."""
        if self.events is not None:
            with contextlib.suppress(OSError):
                self.events.write(data)
        text = parser.partial + data.decode("utf-8", errors="replace")
        pieces = re.split(r"\r\n|[\r\n]", text)  # CRLF is one break: blank lines mean something
        parser.partial = pieces.pop()
        for piece in pieces:
            raw = ANSI.sub("", piece).strip()
            if not raw:
                self.stream.blank()
                continue
            for line in self.stream.line(raw):
                self.say_line(line)
                parser.note(line.text)
        self._question(ANSI.sub("", parser.partial))
        facts = self.stream.facts
        parser.take(facts.progress, facts.cost_usd, facts.session_id)

    def finish(self, parser: LineParser) -> None:
        """The program has ended: its last line, and what it left on disk."""
        self.show(parser, b"\n")
        for line in self.stream.finish():
            self.say_line(line)
            parser.note(line.text)
        facts = self.stream.facts
        parser.take(facts.progress, facts.cost_usd, facts.session_id)

    def tick(self) -> None:
        """A question left to the user waited its time (`idle_done`): say no, and remember it."""
        if self.pending is None or time.monotonic() < self.pending[1]:
            return
        question, _ = self.pending
        self.pending = None
        waited = duration(self.idle_done_s)
        self.stream.facts.denials.append(f"{question.label}, unanswered for {waited}")
        self.say_line(PaneLine(f"✗ nobody answered in {waited}: declined", "bad"))
        self.send(self.program.decline(question).encode())
        self.signal("working", "question declined")

    def failure(self, result: PtyResult) -> str | None:
        """The program's own account of a failure its exit code may hide, as a reason."""
        if result.timed_out or result.stopped:
            return None
        verdict = judge_stream(
            self.stream.facts,
            result.exit_code,
            self.approve,
            self.program.display,
            self.program.approve_hint(self.approve),
        )
        if verdict is None:
            return None
        return ratelimit.reason_for(verdict.rate_limit) if verdict.rate_limit else verdict.reason

    def _question(self, partial: str) -> None:
        """The program waits on a yes/no question: answer it, or leave it to the user."""
        if self.asking and partial != self.asking:
            # That line moved on: the same question may come again (for another file).
            self.asking = ""
        if self.pending is not None and not partial.startswith(self.pending[0].prompt.rstrip()):
            self.pending = None  # answered (the user typed it in the pane)
            self.signal("working", "question answered")
        if not partial.strip() or partial == self.asking:
            return
        question = self.stream.question(partial)
        if question is None:
            return
        self.asking = partial
        subject = f" {question.subject.splitlines()[0]}" if question.subject else ""
        keys = self.program.answer(self.approve, question)
        if keys is not None:
            said = "yes" if keys.lower().startswith("y") else "no"
            self.say_line(
                PaneLine(f"? {question.text}{subject} → {said} (approve: {self.approve})", "dim")
            )
            self.send(keys.encode())
            return
        wait_s = self.idle_done_s
        self.pending = (question, time.monotonic() + wait_s)
        by = time.strftime("%H:%M:%S", time.localtime(time.time() + wait_s))
        self.say_line(
            PaneLine(f"? {self.program.display} asks: {question.prompt.strip()}", "action")
        )
        if subject:
            self.say_line(PaneLine(f"  {question.subject}", "action"))
        self.say_line(
            PaneLine(
                f"  type y or n and Enter in this pane; unanswered at {by} it is declined", "dim"
            )
        )
        self.signal("waiting", f"{self.program.display} asks: {question.label}")
