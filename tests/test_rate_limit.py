"""Rate limits (uncounted retries after a back-off, lowered concurrency) and session resume."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

from limitless.agents import ratelimit
from limitless.agents.lines import LineParser
from limitless.programs.profiles import BUILTIN_PROFILES, OutputParsers
from limitless.states import TaskStatus
from limitless.store import Attempt
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, wait_for, write_plan

FAKE = Path(__file__).parent / "fake_agents"


class LimitLine(NamedTuple):
    test_id: str
    agent: str
    line: str
    limited: bool


@pytest.mark.parametrize(
    "case",
    [
        LimitLine("claude-usage", "claude", "Claude AI usage limit reached|1767225600", True),
        LimitLine("claude-429", "claude", "API Error: 429 Too Many Requests", True),
        LimitLine("claude-code-talk", "claude", "Added rate limiting middleware", False),
        LimitLine("codex-429", "codex", "stream error: last status: 429 Too Many Requests", True),
        LimitLine("gemini-exhausted", "gemini", "status: RESOURCE_EXHAUSTED", True),
        LimitLine("aider-litellm", "aider", "litellm.RateLimitError: slow down", True),
        LimitLine("shell-never", "shell", "rate limit exceeded", False),
    ],
    ids=lambda case: case.test_id,
)
def test_default_rate_limit_regexes(case: LimitLine) -> None:
    """Built-in profiles know their agent's rate-limit messages, and not ordinary talk."""
    parsers = OutputParsers.for_profile(BUILTIN_PROFILES[case.agent])
    assert parsers.is_rate_limited(case.line) is case.limited


def test_only_a_recent_rate_limit_line_counts() -> None:
    """A rate-limit line long before the end is not why the agent failed."""
    parser = LineParser(OutputParsers.for_profile(BUILTIN_PROFILES["claude"]))
    parser.feed(b"API Error: 429 Too Many Requests\r\n")
    assert parser.recent_rate_limit() == "API Error: 429 Too Many Requests"
    parser.feed(b"".join(f"line {n}\n".encode() for n in range(ratelimit.RECENT_LINES)))
    assert parser.recent_rate_limit() is None


def test_throttle_halves_concurrency_for_a_while_and_says_why() -> None:
    """Each hit halves the cap (not below 1); the gate names the cap, the end and the cause."""
    throttle = ratelimit.Throttle(slots=4)
    why = ratelimit.reason_for("429 Too Many Requests")
    assert throttle.hit(1000.0, 30.0, why) == 2
    assert throttle.gate(1000.0, 1) == ""
    assert throttle.gate(1000.0, 2).startswith("rate limited: at most 2 tasks at once until ")
    assert throttle.gate(1000.0, 2).endswith("(after 429 Too Many Requests)")
    assert throttle.hit(1010.0, 60.0, why) == 1
    assert throttle.hit(1020.0, 60.0, why) == 1
    assert throttle.limit(1020.0 + 2 * 60.0 + 1) is None  # the window ended
    assert throttle.gate(1200.0, 4) == ""


def test_free_attempts_are_capped() -> None:
    """Rate-limited attempts are free up to MAX_FREE_RETRIES; other failures count."""
    limited = ratelimit.reason_for("rate limited")
    attempts = [
        Attempt("r", "t", n, 0.0, reason=limited if n % 2 else "agent exited with 1")
        for n in range(1, 20)
    ]
    assert ratelimit.free_attempts(attempts[:3], 4, "") == 2
    assert ratelimit.free_attempts(attempts[:3], 4, limited) == 3
    assert ratelimit.free_attempts(attempts, 20, limited) == ratelimit.MAX_FREE_RETRIES
    assert [ratelimit.backoff_s(n) for n in (1, 2, 5, 9)] == [30.0, 60.0, 600.0, 600.0]


def test_rate_limited_task_is_retried_uncounted_while_the_run_slows_down(
    repo: Path, tmux_socket: str, tmp_path: Path
) -> None:
    """A 429 then exit 1 is retried although retries is 0; meanwhile one task at a time."""
    marker = tmp_path / "limited-once"
    release = tmp_path / "release-long"
    write_plan(
        repo,
        f"""\
name: limits
agent: flaky
max_concurrency: 2
merge: {{land: manual}}
agents:
  flaky: {{command: ["bash", "-e", "{{prompt_file}}"]}}
tasks:
  - id: long
    prompt: |
      for i in $(seq 1 600); do test -f {release} && break; sleep 0.1; done
      echo long > long.txt
  - id: limited
    prompt: |
      if [ ! -f {marker} ]; then
        touch {marker}; echo "Error: 429 Too Many Requests"; exit 1
      fi
      echo ok > limited.txt
  - id: third
    depends_on: [limited]
    prompt: echo third > third.txt
""",
    )
    started = cli(repo, "run", "--detach", "--no-merge")
    assert started.returncode == 0, started.stdout + started.stderr
    run = latest_run(repo)

    def limited_waiting() -> bool:
        row = tasks_of(repo, run.id)["limited"]
        return row.status is TaskStatus.READY and row.reason.startswith("rate limited: ")

    wait_for(limited_waiting, 60, "limited queued after its rate limit")
    row = tasks_of(repo, run.id)["limited"]
    assert row.reason == (
        "rate limited: Error: 429 Too Many Requests; retrying in 30s (not counted as an attempt)"
    )
    with open_store(repo) as store:
        store.update_task(run.id, "limited", not_before=0.0)  # the back-off has passed
        wait_for(
            lambda: store.get_run(run.id).reason.startswith("rate limited: at most 1 task"),
            60,
            "the run says why it slowed down",
        )
        assert tasks_of(repo, run.id)["limited"].status is TaskStatus.READY  # long holds the 1
        release.touch()
    waited = cli(repo, "wait", run.id, "--timeout", "90")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    rows = tasks_of(repo, run.id)
    assert {r.status for r in rows.values()} == {TaskStatus.DONE}
    assert rows["limited"].attempt == 2
    with open_store(repo) as store:
        limited_events = [e for e in store.events(run.id) if e.kind == "task_rate_limited"]
    assert [(e.task_id, e.data["concurrency"]) for e in limited_events] == [("limited", 1)]


def test_retried_interactive_task_resumes_its_conversation(repo: Path, tmux_socket: str) -> None:
    """Attempt 2 runs resume_command with the session id, on attempt 1's kept work."""
    write_plan(
        repo,
        f"""\
name: resume
agent: talker
merge: {{land: manual}}
agents:
  talker:
    command: ["{{python}}", "{FAKE / "session.py"}"]
    interactive: true
    session_regex: 'session id: ([0-9a-f-]{{36}})'
    resume_command: ["{{python}}", "{FAKE / "session.py"}", "--resume", "{{session}}"]
tasks:
  - {{id: talk, prompt: "talk", retries: 1}}
""",
    )
    result = cli(repo, "run", "--headless", "--no-merge")
    assert result.returncode == 0, result.stdout + result.stderr
    run = latest_run(repo)
    row = tasks_of(repo, run.id)["talk"]
    assert (row.status, row.attempt) == (TaskStatus.DONE, 2)
    session = "5f0c2a1e-0000-4000-8000-00000000c0de"
    assert row.session_id == session
    second = git(repo, "show", f"limitless/{run.id}/talk:second.txt")
    assert second == f"resumed {session}; first kept: True"
    with open_store(repo) as store:
        resumed = [e.data for e in store.events(run.id) if e.kind == "task_resumed"]
    assert resumed == [{"attempt": 2, "session": session}]
