"""What commands print: store rows shaped into JSON documents and terminal tables."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from limitless.fmt import STATUS_ICONS, STATUS_STYLES, duration, iso
from limitless.states import NEEDS_INPUT, TaskStatus, Waiting, task_state
from limitless.store import Event, Run, Store, TaskRow
from limitless.views.summary import state_counts, summarize

STATUS_LABELS: dict[str, str] = {NEEDS_INPUT: "needs input"}
# Needs input sorts first wherever tasks are listed by how urgently they want a person.
ATTENTION: dict[str, int] = {NEEDS_INPUT: 0, "waiting": 1}


def label(state: str) -> str:
    """How a task state reads on screen (`needs input`, `running`, ...)."""
    return STATUS_LABELS.get(state, state)


def state_of(task: TaskRow) -> str:
    """The state a user is shown for a task: `needs_input`, `idle`, or its status."""
    return task_state(task.status, task.waiting_kind)


def reason_of(task: TaskRow, now: float | None = None) -> str:
    """A task's reason as shown: what a waiting task waits for (with the countdown of
    an idle one), else why it ended as it did."""
    if task.status is not TaskStatus.WAITING:
        return task.reason
    reason = task.waiting_reason or task.reason
    if task.waiting_kind is Waiting.IDLE and task.idle_done_at is not None:
        left = max(0.0, task.idle_done_at - (now if now is not None else time.time()))
        countdown = f"done in {left:.0f}s unless you type in its pane"
        return f"{reason} · {countdown}" if reason else countdown
    return reason


def task_elapsed(task: TaskRow, now: float | None = None) -> float | None:
    """Seconds the current (or last) attempt ran."""
    if task.started_at is None:
        return None
    end = task.ended_at if task.ended_at is not None else (now or time.time())
    return max(0.0, end - task.started_at)


def task_document(task: TaskRow, predictions: list[dict[str, object]]) -> dict[str, object]:
    return {
        "id": task.id,
        "status": state_of(task),
        "attempt": task.attempt,
        "exit_code": task.exit_code,
        "agent": task.agent,
        "host": task.host,
        "branch": task.branch,
        "worktree": task.worktree,
        "pane": task.pane_id,
        "started_at": iso(task.started_at),
        "ended_at": iso(task.ended_at),
        "duration_s": round(task_elapsed(task) or 0.0, 3),
        "progress": task.progress,
        "cost_usd": task.cost_usd,
        "session_id": task.session_id,
        "commits": task.commits,
        "files_changed": task.files_changed,
        "insertions": task.insertions,
        "deletions": task.deletions,
        "merge_status": str(task.merge_status),
        "merge_reason": task.merge_reason,
        "conflict_files": list(task.conflict_files),
        "reason": reason_of(task),
        "needs_input": task.status is TaskStatus.WAITING and task.waiting_kind is Waiting.INPUT,
        "idle_done_at": iso(task.idle_done_at) if task.status.active else None,
        "predicted_conflicts": predictions,
    }


def checkout_seconds(events: list[Event]) -> dict[str, float]:
    """Per task, the seconds its worktree's checkout took (`worktree_checked_out` events)."""
    found: dict[str, float] = {}
    for event in events:
        seconds = event.data.get("seconds")
        if event.kind != "worktree_checked_out" or not event.task_id:
            continue
        if isinstance(seconds, int | float) and not isinstance(seconds, bool):
            found[event.task_id] = float(seconds)
    return found


def handed_to(events: list[Event]) -> dict[str, str]:
    """Per donor task, the dependant its worktree went on to (`worktree_handed_on` events)."""
    found: dict[str, str] = {}
    for event in events:
        donor = event.data.get("from")
        if event.kind == "worktree_handed_on" and event.task_id and isinstance(donor, str):
            found[donor] = event.task_id
    return found


def base_moved(run: Run) -> str | None:
    """Base's tip when it moved since the run started (and does not hold its result)."""
    from limitless.git.refs import moved_tip

    landed = run.merged_sha if run.landed else None
    return moved_tip(Path(run.repo_root), run.base, run.base_sha, landed)


def run_document(run: Run) -> dict[str, object]:
    return {
        "id": run.id,
        "status": str(run.status),
        "plan": run.plan_name,
        "plan_path": run.plan_path,
        "base": run.base,
        "base_sha": run.base_sha,
        "started_at": iso(run.created_at),
        "ended_at": iso(run.ended_at),
        "exit_code": run.exit_code,
        "reason": run.reason,
        "max_concurrency": run.max_concurrency,
        "tmux_session": run.tmux_session,
        "merged_sha": run.merged_sha,
        "landed": run.landed,
    }


def status_document(store: Store, run_id: str) -> dict[str, object]:
    """The `status --json` document (issue 3's shape, plus a few extra fields)."""
    run = store.get_run(run_id)
    tasks = store.get_tasks(run_id)
    by_task: dict[str, list[dict[str, object]]] = {}
    for prediction in store.predictions(run_id):
        by_task.setdefault(prediction.task_id, []).append(
            {"with": prediction.other or "base", "files": list(prediction.files)}
        )
        if prediction.other:
            by_task.setdefault(prediction.other, []).append(
                {"with": prediction.task_id, "files": list(prediction.files)}
            )
    events = store.events(run_id)
    checkouts = checkout_seconds(events)
    heirs = handed_to(events)
    return {
        "run": {**run_document(run), "base_moved_to": base_moved(run)},
        "tasks": [
            {
                **task_document(task, by_task.get(task.id, [])),
                "checkout_s": checkouts.get(task.id),
                # its folder went on to this dependant: `worktree` names where it was
                "worktree_handed_to": heirs.get(task.id),
            }
            for task in tasks
        ],
        "counts": state_counts(tasks),
    }


def run_summary(store: Store, run: Run) -> dict[str, object]:
    """One run of the `runs` listing: the run, how many tasks, how many done, per state."""
    summary = summarize(run, store.get_tasks(run.id), store.attempts(run.id))
    return {
        **run_document(run),
        "tasks": summary.total,
        "done": summary.done,
        "counts": dict(summary.counts),
    }


def print_runs_table(summaries: list[dict[str, object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("run", "status", "plan", "base", "started", "tasks", "done"):
        table.add_column(column)
    for row in summaries:
        table.add_row(
            str(row["id"]),
            str(row["status"]),
            str(row["plan"]),
            str(row["base"]),
            _to_the_second(row["started_at"]),
            str(row["tasks"]),
            str(row["done"]),
        )
    Console(soft_wrap=True).print(table)


def _to_the_second(moment: object) -> str:
    """An ISO time as a person reads it in a table: `2026-11-23T10:31:28Z`, without the
    milliseconds the JSON carries."""
    if not isinstance(moment, str):
        return "-"
    head, dot, _ = moment.partition(".")
    return f"{head}Z" if dot else moment


PIPED_WIDTH = 1000  # piped status keeps each task on one line, for grep and scripts


def print_status(document: dict[str, object]) -> None:
    from rich.console import Console

    if sys.stdout.isatty():
        Console(highlight=False).print(status_renderable(document))
        return
    console = Console(highlight=False, width=PIPED_WIDTH, no_color=True)
    with console.capture() as captured:
        console.print(status_renderable(document))
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def status_renderable(document: dict[str, object]) -> object:
    """A rich renderable of a status document: a headline and one row per task."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    run = document["run"]
    tasks = document["tasks"]
    counts = document["counts"]
    assert isinstance(run, dict) and isinstance(tasks, list) and isinstance(counts, dict)
    done = counts.get("done", 0)
    headline = Text.assemble(
        (f"{run['id']}", "bold"),
        f"  {run['status']}  plan {run['plan']}  base {run['base']}  ",
        (f"{done}/{len(tasks)} done", "green"),
    )
    asking = counts.get(NEEDS_INPUT, 0)
    if asking:
        headline.append(
            f"  ? {asking} need{'s' if asking == 1 else ''} input", style="bold magenta"
        )
    if run.get("reason"):
        headline.append(f"  — {run['reason']}", style="italic")
    moved = run.get("base_moved_to")
    if moved:
        headline.append(
            f"\n⚠ stale base: {run['base']} moved to {str(moved)[:10]} since the run started; "
            "the merge phase merges onto the new tip",
            style="yellow",
        )
    table = Table(box=None, header_style="bold", pad_edge=False)
    hosts = any(task.get("host") not in (None, "local") for task in tasks)
    columns: tuple[str, ...] = (
        "task", "status", "try", "time", "checkout", "progress", "commits", "merge",
    )  # fmt: skip
    if hosts:  # a run on other machines: where each task runs
        columns = ("task", "status", "host", *columns[2:])
    for column in (*columns, "reason"):
        table.add_column(column, overflow="ellipsis", no_wrap=column != "reason")
    # a task that needs input first: it is what a person is here for
    for task in sorted(tasks, key=lambda task: ATTENTION.get(str(task["status"]), 2)):
        status = str(task["status"])
        progress = task["progress"]
        where = [str(task.get("host") or "")] if hosts else []
        table.add_row(
            str(task["id"]),
            Text(
                f"{STATUS_ICONS.get(status, ' ')} {label(status)}",
                style=STATUS_STYLES.get(status, ""),
            ),
            *where,
            str(task["attempt"]),
            duration(task["duration_s"] if task["started_at"] else None),
            _seconds(task.get("checkout_s")),
            f"{progress:.0f}%" if isinstance(progress, int | float) else "",
            str(task["commits"] or ""),
            "" if task["merge_status"] == "unmerged" else str(task["merge_status"]),
            str(task["reason"] or ""),
        )
    return Group(headline, table)


def _seconds(value: object) -> str:
    """`0.42s` for a checkout time; "" when there is none."""
    return f"{value:.2f}s" if isinstance(value, int | float) else ""


def watch_status(store: Store, run_id: str, interval: float) -> int:
    """Redraw the status until the run ends or the user presses Ctrl-C."""
    from rich.console import Console
    from rich.live import Live

    console = Console(highlight=False)
    with Live(console=console, auto_refresh=False, screen=False) as live:
        while True:
            document = status_document(store, run_id)
            live.update(status_renderable(document), refresh=True)  # type: ignore[arg-type]
            run = document["run"]
            assert isinstance(run, dict)
            if run["status"] in ("done", "failed", "aborted"):
                break
            time.sleep(interval)
    return 0
