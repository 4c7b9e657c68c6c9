"""Run reports: what a run did and what its parallelism bought, built from the store.

`build_report(store, run_id)` reads the run, its tasks, their attempts and the
event log once and returns a `Report` value; the renderers turn it into
markdown (with a mermaid gantt), JSON, one self-contained HTML file (with an
inline SVG gantt), an ASCII timeline for the terminal, and the short form
headless runs end with. Renderers never touch the store.
"""

from __future__ import annotations

import dataclasses
import html
import json
import time
from dataclasses import dataclass, field

from limitless import fmt
from limitless.fmt import STATUS_COLOURS, duration, iso
from limitless.plan.graph import Dag
from limitless.plan.model import Plan
from limitless.plan.stored import plan_of
from limitless.states import MergeStatus, task_state
from limitless.store import Attempt, Event, Run, Store, TaskRow
from limitless.views.status import checkout_seconds, reason_of
from limitless.views.summary import (
    RunSummary,
    attempt_spans,
    by_task,
    run_end,
    summarize,
)

FORMATS = ("md", "json", "html", "ascii")
TASK_COLUMNS = (
    "task", "status", "attempts", "agent", "start", "end", "time", "cost",
    "commits", "diff", "merge", "reason",
)  # fmt: skip


@dataclass(frozen=True)
class Bar:
    """One attempt of a task on the timeline; times in seconds since the run started."""

    task_id: str
    attempt: int
    start: float
    end: float
    status: str  # the attempt's outcome: done, failed, killed, running
    slot: int | None = None
    host: str = ""  # where the attempt ran ("" before hosts were recorded)

    @property
    def length(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass(frozen=True)
class TaskReport:
    """One task: what it did, how long it took, what it cost, how its merge went."""

    id: str
    status: str
    attempts: int
    agent: str
    model: str | None
    started_at: float | None
    ended_at: float | None
    duration_s: float  # every attempt's running time, summed
    cost_usd: float | None
    commits: int
    files_changed: int
    insertions: int
    deletions: int
    merge_status: str
    merge_reason: str
    conflict_files: tuple[str, ...]
    reason: str
    bars: tuple[Bar, ...]
    asked: tuple[str, ...] = ()
    """What the agent needed input for, in order (a permission, a question)."""
    checkout_s: float | None = None
    """Seconds its worktree's checkout took (files and submodules); None when not made by it."""


@dataclass(frozen=True)
class HostTime:
    """Time spent on one host: its attempts' running time and the tasks they belong to."""

    name: str
    task_s: float
    tasks: int
    attempts: int


@dataclass(frozen=True)
class Conflict:
    task_id: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    """A run and its tasks, with the figures that judge the run."""

    run_id: str
    plan: str
    status: str
    exit_code: int | None
    reason: str
    base: str
    started_at: float
    ended_at: float | None
    summary: RunSummary
    """Wall time, task time, speedup, slots, cost: the figures every view shares."""
    critical_path: tuple[str, ...]
    critical_path_s: float
    gate: str | None
    gate_failed: tuple[str, ...]
    conflicts: tuple[Conflict, ...]
    merged: tuple[str, ...]
    landed: bool
    merged_sha: str | None
    tasks: tuple[TaskReport, ...] = field(default=())
    by_host: tuple[HostTime, ...] = ()
    """Time per host, for a plan with a `hosts:` block (empty without one)."""
    resolver_cost_usd: float | None = None
    """What the merge phase's resolver agents reported (part of the total cost)."""

    @property
    def wall_s(self) -> float:
        return self.summary.wall_s

    @property
    def task_s(self) -> float:
        """Every attempt's running time, summed."""
        return self.summary.task_s

    @property
    def slots(self) -> int:
        return self.summary.slots

    @property
    def total_cost_usd(self) -> float | None:
        return self.summary.cost_usd

    @property
    def speedup(self) -> float:
        """Sum of task time over wall time: how many agents worked at once, on average."""
        return self.summary.speedup

    @property
    def utilisation(self) -> float:
        """Busy slot-seconds over (slots × wall time), 0..1."""
        return self.summary.utilisation

    @property
    def done(self) -> int:
        return self.summary.done


# --------------------------------------------------------------------- building


def build_report(store: Store, run_id: str, *, now: float | None = None) -> Report:
    """The report of run `run_id` as the store holds it now (a live run reads as so far)."""
    run = store.get_run(run_id)
    rows = store.get_tasks(run_id)
    attempts = store.attempts(run_id)
    events = store.events(run_id)
    return report_of(run, rows, attempts, events, now=now)


def report_of(
    run: Run,
    rows: list[TaskRow],
    attempts: list[Attempt],
    events: list[Event],
    *,
    now: float | None = None,
) -> Report:
    """The report from rows already read (a pure function of its arguments)."""
    plan = plan_of(run)
    end = run_end(run, now)
    start = run.created_at
    attempts_of = by_task(attempts)
    asked: dict[str, list[str]] = {}
    for event in events:
        if event.kind == "task_waiting" and event.data.get("waiting") == "input":
            when = time.strftime("%H:%M:%S", time.gmtime(event.ts))
            asked.setdefault(event.task_id or "", []).append(
                f"{event.data.get('reason') or 'a question'} ({when}Z)"
            )
    checkouts = checkout_seconds(events)
    tasks = tuple(
        dataclasses.replace(
            _task_report(row, attempts_of.get(row.id, []), plan, start, end),
            asked=tuple(asked.get(row.id, ())),
            checkout_s=checkouts.get(row.id),
        )
        for row in sorted(rows, key=lambda r: r.position)
    )
    durations = {task.id: task.duration_s for task in tasks}
    path, path_s = _critical_path(plan, durations)
    conflicts = tuple(
        Conflict(event.task_id or "", tuple(str(f) for f in _as_list(event.data.get("files"))))
        for event in events
        if event.kind == "merge_conflict"
    )
    gate_failed = tuple(
        dict.fromkeys(event.task_id or "" for event in events if event.kind == "gate_failed")
    )
    merged = tuple(
        task.id
        for task in sorted(
            (t for t in tasks if t.merge_status == MergeStatus.MERGED),
            key=lambda t: _merge_order(rows, t.id),
        )
    )
    return Report(
        run_id=run.id,
        plan=run.plan_name,
        status=str(run.status),
        exit_code=run.exit_code,
        reason=run.reason,
        base=run.base,
        started_at=start,
        ended_at=run.ended_at,
        summary=summarize(run, rows, attempts, now=end),
        critical_path=tuple(path),
        critical_path_s=path_s,
        gate=plan.merge.gate,
        gate_failed=gate_failed,
        conflicts=conflicts,
        merged=merged,
        landed=run.landed,
        merged_sha=run.merged_sha,
        tasks=tasks,
        by_host=_by_host(tasks, [host.name for host in plan.hosts]),
        resolver_cost_usd=run.resolver_cost_usd,
    )


def _by_host(tasks: tuple[TaskReport, ...], hosts: list[str]) -> tuple[HostTime, ...]:
    """Per host of the plan's block, in its order: attempts' time there and their tasks."""
    if not hosts:
        return ()
    bars = [bar for task in tasks for bar in task.bars]
    return tuple(
        HostTime(
            name,
            sum(bar.length for bar in bars if bar.host == name),
            len({bar.task_id for bar in bars if bar.host == name}),
            sum(1 for bar in bars if bar.host == name),
        )
        for name in hosts
    )


def _task_report(
    row: TaskRow, attempts: list[Attempt], plan: Plan, run_start: float, run_end: float
) -> TaskReport:
    bars: list[Bar] = []
    hosts = {attempt.attempt: attempt.host for attempt in attempts}
    for span in attempt_spans(row, attempts, run_start, run_end):
        if span.last:
            outcome = str(row.status) if row.status.terminal else "running"
        else:
            outcome = "failed" if span.exit_code != 0 else "done"
        bars.append(
            Bar(
                task_id=row.id,
                attempt=span.attempt,
                start=span.start,
                end=span.end,
                status=outcome,
                slot=row.slot if span.last else None,
                host=hosts.get(span.attempt) or (row.host if span.last else None) or "",
            )
        )
    if not attempts and bars:  # launched, but its wrapper never recorded: as its row says
        bars[0] = dataclasses.replace(bars[0], status=str(row.status))
    task = plan.task(row.id) if row.id in {t.id for t in plan.tasks} else None
    return TaskReport(
        id=row.id,
        status=task_state(row.status, row.waiting_kind),
        attempts=row.attempt,
        agent=row.agent,
        model=task.model if task is not None else None,
        started_at=min((a.started_at for a in attempts), default=row.started_at),
        ended_at=row.ended_at,
        duration_s=sum(bar.length for bar in bars),
        cost_usd=row.cost_usd,
        commits=row.commits,
        files_changed=row.files_changed,
        insertions=row.insertions,
        deletions=row.deletions,
        merge_status=str(row.merge_status),
        merge_reason=row.merge_reason,
        conflict_files=tuple(row.conflict_files),
        reason=reason_of(row),
        bars=tuple(bars),
    )


def _critical_path(plan: Plan, durations: dict[str, float]) -> tuple[list[str], float]:
    """The chain of hard dependencies with the longest measured running time."""
    dag = Dag.from_tasks(plan.tasks)
    best: dict[str, float] = {}
    via: dict[str, str | None] = {}
    for task_id in dag.topological_order():
        deps = [d for d in dag.dependencies(task_id) if d in best]
        before = max(deps, key=lambda d: best[d], default=None)
        best[task_id] = durations.get(task_id, 0.0) + (best[before] if before else 0.0)
        via[task_id] = before
    if not best:
        return [], 0.0
    last: str | None = max(best, key=lambda t: best[t])
    length = best[last] if last else 0.0
    path: list[str] = []
    while last is not None:
        path.append(last)
        last = via[last]
    return path[::-1], length


def _merge_order(rows: list[TaskRow], task_id: str) -> int:
    row = next(r for r in rows if r.id == task_id)
    return row.merge_order if row.merge_order is not None else 1 << 30


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else []


# --------------------------------------------------------------------- short form


def short_lines(report: Report) -> list[str]:
    """The few lines a headless run ends with."""
    cost = f" · cost {_total_cost(report)}" if report.total_cost_usd is not None else ""
    lines = [
        f"run {report.run_id} {report.status}: {report.done}/{len(report.tasks)} tasks done",
        f"wall time {duration(report.wall_s)} · sum of task times {duration(report.task_s)} "
        f"· speedup {report.speedup:.1f}x · slots busy {report.utilisation:.0%} "
        f"of {report.slots}{cost}",
    ]
    if report.critical_path:
        lines.append(
            f"critical path {' → '.join(report.critical_path)} ({duration(report.critical_path_s)})"
        )
    if report.by_host:
        lines.append("by host: " + _hosts_text(report))
    merge = _merge_line(report)
    if merge:
        lines.append(merge)
    # the reason starts with the count the headline gave ("3/3 tasks done; merge …")
    counted = f"{report.done}/{len(report.tasks)} tasks done"
    reason = report.reason
    if reason.startswith(counted):
        reason = reason[len(counted) :].lstrip(";").strip()
    if reason:
        lines.append(reason)
    return lines


def _hosts_text(report: Report) -> str:
    """`local 3s (2 tasks) · box1 1m 5s (3 tasks)`."""
    return " · ".join(
        f"{host.name} {duration(host.task_s)} ({host.tasks} task{'s' if host.tasks != 1 else ''})"
        for host in report.by_host
    )


def _merge_line(report: Report) -> str:
    parts: list[str] = []
    if report.merged:
        parts.append(f"{len(report.merged)} merged")
    if report.conflicts:
        parts.append(
            f"{len(report.conflicts)} conflict{'s' if len(report.conflicts) != 1 else ''} "
            f"({', '.join(c.task_id for c in report.conflicts)})"
        )
    if report.gate_failed:
        parts.append(f"gate failed for {', '.join(report.gate_failed)}")
    if report.landed and report.merged_sha:
        parts.append(f"landed on {report.base} at {report.merged_sha[:10]}")
    return "merge: " + ", ".join(parts) if parts else ""


# --------------------------------------------------------------------- json


def to_json(report: Report) -> dict[str, object]:
    """The report as one JSON document (times ISO-8601 UTC, durations in seconds)."""
    return {
        "run": {
            "id": report.run_id,
            "plan": report.plan,
            "status": report.status,
            "exit_code": report.exit_code,
            "reason": report.reason,
            "base": report.base,
            "started_at": iso(report.started_at),
            "ended_at": iso(report.ended_at),
            "wall_s": round(report.wall_s, 3),
            "task_s": round(report.task_s, 3),
            "speedup": round(report.speedup, 3),
            "slots": report.slots,
            "slot_utilisation": round(report.utilisation, 4),
            "critical_path": list(report.critical_path),
            "critical_path_s": round(report.critical_path_s, 3),
            "total_cost_usd": report.total_cost_usd,
            "resolver_cost_usd": report.resolver_cost_usd,
            "tasks": len(report.tasks),
            "done": report.done,
        },
        "merge": {
            "merged": list(report.merged),
            "conflicts": [{"task": c.task_id, "files": list(c.files)} for c in report.conflicts],
            "gate": report.gate,
            "gate_failed": list(report.gate_failed),
            "landed": report.landed,
            "merged_sha": report.merged_sha,
        },
        "tasks": [_task_json(task) for task in report.tasks],
        **(
            {
                "by_host": [
                    {
                        "host": host.name,
                        "task_s": round(host.task_s, 3),
                        "tasks": host.tasks,
                        "attempts": host.attempts,
                    }
                    for host in report.by_host
                ]
            }
            if report.by_host
            else {}
        ),
    }


def _task_json(task: TaskReport) -> dict[str, object]:
    return {
        "id": task.id,
        "status": task.status,
        "attempts": task.attempts,
        "agent": task.agent,
        "model": task.model,
        "started_at": iso(task.started_at),
        "ended_at": iso(task.ended_at),
        "duration_s": round(task.duration_s, 3),
        "cost_usd": task.cost_usd,
        "commits": task.commits,
        "files_changed": task.files_changed,
        "insertions": task.insertions,
        "deletions": task.deletions,
        "merge_status": task.merge_status,
        "merge_reason": task.merge_reason,
        "conflict_files": list(task.conflict_files),
        "reason": task.reason,
        "needed_input": list(task.asked),
        "checkout_s": task.checkout_s,
        "bars": [
            {
                "attempt": bar.attempt,
                "start_s": round(bar.start, 3),
                "end_s": round(bar.end, 3),
                "status": bar.status,
                "host": bar.host or None,
            }
            for bar in task.bars
        ],
    }


def render_json(report: Report) -> str:
    return json.dumps(to_json(report), indent=2, ensure_ascii=False)


# --------------------------------------------------------------------- markdown


def _cost(value: float | None) -> str:
    return "-" if value is None else fmt.money(value)


def _total_cost(report: Report) -> str:
    """The run's cost, with the resolvers' share named when they reported one."""
    resolvers = report.resolver_cost_usd
    share = f" (resolvers {fmt.money(resolvers)})" if resolvers else ""
    return _cost(report.total_cost_usd) + share


def _merge_cell(task: TaskReport) -> str:
    if task.merge_status == "unmerged":
        return "-"
    return f"{task.merge_status} ({task.merge_reason})" if task.merge_reason else task.merge_status


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _checkouts_cell(report: Report) -> str:
    """`3, 1.4 s in all, slowest api (800 ms)`: what checking out the task worktrees cost."""
    timed = [(task.checkout_s, task.id) for task in report.tasks if task.checkout_s is not None]
    if not timed:
        return "-"
    slowest, name = max(timed)
    total = sum(seconds for seconds, _ in timed)
    return f"{len(timed)}, {_short(total)} in all, slowest {name} ({_short(slowest)})"


def _short(seconds: float) -> str:
    """`1.4 s`, or `35 ms` below a second (checkouts of small repositories take ms)."""
    return f"{seconds:.1f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


def render_markdown(report: Report) -> str:
    """Markdown: the figures, a table of tasks and a mermaid gantt chart."""
    out = [f"# Run {report.run_id} — {report.status}", ""]
    out += [
        "| figure | value |",
        "| --- | --- |",
        f"| plan | {_md_cell(report.plan)} (base `{report.base}`) |",
        f"| tasks done | {report.done}/{len(report.tasks)} |",
        f"| wall time | {duration(report.wall_s)} ({report.wall_s:.1f} s) |",
        f"| sum of task times | {duration(report.task_s)} ({report.task_s:.1f} s) |",
        f"| speedup | {report.speedup:.2f}x |",
        f"| slot utilisation | {report.utilisation:.0%} of {report.slots} slots |",
        f"| critical path | {' → '.join(report.critical_path) or '-'} "
        f"({report.critical_path_s:.1f} s) |",
        f"| total cost | {_total_cost(report)} |",
        f"| conflicts | {len(report.conflicts)} |",
        f"| gate | {_md_cell(report.gate or 'none')}"
        f"{'; failed for ' + ', '.join(report.gate_failed) if report.gate_failed else ''} |",
        f"| landed | {'yes at ' + (report.merged_sha or '')[:10] if report.landed else 'no'} |",
        f"| worktree checkouts | {_checkouts_cell(report)} |",
    ]
    if report.reason:
        out += ["", f"> {_md_cell(report.reason)}"]
    if report.by_host:
        out += ["", "## Time by host", "", "| host | task time | tasks | attempts |"]
        out += ["| --- | --- | --- | --- |"]
        out += [
            f"| {host.name} | {duration(host.task_s)} ({host.task_s:.1f} s) | {host.tasks} "
            f"| {host.attempts} |"
            for host in report.by_host
        ]
    out += [
        "",
        "## Tasks",
        "",
        "| " + " | ".join(TASK_COLUMNS) + " |",
        "|" + " --- |" * len(TASK_COLUMNS),
    ]
    for task in report.tasks:
        out.append(
            f"| {task.id} | {task.status} | {task.attempts} | {task.agent} "
            f"| {iso(task.started_at) or '-'} | {iso(task.ended_at) or '-'} "
            f"| {task.duration_s:.1f} s | {_cost(task.cost_usd)} | {task.commits} "
            f"| {task.files_changed} files +{task.insertions} −{task.deletions} "
            f"| {_md_cell(_merge_cell(task))} | {_md_cell(task.reason) or '-'} |"
        )
    asking = [task for task in report.tasks if task.asked]
    if asking:
        out += ["", "## Needed input", ""]
        out += [f"- {task.id}: {_md_cell(reason)}" for task in asking for reason in task.asked]
    out += ["", "## Timeline", "", "```mermaid", render_mermaid_gantt(report), "```", ""]
    return "\n".join(out)


def render_mermaid_gantt(report: Report) -> str:
    """A mermaid `gantt` chart: one bar per attempt, seconds since the run started."""
    lines = [
        "gantt",
        f"    title Run {report.run_id}",
        "    dateFormat X",
        "    axisFormat %M:%S",
    ]
    for task in report.tasks:
        if not task.bars:
            continue
        lines.append(f"    section {_mermaid_text(task.id)}")
        for bar in task.bars:
            tag = {"done": "done", "failed": "crit", "killed": "crit", "running": "active"}.get(
                bar.status, ""
            )
            start = int(bar.start)
            end = max(start + 1, round(bar.end))
            name = f"attempt {bar.attempt} {bar.status}"
            tags = f"{tag}, " if tag else ""
            lines.append(f"    {name} :{tags}{start}, {end}")
    return "\n".join(lines)


def _mermaid_text(text: str) -> str:
    return text.replace(":", " ").replace("#", " ")


# --------------------------------------------------------------------- ascii


def render_ascii(report: Report, width: int = 60) -> str:
    """A terminal timeline: one row per task, `█` while an attempt ran."""
    span = max(report.wall_s, max((b.end for t in report.tasks for b in t.bars), default=0.0))
    name_w = max([len(t.id) for t in report.tasks] + [4])
    lines = [f"{'task':<{name_w}}  0s{' ' * (width - 2 - len(duration(span)))}{duration(span)}"]
    for task in report.tasks:
        cells = [" "] * width
        for bar in task.bars:
            first = _cell(bar.start, span, width)
            last = max(first, _cell(bar.end, span, width, end=True))
            mark = "█" if bar.status in ("done", "running") else "▒"
            for i in range(first, last + 1):
                cells[i] = mark
        lines.append(
            f"{task.id:<{name_w}} │{''.join(cells)}│ {task.status} {duration(task.duration_s)}"
        )
    lines.append(f"{'':<{name_w}}  █ ran   ▒ failed attempt")
    return "\n".join([*lines, "", *short_lines(report)])


def _cell(t: float, span: float, width: int, *, end: bool = False) -> int:
    if span <= 0:
        return 0
    position = t / span * width
    cell = int(position) - (1 if end and position == int(position) and position > 0 else 0)
    return min(width - 1, max(0, cell))


# --------------------------------------------------------------------- html

_CSS = (
    """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f2f2f2}
"""
    f".done{{color:{STATUS_COLOURS['done']}}}"
    f".failed,.killed,.blocked{{color:{STATUS_COLOURS['failed']}}}"
    """
svg text{font:12px system-ui,sans-serif}
"""
)


def render_html(report: Report) -> str:
    """One self-contained HTML page: figures, tasks and an inline SVG gantt chart."""
    e = html.escape
    figures = [
        ("plan", f"{report.plan} (base {report.base})"),
        ("tasks done", f"{report.done}/{len(report.tasks)}"),
        ("wall time", f"{duration(report.wall_s)} ({report.wall_s:.1f} s)"),
        ("sum of task times", f"{duration(report.task_s)} ({report.task_s:.1f} s)"),
        ("speedup", f"{report.speedup:.2f}x"),
        ("slot utilisation", f"{report.utilisation:.0%} of {report.slots} slots"),
        (
            "critical path",
            f"{' → '.join(report.critical_path) or '-'} ({report.critical_path_s:.1f} s)",
        ),
        ("total cost", _total_cost(report)),
        ("conflicts", ", ".join(c.task_id for c in report.conflicts) or "none"),
        ("gate", (report.gate or "none") + _gate_failures(report)),
        ("landed", f"yes at {(report.merged_sha or '')[:10]}" if report.landed else "no"),
    ]
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in figures)
    head = "".join(f"<th>{h}</th>" for h in (*TASK_COLUMNS,))
    body = "".join(
        "<tr>"
        f"<td>{e(t.id)}</td><td class='{e(t.status)}'>{e(t.status)}</td>"
        f"<td>{t.attempts}</td><td>{e(t.agent)}</td>"
        f"<td>{e(iso(t.started_at) or '-')}</td><td>{e(iso(t.ended_at) or '-')}</td>"
        f"<td>{t.duration_s:.1f} s</td><td>{e(_cost(t.cost_usd))}</td><td>{t.commits}</td>"
        f"<td>{t.files_changed} files +{t.insertions} −{t.deletions}</td>"
        f"<td>{e(_merge_cell(t))}</td><td>{e(t.reason)}</td>"
        "</tr>"
        for t in report.tasks
    )
    reason = f"<p><em>{e(report.reason)}</em></p>" if report.reason else ""
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>limitless run {e(report.run_id)}</title><style>{_CSS}</style></head><body>"
        f"<h1>Run {e(report.run_id)} — <span class='{e(report.status)}'>"
        f"{e(report.status)}</span></h1>{reason}"
        f"<table>{rows}</table><h2>Timeline</h2>{render_svg_gantt(report)}"
        f"<h2>Tasks</h2><table><tr>{head}</tr>{body}</table></body></html>\n"
    )


def _gate_failures(report: Report) -> str:
    return f"; failed for {', '.join(report.gate_failed)}" if report.gate_failed else ""


def render_svg_gantt(report: Report, width: int = 800) -> str:
    """An SVG gantt chart: one row per task, one rectangle per attempt, seconds on the axis."""
    e = html.escape
    row_h, label_w, top = 22, 160, 24
    chart_w = width - label_w - 10
    span = max(report.wall_s, max((b.end for t in report.tasks for b in t.bars), default=0.0), 1.0)
    height = top + row_h * len(report.tasks) + 10
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='timeline of run "
        f"{e(report.run_id)}'>"
    ]
    for i in range(6):
        t = span * i / 5
        x = label_w + chart_w * i / 5
        parts.append(
            f"<line x1='{x:.1f}' y1='{top - 4}' x2='{x:.1f}' y2='{height - 10}' stroke='#ddd'/>"
            f"<text x='{x:.1f}' y='{top - 8}' text-anchor='middle'>{e(duration(t))}</text>"
        )
    for row, task in enumerate(report.tasks):
        y = top + row * row_h
        parts.append(f"<text x='4' y='{y + 15}'>{e(task.id)}</text>")
        for bar in task.bars:
            x = label_w + chart_w * bar.start / span
            w = max(1.0, chart_w * bar.length / span)
            colour = STATUS_COLOURS.get(bar.status, "#777")
            parts.append(
                f"<rect class='bar' data-task='{e(task.id)}' data-attempt='{bar.attempt}' "
                f"x='{x:.1f}' y='{y + 3}' width='{w:.1f}' height='{row_h - 6}' "
                f"fill='{colour}' rx='3'><title>{e(task.id)} attempt {bar.attempt}: "
                f"{e(bar.status)}, {bar.length:.1f} s</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)


def render(report: Report, fmt: str) -> str:
    """The report in format `fmt` (one of FORMATS)."""
    renderers = {
        "md": render_markdown,
        "json": render_json,
        "html": render_html,
        "ascii": render_ascii,
    }
    return renderers[fmt](report)
