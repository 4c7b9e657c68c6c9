"""The parts behind `claude-interactive`, each on its own (fast; the real TUI runs in
tests/test_claude_interactive.py): the screens it reads, the first-run dialogs it
answers, the transcript cost, the hook relay on a real store and repository, the
wrapper's idle_done countdown, and the store's migration for runs started before."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from limitless.agents import claude_hooks, hookfix, interactive, ratelimit
from limitless.agents import hookrelay as agenthook
from limitless.agents.interactive import InteractiveDriver, typed_keys
from limitless.git.runner import CommitRejected
from limitless.programs.claude_tui import CLAUDE_INTERACTIVE, prices_of, transcript_cost
from limitless.programs.codex_tui import CODEX_INTERACTIVE
from limitless.states import TaskStatus, Waiting, task_state
from limitless.store import Run, Store, TaskRow, migrate
from limitless.views.status import reason_of, state_of
from tests.conftest import git

# Screens as `tmux capture-pane` shows them (Claude Code 2.1.197, 120 columns),
# the last non-empty lines the state watcher reads.
RULE = "─" * 120
PERMISSION_WRITE = [
    "❯ make hello [script:perm]",
    "● Write(hello.txt)",
    RULE,
    " Create file",
    " hello.txt",
    "╌" * 120,
    "  1 hi",
    "╌" * 120,
    " Do you want to create hello.txt?",
    " ❯ 1. Yes",
    "   2. Yes, allow all edits during this session (shift+tab)",
    "   3. No",
    " Esc to cancel · Tab to amend",
]
PERMISSION_BASH = [
    "❯ run it [script:bash]",
    "● Bash(echo hi > b.txt)",
    "  ⎿  Waiting…",
    RULE,
    " Bash command",
    "   echo hi > b.txt",
    "   scripted step",
    " Do you want to proceed?",
    " ❯ 1. Yes",
    "   2. Yes, and always allow access to t1/ from this project",
    "   3. No",
    " Esc to cancel · Tab to amend · ctrl+e to explain",
]
IDLE = [
    "● done",
    "✻ Worked for 0s",
    RULE,
    "❯\u00a0",
    RULE,
    "  ? for shortcuts · ← for agents",
    "                  tmux focus-events off · add 'set -g focus-events on' to ~/.tmux.conf",
]
AFTER_NO = [
    "❯ make hello [script:perm]",
    "● Write(hello.txt)",
    "  ⎿  User rejected write to hello.txt",
    "      1 hi",
    RULE,
    "❯\u00a0",
    RULE,
    "  ? for shortcuts · ← for agents",
]
BUSY = [
    "❯ think [script:slow]",
    "· Smooshing…",
    RULE,
    "❯\u00a0",
    RULE,
    "  ⏵⏵ accept edits on (shift+tab to cycle) · esc to interrupt · ← for agents",
]
TRUST = [
    RULE,
    " Accessing workspace:",
    " /tmp/ix/wt/t1",
    " ❯ 1. Yes, I trust this folder",
    "   2. No, exit",
    " Enter to confirm · Esc to cancel",
]


class ScreenCase(NamedTuple):
    test_id: str
    lines: list[str]
    state: str | None
    reason: str


SCREENS = [
    ScreenCase(
        "write permission",
        PERMISSION_WRITE,
        "input",
        "Claude Code asks: Do you want to create hello.txt?",
    ),
    ScreenCase(
        "bash permission", PERMISSION_BASH, "input", "Claude Code asks: Do you want to proceed?"
    ),
    ScreenCase("trust dialog", TRUST, "input", "Claude Code asks: ❯ 1. Yes, I trust this folder"),
    ScreenCase("idle prompt", IDLE, "idle", "at its prompt"),
    ScreenCase(
        "idle after No",
        AFTER_NO,
        "idle",
        "at its prompt after: ⎿  User rejected write to hello.txt",
    ),
    ScreenCase("a turn runs", BUSY, "working", "a turn runs (esc to interrupt)"),
    ScreenCase("a shell", ["$ ls", "README.md"], None, ""),
]


@pytest.mark.parametrize("case", SCREENS, ids=[case.test_id for case in SCREENS])
def test_the_screen_tells_a_question_a_turn_and_the_idle_prompt(case: ScreenCase) -> None:
    """Claude Code's permission screens read as input, its footer while busy as working,
    its prompt between two rules as idle (also after a refused permission: no hook says so)."""
    seen = CLAUDE_INTERACTIVE.screen(case.lines)
    if case.state is None:
        assert seen is None
        return
    assert seen is not None
    assert (seen.state, seen.reason) == (case.state, case.reason)


# Output as the TUI writes it: words placed by cursor moves, not spaces.
RAW_TRUST = (
    "\x1b7\x1b8\r\r\n\x1b[2m────\x1b[22m\r\r\n\x1b[1mAccessing\x1b[1Cworkspace:\x1b[22m\r\r\n"
    "\x1b[38;5;174m❯\x1b[39m\x1b[1C1.\x1b[1CYes,\x1b[1CI\x1b[1Ctrust\x1b[1Cthis\x1b[1Cfolder\r\r\n"
    "\x1b[2C2.\x1b[1CNo,\x1b[1Cexit\r\r\n"
)


class DialogCase(NamedTuple):
    test_id: str
    output: str
    name: str | None
    keys: bytes
    fails: bool


DIALOGS = [
    DialogCase("trust", RAW_TRUST, "trust", b"\r", False),
    DialogCase(
        "api key",
        "Detected a custom API key in your environment\nANTHROPIC_API_KEY: sk-ant-...ghij\n"
        "Do you want to use this API key?\n  1. Yes\n❯ 2. No (recommended)",
        "api key",
        b"1",
        False,
    ),
    DialogCase(
        "bypass",
        "WARNING: Claude Code running in Bypass Permissions mode\n"
        "❯ 1. No, exit\n  2. Yes, I accept",
        "bypass warning",
        b"2",
        False,
    ),
    DialogCase("onboarding", "Unable to connect to Anthropic services", "onboarding", b"", True),
    DialogCase("login", "⎿ Not logged in · Please run /login", "login", b"", True),
    DialogCase("the prompt", "❯ make hello [script:perm]", None, b"", False),
]


@pytest.mark.parametrize("case", DIALOGS, ids=[case.test_id for case in DIALOGS])
def test_first_run_dialogs_are_recognised_in_the_raw_output(case: DialogCase) -> None:
    """The dialogs before the first prompt are found in the TUI's bytes; the ones no one
    can answer for the user fail the task with what to do."""
    from limitless.agents.interactive import ESCAPES, WHITESPACE

    text = WHITESPACE.sub("", ESCAPES.sub("", case.output))
    answer = CLAUDE_INTERACTIVE.startup_dialog(text)
    if case.name is None:
        assert answer is None
        return
    assert answer is not None
    assert (answer.name, answer.keys, bool(answer.fail)) == (case.name, case.keys, case.fails)
    if case.fails:
        assert "claude" in answer.fail


def test_the_command_puts_flags_first_and_the_prompt_last() -> None:
    """A prompt that starts with `-` is not read as an option; bypass mode accepts its
    warning for this process only (no write to ~/.claude/settings.json)."""
    argv = ["claude", "-fix the bug", "--model", "sonnet"]
    assert CLAUDE_INTERACTIVE.command(argv, "ask", "-fix the bug") == [
        "claude", "--permission-mode", "default", "--model", "sonnet", "--", "-fix the bug",
    ]  # fmt: skip
    assert CLAUDE_INTERACTIVE.command(["claude", "go"], "all", "go") == [
        "claude",
        "--permission-mode",
        "bypassPermissions",
        "--settings",
        '{"skipDangerousModePermissionPrompt":true}',
        "--",
        "go",
    ]
    assert CLAUDE_INTERACTIVE.command(["claude", "go"], "edits", "go")[1:3] == [
        "--permission-mode",
        "acceptEdits",
    ]


def test_refusal_names_an_unfinished_onboarding_and_root_bypass(tmp_path: Path) -> None:
    """Before a run: Claude Code never set up for this user, or bypass mode as root."""
    env = {"HOME": str(tmp_path)}
    refused = CLAUDE_INTERACTIVE.refusal("edits", env, is_root=False)
    assert refused is not None
    assert "run `claude` once in a terminal" in refused.message
    (tmp_path / ".claude.json").write_text('{"hasCompletedOnboarding": true}')
    assert CLAUDE_INTERACTIVE.refusal("edits", env, is_root=False) is None
    bypass = CLAUDE_INTERACTIVE.refusal("all", env, is_root=True)
    assert bypass is not None and "IS_SANDBOX" in bypass.message
    assert CLAUDE_INTERACTIVE.refusal("all", {**env, "IS_SANDBOX": "1"}, is_root=True) is None


def test_run_refuses_before_anything_when_claude_code_was_never_set_up(
    repo: Path, agent_path: str
) -> None:
    """A user whose Claude Code never finished its onboarding: `run` says so and how to
    fix it, exit 3, before any worktree or tmux session exists."""
    from tests.engine_helpers import cli, write_plan

    write_plan(repo, "name: x\nagent: claude-interactive\ntasks:\n  - {id: a, prompt: go}\n")
    refused = cli(repo, "run", "--detach")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "run `claude` once in a terminal and finish it, then start the run" in refused.stderr
    assert not (repo.parent / f"{repo.name}.worktrees").exists()


# ---------------------------------------------------------------- cost


def _answer(message_id: str, model: str, usage: dict[str, object], block: str) -> str:
    return json.dumps(
        {
            "type": "assistant",
            "message": {
                "id": message_id,
                "model": model,
                "usage": usage,
                "content": [{"type": block}],
            },
        }
    )


def test_transcript_cost_counts_each_answer_once_at_its_model_price(tmp_path: Path) -> None:
    """An answer written once per content block counts once; 1-hour cache writes cost 2×
    input, 5-minute ones 1.25×; subagents' transcripts count; other lines do not."""
    session = tmp_path / "abc.jsonl"
    usage = {"input_tokens": 1000, "output_tokens": 50}
    lines = [
        json.dumps({"type": "user", "message": {"content": "hi"}}),
        _answer("m1", "claude-opus-4-8", {"input_tokens": 1000, "output_tokens": 1}, "text"),
        _answer("m1", "claude-opus-4-8", usage, "tool_use"),  # the same answer, final usage
        _answer(
            "m2",
            "claude-sonnet-4-5",
            {
                "input_tokens": 10,
                "output_tokens": 0,
                "cache_read_input_tokens": 1000,
                "cache_creation_input_tokens": 3000,
                "cache_creation": {"ephemeral_1h_input_tokens": 1000},
            },
            "text",
        ),
        '{"type": "assistant", "message": {"usage": ',  # a line being written
    ]
    session.write_text("\n".join(lines) + "\n")
    sub = tmp_path / "abc" / "subagents"
    sub.mkdir(parents=True)
    (sub / "agent-1.jsonl").write_text(
        _answer("m3", "claude-haiku-4-5", {"input_tokens": 1_000_000}, "text") + "\n"
    )
    opus = (1000 * 5.0 + 50 * 25.0) / 1e6
    sonnet = (10 * 3.0 + 1000 * 0.30 + 2000 * 3.0 * 1.25 + 1000 * 3.0 * 2) / 1e6
    haiku = 1.0
    assert transcript_cost([session]) == pytest.approx(opus + sonnet + haiku)
    assert transcript_cost([tmp_path / "missing.jsonl"]) is None
    assert prices_of("claude-opus-4-1-20250805").output == 75.0
    assert prices_of("something-new") == prices_of("claude-opus-4-8")


# ---------------------------------------------------------------- the hook relay


@pytest.fixture
def task_repo(repo: Path, tmp_path: Path) -> Iterator[tuple[Store, Path]]:
    """A store beside `repo` with one running task whose worktree is a real git worktree."""
    worktree = tmp_path / "wt" / "t1"
    git(repo, "worktree", "add", "-q", "-b", "limitless/r-1/t1", str(worktree))
    state_dir = repo / ".git" / "limitless"
    with Store.open(state_dir) as store:
        store.create_run(
            Run(
                id="r-1",
                plan_name="r",
                plan_path=None,
                plan_json="{}",
                repo_root=str(repo),
                base="main",
                base_sha="0" * 40,
                worktree_root=str(tmp_path / "wt"),
                created_at=time.time(),
            )
        )
        store.add_tasks(
            "r-1",
            [
                TaskRow(
                    run_id="r-1",
                    id="t1",
                    position=0,
                    agent="claude-interactive",
                    branch="limitless/r-1/t1",
                    worktree=str(worktree),
                    status=TaskStatus.RUNNING,
                    attempt=1,
                    started_at=time.time() - 5,
                )
            ],
        )
        yield store, worktree


def relay(payload: dict[str, object], cwd: Path, env: dict[str, str] | None = None) -> None:
    """Run the relay as Claude Code does: the hook command through a shell, JSON on stdin."""
    done = subprocess.run(
        claude_hooks.relay_command(),
        shell=True,
        cwd=cwd,
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=30,
        env=env or {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"]},
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_the_relay_finds_its_task_from_the_payload_alone(task_repo: tuple[Store, Path]) -> None:
    """Without LIMITLESS_* variables, the payload's cwd (a folder inside the worktree) leads
    to the task; each event records its signal, a repeated `working` writes nothing."""
    store, worktree = task_repo
    (worktree / "src").mkdir()
    base = {"session_id": "s-1", "cwd": str(worktree / "src"), "transcript_path": "/t/s-1.jsonl"}
    relay({**base, "hook_event_name": "UserPromptSubmit", "prompt": "go"}, worktree)
    row = store.get_task("r-1", "t1")
    assert (row.last_signal, row.session_id) == ("working: UserPromptSubmit", "s-1")
    relay({**base, "hook_event_name": "PreToolUse", "tool_name": "Write"}, worktree)
    assert store.get_task("r-1", "t1").last_signal == "working: UserPromptSubmit"
    tool_input = {"file_path": str(worktree / "src" / "a.py")}
    relay(
        {
            **base,
            "hook_event_name": "PermissionRequest",
            "tool_name": "Write",
            "tool_input": tool_input,
        },
        worktree,
    )
    assert store.get_task("r-1", "t1").last_signal == "waiting: permission for Write(a.py)"
    relay({**base, "hook_event_name": "Stop", "background_tasks": []}, worktree)
    assert store.get_task("r-1", "t1").last_signal == "idle: turn ended"
    signals = [e.data for e in store.events("r-1") if e.kind == "task_signal"]
    assert [(d["signal"], d["source"]) for d in signals] == [
        ("working", "claude-UserPromptSubmit"),
        ("waiting", "claude-PermissionRequest"),
        ("idle", "claude-Stop"),
    ]
    log = store.run_dir("r-1") / "hooks" / "t1.jsonl"
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert events == ["UserPromptSubmit", "PreToolUse", "PermissionRequest", "Stop"]


class SignalCase(NamedTuple):
    test_id: str
    payload: dict[str, object]
    signal: tuple[str, str] | None


SIGNALS = [
    SignalCase("prompt", {"hook_event_name": "UserPromptSubmit"}, ("working", "UserPromptSubmit")),
    SignalCase(
        "bash",
        {
            "hook_event_name": "PostToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": "npm  test"},
        },
        ("working", "PostToolUse Bash(npm test)"),
    ),
    SignalCase(
        "permission notice",
        {
            "hook_event_name": "Notification",
            "notification_type": "permission_prompt",
            "message": "Claude needs your permission",
        },
        ("waiting", "Claude needs your permission"),
    ),
    SignalCase(
        "idle notice",
        {
            "hook_event_name": "Notification",
            "notification_type": "idle_prompt",
            "message": "Claude is waiting for your input",
        },
        ("idle", "Claude is waiting for your input"),
    ),
    SignalCase(
        "other notice",
        {"hook_event_name": "Notification", "notification_type": "auth_success"},
        None,
    ),
    SignalCase(
        "stop with a background shell",
        {"hook_event_name": "Stop", "background_tasks": [{"id": "b1"}]},
        ("working", "turn ended; 1 background task pending"),
    ),
    SignalCase(
        "api error",
        {"hook_event_name": "StopFailure", "error": "rate_limit", "error_details": "429"},
        ("idle", "turn ended on an error: rate_limit 429"),
    ),
    SignalCase("session start", {"hook_event_name": "SessionStart"}, None),
]


@pytest.mark.parametrize("case", SIGNALS, ids=[case.test_id for case in SIGNALS])
def test_each_hook_event_means_one_signal(case: SignalCase) -> None:
    """The relay's reading of Claude Code's hook payloads."""
    assert agenthook.signal_of(case.payload) == case.signal


def test_the_relay_writes_what_the_store_reads(task_repo: tuple[Store, Path]) -> None:
    """The relay's plain SQL and the Store agree (a `done` signal also asks the supervisor);
    a task that is not active is left alone; a folder outside any task is ignored."""
    store, worktree = task_repo
    now = time.time()
    env = {
        "LIMITLESS_STATE_DIR": str(store.state_dir),
        "LIMITLESS_RUN": "r-1",
        "LIMITLESS_TASK": "t1",
    }
    payload = {"hook_event_name": "Stop", "session_id": "s-2", "cwd": "/elsewhere"}
    assert agenthook.record(payload, now, "done", env) == "done"
    row = store.get_task("r-1", "t1")
    assert (row.last_signal, row.last_signal_at, row.session_id) == ("done: turn ended", now, "s-2")
    assert [r.action for r in store.pending_requests("r-1")] == ["done"]
    assert agenthook.record({"hook_event_name": "Stop", "cwd": "/"}, now, "idle", {}) is None
    store.update_task("r-1", "t1", status=TaskStatus.DONE)
    payload = {"hook_event_name": "PermissionRequest", "cwd": str(worktree)}
    assert agenthook.record(payload, now + 1, "idle", {}) is None
    assert store.get_task("r-1", "t1").last_signal == "done: turn ended"


# ---------------------------------------------------------------- the countdown


class Sent:
    def __init__(self) -> None:
        self.keys: list[bytes] = []
        self.stopped = 0

    def send(self, data: bytes) -> None:
        self.keys.append(data)

    def stop(self) -> None:
        self.stopped += 1


def tick_until(driver: InteractiveDriver, condition: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        driver.tick()
        time.sleep(0.05)


def signal(store: Store, text: str) -> None:
    store.update_task("r-1", "t1", last_signal=text, last_signal_at=time.time())


def test_idle_done_counts_down_after_a_turn_typing_cancels_and_the_next_turn_closes(
    task_repo: tuple[Store, Path],
) -> None:
    """Idle before any turn: nothing. After a turn's Stop: a deadline in the row (shown as a
    countdown); a key in the pane cancels it; the next turn's end starts it again, and at
    the deadline `/exit` is typed into the agent."""
    store, _ = task_repo
    sent = Sent()
    driver = InteractiveDriver(
        store, store.get_task("r-1", "t1"), CLAUDE_INTERACTIVE, 0.6, sent.send, sent.stop
    )
    store.update_task("r-1", "t1", status=TaskStatus.WAITING, waiting_kind=Waiting.IDLE)
    tick_until(driver, lambda: driver.idle_seen_at is not None)
    signal(store, "working: UserPromptSubmit")  # the prompt went in; the row still reads idle
    time.sleep(0.6)
    driver.tick()
    assert store.get_task("r-1", "t1").idle_done_at is None
    signal(store, "idle: turn ended")  # the Stop hook
    tick_until(driver, lambda: store.get_task("r-1", "t1").idle_done_at is not None)
    waiting = store.get_task("r-1", "t1")
    assert state_of(waiting) == "idle"
    assert "done in " in reason_of(waiting) and "unless you type in its pane" in reason_of(waiting)
    driver.typed(b"\x1b[I")  # a focus report is not typing
    assert store.get_task("r-1", "t1").idle_done_at is not None
    driver.typed(b"h")
    assert store.get_task("r-1", "t1").idle_done_at is None
    time.sleep(0.8)
    driver.tick()
    assert (sent.keys, driver.closed) == ([], False)
    driver.output(b"\x1b[2m esc to interrupt \x1b[0m")  # the user's prompt: a new turn
    store.update_task("r-1", "t1", status=TaskStatus.RUNNING, waiting_kind=Waiting.OTHER)
    tick_until(driver, lambda: driver.idle_seen_at is None)
    store.update_task("r-1", "t1", status=TaskStatus.WAITING, waiting_kind=Waiting.IDLE)
    tick_until(driver, lambda: sent.keys == [b"/exit", b"\r"])
    assert driver.closed and sent.stopped == 0
    kinds = [e.kind for e in store.events("r-1") if e.kind.startswith("task_")]
    assert kinds == [
        "task_countdown",
        "task_countdown_cancelled",
        "task_countdown",
        "task_closing",
    ]


def test_a_turn_too_short_to_show_as_running_still_ends_in_a_countdown(
    task_repo: tuple[Store, Path],
) -> None:
    """No hooks, a turn over before the watcher could show it running: the row reads idle
    all along; once the turn began long enough ago, its end is counted down."""
    store, _ = task_repo
    sent = Sent()
    driver = InteractiveDriver(
        store, store.get_task("r-1", "t1"), CLAUDE_INTERACTIVE, 30.0, sent.send, sent.stop
    )
    store.update_task("r-1", "t1", status=TaskStatus.WAITING, waiting_kind=Waiting.IDLE)
    tick_until(driver, lambda: driver.idle_seen_at is not None)
    driver.output(b"esc to interrupt")
    started = time.monotonic()
    tick_until(driver, lambda: store.get_task("r-1", "t1").idle_done_at is not None)
    assert time.monotonic() - started >= 1.5


def rate_limited_turn(store: Store, driver: InteractiveDriver, reason: str) -> None:
    """A turn ran (its prompt's hook), then Claude Code's StopFailure made the row idle
    on an error."""
    signal(store, "working: UserPromptSubmit")
    store.update_task("r-1", "t1", status=TaskStatus.RUNNING, waiting_kind=Waiting.OTHER)
    time.sleep(interactive.POLL_S + 0.05)
    driver.tick()
    driver.output(b"esc to interrupt")
    store.update_task(
        "r-1", "t1", status=TaskStatus.WAITING, waiting_kind=Waiting.IDLE, waiting_reason=reason
    )
    signal(store, f"idle: {reason}")


def test_a_turn_ended_on_a_rate_limit_backs_off_then_continues_without_a_countdown(
    task_repo: tuple[Store, Path],
) -> None:
    """StopFailure `rate_limit`: no idle_done countdown; the row reads rate limited with the
    delay; after the back-off the continue prompt and Enter are typed; a second hit waits the
    second delay; typing during a wait cancels the continue."""
    store, _ = task_repo
    sent = Sent()
    delays: list[int] = []

    def backoff(hits: int) -> float:
        delays.append(hits)
        return 0.5 * hits

    driver = InteractiveDriver(
        store, store.get_task("r-1", "t1"), CLAUDE_INTERACTIVE, 0.3, sent.send, sent.stop, backoff
    )
    rate_limited_turn(store, driver, "turn ended on an error: rate_limit 429 Too Many Requests")
    tick_until(driver, lambda: driver.continue_at is not None)
    row = store.get_task("r-1", "t1")
    assert (row.status, row.waiting_kind, row.idle_done_at) == (
        TaskStatus.WAITING,
        Waiting.OTHER,
        None,
    )
    assert row.waiting_reason == (
        "rate limited: rate_limit 429 Too Many Requests — continuing in 0.5s"
    )
    assert state_of(row) == "waiting"
    tick_until(driver, lambda: len(sent.keys) == 2)
    assert sent.keys == [interactive.CONTINUE_PROMPT.encode(), b"\r"]
    time.sleep(0.6)  # the watcher shows the error's idle again before the new turn shows
    store.update_task(
        "r-1",
        "t1",
        waiting_kind=Waiting.IDLE,
        waiting_reason="turn ended on an error: rate_limit 429 Too Many Requests",
    )
    driver.tick()
    assert store.get_task("r-1", "t1").idle_done_at is None and not driver.closed
    rate_limited_turn(store, driver, "turn ended on an error: overloaded")
    tick_until(driver, lambda: driver.rate_hits == 2)
    assert delays == [1, 2]
    assert "continuing in 1s" in store.get_task("r-1", "t1").waiting_reason
    driver.typed(b"x")
    assert driver.continue_at is None
    time.sleep(1.1)
    driver.tick()
    assert len(sent.keys) == 2 and not driver.closed
    kinds = [e.kind for e in store.events("r-1") if e.kind.startswith("task_")]
    assert kinds == [
        "task_rate_limited",
        "task_continued",
        "task_rate_limited",
        "task_continue_cancelled",
    ]


def test_other_errors_and_too_many_rate_limits_end_in_the_idle_done_countdown(
    task_repo: tuple[Store, Path],
) -> None:
    """A turn ended on another error is counted down at once; after MAX_FREE_RETRIES rate
    limits the next one is too, with the rate limit named in the reason the task ends with."""
    store, _ = task_repo
    sent = Sent()
    driver = InteractiveDriver(
        store,
        store.get_task("r-1", "t1"),
        CLAUDE_INTERACTIVE,
        30.0,
        sent.send,
        sent.stop,
        lambda hits: 0.0,
    )
    rate_limited_turn(store, driver, "turn ended on an error: invalid_request")
    tick_until(driver, lambda: store.get_task("r-1", "t1").idle_done_at is not None)
    assert driver.rate_hits == 0
    for hit in range(1, ratelimit.MAX_FREE_RETRIES + 1):
        time.sleep(0.02)
        rate_limited_turn(store, driver, "turn ended on an error: rate_limit")
        tick_until(driver, lambda hit=hit: len(sent.keys) == 2 * hit)  # type: ignore[misc]
    time.sleep(0.02)
    rate_limited_turn(store, driver, "turn ended on an error: rate_limit")
    tick_until(driver, lambda: store.get_task("r-1", "t1").idle_done_at is not None)
    assert driver.rate_hits == ratelimit.MAX_FREE_RETRIES + 1
    assert driver.last_words == ("rate limited: rate_limit (after 6 hits, not continued)")


def test_rate_limit_of_reads_claude_and_codex_rows(task_repo: tuple[Store, Path]) -> None:
    """Claude: an idle row whose error is a rate limit or overload; Codex: the watcher's
    rate-limit waiting (its screen); nothing else."""
    cases = [
        (Waiting.IDLE, "turn ended on an error: rate_limit", "rate_limit"),
        (Waiting.IDLE, "turn ended on an error: overloaded Overloaded", "overloaded Overloaded"),
        (Waiting.IDLE, "turn ended on an error: authentication_failed", ""),
        (Waiting.IDLE, "turn ended", ""),
        (
            Waiting.OTHER,
            "rate limited: ■ exceeded retry limit, last status: 429 Too Many Requests",
            "■ exceeded retry limit, last status: 429 Too Many Requests",
        ),
        (Waiting.OTHER, "rate limited: x — continuing in 30s", ""),
        (Waiting.INPUT, "rate limited: x", ""),
    ]
    store, _ = task_repo
    for kind, reason, expected in cases:
        store.update_task(
            "r-1", "t1", status=TaskStatus.WAITING, waiting_kind=kind, waiting_reason=reason
        )
        row = store.get_task("r-1", "t1")
        assert interactive.rate_limit_of(row) == expected, reason


def test_typed_keys_are_told_from_terminal_replies() -> None:
    """Keys count as typing; tmux's answers to the program's queries do not."""
    assert typed_keys(b"y") and typed_keys(b"\r") and typed_keys(b"\x1b")
    assert typed_keys(b"\x1b[200~pasted\x1b[201~")
    assert not typed_keys(b"\x1b[I") and not typed_keys(b"\x1b[?62;c")
    assert not typed_keys(b"\x1b]11;rgb:0000/0000/0000\x1b\\")


# ---------------------------------------------------------------- the store


def test_a_run_from_before_needs_input_reads_as_waiting(tmp_path: Path) -> None:
    """A database of schema 4 with a waiting task upgrades: the task reads `waiting` (its
    kind unknown), and a reader still on schema 4's columns (an older supervisor) goes on."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    path = state_dir / "state.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, path, target=4)
    conn.execute(
        "INSERT INTO runs (id, plan_name, plan_json, repo_root, base, base_sha, worktree_root,"
        " created_at) VALUES ('old-1', 'old', '{}', '/r', 'main', 'abc', '/w', 1.0)"
    )
    conn.execute(
        "INSERT INTO tasks (run_id, id, position, agent, branch, worktree, status, "
        "waiting_reason) VALUES ('old-1', 't', 0, 'x', 'b', '/w/t', 'waiting', 'Go? (y/n)')"
    )
    with Store.open(state_dir) as store:
        row = store.get_task("old-1", "t")
        assert (row.waiting_kind, row.idle_done_at, state_of(row)) == (
            Waiting.OTHER,
            None,
            "waiting",
        )
        store.update_task("old-1", "t", waiting_kind=Waiting.INPUT)
    old_columns = "run_id, id, status, waiting_reason, last_signal"
    assert conn.execute(f"SELECT {old_columns} FROM tasks").fetchone() == (
        "old-1", "t", "waiting", "Go? (y/n)", None,
    )  # fmt: skip
    conn.close()
    assert task_state(TaskStatus.WAITING, Waiting.INPUT) == "needs_input"
    assert task_state(TaskStatus.RUNNING, Waiting.INPUT) == "running"


def test_the_relay_needs_only_the_standard_library() -> None:
    """The hook starts Python without site packages (`-S -I`): importing the relay must
    not need anything else, nor any limitless module."""
    probe = subprocess.run(
        [sys.executable, "-S", "-I", "-c", f"import runpy; runpy.run_path({agenthook.__file__!r})"],
        input="{}",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (probe.returncode, probe.stderr) == (0, "")
    source = Path(agenthook.__file__).read_text()
    assert "from limitless" not in source and "import limitless" not in source


def ended_turn(store: Store, driver: InteractiveDriver) -> None:
    """A turn ran (its prompt's hook), then its Stop hook made the row idle."""
    signal(store, "working: UserPromptSubmit")
    driver.output(b"esc to interrupt")
    time.sleep(interactive.POLL_S + 0.05)
    driver.tick()
    store.update_task("r-1", "t1", status=TaskStatus.WAITING, waiting_kind=Waiting.IDLE)
    signal(store, "idle: turn ended")


def refusing(*outputs: str) -> tuple[list[int], object]:
    """A commit callback refusing with each of `outputs` in turn, then committing."""
    calls: list[int] = []

    def commit() -> str | None:
        calls.append(1)
        if len(calls) <= len(outputs):
            raise CommitRejected("pre-commit", outputs[len(calls) - 1], Path("/wt"), "it")
        return "a" * 40

    return calls, commit


def test_the_commit_before_the_close_refused_by_a_hook_is_typed_into_the_agent(
    task_repo: tuple[Store, Path],
) -> None:
    """At the deadline the leftovers are committed before the close; a hook's refusal is
    typed as one line of prompt, then Enter (its colours and line breaks gone); the task's
    reason says so; the next turn's end is counted down again and, committed, closes."""
    store, _ = task_repo
    sent = Sent()
    calls, commit = refusing("\x1b[31mpolicy: no FORBIDDEN\x1b[0m\nin note.txt\x07")
    driver = InteractiveDriver(
        store,
        store.get_task("r-1", "t1"),
        CLAUDE_INTERACTIVE,
        0.3,
        sent.send,
        sent.stop,
        commit=commit,  # type: ignore[arg-type]
    )
    ended_turn(store, driver)
    tick_until(driver, lambda: len(sent.keys) == 2)
    prompt = sent.keys[0].decode()
    assert prompt.startswith(
        "limitless could not commit your work: the repository's pre-commit hook rejected "
        "the commit and said: policy: no FORBIDDEN / in note.txt — "
    )
    assert not any(ord(c) < 32 for c in prompt) and sent.keys[1] == b"\r"
    assert not driver.closed and calls == [1]
    row = store.get_task("r-1", "t1")
    assert row.reason == (
        "the pre-commit hook refused the commit of its work (1 of 3): policy: no FORBIDDEN"
        " — the agent was asked to fix it"
    )
    time.sleep(0.6)  # idle, but no new turn yet: no countdown on the refused turn
    driver.tick()
    assert store.get_task("r-1", "t1").idle_done_at is None and calls == [1]
    ended_turn(store, driver)  # the agent's fix
    tick_until(driver, lambda: len(sent.keys) == 4)
    assert driver.closed and calls == [1, 1] and sent.keys[2:] == [b"/exit", b"\r"]
    assert driver.notes[-1] == f"committed the work left uncommitted as {'a' * 10}"
    (refused,) = [e.data for e in store.events("r-1") if e.kind == "task_commit_rejected"]
    assert (refused["rejection"], refused["action"]) == (1, "asked the agent to fix it")


def test_the_third_refusal_closes_the_agent_and_typing_during_the_commit_keeps_it_open(
    task_repo: tuple[Store, Path],
) -> None:
    """Refused three times: asked twice, then closed (the wrapper fails the task). A key
    typed while a commit runs: the agent stays the user's, nothing is typed into it."""
    store, _ = task_repo
    sent = Sent()
    calls, commit = refusing("no", "no", "no")
    driver = InteractiveDriver(
        store,
        store.get_task("r-1", "t1"),
        CLAUDE_INTERACTIVE,
        0.2,
        sent.send,
        sent.stop,
        commit=commit,  # type: ignore[arg-type]
    )
    for asked in (1, 2):
        ended_turn(store, driver)
        tick_until(driver, lambda asked=asked: driver.fixes_asked == asked)  # type: ignore[misc]
    ended_turn(store, driver)
    tick_until(driver, lambda: driver.closed)
    assert (len(calls), driver.rejections, driver.fixes_asked) == (3, 3, 2)
    actions = [e.data["action"] for e in store.events("r-1") if e.kind == "task_commit_rejected"]
    assert actions == ["asked the agent to fix it"] * 2 + ["the task fails"]

    sent = Sent()
    gate = threading.Event()

    def slow_commit() -> str | None:
        gate.wait(5)
        raise CommitRejected("pre-commit", "no", Path("/wt"), "it")

    store.update_task("r-1", "t1", status=TaskStatus.RUNNING, waiting_kind=Waiting.OTHER)
    driver = InteractiveDriver(
        store,
        store.get_task("r-1", "t1"),
        CLAUDE_INTERACTIVE,
        0.2,
        sent.send,
        sent.stop,
        commit=slow_commit,
    )
    ended_turn(store, driver)
    tick_until(driver, lambda: driver.committing is not None)
    driver.typed(b"h")
    gate.set()
    tick_until(driver, lambda: driver.rejections == 1)
    time.sleep(0.6)
    driver.tick()
    assert (sent.keys, driver.closed, driver.fixes_asked) == ([], False, 0)
    (refused,) = [e.data for e in store.events("r-1") if e.kind == "task_commit_rejected"][3:]
    assert refused["action"] == "left to you (you typed in the pane)"


def test_a_hooks_words_become_one_printable_line() -> None:
    text = "\x1b[1;31mERROR\x1b[0m: secret found\r\n\tin  a.txt:3\x00\n\n" + "x" * 900
    line = hookfix.one_line(text, 60)
    assert line.startswith("ERROR: secret found / in a.txt:3 / xxx")
    assert len(line) == 60 and line.endswith("…")
    assert hookfix.one_line("", 60) == ""


def test_a_continued_turn_over_before_the_row_left_the_old_rate_limit_is_no_new_hit(
    task_repo: tuple[Store, Path],
) -> None:
    """Codex: the continue's turn can begin and end before the watcher sees it, while the
    row still reads the old "■ exceeded retry limit" line: that is not a second hit; once
    the row reads the turn's end, it is counted down."""
    store, _ = task_repo
    sent = Sent()
    driver = InteractiveDriver(
        store,
        store.get_task("r-1", "t1"),
        CODEX_INTERACTIVE,
        0.3,
        sent.send,
        sent.stop,
        lambda hits: 0.2,
    )
    limit = "rate limited: ■ exceeded retry limit, last status: 429 Too Many Requests"
    driver.output(b"esc to interrupt")  # the first turn
    store.update_task(
        "r-1", "t1", status=TaskStatus.WAITING, waiting_kind=Waiting.OTHER, waiting_reason=limit
    )
    tick_until(driver, lambda: len(sent.keys) == 2)  # the continue prompt, then Enter
    driver.output(b"esc to interrupt")  # its turn ran, and ended within a poll
    store.update_task("r-1", "t1", waiting_reason=limit)  # the watcher read the old line
    for _ in range(3):
        time.sleep(interactive.POLL_S)
        driver.tick()
    assert (driver.rate_hits, driver.continue_at) == (1, None)
    store.update_task(
        "r-1",
        "t1",
        waiting_kind=Waiting.IDLE,
        waiting_reason="at its prompt after: Worked for 1s",
    )
    tick_until(driver, lambda: store.get_task("r-1", "t1").idle_done_at is not None)
    assert driver.rate_hits == 1
