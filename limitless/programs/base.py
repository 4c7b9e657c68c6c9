"""What every agent-program adapter offers, and the values they share.

An adapter knows one real agent program: the flags that set its permission
mode, the files it needs before an unattended start, how to read the events it
prints (headless programs) and what its end means. The in-pane wrapper asks
the adapter; the adapter never touches the store, tmux or git itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

Approve = Literal["ask", "edits", "all"]
APPROVE_CHOICES: dict[str, Approve] = {"ask": "ask", "edits": "edits", "all": "all"}
DEFAULT_APPROVE: Approve = "edits"

VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")
VERSION_TIMEOUT_S = 15.0


@dataclass
class StreamFacts:
    """What a headless program's event stream said about its run, gathered as it came."""

    session_id: str | None = None
    cost_usd: float | None = None
    progress: float | None = None
    result_seen: bool = False
    is_error: bool = False
    error: str = ""  # the program's own words when it ended on an error
    denials: list[str] = field(default_factory=list)  # "Write(src/app.py)", "Bash(npm test)"
    rate_limit: str = ""  # the provider's refusal, when the run ended on one
    final_text: str = ""
    actions: int = 0  # tool calls the agent made
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class Question:
    """A yes/no question a headless program printed and now waits on (its prompt has no newline).

    `kind` says what a yes allows: `edit` (create or change a file, or add one to
    the chat), `command` (run a shell command) or `other`; `label` names it the
    way a denial does: "Create(hello.txt)", "Run(npm test)".
    """

    prompt: str  # the prompt as printed: "Create new file? (Y)es/(N)o [Yes]: "
    text: str  # "Create new file?"
    subject: str  # "hello.txt", the command, or ""
    kind: Literal["edit", "command", "other"]
    label: str


@dataclass(frozen=True)
class PaneLine:
    """One readable line for the pane and the log; `style` picks its colour."""

    text: str
    style: Literal["text", "action", "dim", "good", "bad"] = "text"


class EventStream:
    """Turns a headless program's output lines (JSON events) into pane lines and facts."""

    def __init__(self, worktree: Path) -> None:
        self.worktree = worktree
        self.facts = StreamFacts()

    def line(self, raw: str) -> list[PaneLine]:
        """The pane lines for one output line; facts are updated on the way."""
        raise NotImplementedError

    def blank(self) -> None:
        """An empty output line went by (text programs use them to group lines)."""

    def question(self, partial: str) -> Question | None:
        """The question the program waits on, when `partial` (the unfinished last line) is one."""
        return None

    def finish(self) -> list[PaneLine]:
        """The program has ended: last lines and facts from what it left on disk, if any."""
        return []

    def relative(self, path: object) -> str:
        """`path` as the user knows it: relative to the worktree when inside it."""
        text = str(path or "")
        if not text:
            return "?"
        candidate = Path(text)
        if candidate.is_absolute():
            try:
                return str(candidate.relative_to(self.worktree)) or "."
            except ValueError:
                return text
        return text


@dataclass(frozen=True)
class ScreenState:
    """What an interactive program's screen shows: a turn running (`working`), a
    question or permission (`input`), or its prompt with nothing asked (`idle`).

    `line` is the screen line the state was read from (for `idle`, what the turn left
    above the prompt); `after_turn` says that line is one only a turn leaves, so the
    idle prompt is not the one shown before the first turn."""

    state: Literal["working", "input", "idle"]
    reason: str
    line: str = ""
    after_turn: bool = False


@dataclass(frozen=True)
class DialogAnswer:
    """A dialog an interactive program shows before its first prompt, and its answer:
    `keys` to type, `note` to tell the user; `fail` when no answer can be given."""

    name: str
    keys: bytes
    note: str
    fail: str = ""


@dataclass(frozen=True)
class Refusal:
    """Why a program cannot run a task as the plan asks here, and what to do instead."""

    message: str


class Program:
    """One real agent program. Subclasses set the class attributes and override hooks."""

    name: ClassVar[str]  # the adapter's name, as a profile's `adapter:` names it
    executable: ClassVar[str]
    display: ClassVar[str]  # "Claude Code"
    install: ClassVar[str]  # the command that installs the tested version
    tested_version: ClassVar[str]
    min_version: ClassVar[tuple[int, int, int]] = (0, 0, 0)
    interactive: ClassVar[bool] = False
    headless_stream: ClassVar[bool] = False  # prints JSON events that `stream()` reads
    expects_changes: ClassVar[bool] = True
    # Files the program leaves in the worktree for itself (chat history, caches): the
    # wrapper names them in the repository's info/exclude so they never reach a commit.
    private_files: ClassVar[tuple[str, ...]] = ()
    state_hooks: ClassVar[str | None] = None  # "claude": report state through Claude Code hooks
    close_keys: ClassVar[tuple[bytes, ...]] = ()  # typed (0.3 s apart) to end it cleanly
    busy_marker: ClassVar[str] = ""  # in its output (lower case, no whitespace) while a turn runs
    # Words in the command line of a process it leaves running detached (a background
    # server): one that carries the attempt's LIMITLESS_* variables is ended after it.
    stray_markers: ClassVar[tuple[str, ...]] = ()
    prompt_after_dashes: ClassVar[bool] = False
    """The program reads `--` as the end of its options: the prompt goes last, after `--`, so
    that a prompt starting with `-` reaches it as the prompt, not as an option."""
    state_paths: ClassVar[tuple[str, ...]] = ()
    """Where the program keeps its own state (`~/.claude/`, `~/.claude.json`): writable inside
    a `sandbox: worktree`. A trailing `/` names a folder, made when missing."""

    def approve_args(self, approve: Approve, confined: bool = False) -> tuple[str, ...]:
        """The program's own flags for the permission policy `approve`; `confined`: the
        task runs inside limitless's sandbox (`sandbox: worktree`)."""
        return ()

    def answer_only_args(self, folder: Path) -> tuple[str, ...]:
        """Flags, on top of `approve: ask`'s, for a run that must only read and answer (the
        goal planner); anything the program keeps for itself goes in `folder`."""
        return ()

    def resolver_args(self) -> tuple[str, ...]:
        """Flags for a conflict resolver, whose result limitless commits itself."""
        return ()

    def approve_env(self, approve: Approve) -> dict[str, str]:
        """Variables that set the permission policy `approve`, for programs without flags for it."""
        return {}

    def command(
        self, argv: Sequence[str], approve: Approve, prompt: str, *, confined: bool = False
    ) -> list[str]:
        """The argv to start: the profile's (`prompt` is in it), with the permission flags;
        the prompt last, after `--`, when the program takes it there."""
        rest, tail = self.prompt_last(argv, prompt)
        return [*rest, *self.approve_args(approve, confined), *tail]

    def on_host(self, argv: Sequence[str], python: str, relay: str) -> list[str]:
        """`argv` (from `command`) for another machine, where this machine's interpreter
        and hook relay are `python` and `relay` (limitless's install there)."""
        return list(argv)

    def prompt_last(self, argv: Sequence[str], prompt: str) -> tuple[list[str], list[str]]:
        """(`argv` without its prompt, `["--", prompt]`) for a program with
        `prompt_after_dashes`; (`argv`, `[]`) for others, or when no element (but the
        program's) is the prompt. The prompt is the last element equal to it."""
        rest = list(argv)
        if not self.prompt_after_dashes or not prompt:
            return rest, []
        for index in range(len(rest) - 1, 0, -1):
            if rest[index] == prompt:
                del rest[index]
                return rest, ["--", prompt]
        return rest, []

    def screen(self, lines: Sequence[str]) -> ScreenState | None:
        """What an interactive program's last screen lines show, if it can tell."""
        return None

    def startup_dialog(self, text: str) -> DialogAnswer | None:
        """The dialog in `text` (its recent output, whitespace removed), if it knows one."""
        return None

    def transcript_cost(self, transcripts: Sequence[Path]) -> float | None:
        """What the sessions recorded in these transcript files cost, in USD."""
        return None

    def refusal(self, approve: Approve, env: Mapping[str, str], is_root: bool) -> Refusal | None:
        """Why the program would refuse to run with `approve` here (checked before a run)."""
        return None

    def answer(self, approve: Approve, question: Question) -> str | None:
        """The keys that answer `question` under `approve`, or None to leave it to the user."""
        return None

    def decline(self, question: Question) -> str:
        """The keys that say no to `question` (typed when nobody answered in time)."""
        return "n\r"

    def environment(self) -> dict[str, str]:
        """Variables the program needs to run unattended (the profile's env comes after)."""
        return {}

    def state_env(self, folder: Path) -> dict[str, str]:
        """Variables that keep the program's own state for this task in `folder` (limitless's,
        beside the task log), where tasks running at once would trip over a shared one."""
        return {}

    def stream(self, worktree: Path, env: Mapping[str, str] | None = None) -> EventStream | None:
        """A reader of the program's output events, for headless programs that print them;
        `env` is the environment the program runs with."""
        return None

    def approve_hint(self, approve: Approve) -> str | None:
        """What a looser `approve` would let through, when the generic words are wrong."""
        return None

    def locate(self, path: str | None = None) -> str | None:
        """Where the program is on `path` (default: PATH), or None."""
        return shutil.which(self.executable, path=path)

    def version(self, executable: str) -> str | None:
        """The version `executable --version` reports (`2.1.197`), or None."""
        try:
            result = subprocess.run(
                [executable, "--version"],
                capture_output=True,
                text=True,
                timeout=VERSION_TIMEOUT_S,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        match = VERSION.search(result.stdout or result.stderr or "")
        return match.group(0) if match else None

    def supports(self, version: str) -> bool:
        """Whether `version` is one this adapter knows how to drive."""
        match = VERSION.search(version)
        if match is None:
            return False
        return tuple(int(part) for part in match.groups()) >= self.min_version
