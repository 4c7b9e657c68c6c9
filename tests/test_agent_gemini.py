"""The built-in `gemini` profile through `limitless run`: the real gemini-cli, a scripted model.

gemini-cli 0.61.0 reaches the harness's server through `GOOGLE_GEMINI_BASE_URL`
(Gemini API, streamed) with `security.auth.selectedType: gemini-api-key` in
the test HOME's settings — a user's own gemini setup. The profile adds
`-o stream-json --skip-trust` and the approval mode of `approve`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from limitless.states import TaskStatus
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, wait_for, write_plan
from tests.realagents.homes import AgentSetup
from tests.realagents.modelserver import ModelServer
from tests.realagents.script import Script, Usage, edit, error, run, say, write

TURN = Usage(1000, 100)


def _plan(body: str, *, approve: str = "edits", extra: str = "") -> str:
    return f"name: gemini-run\nagent: gemini\napprove: {approve}\n{extra}tasks:\n{body}"


def _pane_text(repo: Path, run_id: str, task_id: str) -> str:
    with open_store(repo) as store:
        return store.log_path(run_id, task_id).read_text(encoding="utf-8", errors="replace")


def _settings(home: Path, **general: object) -> None:
    """Add `general` keys to the test HOME's gemini settings (what a user would set)."""
    path = home / ".gemini" / "settings.json"
    settings = json.loads(path.read_text())
    settings.setdefault("general", {}).update(general)
    path.write_text(json.dumps(settings))


@pytest.fixture
def gemini_env(
    gemini_agent: AgentSetup, monkeypatch: pytest.MonkeyPatch, tmux_socket: str
) -> AgentSetup:
    """gemini's server settings in the environment `limitless run` and its panes inherit.

    The harness trusts folders through GEMINI_CLI_TRUST_WORKSPACE; it goes, so the
    profile's own `--skip-trust` is what lets gemini work in a fresh worktree.
    """
    gemini_agent.export(monkeypatch)
    monkeypatch.delenv("GEMINI_CLI_TRUST_WORKSPACE", raising=False)
    return gemini_agent


def test_three_gemini_tasks_write_edit_merge_and_land(
    gemini_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """Write a file, edit another, extend the first after it: merged and landed; tokens, no cost."""
    scripts = {
        "notes": Script("g-notes", [write("notes.txt", "first note\n", usage=TURN), say("done")]),
        "title": Script(
            "g-title", [edit("README.md", "# test repo", "# gemini", usage=TURN), say("done")]
        ),
        "more": Script(
            "g-more",
            [edit("notes.txt", "first note", "first note\nsecond note", usage=TURN), say("done")],
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
    assert (repo / "README.md").read_text() == "# gemini\n"
    tracked = git(repo, "ls-tree", "-r", "--name-only", "main").splitlines()
    assert sorted(tracked) == ["README.md", "notes.txt"]
    run_id = latest_run(repo).id
    rows = tasks_of(repo, run_id)
    assert {row.status for row in rows.values()} == {TaskStatus.DONE}
    # gemini-cli reports tokens, not money: no cost is invented for it.
    assert {row.cost_usd for row in rows.values()} == {None}
    # gemini does not commit: limitless commits what each task left.
    subjects = git(repo, "log", "--format=%s", "main").splitlines()
    assert sum("work left uncommitted by the agent" in subject for subject in subjects) == 3
    pane = _pane_text(repo, run_id, "notes")
    assert "✎ write_file notes.txt" in pane
    assert "✓ finished · 1100 tokens in, 120 out" in pane
    assert "● done" in pane
    assert model_server.problems() == []
    first = min(r.wall for r in model_server.model_requests())
    assert first - started < 30


def test_ask_offers_gemini_no_edit_tool_and_the_task_fails_unchanged(
    gemini_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """`approve: ask` is gemini's `default` mode: no write tool in -p, so nothing changes."""
    script = Script("g-ask", [say("I cannot write files here.")])
    model_server.add(script)
    write_plan(
        repo,
        _plan(
            f'  - id: hello\n    prompt: "Say hello in hello.txt. {script.marker}"\n',
            approve="ask",
            extra="merge: {land: manual}\n",
        ),
    )

    result = cli(repo, "run", "--headless", timeout=120)

    assert result.returncode == 1, result.stdout + result.stderr
    row = tasks_of(repo, latest_run(repo).id)["hello"]
    assert row.status is TaskStatus.FAILED
    assert row.reason.startswith(
        "the agent changed nothing (its last words: I cannot write files here.)"
    )
    tools = model_server.main_requests(script.name)[0].body["tools"]
    names = {d["name"] for tool in tools for d in tool.get("functionDeclarations", [])}
    assert "read_file" in names
    assert not names & {"write_file", "replace", "run_shell_command"}


def test_all_lets_gemini_run_a_command(
    gemini_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """`approve: all` is yolo: run_shell_command is offered and runs; limitless commits it."""
    script = Script("g-all", [run("echo ran > ran.txt"), say("ran")])
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


def test_a_429_gemini_gives_up_on_backs_off_and_the_retry_recovers(
    gemini_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """gemini gives up after its attempts (2 here) and exits 173: rate limited, retried, done."""
    _settings(gemini_env.home, maxAttempts=2)  # gemini's default is 10 tries over ~4 minutes
    script = Script("g-429", [error(429, times=2), write("hi.txt", "hi\n", usage=TURN), say("ok")])
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

    wait_for(backing_off, 90, "the task queued again after gemini gave up")
    reason = tasks_of(repo, run_id)["hello"].reason
    assert reason.startswith("rate limited: [API Error: scripted error 429] Please wait"), reason
    assert reason.endswith("; retrying in 30s (not counted as an attempt)")
    with open_store(repo) as store:
        store.update_task(run_id, "hello", not_before=0.0)  # the back-off has passed
    waited = cli(repo, "wait", run_id, "--timeout", "90")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    row = tasks_of(repo, run_id)["hello"]
    assert (row.status, row.attempt) == (TaskStatus.DONE, 2)
    assert git(repo, "show", f"{row.branch}:hi.txt") == "hi"
