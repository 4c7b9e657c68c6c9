"""Agent profiles: how to start an agent, and how to read what it prints.

A profile is an argv template. Placeholders are whole words in braces:
`{prompt}`, `{prompt_file}`, `{task}`, `{worktree}`, `{branch}`, `{model}`,
`{python}` (the interpreter running limitless). Substitution happens element by
element and never re-reads what it inserted, so a prompt full of braces, quotes
or `$(...)` arrives as the bytes it was.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
PLACEHOLDERS = frozenset({"prompt", "prompt_file", "task", "worktree", "branch", "model", "python"})

DEFAULT_PROGRESS_REGEX = r"(?i)\bprogress\b\D{0,20}?(\d{1,3}(?:\.\d+)?)\s*%"
DEFAULT_COST_REGEX = r"(?i)\b(?:total\s+)?cost\b\D{0,20}?\$\s*(\d+(?:\.\d+)?)"
DEFAULT_RATE_LIMIT_REGEX = r"(?i)\b(?:rate[ -]?limit(?:ed)?|429 Too Many Requests|quota exceeded)\b"
DEFAULT_IDLE_DONE_S = 30.0

Changes = Literal["required", "optional"]
CHANGES: dict[str, Changes] = {"required": "required", "optional": "optional"}


@dataclass(frozen=True)
class AgentProfile:
    """How to start one kind of agent and how to parse its output."""

    name: str
    command: tuple[str, ...]
    model_args: tuple[str, ...] = ()
    interactive: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    cost_regex: str | None = DEFAULT_COST_REGEX
    progress_regex: str | None = DEFAULT_PROGRESS_REGEX
    waiting_regex: str | None = None
    session_regex: str | None = None
    resume_command: tuple[str, ...] = ()
    rate_limit_regex: str | None = DEFAULT_RATE_LIMIT_REGEX
    idle_seconds: float = 30.0
    adapter: str | None = None
    """The real program this profile drives (`limitless.programs`): its permission flags,
    its events and its verdicts; None for a plain argv template."""
    idle_done_s: float = DEFAULT_IDLE_DONE_S
    """Interactive: a finished turn with nothing pending becomes done after this long."""
    changes: Changes = "optional"
    """`required`: an attempt that leaves the branch unchanged is a failure, not a success."""


@dataclass(frozen=True)
class AgentContext:
    """The values a profile's placeholders are filled with."""

    prompt: str
    prompt_file: str
    task: str
    worktree: str
    branch: str
    model: str | None = None


def _fill(template: str, values: Mapping[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def _values(context: AgentContext) -> dict[str, str]:
    """What each placeholder of a profile's argv stands for."""
    return {
        "prompt": context.prompt,
        "prompt_file": context.prompt_file,
        "task": context.task,
        "worktree": context.worktree,
        "branch": context.branch,
        "model": context.model or "",
        "python": sys.executable,
    }


def render_argv(profile: AgentProfile, context: AgentContext) -> list[str]:
    """The argv that starts `profile` for `context`; `model_args` only with a model."""
    values = _values(context)
    argv = [_fill(part, values) for part in profile.command]
    if context.model and profile.model_args:
        argv += [_fill(part, values) for part in profile.model_args]
    return argv


def render_resume_argv(profile: AgentProfile, context: AgentContext, session: str) -> list[str]:
    """The argv that continues conversation `session` (`resume_command`, `{session}` filled)."""
    values = {**_values(context), "session": session}
    return [_fill(part, values) for part in profile.resume_command]


def can_resume(profile: AgentProfile, session_id: str | None, attempt: int) -> bool:
    """Whether attempt `attempt` of an interactive task continues its earlier conversation."""
    return bool(profile.interactive and profile.resume_command and session_id and attempt > 1)


def unknown_placeholders(parts: Sequence[str]) -> list[str]:
    """Placeholder names in `parts` that limitless does not know."""
    found = [m.group(1) for part in parts for m in PLACEHOLDER.finditer(part)]
    return [name for name in found if name not in PLACEHOLDERS]


# What the built-in agents print when their provider refuses for a while.
_CLAUDE_RATE_LIMIT = (
    r"(?i)(\brate[ -]?limit(?:ed)?\b|usage limit reached|\b429\b.{0,40}(?:too many|rate)|"
    r"overloaded_error|quota exceeded)"
)
# The TUI retries by itself; its retry and error lines, not any text of the conversation.
_CLAUDE_TUI_RATE_LIMIT = r"(?i)API Error\b.{0,40}\b(?:429|529)\b|rate_limit_error|overloaded_error"
_CODEX_RATE_LIMIT = (
    r"(?i)(\brate[ -]?limit(?:ed)?\b|usage limit|429 Too Many Requests|quota exceeded)"
)
# The TUI's own error line once it gave up on the model, not any text of the conversation.
_CODEX_TUI_RATE_LIMIT = r"(?i)^\s*■.*(?:429 Too Many Requests|usage limit|rate limit)"
_GEMINI_RATE_LIMIT = r"(?i)(\brate[ -]?limit(?:ed)?\b|RESOURCE_EXHAUSTED|quota exceeded|\b429\b)"
_AIDER_RATE_LIMIT = r"(?i)(RateLimitError|\brate[ -]?limit(?:ed)?\b|quota exceeded)"

BUILTIN_PROFILES: dict[str, AgentProfile] = {
    profile.name: profile
    for profile in (
        AgentProfile(
            name="claude",
            command=("claude", "-p", "{prompt}", "--output-format", "stream-json", "--verbose"),
            model_args=("--model", "{model}"),
            cost_regex=None,
            progress_regex=None,
            rate_limit_regex=_CLAUDE_RATE_LIMIT,
            adapter="claude",
            changes="required",
        ),
        AgentProfile(
            name="claude-interactive",
            command=("claude", "{prompt}"),
            model_args=("--model", "{model}"),
            interactive=True,
            cost_regex=None,
            progress_regex=None,
            rate_limit_regex=_CLAUDE_TUI_RATE_LIMIT,
            idle_seconds=0,  # its hooks and its screen tell when it is idle
            adapter="claude-interactive",
            changes="required",
        ),
        AgentProfile(
            name="codex",
            command=("codex", "exec", "--json", "{prompt}"),
            model_args=("-m", "{model}"),
            cost_regex=None,
            progress_regex=None,
            rate_limit_regex=_CODEX_RATE_LIMIT,
            adapter="codex",
            changes="required",
        ),
        AgentProfile(
            name="codex-interactive",
            command=("codex", "--no-daemon", "-C", "{worktree}", "{prompt}"),
            model_args=("-m", "{model}"),
            interactive=True,
            cost_regex=None,
            progress_regex=None,
            rate_limit_regex=_CODEX_TUI_RATE_LIMIT,
            idle_seconds=0,  # its notify program and its screen tell when it is idle
            adapter="codex-interactive",
            changes="required",
        ),
        AgentProfile(
            name="gemini",
            # --skip-trust: trust the task's worktree for this run only (no global setting).
            command=(
                "gemini",
                "--prompt={prompt}",
                "--output-format",
                "stream-json",
                "--skip-trust",
            ),
            model_args=("-m", "{model}"),
            waiting_regex=None,  # -p asks nothing: a tool its approval mode refuses is not offered
            cost_regex=None,
            progress_regex=None,
            rate_limit_regex=_GEMINI_RATE_LIMIT,
            adapter="gemini",
            changes="required",
        ),
        AgentProfile(
            name="aider",
            # Plain lines, whole replies (priced from the provider's usage), input() questions:
            # what limitless.programs.aider reads. Permission flags come from `approve`.
            command=(
                "aider",
                "--message={prompt}",  # one element: a prompt like "-x" is not read as a flag
                "--no-pretty",
                "--no-stream",
                "--no-fancy-input",
                "--no-gitignore",
                "--no-check-update",
                "--no-show-release-notes",
                "--no-show-model-warnings",
                "--no-analytics",
            ),
            model_args=("--model", "{model}"),
            # A question aider waits on is signalled by the wrapper, which reads it as it comes;
            # a regex on the screen would still see it after it was answered.
            waiting_regex=None,
            cost_regex=None,
            progress_regex=None,
            rate_limit_regex=_AIDER_RATE_LIMIT,
            adapter="aider",
            changes="required",
        ),
        AgentProfile(
            name="opencode",
            command=("opencode", "run", "--format", "json", "--", "{prompt}"),
            model_args=("-m", "{model}"),
            cost_regex=None,
            progress_regex=None,
            adapter="opencode",
            changes="required",
        ),
        AgentProfile(
            name="shell",
            command=("bash", "-e", "{prompt_file}"),
            cost_regex=DEFAULT_COST_REGEX,
            rate_limit_regex=None,
        ),
        AgentProfile(
            name="demo",
            command=("{python}", "-m", "limitless.demo.agent", "--task", "{task}", "{prompt_file}"),
            model_args=("--model", "{model}"),
            waiting_regex=r"\(y/n\)\s*$",
            rate_limit_regex=None,
        ),
    )
}


@dataclass(frozen=True)
class OutputParsers:
    """Compiled regexes of one profile, applied line by line to an agent's output."""

    progress: re.Pattern[str] | None
    cost: re.Pattern[str] | None
    waiting: re.Pattern[str] | None
    session: re.Pattern[str] | None
    rate_limit: re.Pattern[str] | None

    @classmethod
    def for_profile(cls, profile: AgentProfile) -> OutputParsers:
        def compiled(pattern: str | None) -> re.Pattern[str] | None:
            return re.compile(pattern) if pattern else None

        return cls(
            progress=compiled(profile.progress_regex),
            cost=compiled(profile.cost_regex),
            waiting=compiled(profile.waiting_regex),
            session=compiled(profile.session_regex),
            rate_limit=compiled(profile.rate_limit_regex),
        )

    def progress_of(self, line: str) -> float | None:
        """A percentage 0..100 named on `line`, if any."""
        if self.progress is None:
            return None
        match = self.progress.search(line)
        if not match:
            return None
        value = float(match.group(1))
        return min(value, 100.0)

    def cost_of(self, line: str) -> float | None:
        """A cost in USD named on `line`, if any (the profile's own, or claude's JSON)."""
        json_cost = _JSON_COST.search(line)
        if json_cost:
            return float(json_cost.group(1))
        if self.cost is None:
            return None
        match = self.cost.search(line)
        return float(match.group(1)) if match else None

    def session_of(self, line: str) -> str | None:
        if self.session is None:
            return None
        match = self.session.search(line)
        return match.group(1) if match else None

    def is_waiting(self, line: str) -> bool:
        return bool(self.waiting and self.waiting.search(line))

    def is_rate_limited(self, line: str) -> bool:
        return bool(self.rate_limit and self.rate_limit.search(line))


_JSON_COST = re.compile(r'"total_cost_usd"\s*:\s*(\d+(?:\.\d+)?)')
