"""Which host a ready task starts on: pins, epics, the most free slots, local first."""

from __future__ import annotations

import dataclasses

from limitless.plan.hosts import Host
from limitless.plan.model import Plan, Task
from limitless.run.placement import busy_hosts, choose_host
from limitless.store import TaskRow

HOSTS = (Host("local", 1), Host("box1", 2, "dev@b1"), Host("box2", 2, "dev@b2"))


def plan(*tasks: Task) -> Plan:
    return Plan(name="p", source=None, base=None, hosts=HOSTS, max_concurrency=5, tasks=tasks)


def row(task_id: str, host: str | None = None) -> TaskRow:
    return TaskRow("r", task_id, 0, "shell", f"b/{task_id}", f"/w/{task_id}", host=host)


def test_an_unpinned_task_takes_the_host_with_most_free_slots_local_first_on_a_tie() -> None:
    free = Task("free", "x", "shell")
    p = plan(free)
    rows = {"free": row("free")}
    assert choose_host(p, free, rows, busy_hosts([])) == "box1"  # 2 free beats local's 1
    assert choose_host(p, free, rows, busy_hosts(["box1", "box2"])) == "local"  # 1, 1, 1: local
    assert choose_host(p, free, rows, busy_hosts(["local", "box1"])) == "box2"
    assert choose_host(p, free, rows, busy_hosts(["local", "box1", "box1", "box2", "box2"])) is None


def test_a_pinned_task_waits_for_its_host() -> None:
    pinned = Task("api", "x", "shell", host="box2")
    p = plan(pinned)
    assert choose_host(p, pinned, {"api": row("api")}, busy_hosts(["box1"])) == "box2"
    assert choose_host(p, pinned, {"api": row("api")}, busy_hosts(["box2", "box2"])) is None


def test_an_epic_follows_its_first_task() -> None:
    first = Task("e.build", "x", "shell", epic="e")
    second = dataclasses.replace(first, id="e.review")
    p = plan(first, second)
    rows = {"e.build": row("e.build", "box2"), "e.review": row("e.review")}
    assert choose_host(p, second, rows, busy_hosts([])) == "box2"
    assert choose_host(p, second, rows, busy_hosts(["box2", "box2"])) is None
