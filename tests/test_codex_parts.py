"""The parts of the Codex adapters, on the real program's text: screens and dialogs
captured from Codex 0.171.0's TUI in tmux, its notify JSON, the command lines built for
it, and the price table. The whole flow is in test_agent_codex.py and
test_codex_interactive.py."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import NamedTuple

import pytest

from limitless.agents import hookrelay as agenthook
from limitless.programs.codex import CODEX, shell_command
from limitless.programs.codex_rollout import TokenUsage, call_label, prices_of
from limitless.programs.codex_tui import CODEX_INTERACTIVE, notify_command

APPROVE_EDIT = """\
› Do it [script:tui3]
• Added hello3.txt (+1 -0)
    1 +hi
    + Show details
  Would you like to make the following edits?
  Description: Apply proposed file edits
  Destination: /tmp/cxtui/hello3.txt
› 1. Yes, proceed (y)
  2. Yes, and don't ask again for these files (a)
  3. No, and tell Codex what to do differently (esc)
  Press enter to confirm or esc to cancel"""
APPROVE_COMMAND = """\
• Running touch esc.txt
  Would you like to run the following command?
  Environment: local
  Reason: The scripted step needs to run outside the sandbox.
  $ touch esc.txt
› 1. Yes, proceed (y)
  2. Yes, and don't ask again for commands that start with `touch esc.txt` (p)
  3. No, and tell Codex what to do differently (esc)
  Press enter to confirm or esc to cancel"""
WORKING = """\
  >_ OpenAI Codex (v0.171.0)
     /tmp/cxtui
› Do it [script:tui2]
◦ Working (1s • esc to interrupt)
› Ask Codex to do anything
  GPT-5.5 default · /tmp/cxtui · Do it [script:tui2]
  ← for agents · ? for shortcuts"""
DONE = """\
• Added hello2.txt (+1 -0)
    1 +hi
    + Show details
• done
  Worked for 4s • 14:51
› Ask Codex to do anything
  GPT-5.5 default · /tmp/cxtui · Do it [script:tui2]
  ← for agents · ? for shortcuts"""
INTERRUPTED = """\
• Added hello3.txt (+1 -0)
    1 +hi
    + Show details
■ Conversation interrupted - use /feedback if something went wrong
› Ask Codex to do anything
  GPT-5.5 default · /tmp/cxtui · Do it [script:tui3]
  ← for agents · ? for shortcuts"""
BEFORE_THE_FIRST_TURN = """\
  >_ OpenAI Codex (v0.171.0)
     /tmp/cxtui
› Ask Codex to do anything
  GPT-5.5 default · /tmp/cxtui
  ← for agents · ? for shortcuts"""
TRUST = """\
  Trust this folder? Codex can read, edit, and run files here, subject to your permission \
settings.
› 1. Trust and continue
  2. Back to Agent Command Center
  enter continue · esc back"""
MODEL_UPGRADE = """\
  Meet GPT-6 Sol
  Our latest Sol is more intelligent and more efficient so your usage limits go further.
› 1. Try new model
  2. Use existing model
  enter/esc confirm · ^c quit"""
HOOKS_REVIEW = """\
  Hooks need review
  6 hooks are new or changed.
› 1. Review hooks
  2. Trust all and continue
  3. Continue without trusting (hooks won't run)
  enter confirm · esc skip"""
LOGIN = """\
  Welcome to Codex, OpenAI's command-line coding agent
> 1. Sign in with ChatGPT
  3. Sign in another way
  Press enter to continue"""


class Screen(NamedTuple):
    test_id: str
    text: str
    state: str | None
    reason: str


SCREENS = [
    Screen(
        "edit approval",
        APPROVE_EDIT,
        "input",
        "Codex asks: Would you like to make the following edits? "
        "(Destination: /tmp/cxtui/hello3.txt)",
    ),
    Screen(
        "command approval",
        APPROVE_COMMAND,
        "input",
        "Codex asks: Would you like to run the following command? ($ touch esc.txt)",
    ),
    Screen("working", WORKING, "working", "a turn runs (esc to interrupt)"),
    Screen("turn done", DONE, "idle", "at its prompt after: Worked for 4s • 14:51"),
    Screen(
        "interrupted",
        INTERRUPTED,
        "idle",
        "at its prompt after: ■ Conversation interrupted - use /feedback if something went wrong",
    ),
    Screen("before the first turn", BEFORE_THE_FIRST_TURN, None, ""),
    Screen("trust", TRUST, "input", "Codex asks: Trust this folder?"),
    Screen("model upgrade", MODEL_UPGRADE, "input", "Codex asks: 1. Try new model"),
]


@pytest.mark.parametrize("case", SCREENS, ids=[case.test_id for case in SCREENS])
def test_codex_screens(case: Screen) -> None:
    """Each screen of the TUI reads as the state a user would name."""
    seen = CODEX_INTERACTIVE.screen(case.text.splitlines())
    if case.state is None:
        assert seen is None
        return
    assert seen is not None
    assert (seen.state, seen.reason) == (case.state, case.reason)


class Dialog(NamedTuple):
    test_id: str
    text: str
    name: str
    keys: bytes
    fails: bool


DIALOGS = [
    Dialog("trust", TRUST, "trust", b"1", False),
    Dialog("model upgrade", MODEL_UPGRADE, "model upgrade", b"2", False),
    Dialog("hooks review", HOOKS_REVIEW, "hooks review", b"3", False),
    Dialog("login", LOGIN, "login", b"", True),
]


@pytest.mark.parametrize("case", DIALOGS, ids=[case.test_id for case in DIALOGS])
def test_codex_first_run_dialogs(case: Dialog) -> None:
    """Dialogs before the first prompt are answered (never stalling an unattended task)
    or, when no answer can be given for the user, fail the task saying what to do."""
    text = "".join(case.text.split())  # as the driver keeps the output
    answer = CODEX_INTERACTIVE.startup_dialog(text)
    assert answer is not None
    assert (answer.name, answer.keys, bool(answer.fail)) == (case.name, case.keys, case.fails)
    assert CODEX_INTERACTIVE.startup_dialog("".join(DONE.split())) is None


def test_the_tui_command_line_sets_everything_for_this_process_only(tmp_path: Path) -> None:
    """Flags after the profile's argv, each -c value valid TOML, the prompt after --."""
    worktree = tmp_path / 'odd "name"'
    prompt = "-starts with a dash"
    argv = ["codex", "--no-daemon", "-C", str(worktree), prompt]
    built = CODEX_INTERACTIVE.command(argv, "ask", prompt)
    assert built[:4] == ["codex", "--no-daemon", "-C", str(worktree)]
    assert built[4:8] == ["--sandbox", "read-only", "--ask-for-approval", "on-request"]
    assert built[-2:] == ["--", prompt]
    settings = {}
    for flag, value in zip(built[8:-2:2], built[9:-2:2], strict=True):
        assert flag == "-c"
        settings.update(tomllib.loads(value))
    assert settings["projects"] == {str(worktree): {"trust_level": "trusted"}}
    assert settings["notice"]["model_migrations"]["gpt-5.5"] == "gpt-6-sol"
    assert settings["notify"] == notify_command()
    all_ = CODEX_INTERACTIVE.command(argv, "all", prompt)
    assert "--dangerously-bypass-approvals-and-sandbox" in all_
    assert "--sandbox" not in all_


def test_on_a_host_the_notify_program_is_the_relay_of_the_install_there() -> None:
    """Only the notify setting changes: the interpreter and relay of the host's install."""
    prompt = "do it"
    built = CODEX_INTERACTIVE.command(["codex", "-C", "/there/w", prompt], "ask", prompt)
    python, relay = "/r/install/venv/bin/python", "/r/install/src/limitless/agents/hookrelay.py"
    there = CODEX_INTERACTIVE.on_host(built, python, relay)
    changed = [(a, b) for a, b in zip(built, there, strict=True) if a != b]
    assert len(changed) == 1
    assert tomllib.loads(changed[0][1])["notify"] == [python, "-S", "-I", relay, "--codex-notify"]


def test_the_exec_command_line_puts_the_prompt_last() -> None:
    """codex exec: the sandbox of each approve, then `--` and the prompt."""
    prompt = "--help me"
    argv = ["codex", "exec", "--json", prompt, "-m", "gpt-5.5"]
    assert CODEX.command(argv, "edits", prompt) == [
        "codex",
        "exec",
        "--json",
        "-m",
        "gpt-5.5",
        "--sandbox",
        "workspace-write",
        "--",
        prompt,
    ]
    assert CODEX.command(argv, "all", prompt)[-3:] == [
        "--dangerously-bypass-approvals-and-sandbox",
        "--",
        prompt,
    ]


def test_notify_of_the_main_thread_is_a_turn_end_and_of_a_side_thread_nothing(
    tmp_path: Path,
) -> None:
    """The relay reads Codex's notify JSON: the thread with a session file (the main one)
    is a Stop with its transcript; the title thread (no session file) is ignored."""
    home = tmp_path / "codex-home"
    day = home / "sessions" / "2026" / "12" / "04"
    day.mkdir(parents=True)
    main = day / "rollout-2026-12-04T14-53-09-01a2418b-78c4.jsonl"
    main.write_text("")
    env = {"CODEX_HOME": str(home)}

    def note(thread: str) -> dict[str, object]:
        return {
            "type": "agent-turn-complete",
            "thread-id": thread,
            "turn-id": "t1",
            "cwd": "/tmp/cxtui",
            "client": "codex-tui",
            "input-messages": ["Do it"],
            "last-assistant-message": "done",
        }

    payload = agenthook.codex_payload(note("01a2418b-78c4"), env)
    assert payload == {
        "hook_event_name": "Stop",
        "session_id": "01a2418b-78c4",
        "cwd": "/tmp/cxtui",
        "transcript_path": str(main),
        "limitless_source": "codex-notify",
    }
    assert agenthook.signal_of(payload) == ("idle", "turn ended")
    assert agenthook.codex_payload(note("01a2418b-79a3"), env) is None
    assert agenthook.codex_payload({"type": "other"}, env) is None
    assert agenthook.main(["agenthook.py", "--codex-notify", json.dumps(note("x"))]) == 0


def test_prices_and_usage() -> None:
    """OpenAI's list prices: input includes cached and cache-write tokens; an unknown or
    a dated model name."""
    usage = TokenUsage(input=10_000, cached=4_000, cache_write=1_000, output=2_000)
    sol = prices_of("gpt-5.6-sol")
    assert sol is not None
    assert sol.cost(usage) == pytest.approx(
        (5_000 * 5 + 4_000 * 0.5 + 1_000 * 6.25 + 2_000 * 30) / 1e6
    )
    five = prices_of("GPT-5.5-2026-04-23")
    assert five is not None and five.cost(usage) == pytest.approx(
        (6_000 * 5 + 4_000 * 0.5 + 2_000 * 30) / 1e6
    )
    assert prices_of("gpt-6-sol") is None
    assert prices_of(None) is None


def test_labels_of_calls_and_commands() -> None:
    """How a refused call and a command are named to the user."""
    patch = "*** Begin Patch\n*** Add File: a.txt\n+x\n*** Update File: src/b.py\n*** End Patch\n"
    assert call_label("apply_patch", None, patch) == "apply_patch(a.txt, src/b.py)"
    assert call_label("exec_command", json.dumps({"cmd": "git  commit -m x"}), None) == (
        "exec_command(git commit -m x)"
    )
    assert shell_command("/bin/bash -lc 'cat a && echo b >> a'") == "cat a && echo b >> a"
    assert shell_command(["/bin/zsh", "-c", "ls"]) == "ls"
    assert shell_command("git status") == "git status"
