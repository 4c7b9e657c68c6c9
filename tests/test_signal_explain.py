"""`limitless signal`, `limitless explain` and `limitless hooks install claude`."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from limitless.agents import claude_hooks
from limitless.agents import hookrelay as agenthook
from limitless.states import TaskStatus
from limitless.store import TaskRow
from limitless.tmux.session import TmuxSession
from tests.engine_helpers import cli, latest_run, tasks_of, wait_for, write_plan

FAKE = Path(__file__).parent / "fake_agents"


def send_keys(socket: str, pane: str, *keys: str) -> None:
    subprocess.run(["tmux", "-L", socket, "send-keys", "-t", pane, *keys], check=True)


def test_signal_from_inside_the_pane_needs_no_arguments(repo: Path, tmux_socket: str) -> None:
    """A program in the pane runs `limitless signal`: waiting, working, then done ends it."""
    write_plan(
        repo,
        f"""\
name: sig
agent: sig
merge: {{land: manual}}
agents:
  sig:
    command: ["{{python}}", "{FAKE / "signaller.py"}", "--done"]
    interactive: true
    idle_seconds: 600
tasks:
  - {{id: talk, prompt: "talk"}}
""",
    )
    started = cli(repo, "run", "--detach", "--no-merge")
    assert started.returncode == 0, started.stdout + started.stderr
    run = latest_run(repo)

    def row() -> TaskRow:
        return tasks_of(repo, run.id)["talk"]

    wait_for(lambda: row().status is TaskStatus.WAITING, 60, "signalled waiting")
    assert row().waiting_reason == "need a decision on the schema"
    send_keys(tmux_socket, row().pane_id or "", "go", "Enter")
    wait_for(lambda: row().status is TaskStatus.DONE, 60, "done by its own signal")
    explained = cli(repo, "explain", run.id, "talk")
    assert re.search(
        r"^  explicit signal +done at \S+ \(\d+s ago\): all finished$", explained.stdout, re.M
    )
    assert "task_signal waiting from cli: need a decision on the schema" in explained.stdout
    assert "task_signal working from cli" in explained.stdout
    waited = cli(repo, "wait", run.id, "--timeout", "60")
    assert waited.returncode == 0, waited.stdout + waited.stderr


def test_signal_outside_a_pane_says_how_to_use_it(repo: Path) -> None:
    """Without LIMITLESS_RUN/TASK, `signal` explains itself (exit 2); as a hook it exits 0."""
    plain = cli(repo, "signal", "waiting")
    assert plain.returncode == 2
    assert "run `limitless signal` inside a task's pane" in plain.stderr
    hooked = subprocess.run(
        [sys.executable, "-m", "limitless", "signal", "waiting", "--hook", "claude-Stop"],
        cwd=repo,
        input='{"session_id": "abc"}',
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (hooked.returncode, hooked.stdout) == (0, "")
    assert "inside a task's pane" in hooked.stderr


def test_hooks_install_claude_writes_local_settings_of_the_worktree(repo: Path) -> None:
    """Every state event runs the hook relay; the user's settings and hooks stay; an older
    `limitless signal` hook is replaced; git never sees the file, and no .gitignore appears."""
    settings_path = repo / ".claude" / "settings.local.json"
    settings_path.parent.mkdir()
    mine = {"type": "command", "command": "notify-send hi"}
    old = {"type": "command", "command": "/venv/bin/python -m limitless signal waiting --hook x"}
    settings_path.write_text(
        json.dumps(
            {
                "model": "opus",
                "hooks": {"Stop": [{"hooks": [mine]}], "Notification": [{"hooks": [old]}]},
            }
        ),
        encoding="utf-8",
    )
    for _ in range(2):  # installing twice changes nothing
        result = cli(repo, "hooks", "install", "claude", "--worktree", str(repo))
        assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"wrote {settings_path}: {', '.join(claude_hooks.EVENTS)} hooks report the agent's "
        "state to limitless; the repository's info/exclude keeps it out of commits\n"
    )
    settings = json.loads(settings_path.read_text(encoding="utf-8"))
    assert settings["model"] == "opus"
    assert set(settings["hooks"]) == set(claude_hooks.EVENTS)
    assert settings["hooks"]["Stop"][0] == {"hooks": [mine]}
    relay = str(Path(agenthook.__file__).resolve())
    for event in claude_hooks.EVENTS:
        groups = settings["hooks"][event]
        ours = [h for g in groups for h in g["hooks"] if "limitless" in h["command"]]
        assert len(ours) == 1, groups
        assert ours[0]["type"] == "command"
        assert shlex.split(ours[0]["command"])[1:] == ["-S", "-I", relay]
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--ignored"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    assert status.stdout == "!! .claude/settings.local.json\n"  # ignored, never committed
    assert not (repo / ".claude" / ".gitignore").exists()
    exclude = (repo / ".git" / "info" / "exclude").read_text(encoding="utf-8")
    assert exclude.count("/.claude/settings.local.json") == 1


def test_hooks_install_skips_a_tracked_settings_file_in_the_worktree_index(repo: Path) -> None:
    """A repository that tracks `.claude/settings.local.json` keeps it: the worktree's index
    skips the hooked copy, so the task's commits leave the tracked file as it was."""
    settings_path = repo / ".claude" / "settings.local.json"
    settings_path.parent.mkdir()
    settings_path.write_text('{"model": "opus"}\n', encoding="utf-8")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "settings"], cwd=repo, check=True)
    result = cli(repo, "hooks", "install", "claude", "--worktree", str(repo))
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("the repository tracks it: this worktree's index skips it\n")
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True
    )
    assert status.stdout == ""
    assert "hooks" in json.loads(settings_path.read_text(encoding="utf-8"))


def test_hooks_install_refuses_broken_settings(repo: Path) -> None:
    """A settings file that is not JSON is named, with the fix, and left alone."""
    path = repo / ".claude" / "settings.local.json"
    path.parent.mkdir()
    path.write_text("{oops", encoding="utf-8")
    result = cli(repo, "hooks", "install", "claude", "--worktree", str(repo))
    assert result.returncode == 2
    assert f"{path}: not valid JSON" in result.stderr
    assert "fix or remove it" in result.stderr
    assert path.read_text(encoding="utf-8") == "{oops"


def test_hook_signal_reads_claude_json_and_keeps_the_session(repo: Path, tmux_socket: str) -> None:
    """A Claude hook's stdin JSON gives the note and the session id used to resume."""
    write_plan(
        repo,
        f"""\
name: hook
agent: idle
merge: {{land: manual}}
agents:
  idle:
    command: ["{{python}}", "{FAKE / "idle.py"}"]
    interactive: true
    idle_seconds: 600
tasks:
  - {{id: talk, prompt: "talk"}}
""",
    )
    started = cli(repo, "run", "--detach", "--no-merge")
    assert started.returncode == 0, started.stdout + started.stderr
    run = latest_run(repo)
    wait_for(lambda: tasks_of(repo, run.id)["talk"].status is TaskStatus.RUNNING, 60, "running")
    # a real hook fires after the agent drew its screen; a later redraw would outdate the signal
    pane = tasks_of(repo, run.id)["talk"].pane_id or ""
    session = TmuxSession(run.tmux_socket, run.id)
    wait_for(
        lambda: "ready for instructions" in "\n".join(session.capture([pane]).get(pane, [])),
        60,
        "the agent's prompt on screen",
    )
    payload = {
        "session_id": "0b7c1f4e-1111-2222-3333-444455556666",
        "hook_event_name": "Notification",
        "message": "Claude needs your permission to use Bash",
    }
    hooked = subprocess.run(
        [sys.executable, "-m", "limitless", "signal", "waiting", "--hook", "claude-Notification"],
        cwd=repo,
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "LIMITLESS_RUN": run.id, "LIMITLESS_TASK": "talk"},
    )
    assert (hooked.returncode, hooked.stdout, hooked.stderr) == (0, "", "")
    wait_for(lambda: tasks_of(repo, run.id)["talk"].status is TaskStatus.WAITING, 60, "waiting")
    row = tasks_of(repo, run.id)["talk"]
    assert row.session_id == payload["session_id"]
    assert row.waiting_reason == "Claude needs your permission to use Bash"
    explained = cli(repo, "explain", run.id, "talk", "--json")
    document = json.loads(explained.stdout)
    by_name = {s["signal"]: s["evidence"] for s in document["signals"]}
    assert document["status"] == "needs_input"
    assert by_name["explicit signal"].startswith("waiting at ")
    assert by_name["session"].startswith(payload["session_id"])
    done = cli(repo, "done", run.id, "talk")
    assert done.returncode == 0, done.stdout + done.stderr
    waited = cli(repo, "wait", run.id, "--timeout", "60")
    assert waited.returncode == 0, waited.stdout + waited.stderr
