"""Provider-neutral scripts for the scripted model server.

A `Script` is a named list of steps. Action steps (`write`, `edit`, `read`,
`run`, `say`) are one model turn each: the server renders the step as the
provider's tool call (or, for `say`, as a plain answer that ends the turn).
`error` steps are not turns: they fail the requests made for the turn that
follows them (`times` requests; `times=None` fails forever), then that turn
goes on.

    script = Script("hello", [
        write("hello.txt", "hi\\n", usage=Usage(1000, 50)),
        error(429, times=1),
        edit("hello.txt", "hi", "hello"),
        run("git add -A && git commit -qm hello"),
        say("done"),
    ])
    prompt = f"make hello.txt {script.marker}"    # "[script:hello]"

A conversation is routed to its script by the marker (or by `match=`, any
substring of a user message); the turn to answer is the number of assistant
turns already in the conversation after that message, so concurrent
conversations and restarts of the same program each get the right step.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Usage:
    """Token counts reported for one answer, rendered in each provider's names.

    Anthropic: `input_tokens`, `output_tokens`, `cache_creation_input_tokens`,
    `cache_read_input_tokens` as given. OpenAI Responses: `input_tokens`,
    `input_tokens_details.cached_tokens` = cache_read,
    `input_tokens_details.cache_write_tokens` = cache_creation, `output_tokens`,
    `output_tokens_details.reasoning_tokens`. Chat completions: `prompt_tokens`,
    `prompt_tokens_details.cached_tokens` = cache_read, `completion_tokens`.
    Gemini: `promptTokenCount`, `cachedContentTokenCount`, `candidatesTokenCount`.
    (OpenAI and Gemini count cached tokens inside the input figure; the server
    renders the numbers literally, so a script for them should keep
    input_tokens >= cache_read_input_tokens (+ cache_creation for Responses).)
    """

    input_tokens: int = 100
    output_tokens: int = 20
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    reasoning_tokens: int = 0


ZERO_USAGE = Usage(0, 0)


@dataclass(frozen=True)
class Action:
    """Base of the steps that are one model turn."""

    usage: Usage | None = field(default=None, kw_only=True)
    # Seconds the server waits before answering this turn (stopped early when
    # the server stops). Lets a test see an agent busy.
    delay: float = field(default=0.0, kw_only=True)
    # The server answers this turn only once the event is set (or it stops):
    # the test decides when the agent may go on.
    gate: threading.Event | None = field(default=None, kw_only=True, compare=False)


@dataclass(frozen=True)
class Write(Action):
    """Create (or overwrite) `path` with `text`. Needs permission in Claude's default mode."""

    path: str
    text: str


@dataclass(frozen=True)
class Edit(Action):
    """Replace `old` with `new` in `path` (for Codex's apply_patch: whole lines)."""

    path: str
    old: str
    new: str


@dataclass(frozen=True)
class Read(Action):
    """Read `path` (Claude wants a file read before it overwrites it)."""

    path: str


@dataclass(frozen=True)
class Run(Action):
    """Run a shell command. `escalate` asks Codex for an unsandboxed run (an approval)."""

    command: str
    escalate: bool = False


@dataclass(frozen=True)
class Say(Action):
    """A plain answer that ends the turn."""

    text: str


@dataclass(frozen=True)
class Fail:
    """Fail the next `times` requests for the following turn (None: every request)."""

    status: int
    kind: str | None = None
    message: str | None = None
    times: int | None = 1
    retry_after: float | None = None
    # Anthropic only: answer 200 and send the error as an SSE `error` event
    # after `message_start`, as the real API does for a mid-stream overload.
    in_stream: bool = False


Step = Action | Fail


Gate = threading.Event | None


def write(
    path: str, text: str, *, usage: Usage | None = None, delay: float = 0.0, gate: Gate = None
) -> Write:
    return Write(path, text, usage=usage, delay=delay, gate=gate)


def edit(
    path: str,
    old: str,
    new: str,
    *,
    usage: Usage | None = None,
    delay: float = 0.0,
    gate: Gate = None,
) -> Edit:
    return Edit(path, old, new, usage=usage, delay=delay, gate=gate)


def read(path: str, *, usage: Usage | None = None, delay: float = 0.0, gate: Gate = None) -> Read:
    return Read(path, usage=usage, delay=delay, gate=gate)


def run(
    command: str,
    *,
    escalate: bool = False,
    usage: Usage | None = None,
    delay: float = 0.0,
    gate: Gate = None,
) -> Run:
    return Run(command, escalate, usage=usage, delay=delay, gate=gate)


def say(text: str, *, usage: Usage | None = None, delay: float = 0.0, gate: Gate = None) -> Say:
    return Say(text, usage=usage, delay=delay, gate=gate)


def error(
    status: int,
    kind: str | None = None,
    *,
    message: str | None = None,
    times: int | None = 1,
    retry_after: float | None = None,
    in_stream: bool = False,
) -> Fail:
    if times is not None and times < 1:
        msg = f"error(times={times}): times must be 1 or more, or None for every request"
        raise ValueError(msg)
    return Fail(status, kind, message, times, retry_after, in_stream)


@dataclass(frozen=True)
class Turn:
    """One model turn: the errors to give first, then the action (None past the end)."""

    index: int
    errors: tuple[Fail, ...]
    action: Action | None


@dataclass
class Script:
    """A named list of steps; `marker` goes into the prompt to route a conversation here."""

    name: str
    steps: Sequence[Step]
    match: str | None = None
    default_usage: Usage = field(default_factory=Usage)
    turns: list[Turn] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            msg = f"script name {self.name!r}: use letters, digits, '_', '.' or '-'"
            raise ValueError(msg)
        self.turns = compile_turns(self.steps)

    @property
    def marker(self) -> str:
        return f"[script:{self.name}]"

    @property
    def key(self) -> str:
        """The text whose presence in a user message routes a conversation here."""
        return self.match if self.match is not None else self.marker

    def turn(self, index: int) -> Turn:
        if index < len(self.turns):
            return self.turns[index]
        return Turn(index, (), None)

    def usage_of(self, action: Action) -> Usage:
        return action.usage if action.usage is not None else self.default_usage


def compile_turns(steps: Iterable[Step]) -> list[Turn]:
    """Group each run of error steps with the action that follows it."""
    turns: list[Turn] = []
    pending: list[Fail] = []
    for step in steps:
        if isinstance(step, Fail):
            pending.append(step)
            continue
        if not isinstance(step, Action):
            msg = f"script step {step!r}: expected write/edit/read/run/say/error"
            raise TypeError(msg)
        turns.append(Turn(len(turns), tuple(pending), step))
        pending = []
    if pending:
        turns.append(Turn(len(turns), tuple(pending), None))
    return turns
