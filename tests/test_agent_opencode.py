"""The built-in `opencode` profile through `limitless run`: the real opencode, a scripted model.

opencode 1.18.33 reaches the harness's server through a provider in the test
HOME's `opencode.json` (`@ai-sdk/openai-compatible`, a `baseURL`), as a user
would configure one; here the model also gets a price, so opencode reports a
cost for each step. The profile's `approve` reaches opencode as
`OPENCODE_PERMISSION` for the run; the config file's own permissions are
removed so that nothing else lets a tool through.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from limitless.states import TaskStatus
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, wait_for, write_plan
from tests.realagents.homes import OPENCODE_MODEL, AgentSetup
from tests.realagents.modelserver import ModelServer
from tests.realagents.script import Script, Usage, edit, error, run, say, write

TURN = Usage(1000, 100)
PRICE = {"input": 1.0, "output": 2.0}  # USD per million tokens, opencode's unit
TURN_COST = (1000 * 1.0 + 100 * 2.0) / 1_000_000  # $0.0012 a step


def _plan(body: str, *, approve: str = "edits", extra: str = "") -> str:
    return f"name: opencode-run\nagent: opencode\napprove: {approve}\n{extra}tasks:\n{body}"


def _pane_text(repo: Path, run_id: str, task_id: str) -> str:
    with open_store(repo) as store:
        return store.log_path(run_id, task_id).read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def opencode_env(
    opencode_agent: AgentSetup, monkeypatch: pytest.MonkeyPatch, tmux_socket: str
) -> AgentSetup:
    """opencode's provider (priced, no permissions of its own) for `limitless run` and its panes."""
    path = Path(opencode_agent.env["XDG_CONFIG_HOME"]) / "opencode" / "opencode.json"
    config = json.loads(path.read_text())
    del config["permission"]
    config["provider"]["limitless"]["models"][OPENCODE_MODEL]["cost"] = PRICE
    path.write_text(json.dumps(config))
    opencode_agent.export(monkeypatch)
    return opencode_agent


def test_three_opencode_tasks_write_edit_merge_and_land(
    opencode_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """Write a file, edit another, extend the first after it: merged, landed, costed."""
    scripts = {
        "notes": Script(
            "o-notes", [write("notes.txt", "first note\n", usage=TURN), say("done", usage=TURN)]
        ),
        "title": Script(
            "o-title",
            [edit("README.md", "# test repo", "# opencode", usage=TURN), say("done", usage=TURN)],
        ),
        "more": Script(
            "o-more",
            [
                edit("notes.txt", "first note", "first note\nsecond note", usage=TURN),
                say("done", usage=TURN),
            ],
        ),
    }
    model_server.add(*scripts.values())
    write_plan(
        repo,
        _plan(
            f"""\
  - id: notes
    prompt: "Start notes.txt with a first note. {scripts["notes"].marker}"
  - id: title
    prompt: "Give the README a new title. {scripts["title"].marker}"
  - id: more
    depends_on: [notes]
    prompt: "Add a second note to notes.txt. {scripts["more"].marker}"
""",
            extra="max_concurrency: 2\n",
        ),
    )
    started = time.time()

    result = cli(repo, "run", "--headless", timeout=240)

    assert result.returncode == 0, result.stdout + result.stderr
    assert (repo / "notes.txt").read_text() == "first note\nsecond note\n"
    assert (repo / "README.md").read_text() == "# opencode\n"
    tracked = git(repo, "ls-tree", "-r", "--name-only", "main").splitlines()
    assert sorted(tracked) == ["README.md", "notes.txt"]
    run_id = latest_run(repo).id
    rows = tasks_of(repo, run_id)
    assert {row.status for row in rows.values()} == {TaskStatus.DONE}
    # Each task: two steps priced by opencode from the scripted usage.
    for row in rows.values():
        assert row.cost_usd == pytest.approx(2 * TURN_COST), row.id
    report = json.loads(cli(repo, "report", run_id, "--format", "json").stdout)
    assert report["run"]["total_cost_usd"] == pytest.approx(6 * TURN_COST)
    # Each task had a session database of its own (parallel starts on one fail at random).
    with open_store(repo) as store:
        folder = store.run_dir(run_id) / "agents"
    assert sorted(path.parent.name for path in folder.glob("*/opencode.db")) == sorted(rows)
    shared = Path(opencode_env.home) / ".local" / "share" / "opencode"
    assert not list(shared.glob("*.db")), list(shared.iterdir())
    pane = _pane_text(repo, run_id, "notes")
    assert "✎ write notes.txt" in pane
    assert "● done" in pane
    assert "✓ finished · 2000 tokens in, 200 out · $0.0024" in pane
    assert model_server.problems() == []
    first = min(r.wall for r in model_server.model_requests())
    assert first - started < 30


def test_edits_turns_down_a_command_and_the_task_is_not_a_success(
    opencode_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """`approve: edits`: opencode auto-rejects bash and exits 0; the task fails naming it."""
    script = Script(
        "o-bash", [write("a.txt", "a\n"), run("echo ran > ran.txt"), say("done", usage=TURN)]
    )
    model_server.add(script)
    write_plan(
        repo,
        _plan(
            f'  - id: cmd\n    prompt: "Write a.txt, then run a command. {script.marker}"\n',
            extra="merge: {land: manual}\n",
        ),
    )

    result = cli(repo, "run", "--headless", timeout=120)

    assert result.returncode == 1, result.stdout + result.stderr
    row = tasks_of(repo, latest_run(repo).id)["cmd"]
    assert row.status is TaskStatus.FAILED
    assert row.reason == (
        "opencode was refused Bash(echo ran > ran.txt) (approve: edits; `approve: all` lets "
        "commands through too)"
    )
    worktree = Path(row.worktree)
    assert (worktree / "a.txt").exists()
    assert not (worktree / "ran.txt").exists()
    assert "permission requested: bash (echo ran > ran.txt); auto-rejecting" in _pane_text(
        repo, row.run_id, "cmd"
    )


def test_all_lets_opencode_run_the_command(
    opencode_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """`approve: all`: the same command runs; limitless commits what it made."""
    script = Script("o-all", [run("echo ran > ran.txt"), say("ran")])
    model_server.add(script)
    write_plan(
        repo,
        _plan(
            f'  - id: cmd\n    prompt: "Make ran.txt with a command. {script.marker}"\n',
            approve="all",
            extra="merge: {land: manual}\n",
        ),
    )

    result = cli(repo, "run", "--headless", timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    row = tasks_of(repo, latest_run(repo).id)["cmd"]
    assert row.status is TaskStatus.DONE, row.reason
    assert git(repo, "show", f"{row.branch}:ran.txt") == "ran"
    assert "$ echo ran > ran.txt" in _pane_text(repo, row.run_id, "cmd")


def test_a_short_429_is_retried_by_opencode_itself(
    opencode_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """One 429: opencode waits about 2.5 s and asks again; the task is done, not rate limited."""
    script = Script("o-429", [error(429), write("hi.txt", "hi\n", usage=TURN), say("ok")])
    model_server.add(script)
    write_plan(
        repo,
        _plan(
            f'  - id: hello\n    prompt: "Say hi in hi.txt. {script.marker}"\n',
            extra="merge: {land: manual}\n",
        ),
    )

    result = cli(repo, "run", "--headless", timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    row = tasks_of(repo, latest_run(repo).id)["hello"]
    assert (row.status, row.attempt, row.reason) == (TaskStatus.DONE, 1, "")
    assert [r.status for r in model_server.main_requests(script.name)][:2] == [429, 200]


@pytest.mark.slow
def test_a_lasting_429_backs_off_and_the_retry_recovers(
    opencode_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """opencode gives up after 6 requests (~85 s), exit 1: rate limited, backed off, retried."""
    script = Script("o-long", [error(429, times=6), write("hi.txt", "hi\n", usage=TURN), say("ok")])
    model_server.add(script)
    write_plan(
        repo,
        _plan(
            f'  - id: hello\n    prompt: "Say hi in hi.txt. {script.marker}"\n',
            extra="merge: {land: manual}\n",
        ),
    )
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    run_id = latest_run(repo).id

    def backing_off() -> bool:
        row = tasks_of(repo, run_id)["hello"]
        return row.status is TaskStatus.READY and row.reason.startswith("rate limited: ")

    wait_for(backing_off, 180, "the task queued again after opencode gave up")
    assert tasks_of(repo, run_id)["hello"].reason == (
        "rate limited: scripted error 429 (HTTP 429); retrying in 30s (not counted as an attempt)"
    )
    with open_store(repo) as store:
        store.update_task(run_id, "hello", not_before=0.0)  # the back-off has passed
    waited = cli(repo, "wait", run_id, "--timeout", "90")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    row = tasks_of(repo, run_id)["hello"]
    assert (row.status, row.attempt) == (TaskStatus.DONE, 2)
    assert git(repo, "show", f"{row.branch}:hi.txt") == "hi"
