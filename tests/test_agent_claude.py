"""The built-in `claude` profile through `limitless run`, with the real Claude Code.

Claude Code runs in print mode with stream-json events in each task's pane; the
model is the scripted server (tests/realagents). What a user sees is checked:
files on the base branch, `limitless status`/`report`, the task's pane lines.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from limitless.programs.claude import CLAUDE
from limitless.states import TaskStatus
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, wait_for, write_plan
from tests.realagents.costs import claude_cost
from tests.realagents.homes import AgentSetup
from tests.realagents.modelserver import ModelServer
from tests.realagents.script import Script, Usage, edit, error, run, say, write

RUN_TIMEOUT = 240.0


@pytest.fixture
def claude_env(
    claude_agent: AgentSetup, monkeypatch: pytest.MonkeyPatch, tmux_socket: str
) -> AgentSetup:
    """Claude Code's variables and PATH in this test's environment (`limitless run` passes
    them to the agents); tmux on a private socket."""
    claude_agent.export(monkeypatch)
    return claude_agent


def _report(repo: Path, run_id: str) -> dict[str, object]:
    result = cli(repo, "report", run_id, "--format", "json")
    assert result.returncode in (0, 1), result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def test_three_tasks_write_edit_commit_merge_and_land_with_the_scripted_cost(
    claude_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """The default profile does real work: files written, edited and committed by Claude
    Code land on main, and the report's cost is what the scripted usage costs."""
    usages = {
        "app": [Usage(1500, 120), Usage(1800, 30)],
        "docs": [Usage(1100, 200), Usage(1300, 90, 500, 0), Usage(1600, 20)],
        "polish": [Usage(2000, 60), Usage(2100, 40, 0, 800), Usage(2300, 10)],
    }
    scripts = [
        Script(
            "app",
            [
                write("src/app.py", "def greet():\n    return 'hi'\n", usage=usages["app"][0]),
                say("Created src/app.py.", usage=usages["app"][1]),
            ],
        ),
        Script(
            "docs",
            [
                write("docs/guide.md", "# Guide\n\nRun the app.\n", usage=usages["docs"][0]),
                edit("docs/guide.md", "Run the app.", "Run `greet()`.", usage=usages["docs"][1]),
                say("Wrote the guide.", usage=usages["docs"][2]),
            ],
        ),
        Script(
            "polish",
            [
                edit("src/app.py", "'hi'", "'hello'", usage=usages["polish"][0]),
                run(
                    "git add -A && git commit -q -m 'app: greet says hello'",
                    usage=usages["polish"][1],
                ),
                say("Committed the change.", usage=usages["polish"][2]),
            ],
        ),
    ]
    for script in scripts:
        model_server.add(script)
    write_plan(
        repo,
        f"""\
name: real
max_concurrency: 3
agents:
  claude: {{env: {{IS_SANDBOX: "1"}}}}
tasks:
  - id: app
    prompt: "Create src/app.py with greet(). {scripts[0].marker}"
  - id: docs
    prompt: "Write docs/guide.md. {scripts[1].marker}"
  - id: polish
    depends_on: [app]
    approve: all
    prompt: "Make greet() say hello and commit it. {scripts[2].marker}"
""",
    )
    finished = cli(repo, "run", "--headless", timeout=RUN_TIMEOUT)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert git(repo, "show", "main:src/app.py") == "def greet():\n    return 'hello'"
    assert git(repo, "show", "main:docs/guide.md") == "# Guide\n\nRun `greet()`."
    subjects = git(repo, "log", "--format=%s", "main").splitlines()
    assert "app: greet says hello" in subjects  # the agent's own commit, landed
    run_row = latest_run(repo)
    rows = tasks_of(repo, run_row.id)
    assert {row.status for row in rows.values()} == {TaskStatus.DONE}
    expected = {task: claude_cost(None, task_usages) for task, task_usages in usages.items()}
    for task, cost in expected.items():
        assert rows[task].cost_usd == pytest.approx(cost, rel=1e-9), task
        assert rows[task].session_id  # from the stream's init event
    report = _report(repo, run_row.id)["run"]
    assert isinstance(report, dict)
    assert report["total_cost_usd"] == pytest.approx(sum(expected.values()), abs=1e-6)
    with open_store(repo) as store:
        log = store.log_path(run_row.id, "docs").read_text()
        polish_log = store.log_path(run_row.id, "polish").read_text()
    assert "✎ Write docs/guide.md" in log
    assert "✎ Edit docs/guide.md" in log
    assert "● Wrote the guide." in log
    assert "$ git add -A && git commit -q -m 'app: greet says hello'" in polish_log
    assert '{"type"' not in log  # the pane shows lines, not the raw events


def test_a_prompt_starting_with_a_dash_reaches_claude_as_the_prompt(
    claude_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """A prompt that starts with `-` is the prompt, not an option: it goes last, after `--`,
    and Claude Code does the work it asks for."""
    script = Script("dash", [write("dash.txt", "dash\n"), say("Wrote dash.txt.")])
    model_server.add(script)
    write_plan(
        repo,
        f"""\
name: dash
tasks:
  - id: dash
    prompt: "--write dash.txt {script.marker}"
""",
    )
    finished = cli(repo, "run", "--headless", timeout=RUN_TIMEOUT)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert git(repo, "show", "main:dash.txt") == "dash"


def test_a_refused_write_is_not_a_plain_success(
    claude_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """approve: ask in print mode: Claude Code is refused the write and exits 0; the task
    fails, and its reason names what was refused and the policy that allows it."""
    script = Script("refused", [write("refused.txt", "nope\n"), say("I could not write the file.")])
    model_server.add(script)
    write_plan(
        repo,
        f"""\
name: refused
approve: ask
tasks:
  - id: write
    prompt: "Write refused.txt. {script.marker}"
""",
    )
    finished = cli(repo, "run", "--headless", timeout=RUN_TIMEOUT)
    assert finished.returncode == 1, finished.stdout + finished.stderr
    row = tasks_of(repo, latest_run(repo).id)["write"]
    assert row.status is TaskStatus.FAILED
    assert row.exit_code == 0
    assert row.reason == (
        "Claude Code was refused Write(refused.txt) (approve: ask; `approve: edits` lets "
        "file edits through, `approve: all` commands too)"
    )
    status = cli(repo, "status")
    assert "was refused Write(refused.txt)" in status.stdout
    assert git(repo, "ls-tree", "--name-only", "main") == "README.md"


def test_an_agent_that_changes_nothing_fails_unless_the_task_allows_it(
    claude_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """A clean exit with an untouched branch is a failure for a real agent; `changes:
    optional` makes it a success."""
    idle = Script("idle", [say("Everything is already fine.")])
    check = Script("check", [say("Checked: nothing to do.")])
    model_server.add(idle)
    model_server.add(check)
    write_plan(
        repo,
        f"""\
name: nothing
tasks:
  - id: idle
    prompt: "Fix the bug. {idle.marker}"
  - id: check
    changes: optional
    prompt: "Check the bug is gone. {check.marker}"
""",
    )
    finished = cli(repo, "run", "--headless", timeout=RUN_TIMEOUT)
    assert finished.returncode == 1, finished.stdout + finished.stderr
    rows = tasks_of(repo, latest_run(repo).id)
    assert rows["idle"].status is TaskStatus.FAILED
    assert rows["idle"].reason == (
        "the agent changed nothing (its last words: Everything is already fine.); if the "
        "task may change nothing, set `changes: optional` on it"
    )
    assert rows["check"].status is TaskStatus.DONE


def test_a_lasting_rate_limit_backs_off_and_the_retry_recovers(
    claude_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """429s past Claude Code's own retries end the attempt with `rate limited: …`; the
    supervisor retries it after the back-off (not counted), and the retry does the work."""
    script = Script(
        "limited", [error(429, times=2), write("limited.txt", "made it\n"), say("done")]
    )
    model_server.add(script)
    write_plan(
        repo,
        f"""\
name: limited
agents:
  claude: {{env: {{CLAUDE_CODE_MAX_RETRIES: "1"}}}}
tasks:
  - id: busy
    prompt: "Write limited.txt. {script.marker}"
""",
    )
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    run_id = latest_run(repo).id

    def backing_off() -> bool:
        row = tasks_of(repo, run_id)["busy"]
        return row.status is TaskStatus.READY and row.reason.startswith("rate limited: ")

    wait_for(backing_off, 90, "the rate-limited attempt queued for a retry")
    reason = tasks_of(repo, run_id)["busy"].reason
    assert "429" in reason and "(not counted as an attempt)" in reason
    with open_store(repo) as store:
        store.update_task(run_id, "busy", not_before=0.0)  # the back-off has passed
    waited = cli(repo, "wait", run_id, "--timeout", "120", timeout=150)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    row = tasks_of(repo, run_id)["busy"]
    assert row.status is TaskStatus.DONE
    assert row.attempt == 2
    assert git(repo, "show", "main:limited.txt") == "made it"


def test_the_event_reader_turns_a_real_transcript_into_pane_lines(
    claude_agent: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """Claude Code's own stream-json (write, a 429 retry, a command, a refusal, the result)
    read by the adapter: readable lines, the session, the cost and the denial."""
    script = Script(
        "transcript",
        [
            write("src/one.py", "x = 1\n"),
            error(429, times=1),
            run("ls src"),
            write("/etc/limitless-denied.txt", "no\n"),
            say("Wrote one file.\nCould not write the other."),
        ],
    )
    model_server.add(script)
    finished = claude_agent.run(
        "-p",
        f"Go. {script.marker}",
        "--output-format",
        "stream-json",
        "--verbose",
        *CLAUDE.approve_args("edits"),
        cwd=repo,
    )
    assert finished.returncode == 0, finished.describe()
    stream = CLAUDE.stream(repo)
    shown = [line.text for raw in finished.stdout.splitlines() for line in stream.line(raw)]
    assert shown[0] == "Claude Code 2.1.197 · claude-opus-4-8 (1M) · acceptEdits"
    assert "✎ Write src/one.py" in shown
    assert any(text.startswith("↻ model API 429 rate_limit: retry 1/10 in ") for text in shown)
    assert "$ ls src" in shown
    assert "✎ Write /etc/limitless-denied.txt" in shown
    assert shown[-3:-1] == ["● Wrote one file.", "  Could not write the other."]
    assert shown[-1].startswith("✓ finished · 4 turns · ")
    facts = stream.facts
    assert facts.session_id and facts.session_id in finished.stdout
    assert facts.cost_usd is not None and facts.cost_usd > 0
    assert facts.denials == ["Write(/etc/limitless-denied.txt)"]
    assert facts.actions == 3
    assert not facts.is_error
