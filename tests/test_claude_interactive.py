"""`claude-interactive` through `limitless run`: the real Claude Code TUI in a slot pane.

Only the model is scripted (tests/realagents); Claude Code 2.1.197, its TUI, its
hooks, the tmux server (a private socket) and git are the real ones. What is
asserted is what a user sees: `limitless status`, the pane's screen, the files on
the base branch, the report.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from limitless.states import TaskStatus, Waiting
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, wait_for, write_plan
from tests.realagents.costs import claude_cost
from tests.realagents.homes import ANTHROPIC_KEY, AgentSetup
from tests.realagents.modelserver import ModelServer
from tests.realagents.script import Script, Usage, error, say, write

NEEDS_INPUT_WITHIN_S = 5.0
RUN_DEADLINE_S = 120.0
WRITE_USAGE = Usage(1200, 60)
SAY_USAGE = Usage(1500, 12, cache_read_input_tokens=800)


@pytest.fixture
def claude_env(
    claude_agent: AgentSetup, monkeypatch: pytest.MonkeyPatch, tmux_socket: str
) -> AgentSetup:
    """Claude Code against the scripted server, for `limitless run` and its agents."""
    claude_agent.export(monkeypatch)
    return claude_agent


def plan_text(approve: str, marker: str, idle_done: str = "2s") -> str:
    return f"""\
name: tui
agent: claude-interactive
approve: {approve}
idle_done: {idle_done}
tasks:
  - id: hello
    prompt: "Create hello.txt saying hi {marker}"
"""


def pane_text(run_id: str, socket: str, pane: str) -> str:
    """The pane's screen as `tmux capture-pane -p` shows it."""
    done = subprocess.run(
        ["tmux", "-L", socket, "capture-pane", "-p", "-t", pane],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout


def status_line(repo: Path, task: str) -> str:
    """The task's line of `limitless status` (the table a user reads)."""
    shown = cli(repo, "status").stdout
    return next((line for line in shown.splitlines() if line.startswith(task + " ")), "")


def status_of(repo: Path, task: str) -> dict[str, object]:
    """The task's entry in `limitless status --json`."""
    document = json.loads(cli(repo, "status", "--json").stdout)
    return next(entry for entry in document["tasks"] if entry["id"] == task)


def hello_script() -> Script:
    return Script(
        "hello", [write("hello.txt", "hi\n", usage=WRITE_USAGE), say("done", usage=SAY_USAGE)]
    )


def test_ask_needs_input_then_a_key_goes_on_and_idle_done_ends_it(
    claude_env: AgentSetup, model_server: ModelServer, repo: Path, tmux_socket: str
) -> None:
    """approve: ask — the permission screen shows as needs input in `status` within 5 s;
    `wait --until-input` names it; a key sent to the pane answers it; the turn's end
    becomes done after idle_done; the file lands on main; the cost is the scripted usage;
    the hooks reach no commit and the tree gets no .gitignore."""
    script = hello_script()
    model_server.add(script)
    write_plan(repo, plan_text("ask", script.marker))
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    run = latest_run(repo)
    wait_for(lambda: tasks_of(repo, run.id)["hello"].pane_id is not None, 60, "a pane")
    pane = tasks_of(repo, run.id)["hello"].pane_id or ""

    wait_for(
        lambda: "Do you want to create hello.txt?" in pane_text(run.id, tmux_socket, pane),
        60,
        "the permission screen",
    )
    asked_at = time.monotonic()
    wait_for(lambda: "? needs input" in status_line(repo, "hello"), 30, "needs input in status")
    assert time.monotonic() - asked_at <= NEEDS_INPUT_WITHIN_S
    document = json.loads(cli(repo, "status", "--json").stdout)
    (task,) = document["tasks"]
    assert (task["status"], task["needs_input"]) == ("needs_input", True)
    assert task["reason"] in ("permission for Write(hello.txt)", "Claude needs your permission")
    wait_for(lambda: "hello · needs input" in _title(tmux_socket, pane), 10, "the pane title")
    waited = cli(repo, "wait", run.id, "--until-input", "--quiet", timeout=60)
    assert waited.returncode == 4, waited.stdout + waited.stderr
    assert waited.stdout.startswith("? hello needs input — "), waited.stdout  # --quiet: only it
    assert f"limitless attach {run.id} (pane {pane})" in waited.stdout

    subprocess.run(["tmux", "-L", tmux_socket, "send-keys", "-t", pane, "1"], check=True)
    finished = cli(
        repo, "wait", run.id, "--timeout", str(RUN_DEADLINE_S), timeout=RUN_DEADLINE_S + 30
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    row = tasks_of(repo, run.id)["hello"]
    assert (row.status, row.reason) == (TaskStatus.DONE, "")
    assert git(repo, "show", "main:hello.txt") == "hi"
    assert ".claude" not in git(repo, "ls-tree", "-r", "--name-only", "main")
    assert not (repo / ".gitignore").exists()
    assert git(repo, "status", "--porcelain") == "?? limitless.yaml"

    report = json.loads(cli(repo, "report", run.id, "--format", "json").stdout)
    expected = claude_cost(None, [WRITE_USAGE, SAY_USAGE])
    assert report["run"]["total_cost_usd"] == pytest.approx(expected, abs=1e-9)
    (reported,) = report["tasks"]
    assert reported["cost_usd"] == pytest.approx(expected, abs=1e-9)
    assert reported["needed_input"] and "Write(hello.txt)" in reported["needed_input"][0]
    with open_store(repo) as store:
        kinds = [e.kind for e in store.events(run.id) if e.task_id == "hello"]
    assert kinds.index("task_waiting") < kinds.index("task_idle") < kinds.index("task_closing")
    assert kinds.index("task_closing") < kinds.index("task_done")


def test_edits_writes_without_asking_and_first_run_dialogs_never_stall(
    claude_env: AgentSetup, model_server: ModelServer, repo: Path, tmux_socket: str
) -> None:
    """approve: edits on a Claude Code that never saw this repository nor approved the key:
    no trust question, the API-key question answered, no needs input, done, merged; the
    user's ~/.claude.json gets no trust entry from limitless."""
    home = claude_env.home
    (home / ".claude.json").write_text(json.dumps({"hasCompletedOnboarding": True}))
    script = hello_script()
    model_server.add(script)
    write_plan(repo, plan_text("edits", script.marker, idle_done="1s"))
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    run = latest_run(repo)
    finished = cli(
        repo, "wait", run.id, "--timeout", str(RUN_DEADLINE_S), timeout=RUN_DEADLINE_S + 30
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert git(repo, "show", "main:hello.txt") == "hi"
    with open_store(repo) as store:
        events = [e for e in store.events(run.id) if e.task_id == "hello"]
    assert not [e for e in events if e.kind == "task_waiting"]
    dialogs = [e.data.get("dialog") for e in events if e.kind == "task_dialog"]
    assert dialogs == ["api key"]
    state = json.loads((home / ".claude.json").read_text())
    assert state["customApiKeyResponses"]["approved"] == [ANTHROPIC_KEY[-20:]]
    trusted = [p for p, v in state.get("projects", {}).items() if v.get("hasTrustDialogAccepted")]
    assert trusted == []
    report = json.loads(cli(repo, "report", run.id, "--format", "json").stdout)
    expected = claude_cost(None, [WRITE_USAGE, SAY_USAGE])
    assert report["run"]["total_cost_usd"] == pytest.approx(expected, abs=1e-9)


def test_bypass_mode_never_stops_at_its_warning(
    claude_env: AgentSetup,
    model_server: ModelServer,
    repo: Path,
    tmux_socket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """approve: all (as root with IS_SANDBOX=1): the one-time Bypass Permissions warning is
    accepted for this agent only; nothing is written to ~/.claude/settings.json."""
    monkeypatch.setenv("IS_SANDBOX", "1")
    script = hello_script()
    model_server.add(script)
    write_plan(repo, plan_text("all", script.marker, idle_done="1s"))
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    run = latest_run(repo)
    finished = cli(repo, "wait", run.id, "--timeout", "90", timeout=120)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert git(repo, "show", "main:hello.txt") == "hi"
    assert not (claude_env.home / ".claude" / "settings.json").exists()


@pytest.mark.slow
def test_typing_in_the_pane_keeps_an_idle_agent_open(
    claude_env: AgentSetup, model_server: ModelServer, repo: Path, tmux_socket: str
) -> None:
    """After its turn the countdown shows in `status`; a key typed in the pane cancels it,
    and the agent stays until the user ends it (here `/exit`): then the task is done."""
    script = hello_script()
    model_server.add(script)
    write_plan(repo, plan_text("edits", script.marker, idle_done="3s"))
    assert cli(repo, "run", "--detach").returncode == 0
    run = latest_run(repo)
    wait_for(
        lambda: "unless you type in its pane" in str(status_of(repo, "hello")["reason"]),
        90,
        "the countdown",
    )
    assert "◌ idle" in status_line(repo, "hello")
    pane = tasks_of(repo, run.id)["hello"].pane_id or ""
    subprocess.run(["tmux", "-L", tmux_socket, "send-keys", "-t", pane, "x"], check=True)
    wait_for(lambda: tasks_of(repo, run.id)["hello"].idle_done_at is None, 10, "cancelled")
    time.sleep(4.0)  # an absence is what is tested: past idle_done, the agent is still there
    row = tasks_of(repo, run.id)["hello"]
    assert (row.status, row.waiting_kind) == (TaskStatus.WAITING, Waiting.IDLE)
    assert "unless you type" not in str(status_of(repo, "hello")["reason"])
    keys = ["BSpace", "/exit"]
    subprocess.run(["tmux", "-L", tmux_socket, "send-keys", "-t", pane, *keys], check=True)
    wait_for(  # Enter picks /exit once its command menu is drawn
        lambda: "/exit" in pane_text(run.id, tmux_socket, pane).split("❯", 1)[-1],
        10,
        "the /exit command typed",
    )
    subprocess.run(["tmux", "-L", tmux_socket, "send-keys", "-t", pane, "Enter"], check=True)
    finished = cli(repo, "wait", run.id, "--timeout", "60", timeout=90)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert tasks_of(repo, run.id)["hello"].status is TaskStatus.DONE
    assert git(repo, "show", "main:hello.txt") == "hi"


@pytest.mark.slow
def test_a_refused_permission_is_seen_on_the_screen_and_fails_as_no_change(
    claude_env: AgentSetup, model_server: ModelServer, repo: Path, tmux_socket: str
) -> None:
    """Answering No fires no hook: the screen tells the agent is idle again; after
    idle_done it is closed, and having changed nothing the task fails saying so."""
    script = hello_script()
    model_server.add(script)
    write_plan(repo, plan_text("ask", script.marker))
    assert cli(repo, "run", "--detach").returncode == 0
    run = latest_run(repo)
    wait_for(lambda: "? needs input" in status_line(repo, "hello"), 90, "needs input")
    pane = tasks_of(repo, run.id)["hello"].pane_id or ""
    subprocess.run(["tmux", "-L", tmux_socket, "send-keys", "-t", pane, "3"], check=True)
    finished = cli(repo, "wait", run.id, "--timeout", "90", timeout=120)
    assert finished.returncode == 1, finished.stdout + finished.stderr
    row = tasks_of(repo, run.id)["hello"]
    assert row.status is TaskStatus.FAILED
    assert row.reason.startswith("the agent changed nothing")
    with open_store(repo) as store:
        idle = [e for e in store.events(run.id) if e.kind == "task_idle"]
    assert [e.data["source"] for e in idle] == ["screen"]
    assert "User rejected write to hello.txt" in str(idle[0].data["reason"])


def _title(socket: str, pane: str) -> str:
    """The title limitless gives a slot pane (`task · state · time`)."""
    done = subprocess.run(
        ["tmux", "-L", socket, "display-message", "-p", "-t", pane, "#{@limitless-title}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout


def test_a_lasting_rate_limit_waits_then_continues_by_itself(
    claude_env: AgentSetup,
    model_server: ModelServer,
    repo: Path,
    tmux_socket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Claude Code gives up on a lasting 429 (its StopFailure hook): the task shows rate
    limited with the back-off in `status`, not an idle countdown; when the back-off is
    over (moved to now, as a retry's can be) the driver types a continue prompt, the
    agent writes its file, and the task ends done and lands."""
    monkeypatch.setenv("CLAUDE_CODE_MAX_RETRIES", "1")  # Claude Code's own retries, shortened
    script = Script(
        "hello",
        [
            error(429, times=2),
            write("hello.txt", "hi\n", usage=WRITE_USAGE),
            say("done", usage=SAY_USAGE),
        ],
    )
    model_server.add(script)
    write_plan(repo, plan_text("edits", script.marker, idle_done="1s"))
    assert cli(repo, "run", "--detach").returncode == 0
    run = latest_run(repo)
    wait_for(lambda: "rate limited" in status_line(repo, "hello"), 60, "rate limited")
    shown = status_of(repo, "hello")
    assert str(shown["reason"]).startswith("rate limited: rate_limit")
    assert str(shown["reason"]).endswith("— continuing in 30s")
    assert tasks_of(repo, run.id)["hello"].idle_done_at is None
    with open_store(repo) as store:
        store.update_task(run.id, "hello", not_before=0.0)  # the back-off has passed
    finished = cli(
        repo, "wait", run.id, "--timeout", str(RUN_DEADLINE_S), timeout=RUN_DEADLINE_S + 30
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert tasks_of(repo, run.id)["hello"].status is TaskStatus.DONE
    assert git(repo, "show", "main:hello.txt") == "hi"
    with open_store(repo) as store:
        events = [e for e in store.events(run.id) if e.task_id == "hello"]
    kinds = [e.kind for e in events]
    assert kinds.index("task_rate_limited") < kinds.index("task_continued")
    assert kinds.index("task_continued") < kinds.index("task_closing")
    (limited,) = [e for e in events if e.kind == "task_rate_limited"]
    assert limited.data["delay_s"] == 30.0
