"""Which host a ready task starts on (`hosts:` in the plan).

Each host has `slots`; a slot pane of the run shows whichever task it runs, wherever
that runs. A task pinned with `host:` waits for a free slot of its host; a task of an
epic goes where the epic's first task went (they share a worktree and a branch);
any other task takes the host with the most free slots, this machine first on a tie.
A lost host (unreachable past `host_timeout`) takes nothing until it answers again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping

from limitless.plan.hosts import LOCAL
from limitless.plan.model import Plan, Task
from limitless.store import TaskRow


def busy_hosts(running: Iterable[str | None]) -> Counter[str]:
    """Slots in use per host, from the hosts of the tasks that hold a slot."""
    return Counter(host or LOCAL for host in running)


def choose_host(
    plan: Plan,
    task: Task,
    rows: Mapping[str, TaskRow],
    busy: Mapping[str, int],
    lost: Collection[str] = (),
) -> str | None:
    """The host `task` starts on now, or None when the host it must use is full (or
    lost: a pinned task waits for its host to come back; an epic moves on)."""
    hosts = [host for host in plan.all_hosts if host.name not in lost or host.name == task.host]
    free = {host.name: host.slots - busy.get(host.name, 0) for host in hosts}
    if task.host is not None:
        return task.host if task.host not in lost and free.get(task.host, 0) > 0 else None
    wanted = _epic_host(plan, task, rows)
    if wanted is not None and wanted not in lost:
        return wanted if free.get(wanted, 0) > 0 else None
    order = {host.name: index for index, host in enumerate(hosts)}
    open_hosts = [name for name, left in free.items() if left > 0]
    if not open_hosts:
        return None
    return min(open_hosts, key=lambda name: (-free[name], name != LOCAL, order[name]))


def _epic_host(plan: Plan, task: Task, rows: Mapping[str, TaskRow]) -> str | None:
    """Where another task of `task`'s epic (its worktree) was placed, if any."""
    if task.epic is None:
        return None
    for other in plan.tasks:
        row = rows.get(other.id)
        if other.epic == task.epic and other.id != task.id and row is not None and row.host:
            return row.host
    return None
