"""The plain text an agent prints, read line by line: progress, cost, session id and
rate-limit lines, by the profile's regexes (`OutputParsers`).
"""

from __future__ import annotations

import re

from limitless.agents import ratelimit
from limitless.programs.profiles import OutputParsers

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
"""Terminal escape sequences (colours, cursor moves, titles): gone from what is read."""


class LineParser:
    """Turns the agent's byte stream into lines and remembers what they said."""

    def __init__(self, parsers: OutputParsers) -> None:
        self.parsers = parsers
        self.partial = ""
        self.progress: float | None = None
        self.cost: float | None = None
        self.session: str | None = None
        self.rate_limited = False
        self.lines = 0
        self.rate_limit_line = ""
        self.rate_limit_at = 0
        self.changed = False
        self.last_line = ""

    def feed(self, data: bytes) -> None:
        text = self.partial + data.decode("utf-8", errors="replace")
        pieces = re.split(r"[\r\n]", text)
        self.partial = pieces.pop()
        for piece in pieces:
            self._line(ANSI.sub("", piece).strip())

    def finish(self) -> None:
        if self.partial:
            self._line(ANSI.sub("", self.partial).strip())
            self.partial = ""

    def _line(self, line: str) -> None:
        if not line:
            return
        self.last_line = line
        self.lines += 1
        progress = self.parsers.progress_of(line)
        if progress is not None and progress != self.progress:
            self.progress = progress
            self.changed = True
        cost = self.parsers.cost_of(line)
        if cost is not None and cost != self.cost:
            self.cost = cost
            self.changed = True
        session = self.parsers.session_of(line)
        if session and session != self.session:
            self.session = session
            self.changed = True
        if self.parsers.is_rate_limited(line):
            self.rate_limited = True
            self.rate_limit_line, self.rate_limit_at = line, self.lines

    def note(self, line: str) -> None:
        """A line shown for the agent (a rendered event): counted, and kept as the last."""
        self.last_line = line
        self.lines += 1

    def take(self, progress: float | None, cost: float | None, session: str | None) -> None:
        """Figures an event reader found; marks a change for the next store write."""
        for name, value in (("progress", progress), ("cost", cost), ("session", session)):
            if value is not None and value != getattr(self, name):
                setattr(self, name, value)
                self.changed = True

    def recent_rate_limit(self) -> str | None:
        """The rate-limit line, if the agent printed one among its last lines."""
        if self.rate_limit_line and self.lines - self.rate_limit_at < ratelimit.RECENT_LINES:
            return self.rate_limit_line
        return None
