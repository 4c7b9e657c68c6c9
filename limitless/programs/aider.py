"""aider (`aider`): headless with `--message`, its plain-text output read line by line.

aider prints text, not events. With `--no-pretty --no-stream --no-fancy-input`
(the profile's command) its lines are plain and each model reply arrives whole,
so a few shapes tell what happened:

    Aider v0.86.2 / Main model: openai/gpt-4o with whole edit format
    Tokens: 1.0k sent, 100 received. Cost: $0.0035 message, $0.0035 session.
    Applied edit to hello.txt
    Commit 5f039ff add hello.txt
    Skipping edits to hello.txt                (a file question answered no)
    litellm.RateLimitError: … / Retrying in 0.5 seconds...
    The LLM did not conform to the edit format.
    Create new file? (Y)es/(N)o [Yes]:         (a question, no newline: it waits)

The session cost is aider's own (`$… session`), priced by litellm from the
usage the provider reported (`--no-stream`: a streamed reply is priced from
aider's own token count instead). aider exits 0 after almost any trouble — an
API error it gave up on, a reply whose edits did not apply — so the last
unresolved problem it printed is what fails the task.

Permissions: aider asks before it creates a file, edits a file not in the chat,
adds a mentioned file to the chat or runs a shell command the model suggested.
`--yes-always` says yes to all but the commands (those need an explicit yes,
which `--yes-always` never gives). So `approve: edits` is `--yes-always` with
command suggestions off; `approve: all` leaves the questions on the screen and
the wrapper answers yes to each, commands included; `approve: ask` leaves them
to the user (a needs-input state; declined when nobody answers in time).

State (`state_paths`, writable in `sandbox: worktree`): all aider 0.86 was seen
writing under HOME is in `~/.aider/` (`installs.json`, `analytics.json`, the
model price list in `caches/`); its chat history and tag cache stay in the
worktree (`private_files`). Where git has no user.name or user.email, aider
writes made-up ones ("Your Name") into the repository's config; in the sandbox
that config is read-only and aider stops ("Read-only file system: …/config.lock"):
give git an identity.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from limitless.programs.base import Approve, EventStream, PaneLine, Program, Question

APPROVE_ARGS: dict[Approve, tuple[str, ...]] = {
    "ask": (),
    "edits": ("--yes-always", "--no-suggest-shell-commands", "--no-detect-urls"),
    "all": ("--no-detect-urls",),
}
RATE_LIMIT = re.compile(r"(?i)(RateLimitError|\b429\b|rate[ _-]?limit|quota exceeded|overloaded)")

QUESTION = re.compile(
    r"^(?P<text>\S.*?\?) \(Y\)es/\(N\)o(?:/\(A\)ll)?(?:/\(S\)kip all)?"
    r"(?:/\(D\)on't ask again)? \[(?:Yes|No)\]:(?: (?P<answer>.*))?$"
)
# aider's crash report asks with plain input(), outside its own confirmations.
PLAIN_QUESTION = re.compile(r"^(?P<text>\S.*?\?) \(Y/n\)(?P<answer>.*)$")
CRASH = re.compile(r"^# Uncaught (\w+) in (\S+) line \d+")
VERSION = re.compile(r"^Aider v(\S+)$")
MAIN_MODEL = re.compile(r"^(?:Main model|Model): (\S+) with (\S+) edit format")
TOKENS = re.compile(
    r"^Tokens: (?P<tokens>.+?)\.(?: Cost: \$(?P<message>[\d.]+) message, "
    r"\$(?P<session>[\d.]+) session\.)?$"
)
COST = re.compile(r"^Cost: \$(?P<message>[\d.]+) message, \$(?P<session>[\d.]+) session\.$")
APPLIED = re.compile(r"^Applied edit to (.+)$")
COMMIT = re.compile(r"^Commit ([0-9a-f]{7,40}) (.*)$")
SKIPPED = re.compile(r"^Skipping edits to (.+?)(?: that matches (?:git|aider)ignore spec\.)?$")
UNABLE = re.compile(r"^Unable to (?:create|commit|add) (.+)$")
API_ERROR = re.compile(r"^litellm\.(\w+): (.*)$")
RETRYING = re.compile(r"^Retrying in ([\d.]+) seconds\.\.\.$")
RUNNING = re.compile(r"^Running (.+)$")
EDIT_TROUBLE = re.compile(
    r"^(The LLM did not conform to the edit format\.|# \d+ SEARCH/REPLACE blocks? failed to match"
    r"|Malformed response #\d+)"
)
GAVE_UP = re.compile(
    r"^(Only \d+ reflections allowed, stopping\.|.*has hit a token limit!"
    r"|Your estimated chat context of .* exceeds the .* token limit.*"
    r"|No LLM model was specified and no API keys were provided\."
    r"|OpenRouter authentication did not complete successfully\.)$"
)
QUIET = re.compile(
    r"^(Weak model:|Git repo:|Git working dir:|Repo-map:|Use /help|Update git (?:name|email) with"
    r"|Added .* to the chat\.?$|Analytics have been permanently disabled)"
)
DIM = re.compile(
    r"^(The API provider |HTTPSConnectionPool\(|Warning: |Can't initialize prompt toolkit"
    r"|Failed to generate commit message!)"
)
SPINNER = re.compile(r"^[\[\]░█#=\s]*[░█][\[\]░█#=\s]*$")  # a frame of aider's waiting spinner
FENCE = "```"
DOCS = "https://aider.chat/docs/"
TEXT_WIDTH = 200  # a longer line is cut in the pane (the log keeps it whole)
NO_WRAP_COLUMNS = 4000


class Aider(Program):
    """aider in `--message` mode (`aider` profile)."""

    name: ClassVar[str] = "aider"
    executable: ClassVar[str] = "aider"
    display: ClassVar[str] = "aider"
    install: ClassVar[str] = "python -m pip install aider-chat==0.86.2"
    tested_version: ClassVar[str] = "0.86.2"
    min_version: ClassVar[tuple[int, int, int]] = (0, 80, 0)
    headless_stream: ClassVar[bool] = True
    # Its chat and input history and its repo-map cache, at the top of the worktree (a
    # user's own .aider.conf.yml or .aiderignore is theirs to commit).
    private_files: ClassVar[tuple[str, ...]] = (
        "/.aider.chat.history.md",
        "/.aider.input.history",
        "/.aider.tags.cache.v*/",
    )

    state_paths: ClassVar[tuple[str, ...]] = ("~/.aider/",)

    def approve_args(self, approve: Approve, confined: bool = False) -> tuple[str, ...]:
        return APPROVE_ARGS[approve]

    def answer_only_args(self, folder: Path) -> tuple[str, ...]:
        # Its `ask` mode answers without editing; `--dry-run` and no commits besides. Its
        # histories go to `folder`, and no repo map (whose cache is a folder in the checkout).
        return (
            "--chat-mode",
            "ask",
            "--dry-run",
            "--no-auto-commits",
            "--map-tokens",
            "0",
            f"--chat-history-file={folder / 'aider.chat.history.md'}",
            f"--input-history-file={folder / 'aider.input.history'}",
        )

    def resolver_args(self) -> tuple[str, ...]:
        # Its commits would fail in a merge under way ("cannot do a partial commit during a
        # merge"); limitless commits the resolution itself.
        return ("--no-auto-commits", "--no-dirty-commits")

    def answer(self, approve: Approve, question: Question) -> str | None:
        if question.kind == "other" and question.text.lower().startswith("open "):
            # "Open URL for more info?", "Open a GitHub Issue … in your browser?" (after a
            # crash, asked with input(), whatever --yes-always says): a browser in a pane
            # nobody watches helps nobody, and unanswered it would hold the task forever.
            return "n\r"
        if approve == "ask":
            return None
        if question.kind == "command" and approve != "all":
            return "n\r"
        return "y\r"

    def environment(self) -> dict[str, str]:
        return {
            # aider (rich) wraps its lines at the terminal's width, and a slot pane may be 40
            # columns wide: "Tokens: … Cost: …" would arrive in pieces no pattern knows.
            "COLUMNS": str(NO_WRAP_COLUMNS),
            # aider offers to open documentation URLs after some errors; with --yes-always it
            # opens them, and a text-mode browser found on PATH would take over the pane.
            "BROWSER": "true",
        }

    def stream(self, worktree: Path, env: Mapping[str, str] | None = None) -> EventStream:
        return AiderStream(worktree)


class AiderStream(EventStream):
    """Reads aider's plain output (`--no-pretty --no-stream`) line by line."""

    def __init__(self, worktree: Path) -> None:
        super().__init__(worktree)
        self.block: list[str] = []  # lines since the last blank one: a question's subject
        self.fence_lines: int | None = None  # lines inside an open ``` block
        self.asked: Question | None = None  # the last question seen, answered or not
        self.lasting = ""  # a problem no later reply undoes (an edit aider would not make)
        self.trouble = ""  # the last reply whose edits did not apply, in aider's words
        self.trouble_open = False  # its detail is the next line aider prints
        self.crash = ""  # aider reported an uncaught exception; its traceback follows, fenced
        self.fenced = ""  # the last line inside the open ``` block

    # ------------------------------------------------------------ lines

    def blank(self) -> None:
        self.block = []

    def line(self, raw: str) -> list[PaneLine]:
        text = erase_backspaces(raw).strip()
        if not text:
            self.blank()
            return []
        if SPINNER.match(text):
            return []
        if text.startswith(DOCS):  # aider points at its docs: kept as a question's subject only
            self.block.append(text)
            return []
        known = self._known(text)
        if known is not None:
            self.block = []
            return known
        if text.startswith(FENCE):
            if self.fence_lines is None:
                self.fence_lines = 0
                return []
            count, self.fence_lines = self.fence_lines, None
            if self.crash and self.fenced:  # the traceback's last line: the exception itself
                self.lasting = f"uncaught {self.fenced}"
                self.facts.is_error, self.facts.error = True, self.lasting
                self.crash = ""
                return [PaneLine(f"✗ {_cut(self.fenced)}", "bad")]
            return [PaneLine(f"  ``` {count} line{'s' if count != 1 else ''}", "dim")]
        if self.fence_lines is not None:
            self.fence_lines += 1
            self.fenced = text
            return []
        if self.trouble_open:  # aider's own words on why the edit did not apply
            self.trouble, self.trouble_open = f"{self.trouble} {text}", False
            self.facts.error = self.trouble
            return [PaneLine(f"  {_cut(text)}", "bad")]
        self.block.append(text)
        self.facts.final_text = text
        return [PaneLine(_cut(text))]

    def _known(self, text: str) -> list[PaneLine] | None:
        """The pane lines of a line aider itself printed, or None for the model's text."""
        facts = self.facts
        if match := TOKENS.match(text):
            self.fence_lines = None  # the reply is over, whatever it left open
            facts.result_seen = True
            self._resolved()
            shown = f"· tokens {match['tokens']}"
            if match["session"] is not None:
                facts.cost_usd = float(match["session"])
                shown += f" · ${match['message']} (session ${match['session']})"
            return [PaneLine(shown, "dim")]
        if match := COST.match(text):  # on its own line when the tokens line names cache use
            facts.cost_usd = float(match["session"])
            return [PaneLine(f"· ${match['message']} (session ${match['session']})", "dim")]
        if match := APPLIED.match(text):
            facts.actions += 1
            self._resolved()
            return [PaneLine(f"✎ {match[1]}", "action")]
        if match := COMMIT.match(text):
            self._resolved()
            return [PaneLine(f"✓ commit {match[1]} {_cut(match[2])}", "good")]
        if match := QUESTION.match(text) or PLAIN_QUESTION.match(text):
            return self._answered(text, match)
        if match := CRASH.match(text):
            self.crash = match[1]
            self.lasting = f"uncaught {match[1]} in {match[2]}"
            facts.is_error, facts.error = True, self.lasting
            return [PaneLine(f"✗ {text.lstrip('# ')}", "bad")]
        if match := SKIPPED.match(text):
            path = match[1]
            if text.endswith("ignore spec."):
                self.lasting = f"its edit of {path} was skipped: git ignores that file"
                facts.is_error, facts.error = True, self.lasting
            else:
                asked = self.asked
                verb = "Create" if asked and asked.text == "Create new file?" else "Edit"
                self._deny(f"{verb}({path})")
            return [PaneLine(f"✗ {text}", "bad")]
        if match := API_ERROR.match(text):
            return self._api_error(match[1], match[2])
        if match := RETRYING.match(text):
            return [PaneLine(f"↻ aider retries in {match[1]}s", "dim")]
        if EDIT_TROUBLE.match(text):
            self.trouble, self.trouble_open = text, True
            facts.is_error, facts.error = True, text
            return [PaneLine(f"✗ {text}", "bad")]
        if GAVE_UP.match(text):
            said = f"{text} (the last: {self.trouble})" if self.trouble else text
            facts.is_error, facts.error = True, said
            return [PaneLine(f"✗ {text}", "bad")]
        if UNABLE.match(text):
            facts.is_error, facts.error = True, text
            return [PaneLine(f"✗ {text}", "bad")]
        if match := VERSION.match(text):
            return [PaneLine(f"aider {match[1]}", "dim")]
        if match := MAIN_MODEL.match(text):
            return [PaneLine(f"model {match[1]} · {match[2]} edit format", "dim")]
        if match := RUNNING.match(text):
            if self.asked is not None and self.asked.kind == "command":
                facts.actions += 1
                return [PaneLine(f"$ {_cut(match[1])}", "action")]
            return None
        if QUIET.match(text):
            return []
        if DIM.match(text):
            return [PaneLine(_cut(text), "dim")]
        return None

    def _resolved(self) -> None:
        """A reply, an edit or a commit came after the last error: aider got past it."""
        facts = self.facts
        facts.rate_limit = ""
        facts.is_error, facts.error = bool(self.lasting), self.lasting
        self.trouble_open = False

    def _deny(self, label: str) -> None:
        """A refused edit or command, once (the wrapper may have named it unanswered first)."""
        if not any(denial.startswith(label) for denial in self.facts.denials):
            self.facts.denials.append(label)

    def _api_error(self, kind: str, message: str) -> list[PaneLine]:
        facts = self.facts
        said = " ".join(f"{kind}: {message}".split())
        if RATE_LIMIT.search(said):
            facts.rate_limit = said
        else:
            facts.is_error, facts.error = True, said
        return [PaneLine(f"✗ {_cut(said)}", "bad")]

    def _answered(self, text: str, match: re.Match[str]) -> list[PaneLine]:
        """A question's line completed: someone (the user or the wrapper) answered it."""
        asked = self.asked if self.asked is not None else self._make(text, match["text"])
        said = (match["answer"] or "").strip().lower() or "(the default)"
        if asked.kind == "command" and said.startswith(("n", "s", "d")):
            self._deny(asked.label)
        return [PaneLine(f"  → {said}", "dim")]

    # ------------------------------------------------------------ questions

    def question(self, partial: str) -> Question | None:
        text = erase_backspaces(partial).strip()
        match = QUESTION.match(text) or PLAIN_QUESTION.match(text)
        if match is None or match["answer"]:
            return None
        self.asked = self._make(text, match["text"])
        return self.asked

    def _make(self, prompt: str, text: str) -> Question:
        subject_lines = self.block[-1:] if not text.startswith("Run shell") else self.block
        subject = "\n".join(subject_lines)
        if text in ("Create new file?",):
            return Question(prompt, text, subject, "edit", f"Create({subject})")
        if text.startswith("Allow edits to file"):
            return Question(prompt, text, subject, "edit", f"Edit({subject})")
        if text == "Add file to the chat?":
            return Question(prompt, text, subject, "edit", f"Add({subject})")
        if text.startswith("Run shell command"):
            first = subject_lines[0] if subject_lines else ""
            more = " …" if len(subject_lines) > 1 else ""
            return Question(prompt, text, subject, "command", f"Run({first}{more})")
        if not subject.strip() or text.startswith(("Add command output", "Attempt to fix")):
            subject = ""
        label = f"{text} {subject}".strip() if subject else text
        return Question(prompt, text, subject, "other", label)


def erase_backspaces(text: str) -> str:
    """`text` as a terminal shows it after its backspaces (aider's spinner draws with them)."""
    if "\b" not in text:
        return text
    out: list[str] = []
    for char in text:
        if char == "\b":
            if out:
                out.pop()
        else:
            out.append(char)
    return "".join(out)


def _cut(text: str) -> str:
    return text if len(text) <= TEXT_WIDTH else text[: TEXT_WIDTH - 1] + "…"


AIDER = Aider()
