"""Run reports: figures checked against the store, every format rendered from real runs."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from limitless.fmt import duration
from limitless.plan import loader as plan_mod
from limitless.states import MergeStatus, RunStatus, TaskStatus
from limitless.store import Attempt, Event, Run, TaskRow
from limitless.views.report import (
    build_report,
    render_ascii,
    render_html,
    render_markdown,
    render_mermaid_gantt,
    report_of,
    short_lines,
    to_json,
)
from tests.engine_helpers import cli, latest_run, open_store, write_plan

T0 = 1_700_000_000.0

SYNTHETIC_PLAN = """\
name: syn
agent: shell
tasks:
  - {id: a, prompt: "true"}
  - {id: b, prompt: "true", model: opus}
  - {id: c, prompt: "true", depends_on: [a]}
"""


def synthetic() -> tuple[Run, list[TaskRow], list[Attempt], list[Event]]:
    """A finished 10-second run on 2 slots: a [0,4], b failed [0,2] then done [2,6], c [4,10]."""
    plan = plan_mod.loads(SYNTHETIC_PLAN, source="syn.yaml", base_dir=Path("."))
    run = Run(
        id="syn-1",
        plan_name="syn",
        plan_path=None,
        plan_json=plan.to_json(),
        repo_root="/nowhere",
        base="main",
        base_sha="0" * 40,
        worktree_root="/nowhere.worktrees",
        status=RunStatus.DONE,
        created_at=T0,
        ended_at=T0 + 10,
        exit_code=0,
        slot_panes="%1,%2",
        max_concurrency=2,
        landed=True,
        merged_sha="abcdef0123456789",
    )

    def row(task_id: str, position: int, attempt: int, start: float, end: float) -> TaskRow:
        return TaskRow(
            run_id="syn-1",
            id=task_id,
            position=position,
            agent="shell",
            branch=f"limitless/syn-1/{task_id}",
            worktree=f"/w/{task_id}",
            status=TaskStatus.DONE,
            attempt=attempt,
            started_at=T0 + start,
            ended_at=T0 + end,
            cost_usd=0.5 if task_id != "c" else None,
            commits=1,
            files_changed=2,
            insertions=3,
            deletions=1,
            merge_status=MergeStatus.MERGED,
            merge_order=position,
        )

    rows = [row("a", 0, 1, 0, 4), row("b", 1, 2, 2, 6), row("c", 2, 1, 4, 10)]
    attempts = [
        Attempt("syn-1", "a", 1, T0, T0 + 4, 0),
        Attempt("syn-1", "b", 1, T0, T0 + 2, 1, "exited with status 1"),
        Attempt("syn-1", "b", 2, T0 + 2, T0 + 6, 0),
        Attempt("syn-1", "c", 1, T0 + 4, T0 + 10, 0),
    ]
    events = [Event(1, "syn-1", "b", T0 + 7, "merge_conflict", {"files": ["x.py"]})]
    return run, rows, attempts, events


def test_synthetic_report_figures() -> None:
    """Sum of attempt times, speedup, utilisation, critical path and cost come out exactly."""
    report = report_of(*synthetic())
    assert report.wall_s == 10.0
    assert report.task_s == 16.0  # 4 + (2 + 4) + 6
    assert report.speedup == pytest.approx(1.6)
    assert report.utilisation == pytest.approx(0.8)  # 16 / (2 slots × 10 s)
    assert report.critical_path == ("a", "c")
    assert report.critical_path_s == 10.0
    assert report.total_cost_usd == 1.0
    assert report.merged == ("a", "b", "c")
    assert [c.task_id for c in report.conflicts] == ["b"]
    b = report.tasks[1]
    assert (b.attempts, b.duration_s, b.model) == (2, 6.0, "opus")
    assert [(bar.start, bar.end, bar.status) for bar in b.bars] == [
        (0.0, 2.0, "failed"),
        (2.0, 6.0, "done"),
    ]


def test_synthetic_mermaid_gantt() -> None:
    """The mermaid gantt has a section per task and a bar per attempt, in seconds."""
    assert render_mermaid_gantt(report_of(*synthetic())) == "\n".join(
        [
            "gantt",
            "    title Run syn-1",
            "    dateFormat X",
            "    axisFormat %M:%S",
            "    section a",
            "    attempt 1 done :done, 0, 4",
            "    section b",
            "    attempt 1 failed :crit, 0, 2",
            "    attempt 2 done :done, 2, 6",
            "    section c",
            "    attempt 1 done :done, 4, 10",
        ]
    )


def test_synthetic_ascii_timeline() -> None:
    """The terminal timeline draws each attempt in proportion to the wall time."""
    text = render_ascii(report_of(*synthetic()), width=10)
    lines = text.splitlines()
    assert lines[1] == "a    │████      │ done 4s"
    assert lines[2] == "b    │▒▒████    │ done 6s"
    assert lines[3] == "c    │    ██████│ done 6s"
    assert "speedup 1.6x · slots busy 80% of 2 · cost $1.00" in text


def test_short_form_names_the_figures() -> None:
    """The short form has the headline, the figures, the critical path and the merge."""
    assert short_lines(report_of(*synthetic())) == [
        "run syn-1 done: 3/3 tasks done",
        "wall time 10s · sum of task times 16s · speedup 1.6x · slots busy 80% of 2 · cost $1.00",
        "critical path a → c (10s)",
        "merge: 3 merged, 1 conflict (b), landed on main at abcdef0123",
    ]


def test_short_form_does_not_repeat_the_count_its_reason_starts_with() -> None:
    """The run's reason begins with the count the headline gives; it is said once."""
    run, rows, attempts, events = synthetic()
    said = "3/3 tasks done; merge skipped (--no-merge): branches left for `limitless merge`"
    lines = short_lines(report_of(dataclasses.replace(run, reason=said), rows, attempts, events))
    assert lines[0] == "run syn-1 done: 3/3 tasks done"
    assert lines[-1] == "merge skipped (--no-merge): branches left for `limitless merge`"
    assert sum("3/3 tasks done" in line for line in lines) == 1


THREE_TASKS = """\
name: rep
agent: shell
max_concurrency: 2
merge: {land: manual}
tasks:
  - id: slow
    prompt: |
      sleep 1.5; echo slow > slow.txt; git add slow.txt; git commit -qm "slow"
      echo 'total cost $0.25'
  - id: quick
    prompt: |
      echo quick > quick.txt; echo more > more.txt
      git add quick.txt more.txt; git commit -qm "quick"
      echo 'total cost $0.50'
  - id: after
    depends_on: [slow]
    prompt: |
      sleep 0.5; echo after > after.txt; git add after.txt; git commit -qm "after"
"""


class _SvgCounter(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.bars: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        if tag == "rect" and found.get("class") == "bar":
            self.bars.append(found)


@pytest.mark.usefixtures("tmux_socket")
def test_report_of_a_real_run_matches_the_store(repo: Path, tmp_path: Path) -> None:
    """A real 3-task run: headless summary, report figures equal to the store's rows."""
    write_plan(repo, THREE_TASKS)
    result = cli(repo, "run", "--headless")
    assert result.returncode == 0, result.stdout + result.stderr
    run = latest_run(repo)
    assert "3/3 tasks done" in result.stdout
    assert "critical path slow → after" in result.stdout
    assert "merge: 3 merged" in result.stdout

    with open_store(repo) as store:
        report = build_report(store, run.id)
        rows = {row.id: row for row in store.get_tasks(run.id)}
        attempts = store.attempts(run.id)
    assert run.ended_at is not None
    assert report.wall_s == pytest.approx(run.ended_at - run.created_at)
    spans = {a.task_id: (a.ended_at or 0) - a.started_at for a in attempts}
    assert report.task_s == pytest.approx(sum(spans.values()))
    assert report.speedup == pytest.approx(report.task_s / report.wall_s)
    assert report.slots == 2
    assert report.utilisation == pytest.approx(report.task_s / (2 * report.wall_s))
    assert report.critical_path == ("slow", "after")
    assert report.critical_path_s == pytest.approx(spans["slow"] + spans["after"])
    assert report.total_cost_usd == pytest.approx(0.75)
    assert set(report.merged) == {"slow", "quick", "after"}
    for task in report.tasks:
        row = rows[task.id]
        assert task.duration_s == pytest.approx(spans[task.id])
        assert (task.status, task.commits, task.files_changed) == (
            "done",
            row.commits,
            row.files_changed,
        )
        assert task.merge_status == "merged"
    assert report.tasks[1].files_changed == 2

    document = to_json(report)
    from_cli = cli(repo, "report", run.id, "--format", "json")
    assert from_cli.returncode == 0, from_cli.stderr
    assert json.loads(from_cli.stdout) == json.loads(json.dumps(document))
    run_doc = document["run"]
    assert isinstance(run_doc, dict)
    assert run_doc["speedup"] == round(report.speedup, 3)

    markdown = cli(repo, "report", "--format", "md").stdout
    assert markdown == render_markdown(report) + "\n"
    assert "```mermaid\ngantt" in markdown
    assert f"| speedup | {report.speedup:.2f}x |" in markdown

    out = tmp_path / "report.html"
    written = cli(repo, "report", "--format", "html", "-o", str(out))
    assert written.returncode == 0, written.stderr
    page = out.read_text()
    assert page == render_html(report)
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    parser = _SvgCounter()
    parser.feed(page)
    assert "svg" in parser.tags
    assert sorted(str(bar["data-task"]) for bar in parser.bars) == ["after", "quick", "slow"]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium:
        dumped = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--dump-dom", out.as_uri()],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert dumped.returncode == 0, dumped.stderr
        assert "<svg" in dumped.stdout and "slow" in dumped.stdout

    ascii_text = cli(repo, "report", "--format", "ascii").stdout
    slow_line = ascii_text.splitlines()[1]
    assert slow_line.startswith("slow  │") and "█" in slow_line
    assert slow_line.endswith(f"│ done {duration(spans['slow'])}")

    events = cli(repo, "events", run.id, "--json")
    assert events.returncode == 0, events.stderr
    lines = [json.loads(line) for line in events.stdout.splitlines()]
    with open_store(repo) as store:
        stored = store.events(run.id)
    assert [line["id"] for line in lines] == [e.id for e in stored]
    assert [line["kind"] for line in lines] == [e.kind for e in stored]
    for line, event in zip(lines, stored, strict=True):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
        moment = datetime.fromisoformat(line["time"]).timestamp()
        assert moment == pytest.approx(event.ts, abs=0.001)
    for task in document["tasks"]:
        assert isinstance(task, dict)
        assert re.fullmatch(r".*T\d\d:\d\d:\d\d\.\d{3}Z", str(task["started_at"]))
        assert f"| {task['started_at']} | {task['ended_at']} |" in markdown
        assert f"<td>{task['started_at']}</td><td>{task['ended_at']}</td>" in page
    done = cli(repo, "events", "--kind", "task_done").stdout.splitlines()
    assert all(re.match(r"\d\d:\d\d:\d\d\.\d{3} ", line) for line in done), done
    assert sorted(line.split(" ", 1)[1] for line in done) == [
        "✓ after done",
        "✓ quick done",
        "✓ slow done",
    ]


@pytest.mark.usefixtures("tmux_socket")
def test_events_follow_streams_until_the_run_ends(repo: Path) -> None:
    """`events --follow` on a detached run prints its events live and stops at its end."""
    write_plan(repo, "name: ev\nagent: shell\ntasks:\n  - {id: nap, prompt: sleep 1}\n")
    started = cli(repo, "run", "--detach", "--no-merge")
    assert started.returncode == 0, started.stderr
    followed = cli(repo, "events", "--follow", "--json", timeout=120)
    assert followed.returncode == 0, followed.stderr
    kinds = [json.loads(line)["kind"] for line in followed.stdout.splitlines()]
    assert kinds[0] == "run_started"
    assert "task_done" in kinds
    assert "run_done" in kinds


def test_report_of_unknown_run_is_a_usage_error(repo: Path) -> None:
    """`report NOPE` exits 2 and names the run."""
    result = cli(repo, "report", "nope-1")
    assert result.returncode == 2
    assert "nope-1" in result.stderr
