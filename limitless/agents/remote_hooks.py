"""The hooks of an interactive agent on another host, recorded here.

On the host the relay (`hookrelay`, LIMITLESS_HOOK_SPOOL) only appends each call of
Claude Code's hooks or Codex's notify program to a file in the attempt's folder there.
The wrapper's poll of the agent's log reads the new part of that file too (one command
over the SSH master, once a second); `RemoteHooks.replay` records its whole lines with
the relay's own `record`, for the task here: the signals (working, needs input, idle, a
turn that ended on a rate limit) and the hook log are what they would be for an agent in
a local pane. A transcript the hooks name is a file there: its path is replaced by a
copy's here (`<state folder>/from-host/`), which `fetch_transcripts` brings over before
the driver prices them.
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from typing import TYPE_CHECKING

from limitless.agents import hookrelay

if TYPE_CHECKING:
    from limitless.agents.remote import RemoteAttempt

COPIES = "from-host"


class RemoteHooks:
    """Spooled hook calls of one remote attempt, replayed into the store here."""

    def __init__(
        self, remote: RemoteAttempt, state_dir: Path, attempt: int, state_folder: Path
    ) -> None:
        """`state_folder`: the task's agent folder here (the copies go under it)."""
        self.remote = remote
        remote.spooling = True  # its polls of the log read the spool too
        self.env = {
            "LIMITLESS_STATE_DIR": str(state_dir),
            "LIMITLESS_RUN": remote.run_id,
            "LIMITLESS_TASK": remote.task_id,
            "LIMITLESS_ATTEMPT": str(attempt),
        }
        self.copies = state_folder / COPIES
        self.transcripts: dict[Path, str] = {}  # the copy here → the file there

    def replay(self) -> None:
        """Record the calls spooled there that the polls read since the last replay."""
        lines = [self._local(line) for line in self.remote.hook_lines()]
        if lines:
            hookrelay.replay(lines, self.env)

    def fetch_transcripts(self) -> None:
        """Bring the transcripts the hooks named over (their copies here are priced)."""
        for copy, there in self.transcripts.items():
            self.remote.copy_here(there, copy)

    def _local(self, line: str) -> str:
        """The spooled line with its transcript path replaced by the copy's here."""
        try:
            entry = json.loads(line)
        except ValueError:
            return line
        payload = entry.get("payload") if isinstance(entry, dict) else None
        there = payload.get("transcript_path") if isinstance(payload, dict) else None
        if not isinstance(payload, dict) or not isinstance(there, str) or not there:
            return line
        copy = self.copies / posixpath.basename(there)
        self.transcripts[copy] = there
        payload["transcript_path"] = str(copy)
        return json.dumps(entry)
