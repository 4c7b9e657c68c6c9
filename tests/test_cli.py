"""The foundation commands as a user types them: init, validate, graph, doctor, list, status."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.engine_helpers import cli, latest_run, open_store, tasks_of, write_plan

BAD_PLAN = """\
name: x
max_concurency: 3
tasks:
  - {id: a, prompt: hi, depends_on: [b]}
  - {id: b, prompt: hi, depends_on: [a], timeout: 3 minutes}
  - {id: ../x, prompt: hi, agent: cluade}
"""

ECOMMERCE = """\
name: shop
agent: shell
tasks:
  - {id: frontend, prompt: "true", estimate: 30m}
  - {id: backend, prompt: "true", estimate: 40m}
  - {id: database, prompt: "true", estimate: 20m}
  - {id: api, prompt: "true", depends_on: [backend, database], estimate: 30m}
  - {id: frontend-api, prompt: "true", depends_on: [frontend, api], estimate: 20m}
  - {id: payments, prompt: "true", depends_on: [api], estimate: 40m}
  - {id: e2e, prompt: "true", depends_on: [frontend-api, payments], estimate: 10m}
"""


def test_init_writes_a_plan_that_validates(repo: Path) -> None:
    """`init` writes limitless.yaml, `validate` accepts it, a second `init` refuses."""
    first = cli(repo, "init")
    assert first.returncode == 0, first.stderr
    assert (repo / "limitless.yaml").exists()
    assert cli(repo, "validate").returncode == 0
    again = cli(repo, "init")
    assert again.returncode == 2
    assert "limitless.yaml exists already; pass --force" in again.stderr


def test_validate_prints_every_problem_with_its_place(repo: Path) -> None:
    """Several mistakes: each as PLAN:LINE:COL: message, then a count, exit 2."""
    write_plan(repo, BAD_PLAN, "bad.yaml")
    result = cli(repo, "validate", "bad.yaml")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "bad.yaml:2:1: unknown key 'max_concurency'; did you mean 'max_concurrency'?",
        "bad.yaml:4:38: tasks[0].depends_on: cycle: a -> b -> a; remove one of these dependencies",
        "bad.yaml:5:51: tasks[1].timeout: bad duration '3 minutes'; use a number of seconds or "
        "a duration like 90s, 30m, 2h or 1h30m",
        "bad.yaml:6:10: tasks[2].id: task id '../x' must start with a letter or digit",
        "bad.yaml:6:35: tasks[2].agent: unknown agent profile 'cluade'; did you mean 'claude'? "
        "(known: aider, claude, claude-interactive, codex, codex-interactive, demo, gemini, "
        "opencode, shell)",
        "bad.yaml: 5 problems",
    ]
    assert result.stdout == ""


def test_validate_json_lists_problems(repo: Path) -> None:
    """`validate --json` prints one JSON document naming each problem's place."""
    write_plan(repo, BAD_PLAN, "bad.yaml")
    result = cli(repo, "validate", "bad.yaml", "--json")
    assert result.returncode == 2
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert [(p["line"], p["column"]) for p in document["problems"]] == [
        (2, 1),
        (4, 38),
        (5, 51),
        (6, 10),
        (6, 35),
    ]


def test_validate_missing_plan_says_how_to_make_one(repo: Path) -> None:
    """No limitless.yaml: exit 2 and a hint to run `limitless init`."""
    result = cli(repo, "validate")
    assert result.returncode == 2
    assert "limitless.yaml:1:1: plan file not found; write one with `limitless init`" in (
        result.stderr
    )


class GraphCase(NamedTuple):
    test_id: str
    fmt: str
    expected: list[str]


GRAPH_CASES = [
    GraphCase(
        "ascii",
        "ascii",
        ["wave 1", "wave 4", "* critical path: backend -> api -> payments -> e2e (length 2h)"],
    ),
    GraphCase("mermaid", "mermaid", ["flowchart TD", "n_api --> n_payments"]),
]


@pytest.mark.parametrize("case", GRAPH_CASES, ids=[c.test_id for c in GRAPH_CASES])
def test_graph_draws_the_plan(repo: Path, case: GraphCase) -> None:
    """`graph` in ascii and mermaid shows waves, edges and the critical path."""
    write_plan(repo, ECOMMERCE)
    result = cli(repo, "graph", "--format", case.fmt)
    assert result.returncode == 0, result.stderr
    for fragment in case.expected:
        assert fragment in result.stdout


def test_graph_json_has_waves_and_critical_path(repo: Path) -> None:
    """`graph --format json` has tasks, edges, waves and the critical path with its length."""
    write_plan(repo, ECOMMERCE)
    document = json.loads(cli(repo, "graph", "--format", "json").stdout)
    assert document["waves"] == [
        ["frontend", "backend", "database"],
        ["api"],
        ["frontend-api", "payments"],
        ["e2e"],
    ]
    assert document["critical_path"] == ["backend", "api", "payments", "e2e"]
    assert document["critical_path_length"] == 7200
    assert ["api", "payments", "hard"] in document["edges"]


def test_graph_names_a_cycle(repo: Path) -> None:
    """A cyclic plan: `graph` refuses with the cycle named."""
    write_plan(
        repo,
        "name: c\ntasks:\n"
        "  - {id: a, prompt: x, depends_on: [c]}\n"
        "  - {id: b, prompt: x, depends_on: [a]}\n"
        "  - {id: c, prompt: x, depends_on: [b]}\n",
    )
    result = cli(repo, "graph")
    assert result.returncode == 2
    assert "cycle: a -> c -> b -> a" in result.stderr


def test_doctor_passes_in_a_repository_and_fails_outside(repo: Path, tmp_path: Path) -> None:
    """`doctor`: one line per check; exit 0 in a repo, 3 outside one."""
    inside = cli(repo, "doctor")
    assert inside.returncode == 0, inside.stdout
    names = [line.split()[1] for line in inside.stdout.splitlines()]
    assert names[:5] == ["python", "tmux", "git", "repository", "store"]
    agents = [line for line in inside.stdout.splitlines() if line.split()[1] == "agent"]
    assert [line.split()[2] for line in agents] == [
        "claude",
        "claude-interactive",
        "codex",
        "codex-interactive",
        "gemini",
        "aider",
        "opencode",
    ]  # each profile with an adapter
    outside_dir = tmp_path / "nothing"
    outside_dir.mkdir()
    outside = cli(outside_dir, "doctor")
    assert outside.returncode == 3
    assert "FAIL repository  not inside a git repository" in outside.stdout


def test_list_and_status_before_any_run(repo: Path) -> None:
    """No runs yet: `list` says how to start one; `status` exits 2 saying the same."""
    listed = cli(repo, "list")
    assert listed.returncode == 0
    assert "no runs yet" in listed.stdout
    assert json.loads(cli(repo, "list", "--json").stdout) == {"runs": []}
    status = cli(repo, "status")
    assert status.returncode == 2
    assert "no runs yet in this repository" in status.stderr


def test_unknown_command_and_bad_flag_exit_2(repo: Path) -> None:
    """argparse mistakes exit 2 with a hint."""
    result = cli(repo, "frobnicate")
    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr


@pytest.mark.usefixtures("tmux_socket")
def test_status_json_and_list_after_a_run(repo: Path) -> None:
    """After a run, `status --json` has the documented shape and `list` shows the run."""
    write_plan(repo, "name: tiny\nagent: shell\ntasks:\n  - {id: one, prompt: 'echo 1 > one'}\n")
    assert cli(repo, "run", "--headless", "--no-merge").returncode == 0
    document = json.loads(cli(repo, "status", "--json").stdout)
    assert set(document) == {"run", "tasks", "counts"}
    assert {"id", "status", "plan", "base", "started_at", "ended_at"} <= set(document["run"])
    assert document["run"]["id"] == "tiny-1"
    task = document["tasks"][0]
    assert {
        "id", "status", "attempt", "exit_code", "branch", "worktree", "pane", "started_at",
        "ended_at", "duration_s", "progress", "cost_usd", "commits", "merge_status", "reason",
        "predicted_conflicts",
    } <= set(task)  # fmt: skip
    assert task["status"] == "done"
    assert task["branch"] == "limitless/tiny-1/one"
    assert re.fullmatch(ISO_MS, task["started_at"]), task["started_at"]
    assert document["counts"] == {"done": 1}
    listed = json.loads(cli(repo, "list", "--json").stdout)
    assert [run["id"] for run in listed["runs"]] == ["tiny-1"]
    assert re.fullmatch(ISO_MS, listed["runs"][0]["started_at"])


ISO_MS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def epoch(moment: str) -> float:
    return datetime.fromisoformat(moment).timestamp()


@pytest.mark.usefixtures("tmux_socket")
def test_status_json_times_carry_milliseconds(repo: Path) -> None:
    """`status --json` times are the store's to the millisecond, so two tasks started in
    the same second still order; `list` (a table for people) shows whole seconds."""
    plan = "name: ms\nagent: shell\nmax_concurrency: 2\ntasks:\n  - {id: one, prompt: 'true'}\n"
    write_plan(repo, plan + "  - {id: two, prompt: 'true'}\n")
    assert cli(repo, "run", "--headless", "--no-merge").returncode == 0
    run = latest_run(repo)
    rows = tasks_of(repo, run.id)
    document = json.loads(cli(repo, "status", "--json").stdout)
    for task in document["tasks"]:
        row = rows[task["id"]]
        assert row.started_at is not None and row.ended_at is not None
        assert epoch(task["started_at"]) == pytest.approx(row.started_at, abs=0.001)
        assert epoch(task["ended_at"]) == pytest.approx(row.ended_at, abs=0.001)
    assert epoch(document["run"]["started_at"]) == pytest.approx(run.created_at, abs=0.001)

    second = float(int(run.created_at))  # `two` started 0.5 s before `one`, in one second
    with open_store(repo) as store:
        store.update_task(run.id, "one", started_at=second + 0.75, ended_at=second + 0.9)
        store.update_task(run.id, "two", started_at=second + 0.25, ended_at=second + 0.5)
    document = json.loads(cli(repo, "status", "--json").stdout)
    starts = {task["id"]: task["started_at"] for task in document["tasks"]}
    assert (starts["one"][19:], starts["two"][19:]) == (".750Z", ".250Z")
    assert starts["one"][:19] == starts["two"][:19]
    assert sorted(starts, key=starts.__getitem__) == ["two", "one"]

    table = cli(repo, "list").stdout
    utc = json.loads(cli(repo, "list", "--json").stdout)["runs"][0]["started_at"]
    assert f"{utc[:19]}Z" in table and utc not in table
