"""Group `handoff`: a dependency's end → its dependant's agent running (2,000-file repository).

Parallel chains of short shell tasks, one chain per slot, so a dependant never waits
for a slot: each link's wait is the hand-off alone (the merge of its dependency's
branch into a worktree checked out ahead, the pane's respawn, the wrapper's start).
Both ends are the store's own millisecond times: the dependency attempt's `ended_at`
(the wrapper records it after committing what was left) and the dependant's
`agent_started` event (the wrapper forked the agent program into its pty). The
agents' own stamps (`$EPOCHREALTIME` at their last and first line) give the same gap
as a user would see it, for information.
"""

from __future__ import annotations

from benchlib.figures import Figure, at_most, info
from benchlib.harness import BenchError, BenchTask, Harness, RunResult, percentile
from limitless.states import TaskStatus

P50_GOAL_MS = 150.0  # issue 15
P95_GOAL_MS = 300.0
TASK_SECONDS = 0.3


def chains(count: int, length: int) -> list[BenchTask]:
    """`count` chains h<c>_0 → h<c>_1 → ... of `length` tasks each."""
    return [
        BenchTask(f"h{c}_{i}", TASK_SECONDS, (f"h{c}_{i - 1}",) if i else ())
        for c in range(count)
        for i in range(length)
    ]


def handoffs(result: RunResult, tasks: list[BenchTask]) -> tuple[list[float], list[float]]:
    """Per dependant: (store: last dependency's attempt end → agent_started), and
    (agents' stamps: last dependency's end line → its first line), in seconds."""
    with_deps = [t for t in tasks if t.deps]
    ended: dict[str, float] = {}
    for row in result.tasks.values():
        if row.ended_at is not None:
            ended[row.id] = row.ended_at
    started = {e.task_id: e.ts for e in result.events if e.kind == "agent_started" and e.task_id}
    store_gaps, stamp_gaps = [], []
    for task in with_deps:
        if task.id not in started or any(dep not in ended for dep in task.deps):
            msg = f"handoff: {task.id} has no agent_started event or a dependency without an end"
            raise BenchError(msg)
        store_gaps.append(started[task.id] - max(ended[dep] for dep in task.deps))
        first_line = result.marks.start.get(task.id)
        last_lines = [result.marks.end.get(dep) for dep in task.deps]
        if first_line is not None and all(end is not None for end in last_lines):
            stamp_gaps.append(first_line - max(end for end in last_lines if end is not None))
    return store_gaps, stamp_gaps


STAGES = (
    ("to_launch", None, "task_launched"),  # the supervisor saw the end, merged, respawned
    ("to_wrapper", "task_launched", "task_started"),  # the pane program and the wrapper
    ("to_agent", "task_started", "agent_started"),  # the wrapper's own start of the agent
)


def stages(result: RunResult, tasks: list[BenchTask]) -> dict[str, list[float]]:
    """Each hand-off cut where the store saw it pass (seconds): the dependency's end →
    `task_launched` → `task_started` → `agent_started` of the dependant."""
    first: dict[tuple[str, str], float] = {}
    for event in result.events:
        if event.task_id:
            first.setdefault((event.kind, event.task_id), event.ts)
    ended = {r.id: r.ended_at for r in result.tasks.values() if r.ended_at is not None}
    cut: dict[str, list[float]] = {name: [] for name, _, _ in STAGES}
    for task in (t for t in tasks if t.deps):
        for name, since, until in STAGES:
            end = first.get((until, task.id))
            begin = (
                max(ended.get(dep, 0.0) for dep in task.deps)
                if since is None
                else first.get((since, task.id))
            )
            if end is not None and begin:
                cut[name].append(end - begin)
    return cut


def measure(h: Harness, quick: bool) -> list[Figure]:
    repo = h.make_repo("handoff")
    count, length = (2, 6) if quick else (4, 8)
    tasks = chains(count, length)
    plan, marks = h.write_plan("handoff", tasks, concurrency=count)
    result = h.run(repo, plan, marks, "--no-merge")
    undone = [t.id for t in result.tasks.values() if t.status is not TaskStatus.DONE]
    if undone:
        msg = f"handoff: run {result.run.id}: not done: {', '.join(undone)}"
        raise BenchError(msg)
    store_gaps, stamp_gaps = handoffs(result, tasks)
    cut = stages(result, tasks)
    h.cleanup(repo, result.run.id)
    ms = [gap * 1000 for gap in store_gaps]
    h.say(f"  {len(ms)} hand-offs: " + " ".join(f"{m:.0f}" for m in sorted(ms)) + " ms")
    figures = [
        at_most("handoff.p50", percentile(ms, 0.5), "ms", P50_GOAL_MS),
        at_most("handoff.p95", percentile(ms, 0.95), "ms", P95_GOAL_MS),
        info("handoff.max", max(ms), "ms"),
        info("handoff.samples", len(ms), "hand-offs"),
    ]
    for name, seconds in cut.items():
        if seconds:
            figures.append(info(f"handoff.{name}.p50", percentile(seconds, 0.5) * 1000, "ms"))
    if stamp_gaps:
        lines = [gap * 1000 for gap in stamp_gaps]
        figures.append(info("handoff.agent_lines.p50", percentile(lines, 0.5), "ms"))
        figures.append(info("handoff.agent_lines.p95", percentile(lines, 0.95), "ms"))
    return figures
