"""The readers of aider's, gemini-cli's and opencode's output, fed lines those programs printed.

The lines are copied from real runs of the pinned versions against the
scripted model server (the `test_agent_*` files run the programs themselves);
these tests pin down how each shape is read, fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import pytest

from limitless.programs.aider import AIDER, AiderStream, erase_backspaces
from limitless.programs.base import EventStream, Question
from limitless.programs.gemini import GeminiStream
from limitless.programs.opencode import OPENCODE, OpencodeStream
from limitless.programs.profiles import BUILTIN_PROFILES, AgentContext, render_argv

WORKTREE = Path("/tmp/wt")
SPIN = "░█\b\b\b  \b\b"  # aider's spinner, drawn and erased with backspaces


def feed(stream: EventStream, *lines: str) -> list[str]:
    """Give `stream` each line (an empty one is a blank line); the pane text it shows."""
    shown: list[str] = []
    for line in lines:
        if line:
            shown += [pane.text for pane in stream.line(line)]
        else:
            stream.blank()
    return shown


# -- aider ---------------------------------------------------------------------------


def test_aider_session_cost_edits_and_commit() -> None:
    """The session figure is the cost; an applied edit and aider's commit are shown."""
    stream = AiderStream(WORKTREE)
    shown = feed(
        stream,
        "Aider v0.86.2",
        "Model: openai/limitless-fake with whole edit format",
        "Git repo: ../../../repo/.git/worktrees/notes with 1 files",
        f"{SPIN}{SPIN}notes.txt",
        "```",
        "first note",
        "```",
        "Tokens: 1.0k sent, 100 received. Cost: $0.0012 message, $0.0024 session.",
        "Applied edit to notes.txt",
        f"{SPIN}Commit db830ab Make the scripted change",
    )
    assert shown == [
        "aider 0.86.2",
        "model openai/limitless-fake · whole edit format",
        "notes.txt",
        "  ``` 1 line",
        "· tokens 1.0k sent, 100 received · $0.0012 (session $0.0024)",
        "✎ notes.txt",
        "✓ commit db830ab Make the scripted change",
    ]
    facts = stream.facts
    assert (facts.cost_usd, facts.result_seen, facts.actions) == (0.0024, True, 1)
    assert (facts.is_error, facts.denials, facts.rate_limit) == (False, [], "")


def test_aider_cost_on_its_own_line_when_cache_is_named() -> None:
    """With cache write and hit, aider puts "Cost: …" on the next line."""
    stream = AiderStream(WORKTREE)
    feed(
        stream,
        "Tokens: 2.0k sent, 1.0k cache write, 500 cache hit, 100 received.",
        "Cost: $0.01 message, $0.03 session.",
    )
    assert stream.facts.cost_usd == 0.03


def test_aider_rate_limit_recovered_then_given_up() -> None:
    """A rate limit aider retries past is forgotten; one it ends on is the run's refusal."""
    stream = AiderStream(WORKTREE)
    error = "litellm.RateLimitError: RateLimitError: OpenAIException - scripted error 429"
    shown = feed(stream, error, "Retrying in 0.2 seconds...")
    assert shown[-1] == "↻ aider retries in 0.2s"
    assert stream.facts.rate_limit.startswith("RateLimitError: RateLimitError")
    feed(stream, "Tokens: 1.0k sent, 100 received. Cost: $0.0012 message, $0.0012 session.")
    assert stream.facts.rate_limit == ""
    feed(stream, error, "The API provider has rate limited you. Try again later.")
    assert stream.facts.rate_limit == (
        "RateLimitError: RateLimitError: OpenAIException - scripted error 429"
    )


def test_aider_other_api_errors_fail_until_a_reply_comes() -> None:
    stream = AiderStream(WORKTREE)
    feed(stream, "litellm.BadRequestError: OpenAIException - model not found")
    assert stream.facts.is_error
    assert stream.facts.error == "BadRequestError: OpenAIException - model not found"


class Asked(NamedTuple):
    test_id: str
    before: tuple[str, ...]
    prompt: str
    question: Question


ASKED = [
    Asked(
        "create",
        ("", "hello.txt"),
        "Create new file? (Y)es/(N)o [Yes]: ",
        Question(
            "Create new file? (Y)es/(N)o [Yes]:",
            "Create new file?",
            "hello.txt",
            "edit",
            "Create(hello.txt)",
        ),
    ),
    Asked(
        "edit-not-in-chat",
        ("", "src/app.py"),
        "Allow edits to file that has not been added to the chat? (Y)es/(N)o [Yes]: ",
        Question(
            "Allow edits to file that has not been added to the chat? (Y)es/(N)o [Yes]:",
            "Allow edits to file that has not been added to the chat?",
            "src/app.py",
            "edit",
            "Edit(src/app.py)",
        ),
    ),
    Asked(
        "commands",
        ("Run it:", "", "npm install    ", "npm test       "),
        "Run shell commands? (Y)es/(N)o/(S)kip all/(D)on't ask again [Yes]: ",
        Question(
            "Run shell commands? (Y)es/(N)o/(S)kip all/(D)on't ask again [Yes]:",
            "Run shell commands?",
            "npm install\nnpm test",
            "command",
            "Run(npm install …)",
        ),
    ),
    Asked(
        "url",
        ("", "https://aider.chat/docs/llms.html"),
        "Open URL for more info? (Y)es/(N)o/(D)on't ask again [Yes]: ",
        Question(
            "Open URL for more info? (Y)es/(N)o/(D)on't ask again [Yes]:",
            "Open URL for more info?",
            "https://aider.chat/docs/llms.html",
            "other",
            "Open URL for more info? https://aider.chat/docs/llms.html",
        ),
    ),
]


@pytest.mark.parametrize("case", ASKED, ids=[case.test_id for case in ASKED])
def test_aider_questions_are_recognised_with_their_subject(case: Asked) -> None:
    """The unfinished last line is a question; the lines since the blank one are its subject."""
    stream = AiderStream(WORKTREE)
    feed(stream, *case.before)
    assert stream.question(case.prompt) == case.question
    assert stream.question(case.prompt + "y") is None  # being answered: no longer waiting


class Answer(NamedTuple):
    test_id: str
    approve: str
    kind: str
    text: str
    keys: str | None


ANSWERS = [
    Answer("ask-leaves-edits", "ask", "edit", "Create new file?", None),
    Answer("ask-leaves-commands", "ask", "command", "Run shell command?", None),
    Answer("edits-says-yes-to-edits", "edits", "edit", "Create new file?", "y\r"),
    Answer("edits-says-no-to-commands", "edits", "command", "Run shell command?", "n\r"),
    Answer("all-runs-commands", "all", "command", "Run shell command?", "y\r"),
    Answer("all-opens-no-browser", "all", "other", "Open URL for more info?", "n\r"),
]


@pytest.mark.parametrize("case", ANSWERS, ids=[case.test_id for case in ANSWERS])
def test_aider_answers_follow_approve(case: Answer) -> None:
    question = Question("", case.text, "x", case.kind, "x")  # type: ignore[arg-type]
    assert AIDER.answer(case.approve, question) == case.keys  # type: ignore[arg-type]


def test_aider_declined_edits_and_commands_are_denials_once() -> None:
    """A skipped edit and a command answered no are refusals; named once each."""
    stream = AiderStream(WORKTREE)
    feed(stream, "", "hello.txt")
    asked = stream.question("Create new file? (Y)es/(N)o [Yes]: ")
    assert asked is not None
    stream.facts.denials.append(f"{asked.label}, unanswered for 30s")  # what the wrapper adds
    feed(stream, "Create new file? (Y)es/(N)o [Yes]: n", "Skipping edits to hello.txt")
    feed(stream, "", "rm -rf build")
    stream.question("Run shell command? (Y)es/(N)o/(D)on't ask again [Yes]: ")
    shown = feed(stream, "Run shell command? (Y)es/(N)o/(D)on't ask again [Yes]: n")
    assert shown == ["  → n"]
    assert stream.facts.denials == ["Create(hello.txt), unanswered for 30s", "Run(rm -rf build)"]


def test_aider_ignored_file_and_edits_that_never_apply_are_errors() -> None:
    stream = AiderStream(WORKTREE)
    feed(stream, "Skipping edits to build/out.txt that matches gitignore spec.")
    feed(stream, "Tokens: 1.0k sent, 100 received. Cost: $0.0012 message, $0.0012 session.")
    assert stream.facts.error == "its edit of build/out.txt was skipped: git ignores that file"
    stream = AiderStream(WORKTREE)
    feed(
        stream,
        "The LLM did not conform to the edit format.",
        "https://aider.chat/docs/troubleshooting/edit-errors.html",
        "No filename provided before ``` in file listing",
        "Only 3 reflections allowed, stopping.",
    )
    assert stream.facts.error == (
        "Only 3 reflections allowed, stopping. (the last: The LLM did not conform to the edit "
        "format. No filename provided before ``` in file listing)"
    )


def test_aider_crash_is_an_error_and_its_browser_question_is_declined() -> None:
    """Two aiders starting at once raced on .git/config: the crash is named, its question "no"."""
    stream = AiderStream(WORKTREE)
    shown = feed(
        stream,
        "# Uncaught OSError in util.py line 1045",
        "Aider version: 0.86.2",
        "An uncaught exception occurred:",
        "",
        "```",
        "Traceback (most recent call last):",
        '  File "util.py", line 1045, in _obtain_lock_or_raise',
        "OSError: Lock for file '/r/.git/config' did already exist",
        "```",
        "",
        "Please consider reporting this bug to help improve aider!",
    )
    assert shown[0] == "✗ Uncaught OSError in util.py line 1045"
    assert shown[-2] == "✗ OSError: Lock for file '/r/.git/config' did already exist"
    assert (
        stream.facts.error == "uncaught OSError: Lock for file '/r/.git/config' did already exist"
    )
    asked = stream.question(
        "Open a GitHub Issue pre-filled with the above error in your browser? (Y/n) "
    )
    assert asked is not None and asked.kind == "other"
    assert AIDER.answer("ask", asked) == "n\r"  # not left waiting, even under `ask`


def test_backspaces_are_erased_as_a_terminal_would() -> None:
    assert erase_backspaces(f"{SPIN}{SPIN}Commit abc") == "Commit abc"
    assert erase_backspaces("\b\bx") == "x"


# -- gemini-cli ----------------------------------------------------------------------


def _json(**event: object) -> str:
    return json.dumps(event)


def test_gemini_events_tools_text_and_tokens() -> None:
    stream = GeminiStream(WORKTREE)
    shown = feed(
        stream,
        _json(type="init", session_id="b5ea", model="auto"),
        _json(type="message", role="user", content="Write hi."),
        _json(
            type="tool_use",
            tool_name="write_file",
            tool_id="w1",
            parameters={"file_path": "/tmp/wt/hi.txt", "content": "hello\n"},
        ),
        _json(type="tool_result", tool_id="w1", status="success"),
        _json(type="message", role="assistant", content="writ", delta=True),
        _json(type="message", role="assistant", content="ten", delta=True),
        _json(
            type="result",
            status="success",
            stats={"input_tokens": 2000, "output_tokens": 200, "tool_calls": 1},
        ),
        "Warning: True color (24-bit) support not detected.",
    )
    assert shown == [
        "gemini-cli · model auto",
        "✎ write_file hi.txt",
        "● written",
        "✓ finished · 2000 tokens in, 200 out",
    ]
    facts = stream.facts
    assert (facts.session_id, facts.cost_usd, facts.result_seen) == ("b5ea", None, True)


def test_gemini_error_result_is_a_rate_limit_when_it_says_429() -> None:
    stream = GeminiStream(WORKTREE)
    feed(
        stream,
        _json(
            type="result",
            status="error",
            error={"type": "unknown", "message": "[API Error: scripted error 429]\nPlease wait"},
            stats={},
        ),
    )
    assert stream.facts.is_error
    assert stream.facts.rate_limit == "[API Error: scripted error 429] Please wait"


# -- opencode ------------------------------------------------------------------------


def _part(kind: str, **part: object) -> str:
    return json.dumps({"type": kind, "sessionID": "ses_1", "part": part})


def test_opencode_steps_sum_their_costs_and_name_rejected_tools() -> None:
    stream = OpencodeStream(WORKTREE)
    shown = feed(
        stream,
        _part("step_start"),
        _part(
            "tool_use",
            tool="write",
            state={"status": "completed", "input": {"filePath": "/tmp/wt/a.txt"}},
        ),
        _part(
            "step_finish", reason="tool-calls", cost=0.0012, tokens={"input": 1000, "output": 100}
        ),
        "! permission requested: bash (echo ran > ran.txt); auto-rejecting",
        _part(
            "tool_use",
            tool="bash",
            state={
                "status": "error",
                "input": {"command": "echo ran > ran.txt"},
                "error": "The user rejected permission to use this specific tool call.",
            },
        ),
        _part(
            "step_finish", reason="tool-calls", cost=0.0012, tokens={"input": 1000, "output": 100}
        ),
    )
    assert shown == [
        "✎ write a.txt",
        "permission requested: bash (echo ran > ran.txt); auto-rejecting",
        "$ echo ran > ran.txt",
        "  ✗ The user rejected permission to use this specific tool call.",
    ]
    facts = stream.facts
    assert facts.cost_usd == pytest.approx(0.0024)
    assert (facts.denials, facts.result_seen, facts.session_id) == (
        ["Bash(echo ran > ran.txt)"],
        False,
        "ses_1",
    )


def test_opencode_api_error_event_with_429_is_a_rate_limit() -> None:
    stream = OpencodeStream(WORKTREE)
    event = {
        "type": "error",
        "error": {"name": "APIError", "data": {"message": "slow down", "statusCode": 429}},
    }
    feed(stream, json.dumps(event))
    assert stream.facts.rate_limit == "slow down (HTTP 429)"


def test_opencode_permissions_are_set_for_the_run_by_environment() -> None:
    assert json.loads(OPENCODE.approve_env("edits")["OPENCODE_PERMISSION"]) == {
        "edit": "allow",
        "bash": "ask",
        "webfetch": "ask",
    }
    assert json.loads(OPENCODE.approve_env("all")["OPENCODE_PERMISSION"])["bash"] == "allow"


def test_opencode_error_on_stderr_keeps_its_detail() -> None:
    """opencode's "Error: Unexpected error" says what it was on the next line."""
    stream = OpencodeStream(WORKTREE)
    feed(stream, "Error: Unexpected error", "", "Failed query: CREATE TABLE `workspace` (")
    assert stream.facts.error == "Unexpected error (Failed query: CREATE TABLE `workspace` ()"


def test_opencode_database_is_the_tasks_own(tmp_path: Path) -> None:
    assert OPENCODE.state_env(tmp_path) == {"OPENCODE_DB": str(tmp_path / "opencode.db")}


class PromptArg(NamedTuple):
    test_id: str
    profile: str
    carried: tuple[str, ...]  # the argv elements that carry the prompt


PROMPT_ARGS = [
    PromptArg("aider", "aider", ("--message=--version",)),
    PromptArg("gemini", "gemini", ("--prompt=--version",)),
    PromptArg("opencode", "opencode", ("--", "--version")),
]


@pytest.mark.parametrize("case", PROMPT_ARGS, ids=[case.test_id for case in PROMPT_ARGS])
def test_a_prompt_that_looks_like_a_flag_stays_the_prompt(case: PromptArg) -> None:
    """`--version` as a prompt reaches the program as its prompt, not as an option."""
    argv = render_argv(
        BUILTIN_PROFILES[case.profile], AgentContext("--version", "/p", "t", "/w", "b")
    )
    at = argv.index(case.carried[0])
    assert tuple(argv[at : at + len(case.carried)]) == case.carried
    assert argv.count("--version") == (1 if case.profile == "opencode" else 0)
