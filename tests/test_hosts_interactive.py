"""Real interactive agents on a host (a real sshd on loopback), through `limitless run`.

Claude Code's and Codex's own TUIs run in the host's tmux; the local slot pane shows
them through `ssh -t … tmux attach`. What a user sees is asserted: the question on the
slot pane and as needs input in `status`, a key typed in the slot pane answering it,
the task ending done by `idle_done` (the interactive driver beside the attach), the
file on main, the cost of the scripted usage. Their hooks (Claude Code's settings,
Codex's notify) run the relay of the host's install, which spools them there; the
wrapper here records them.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from limitless.states import TaskStatus
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, wait_for, write_plan
from tests.realagents.costs import claude_cost, codex_cost
from tests.realagents.homes import (
    ANTHROPIC_KEY,
    CODEX_KEY_VAR,
    CODEX_MODEL,
    AgentSetup,
    claude_setup,
)
from tests.realagents.modelserver import ModelServer
from tests.realagents.script import Script, Usage, error, run, say, write
from tests.sshhosts import Fleet, SshHost

pytestmark = pytest.mark.usefixtures("tmux_socket")

RUN_TIMEOUT = 180.0
NEEDS_INPUT_WITHIN_S = 5.0
CLAUDE_PASSED = (
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_KEY",
    "DISABLE_TELEMETRY",
    "DISABLE_ERROR_REPORTING",
    "DISABLE_AUTOUPDATER",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
)
CODEX_PASSED = ("CODEX_HOME", CODEX_KEY_VAR)
WRITE_USAGE = Usage(1200, 60)
RUN_USAGE = Usage(1400, 30, 0, 600)
SAY_USAGE = Usage(1500, 12, cache_read_input_tokens=800)


def plan_text(
    box: SshHost,
    agent: str,
    approve: str,
    passed: tuple[str, ...],
    task: str,
    idle_done: str = "2s",
) -> str:
    host = box.host()
    return "\n".join(
        [
            "name: remote-tui",
            f"agent: {agent}",
            f"approve: {approve}",
            f"idle_done: {idle_done}",
            "hosts:",
            "  - {name: local, slots: 1}",
            f"  - {{name: box1, ssh: {host.ssh}, port: {host.port}, identity: {host.identity},",
            f"     slots: 1, env_pass: [{', '.join(passed)}]}}",
            "tasks:",
            task,
            "",
        ]
    )


def pane_text(socket: str, pane: str) -> str:
    """The slot pane's screen as `tmux capture-pane -p` shows it (here, not on the host)."""
    done = subprocess.run(
        ["tmux", "-L", socket, "capture-pane", "-p", "-t", pane],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout


def pane_title(socket: str, pane: str) -> str:
    """The title limitless gives a slot pane (`task · state · time`)."""
    done = subprocess.run(
        ["tmux", "-L", socket, "display-message", "-p", "-t", pane, "#{@limitless-title}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout


def status_line(repo: Path, task: str) -> str:
    """The task's line of `limitless status` (the table a user reads)."""
    shown = cli(repo, "status").stdout
    return next((line for line in shown.splitlines() if line.startswith(task + " ")), "")


def kinds_of(repo: Path, run_id: str, task: str) -> list[str]:
    with open_store(repo) as store:
        return [e.kind for e in store.events(run_id) if e.task_id == task]


def claude_host(fleet: Fleet, claude_agent: AgentSetup, server: ModelServer) -> SshHost:
    """A host whose sshd takes Claude Code's variables, with `claude` on its PATH and a
    HOME past Claude Code's onboarding (its own ~/.claude.json, the test key approved)."""
    box = fleet.add("box1", accept_env=CLAUDE_PASSED)
    claude_setup(server, box.home)
    assert claude_agent.executable is not None
    (box.bin / "claude").symlink_to(claude_agent.executable.resolve())
    return box


def test_claude_on_a_host_asks_in_status_and_ends_done_by_idle_done(
    fleet: Fleet,
    claude_agent: AgentSetup,
    model_server: ModelServer,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmux_socket: str,
) -> None:
    """approve: ask — Claude Code's TUI on the host asks to create the file: the slot pane
    here shows the question and `status` says needs input within 5 s; "1" typed in the
    slot pane answers it; after its turn the task ends done by idle_done (closed with
    /exit); the file lands on main; the cost is the scripted usage, priced from the
    transcript brought over from the host."""
    claude_agent.export(monkeypatch)
    box = claude_host(fleet, claude_agent, model_server)
    fleet.serve(repo)
    script = Script(
        "hello", [write("hello.txt", "hi\n", usage=WRITE_USAGE), say("done", usage=SAY_USAGE)]
    )
    model_server.add(script)
    task = f"  - {{id: hello, host: box1, prompt: 'Create hello.txt saying hi {script.marker}'}}"
    write_plan(repo, plan_text(box, "claude-interactive", "ask", CLAUDE_PASSED, task))
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    run_row = latest_run(repo)
    wait_for(lambda: tasks_of(repo, run_row.id)["hello"].pane_id is not None, 60, "a pane")
    pane = tasks_of(repo, run_row.id)["hello"].pane_id or ""

    wait_for(
        lambda: "Do you want to create hello.txt?" in pane_text(tmux_socket, pane),
        90,
        "the permission screen on the slot pane",
    )
    asked_at = time.monotonic()
    wait_for(lambda: "? needs input" in status_line(repo, "hello"), 30, "needs input in status")
    assert time.monotonic() - asked_at <= NEEDS_INPUT_WITHIN_S
    document = json.loads(cli(repo, "status", "--json").stdout)
    (shown,) = document["tasks"]
    assert (shown["status"], shown["needs_input"], shown["host"]) == ("needs_input", True, "box1")
    assert "hello.txt" in shown["reason"] or "permission" in shown["reason"], shown["reason"]
    wait_for(lambda: "hello · needs input" in pane_title(tmux_socket, pane), 10, "the title")
    worktree_there = box.home / "limitless" / "worktrees" / run_row.id / "hello"
    assert not (worktree_there / "hello.txt").exists()  # not before the user said yes
    hooks = (worktree_there / ".claude" / "settings.local.json").read_text()
    assert str(box.home / "limitless" / "install" / "src") in hooks  # the host's relay

    subprocess.run(["tmux", "-L", tmux_socket, "send-keys", "-t", pane, "1"], check=True)
    finished = cli(
        repo, "wait", run_row.id, "--timeout", str(RUN_TIMEOUT), timeout=RUN_TIMEOUT + 30
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    row = tasks_of(repo, run_row.id)["hello"]
    assert (row.status, row.reason, row.host) == (TaskStatus.DONE, "", "box1")
    assert git(repo, "show", "main:hello.txt") == "hi"
    assert ".claude" not in git(repo, "ls-tree", "-r", "--name-only", "main")
    assert row.cost_usd == pytest.approx(claude_cost(None, [WRITE_USAGE, SAY_USAGE]), abs=1e-9)
    kinds = kinds_of(repo, run_row.id, "hello")
    assert kinds.index("task_waiting") < kinds.index("task_idle") < kinds.index("task_closing")
    assert kinds.index("task_closing") < kinds.index("task_done")
    with open_store(repo) as store:
        signals = [e.data for e in store.events(run_row.id) if e.kind == "task_signal"]
        copies = store.run_dir(run_row.id) / "agents" / "hello" / "from-host"
    assert any(s.get("source") == "claude-Stop" for s in signals), signals
    assert [p.suffix for p in copies.iterdir()] == [".jsonl"]  # the transcript, brought over


def test_codex_on_a_host_asks_in_status_and_ends_done_by_idle_done(
    fleet: Fleet,
    codex_agent: AgentSetup,
    model_server: ModelServer,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmux_socket: str,
) -> None:
    """approve: ask — Codex's approval on the host shows on the slot pane and as needs
    input in `status`; "y" typed in the slot pane approves it; its notify program (the
    host's relay) tells the turn's end; idle_done closes it; the file lands on main with
    the scripted cost."""
    codex_agent.export(monkeypatch)
    box = fleet.add("box1", accept_env=CODEX_PASSED)
    assert codex_agent.executable is not None
    (box.bin / "codex").symlink_to(codex_agent.executable.resolve())
    fleet.serve(repo)
    script = Script(
        "hello",
        [
            write("hello.txt", "hi\n", usage=WRITE_USAGE),
            run("cat hello.txt", usage=RUN_USAGE),
            say("done", usage=SAY_USAGE),
        ],
    )
    model_server.add(script)
    task = f"  - {{id: hello, host: box1, prompt: 'Create hello.txt saying hi {script.marker}'}}"
    write_plan(repo, plan_text(box, "codex-interactive", "ask", CODEX_PASSED, task))
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    run_row = latest_run(repo)
    wait_for(lambda: tasks_of(repo, run_row.id)["hello"].pane_id is not None, 60, "a pane")
    pane = tasks_of(repo, run_row.id)["hello"].pane_id or ""

    wait_for(
        lambda: "Would you like to make the following edits?" in pane_text(tmux_socket, pane),
        90,
        "the approval screen on the slot pane",
    )
    asked_at = time.monotonic()
    wait_for(lambda: "? needs input" in status_line(repo, "hello"), 30, "needs input in status")
    assert time.monotonic() - asked_at <= NEEDS_INPUT_WITHIN_S
    document = json.loads(cli(repo, "status", "--json").stdout)
    (shown,) = document["tasks"]
    assert shown["reason"].startswith("Codex asks: Would you like to make the following edits?")

    subprocess.run(["tmux", "-L", tmux_socket, "send-keys", "-t", pane, "y"], check=True)
    finished = cli(
        repo, "wait", run_row.id, "--timeout", str(RUN_TIMEOUT), timeout=RUN_TIMEOUT + 30
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    row = tasks_of(repo, run_row.id)["hello"]
    assert (row.status, row.reason, row.host) == (TaskStatus.DONE, "", "box1")
    assert row.session_id  # the thread, from the notify program there
    assert git(repo, "show", "main:hello.txt") == "hi"
    expected = codex_cost(CODEX_MODEL, [WRITE_USAGE, RUN_USAGE, SAY_USAGE])
    assert row.cost_usd == pytest.approx(expected, abs=1e-9)
    kinds = kinds_of(repo, run_row.id, "hello")
    assert kinds.index("task_waiting") < kinds.index("task_idle") < kinds.index("task_closing")
    with open_store(repo) as store:
        signals = [
            e.data.get("source") for e in store.events(run_row.id) if e.kind == "task_signal"
        ]
    assert "codex-notify" in signals


def test_claude_s_first_run_question_on_a_host_is_answered_and_leftovers_committed_there(
    fleet: Fleet,
    claude_agent: AgentSetup,
    model_server: ModelServer,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """approve: edits on a host whose Claude Code never approved the API key: the driver
    here answers the question there (typed through the host's tmux), the agent writes its
    file, its leftovers are committed there before /exit, and the task ends done."""
    claude_agent.export(monkeypatch)
    box = claude_host(fleet, claude_agent, model_server)
    (box.home / ".claude.json").write_text(json.dumps({"hasCompletedOnboarding": True}))
    fleet.serve(repo)
    script = Script(
        "hello", [write("hello.txt", "hi\n", usage=WRITE_USAGE), say("done", usage=SAY_USAGE)]
    )
    model_server.add(script)
    task = f"  - {{id: hello, host: box1, prompt: 'Create hello.txt saying hi {script.marker}'}}"
    write_plan(repo, plan_text(box, "claude-interactive", "edits", CLAUDE_PASSED, task, "1s"))
    finished = cli(repo, "run", "--headless", timeout=RUN_TIMEOUT)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    run_row = latest_run(repo)
    row = tasks_of(repo, run_row.id)["hello"]
    assert (row.status, row.host) == (TaskStatus.DONE, "box1")
    assert git(repo, "show", "main:hello.txt") == "hi"
    with open_store(repo) as store:
        events = [e for e in store.events(run_row.id) if e.task_id == "hello"]
        shown = store.log_path(run_row.id, "hello").read_text(errors="replace")
    assert [e.data.get("dialog") for e in events if e.kind == "task_dialog"] == ["api key"]
    assert not [e for e in events if e.kind == "task_waiting"]
    state = json.loads((box.home / ".claude.json").read_text())  # the host's Claude Code
    assert state["customApiKeyResponses"]["approved"] == [ANTHROPIC_KEY[-20:]]
    assert "limitless: committed the work left uncommitted as " in shown  # before the close
    subjects = git(repo, "log", "--format=%s", "main").splitlines()
    assert "limitless: hello — work left uncommitted by the agent (attempt 1, on box1)" in subjects


def test_a_lasting_rate_limit_on_a_host_waits_then_continues_by_itself(
    fleet: Fleet,
    claude_agent: AgentSetup,
    model_server: ModelServer,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Claude Code there gives up on a lasting 429 (its StopFailure hook, spooled there and
    recorded here): the task shows rate limited with the back-off in `status`, not an idle
    countdown; when the back-off is over the driver types the continue prompt there, the
    agent writes its file, and the task ends done and lands."""
    claude_agent.export(monkeypatch)
    box = claude_host(fleet, claude_agent, model_server)
    fleet.serve(repo)
    script = Script(
        "hello",
        [
            error(429, times=2),
            write("hello.txt", "hi\n", usage=WRITE_USAGE),
            say("done", usage=SAY_USAGE),
        ],
    )
    model_server.add(script)
    task = (
        f"  - {{id: hello, host: box1, env: {{CLAUDE_CODE_MAX_RETRIES: '1'}},"
        f" prompt: 'Create hello.txt saying hi {script.marker}'}}"
    )
    write_plan(repo, plan_text(box, "claude-interactive", "edits", CLAUDE_PASSED, task, "1s"))
    assert cli(repo, "run", "--detach").returncode == 0
    run_row = latest_run(repo)
    wait_for(lambda: "rate limited" in status_line(repo, "hello"), 90, "rate limited")
    document = json.loads(cli(repo, "status", "--json").stdout)
    (shown,) = document["tasks"]
    assert str(shown["reason"]).startswith("rate limited: rate_limit"), shown["reason"]
    assert str(shown["reason"]).endswith("— continuing in 30s")
    assert tasks_of(repo, run_row.id)["hello"].idle_done_at is None
    with open_store(repo) as store:
        store.update_task(run_row.id, "hello", not_before=0.0)  # the back-off has passed
    finished = cli(
        repo, "wait", run_row.id, "--timeout", str(RUN_TIMEOUT), timeout=RUN_TIMEOUT + 30
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert tasks_of(repo, run_row.id)["hello"].status is TaskStatus.DONE
    assert git(repo, "show", "main:hello.txt") == "hi"
    kinds = kinds_of(repo, run_row.id, "hello")
    assert kinds.index("task_rate_limited") < kinds.index("task_continued")
    assert kinds.index("task_continued") < kinds.index("task_closing")


def test_typing_in_the_slot_pane_keeps_an_idle_agent_on_a_host_open(
    fleet: Fleet,
    claude_agent: AgentSetup,
    model_server: ModelServer,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmux_socket: str,
) -> None:
    """After its turn there the countdown shows in `status`; a key typed in the slot pane
    (it reaches the driver through the attach) cancels it; the user's own /exit, typed in
    the slot pane, ends the agent there and the task is done."""
    claude_agent.export(monkeypatch)
    box = claude_host(fleet, claude_agent, model_server)
    fleet.serve(repo)
    script = Script(
        "hello", [write("hello.txt", "hi\n", usage=WRITE_USAGE), say("done", usage=SAY_USAGE)]
    )
    model_server.add(script)
    task = f"  - {{id: hello, host: box1, prompt: 'Create hello.txt saying hi {script.marker}'}}"
    write_plan(repo, plan_text(box, "claude-interactive", "edits", CLAUDE_PASSED, task, "20s"))
    assert cli(repo, "run", "--detach").returncode == 0
    run_row = latest_run(repo)

    def reason() -> str:
        document = json.loads(cli(repo, "status", "--json").stdout)
        return str(document["tasks"][0]["reason"])

    wait_for(lambda: "unless you type in its pane" in reason(), 90, "the countdown")
    assert "◌ idle" in status_line(repo, "hello")
    pane = tasks_of(repo, run_row.id)["hello"].pane_id or ""
    subprocess.run(["tmux", "-L", tmux_socket, "send-keys", "-t", pane, "x"], check=True)
    wait_for(lambda: tasks_of(repo, run_row.id)["hello"].idle_done_at is None, 10, "cancelled")
    assert "task_countdown_cancelled" in kinds_of(repo, run_row.id, "hello")
    assert tasks_of(repo, run_row.id)["hello"].status is TaskStatus.WAITING
    assert "unless you type" not in reason()
    keys = ["BSpace", "/exit"]
    subprocess.run(["tmux", "-L", tmux_socket, "send-keys", "-t", pane, *keys], check=True)
    wait_for(  # Enter picks /exit once its command menu is drawn
        lambda: "/exit" in pane_text(tmux_socket, pane).split("❯", 1)[-1],
        10,
        "the /exit command typed",
    )
    subprocess.run(["tmux", "-L", tmux_socket, "send-keys", "-t", pane, "Enter"], check=True)
    finished = cli(repo, "wait", run_row.id, "--timeout", "60", timeout=90)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    row = tasks_of(repo, run_row.id)["hello"]
    assert (row.status, row.host) == (TaskStatus.DONE, "box1")
    assert "task_closing" not in kinds_of(repo, run_row.id, "hello")  # the user closed it
    assert git(repo, "show", "main:hello.txt") == "hi"


def test_resume_takes_an_asking_agent_on_a_host_up_and_idle_done_ends_it(
    fleet: Fleet,
    claude_agent: AgentSetup,
    model_server: ModelServer,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmux_socket: str,
) -> None:
    """The run's tmux server here dies while Claude Code on the host asks for permission:
    the agent goes on asking there; `resume` gives the task a new slot pane whose driver
    takes the attempt up: the question shows as needs input again, a key in the new pane
    answers it, and idle_done ends the same attempt done."""
    claude_agent.export(monkeypatch)
    box = claude_host(fleet, claude_agent, model_server)
    fleet.serve(repo)
    script = Script(
        "hello", [write("hello.txt", "hi\n", usage=WRITE_USAGE), say("done", usage=SAY_USAGE)]
    )
    model_server.add(script)
    task = f"  - {{id: hello, host: box1, prompt: 'Create hello.txt saying hi {script.marker}'}}"
    write_plan(repo, plan_text(box, "claude-interactive", "ask", CLAUDE_PASSED, task))
    assert cli(repo, "run", "--detach").returncode == 0
    run_row = latest_run(repo)
    wait_for(lambda: "? needs input" in status_line(repo, "hello"), 90, "needs input")
    supervisor = latest_run(repo).supervisor_pid
    assert supervisor is not None
    subprocess.run(["tmux", "-L", tmux_socket, "kill-server"], check=True)
    wait_for(lambda: not psutil.pid_exists(supervisor), 10, "supervisor gone")
    resumed = cli(repo, "resume", "--detach")
    assert resumed.returncode == 0, resumed.stderr
    with open_store(repo) as store:
        log = store.log_path(run_row.id, "hello")
    wait_for(lambda: "taken up again on box1" in log.read_text(errors="replace"), 30, "taken up")
    pane = tasks_of(repo, run_row.id)["hello"].pane_id or ""
    wait_for(
        lambda: "Do you want to create hello.txt?" in pane_text(tmux_socket, pane),
        30,
        "the question on the new pane",
    )
    wait_for(lambda: "? needs input" in status_line(repo, "hello"), 30, "needs input again")
    subprocess.run(["tmux", "-L", tmux_socket, "send-keys", "-t", pane, "1"], check=True)
    finished = cli(
        repo, "wait", run_row.id, "--timeout", str(RUN_TIMEOUT), timeout=RUN_TIMEOUT + 30
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    row = tasks_of(repo, run_row.id)["hello"]
    assert (row.status, row.attempt, row.host) == (TaskStatus.DONE, 1, "box1")
    assert git(repo, "show", "main:hello.txt") == "hi"
    assert "task_closing" in kinds_of(repo, run_row.id, "hello")
