"""The task graph: cycles (named), waves, critical path, ready ordering, drawings.

Edges point from a task to the tasks it depends on (`depends_on`), the way a
plan spells them. Hard edges block; soft edges (`after`) only order.
"""

from __future__ import annotations

import heapq
import itertools
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from limitless.errors import GraphError, UsageError
from limitless.fmt import MERMAID_STYLES, plan_duration

MAX_CYCLES = 20
"""How many cycles `find_cycles` reports at most, so a dense graph cannot explode."""


def _components(adjacency: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """The strongly connected component number of every node (Kosaraju, iterative)."""
    finished: list[str] = []
    seen: set[str] = set()
    for root in adjacency:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(adjacency[root]))]
        while stack:
            node, pending = stack[-1]
            for target in pending:
                if target not in seen:
                    seen.add(target)
                    stack.append((target, iter(adjacency[target])))
                    break
            else:
                stack.pop()
                finished.append(node)
    reverse: dict[str, list[str]] = {node: [] for node in adjacency}
    for node, targets in adjacency.items():
        for target in targets:
            reverse[target].append(node)
    component: dict[str, int] = {}
    for number, root in enumerate(reversed(finished)):
        if root in component:
            continue
        component[root] = number
        todo = [root]
        while todo:
            for source in reverse[todo.pop()]:
                if source not in component:
                    component[source] = number
                    todo.append(source)
    return component


def _reach(start: str, adjacency: Mapping[str, Sequence[str]]) -> set[str]:
    """Every node reachable from `start` (itself included) along `adjacency`."""
    seen = {start}
    todo = [start]
    while todo:
        node = todo.pop()
        for target in adjacency.get(node, ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def find_cycles(edges: Mapping[str, Sequence[str]], limit: int = MAX_CYCLES) -> list[list[str]]:
    """Every elementary cycle of `edges` (id -> ids it depends on), each once, closed.

    A cycle starts at its member that comes first in the mapping's order, e.g.
    `["a", "b", "c", "a"]` for a -> b -> c -> a; cycles are sorted by their start
    and then their path. Edges to ids that are not keys are ignored, and at most
    `limit` cycles are returned (Johnson's algorithm keeps the work per cycle
    polynomial, so the cap bounds the time too).
    """
    rank = {node: index for index, node in enumerate(edges)}
    clean: dict[str, list[str]] = {}
    for node, targets in edges.items():
        clean[node] = list(dict.fromkeys(t for t in targets if t in rank))

    # Johnson's outer loop: the first node (in mapping order) that sits in a
    # strong component with a cycle starts the next search; afterwards it leaves
    # the graph. Every round finds a cycle, so the cap bounds the rounds too.
    order = list(edges)
    found: list[list[str]] = []
    low = 0
    while len(found) < limit:
        graph = {node: [t for t in clean[node] if rank[t] >= low] for node in order[low:]}
        component = _components(graph)
        sizes = Counter(component.values())
        start = next(
            (node for node in graph if sizes[component[node]] > 1 or node in graph[node]), None
        )
        if start is None:
            break
        adjacency = {
            node: [t for t in targets if component[t] == component[start]]
            for node, targets in graph.items()
            if component[node] == component[start]
        }
        found.extend(_circuits(start, adjacency, limit - len(found)))
        low = rank[start] + 1
    found.sort(key=lambda cycle: [rank[node] for node in cycle])
    return found


def _circuits(start: str, adjacency: Mapping[str, Sequence[str]], limit: int) -> list[list[str]]:
    """The elementary cycles through `start` in one strong component (Johnson, iterative)."""
    cycles: list[list[str]] = []
    blocked: set[str] = {start}
    waiting: dict[str, set[str]] = {}
    path = [start]
    # One frame per node on the path: its neighbours still to try, and whether a
    # cycle was found through it.
    frames: list[tuple[str, list[str], list[bool]]] = [(start, list(adjacency[start]), [False])]

    def unblock(node: str) -> None:
        todo = [node]
        while todo:
            current = todo.pop()
            if current in blocked:
                blocked.discard(current)
                todo.extend(waiting.pop(current, ()))

    while frames and len(cycles) < limit:
        node, todo, closed = frames[-1]
        if todo:
            target = todo.pop(0)
            if target == start:
                cycles.append([*path, start])
                closed[0] = True
            elif target not in blocked:
                blocked.add(target)
                path.append(target)
                frames.append((target, list(adjacency[target]), [False]))
            continue
        frames.pop()
        path.pop()
        if closed[0]:
            unblock(node)
        else:
            for target in adjacency[node]:
                waiting.setdefault(target, set()).add(node)
        if frames:
            frames[-1][2][0] = frames[-1][2][0] or closed[0]
    return cycles


class TaskLike(Protocol):
    """What the graph reads from a task; `plan.Task` fits, and so does any stand-in."""

    @property
    def id(self) -> str: ...

    @property
    def depends_on(self) -> Sequence[str]: ...

    @property
    def after(self) -> Sequence[str]: ...

    @property
    def priority(self) -> int: ...

    @property
    def estimate_s(self) -> float | None: ...

    @property
    def epic(self) -> str | None: ...


@dataclass(frozen=True)
class Node:
    """One task as the graph keeps it: known ids only, duplicates dropped."""

    id: str
    depends_on: tuple[str, ...]
    after: tuple[str, ...]
    priority: int = 0
    estimate_s: float | None = None
    epic: str | None = None


def _topological(ids: Sequence[str], deps: Mapping[str, Sequence[str]]) -> list[str]:
    """Kahn's order of an acyclic graph, dependencies first, plan order among ties."""
    rank = {node: index for index, node in enumerate(ids)}
    missing = {node: len(deps[node]) for node in ids}
    users: dict[str, list[str]] = {node: [] for node in ids}
    for node in ids:
        for dep in deps[node]:
            users[dep].append(node)
    heap = [rank[node] for node in ids if missing[node] == 0]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        node = ids[heapq.heappop(heap)]
        order.append(node)
        for user in users[node]:
            missing[user] -= 1
            if missing[user] == 0:
                heapq.heappush(heap, rank[user])
    return order


class Dag:
    """The hard and soft ordering of a plan's tasks, and what the scheduler asks of it.

    Hard edges come from `depends_on` and from epic chaining; soft edges from
    `after`. Built by `from_tasks`, which refuses cycles; never changed afterwards.
    """

    def __init__(self, nodes: Sequence[Node], chain: Collection[tuple[str, str]] = ()) -> None:
        """Index `nodes` (as `from_tasks` makes them); `chain` names their epic edges.

        `chain` holds (earlier, later) pairs already present in `later.depends_on`.
        """
        self._nodes = {node.id: node for node in nodes}
        for node in nodes:
            for dep in (*node.depends_on, *node.after):
                if dep not in self._nodes:
                    msg = f"task {node.id!r} names unknown task {dep!r}: use Dag.from_tasks"
                    raise UsageError(msg)
        self.ids: tuple[str, ...] = tuple(node.id for node in nodes)
        self._rank = {node_id: index for index, node_id in enumerate(self.ids)}
        self._chain = frozenset(chain)
        users: dict[str, list[str]] = {node_id: [] for node_id in self.ids}
        for node in nodes:
            for dep in node.depends_on:
                users[dep].append(node.id)
        self._dependants = {
            node_id: tuple(sorted(found, key=self._rank.__getitem__))
            for node_id, found in users.items()
        }
        deps = {node.id: node.depends_on for node in nodes}
        self._order = _topological(self.ids, deps)
        if len(self._order) != len(self.ids):
            raise GraphError(find_cycles(deps))
        self._wave: dict[str, int] = {}
        for node_id in self._order:
            levels = [self._wave[dep] for dep in deps[node_id]]
            self._wave[node_id] = max(levels, default=0) + 1
        self._remaining: dict[str, float] = {}
        for node_id in reversed(self._order):
            tail = [self._remaining[user] for user in self._dependants[node_id]]
            self._remaining[node_id] = self.estimate(node_id) + max(tail, default=0.0)

    @classmethod
    def from_tasks(cls, tasks: Sequence[TaskLike]) -> Dag:
        """Build the graph of `tasks`, chaining epics; GraphError names every cycle.

        Ids in `depends_on`/`after` that name no task are ignored (the plan loader
        reports them); a repeated task id keeps its first task.
        """
        first: dict[str, TaskLike] = {}
        for task in tasks:
            first.setdefault(task.id, task)
        deps = {
            task_id: list(dict.fromkeys(dep for dep in task.depends_on if dep in first))
            for task_id, task in first.items()
        }
        cycles = find_cycles(deps)
        if cycles:
            raise GraphError(cycles)

        chain: list[tuple[str, str]] = []
        order = _topological(list(first), deps)
        epics: dict[str, list[str]] = {}
        for task_id in order:
            epic = first[task_id].epic
            if epic is not None:
                epics.setdefault(epic, []).append(task_id)
        for members in epics.values():
            for earlier, later in itertools.pairwise(members):
                if earlier not in _reach(later, deps):
                    deps[later].append(earlier)
                    chain.append((earlier, later))

        nodes = [
            Node(
                id=task_id,
                depends_on=tuple(deps[task_id]),
                after=tuple(
                    dict.fromkeys(
                        other for other in task.after if other in first and other != task_id
                    )
                ),
                priority=task.priority,
                estimate_s=task.estimate_s,
                epic=task.epic,
            )
            for task_id, task in first.items()
        ]
        return cls(nodes, chain)

    # -- questions about one task -------------------------------------------------

    def _node(self, task_id: str) -> Node:
        try:
            return self._nodes[task_id]
        except KeyError:
            known = ", ".join(self.ids[:12]) + (", ..." if len(self.ids) > 12 else "")
            msg = f"unknown task {task_id!r}: the graph has {known or 'no tasks'}"
            raise UsageError(msg) from None

    def node(self, task_id: str) -> Node:
        """The task `task_id` as the graph keeps it; UsageError if unknown."""
        return self._node(task_id)

    def dependencies(self, task_id: str) -> tuple[str, ...]:
        """The tasks `task_id` waits for: its known `depends_on`, then its epic predecessor."""
        return self._node(task_id).depends_on

    def dependants(self, task_id: str) -> tuple[str, ...]:
        """The tasks that wait for `task_id` directly, in plan order."""
        self._node(task_id)
        return self._dependants[task_id]

    def descendants(self, task_id: str) -> set[str]:
        """Every task that waits for `task_id`, directly or not (not itself)."""
        self._node(task_id)
        found = _reach(task_id, self._dependants)
        found.discard(task_id)
        return found

    def soft_predecessors(self, task_id: str) -> tuple[str, ...]:
        """The known tasks `task_id` prefers to start after (`after`), never blocking."""
        return self._node(task_id).after

    def is_epic_edge(self, dependency: str, task_id: str) -> bool:
        """Whether the hard edge dependency -> task_id was added by epic chaining."""
        return (dependency, task_id) in self._chain

    def has_path(self, source: str, target: str) -> bool:
        """Whether `target` waits for `source` through one or more hard edges."""
        self._node(target)
        return target in self.descendants(source)

    def estimate(self, task_id: str) -> float:
        """The task's estimate in seconds, or 1.0 when it has none."""
        estimate_s = self._node(task_id).estimate_s
        return 1.0 if estimate_s is None else float(estimate_s)

    def wave(self, task_id: str) -> int:
        """The task's Kahn level, counting from 1."""
        self._node(task_id)
        return self._wave[task_id]

    def remaining_path(self, task_id: str) -> float:
        """The longest estimated path from `task_id` to the end, its own estimate included."""
        self._node(task_id)
        return self._remaining[task_id]

    # -- questions about the whole graph ------------------------------------------

    def topological_order(self) -> list[str]:
        """Every task after all its dependencies; plan order among ties."""
        return list(self._order)

    def waves(self) -> list[list[str]]:
        """Kahn levels: wave 1 needs nothing, wave k needs only earlier waves; plan order."""
        levels: list[list[str]] = [[] for _ in range(max(self._wave.values(), default=0))]
        for task_id in self.ids:
            levels[self._wave[task_id] - 1].append(task_id)
        return levels

    def critical_path(self) -> tuple[list[str], float]:
        """The longest estimated chain of hard edges and its length; plan order breaks ties."""
        if not self.ids:
            return [], 0.0
        current = max(self.ids, key=self._longest_first)
        length = self._remaining[current]
        path = [current]
        while self._dependants[current]:
            current = max(self._dependants[current], key=self._longest_first)
            path.append(current)
        return path, length

    def _longest_first(self, task_id: str) -> tuple[float, int]:
        return self._remaining[task_id], -self._rank[task_id]

    def ready_order(self, ready: Iterable[str], started: Collection[str] = ()) -> list[str]:
        """The order to start `ready` tasks in: priority, then longest remaining path, then plan.

        A task with a soft predecessor that is not in `started` (tasks that have
        started at some time, finished ones included) goes after every task
        whose soft predecessors all have.
        """
        started_set = set(started)

        def key(task_id: str) -> tuple[bool, int, float, int]:
            node = self._node(task_id)
            waiting = any(other not in started_set for other in node.after)
            return waiting, -node.priority, -self._remaining[task_id], self._rank[task_id]

        return sorted(dict.fromkeys(ready), key=key)

    # -- drawings -----------------------------------------------------------------

    def edges(self) -> list[tuple[str, str, str]]:
        """Every edge as (dependency, dependant, "hard" | "soft"), in dependant plan order.

        A soft edge that repeats a hard one is left out.
        """
        found: list[tuple[str, str, str]] = []
        for task_id in self.ids:
            node = self._nodes[task_id]
            found.extend((dep, task_id, "hard") for dep in node.depends_on)
            found.extend(
                (other, task_id, "soft") for other in node.after if other not in node.depends_on
            )
        return found

    def render_ascii(self, statuses: Mapping[str, str] | None = None) -> str:
        """A levelled drawing: a block per wave, `←` before dependencies, `*` on the critical
        path, which the last line names after the same `*` (its legend)."""
        if not self.ids:
            return "no tasks\n"
        statuses = statuses or {}
        path, length = self.critical_path()
        on_path = set(path)
        timed = any(node.estimate_s is not None for node in self._nodes.values())
        id_width = max(len(task_id) for task_id in self.ids)
        shown = {task_id: f"[{statuses[task_id]}]" for task_id in self.ids if task_id in statuses}
        status_width = max((len(text) for text in shown.values()), default=0)
        lines: list[str] = []
        for number, wave in enumerate(self.waves(), start=1):
            lines.append(f"wave {number}")
            for task_id in wave:
                node = self._nodes[task_id]
                mark = "*" if task_id in on_path else " "
                line = f"  {mark} {task_id:<{id_width}}"
                if timed:
                    line += f"  {plan_duration(self.estimate(task_id)):>6}"
                if status_width:
                    line += f"  {shown.get(task_id, ''):<{status_width}}"
                if node.depends_on:
                    named = [
                        f"{dep} (epic)" if self.is_epic_edge(dep, task_id) else dep
                        for dep in node.depends_on
                    ]
                    line += "  ← " + ", ".join(named)
                soft = [other for other in node.after if other not in node.depends_on]
                if soft:
                    line += "  (after " + ", ".join(soft) + ")"
                lines.append(line.rstrip())
        total = plan_duration(length) if timed else _number(length)
        lines.append("")
        lines.append(f"* critical path: {' -> '.join(path)} (length {total})")
        return "\n".join(lines) + "\n"

    def render_mermaid(self, statuses: Mapping[str, str] | None = None) -> str:
        """A mermaid `flowchart TD`: hard edges `-->`, soft `-.->`, critical path styled."""
        statuses = statuses or {}
        names = _mermaid_names(self.ids)
        path, _ = self.critical_path()
        critical_edges = set(itertools.pairwise(path))
        lines = ["flowchart TD"]
        for task_id in self.ids:
            label = task_id if task_id not in statuses else f"{task_id} ({statuses[task_id]})"
            lines.append(f'    {names[task_id]}["{_mermaid_text(label)}"]')
        styled: list[str] = []
        for number, (source, target, kind) in enumerate(self.edges()):
            if kind == "soft":
                arrow = "-.->"
            elif self.is_epic_edge(source, target):
                arrow = "-->|epic|"
            else:
                arrow = "-->"
            lines.append(f"    {names[source]} {arrow} {names[target]}")
            if kind == "hard" and (source, target) in critical_edges:
                styled.append(str(number))
        if path:
            lines.append(f"    classDef critical {_CRITICAL_STYLE}")
            lines.append(f"    class {','.join(names[task_id] for task_id in path)} critical")
        if styled:
            lines.append(f"    linkStyle {','.join(styled)} {_CRITICAL_STYLE}")
        by_status: dict[str, list[str]] = {}
        for task_id in self.ids:
            if task_id in statuses:
                by_status.setdefault(str(statuses[task_id]), []).append(names[task_id])
        for status, members in by_status.items():
            css = "status_" + _MERMAID_UNSAFE.sub("_", status)
            lines.append(f"    classDef {css} {MERMAID_STYLES.get(status, _OTHER_STATUS_STYLE)}")
            lines.append(f"    class {','.join(members)} {css}")
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, object]:
        """The graph as plain JSON values; waves count from 1, edges run dependency -> dependant."""
        path, length = self.critical_path()
        tasks: list[dict[str, object]] = [
            {
                "id": node.id,
                "depends_on": list(node.depends_on),
                "after": list(node.after),
                "priority": node.priority,
                "estimate": self.estimate(node.id),
                "epic": node.epic,
                "wave": self._wave[node.id],
            }
            for node in self._nodes.values()
        ]
        return {
            "tasks": tasks,
            "edges": [list(edge) for edge in self.edges()],
            "waves": self.waves(),
            "critical_path": path,
            "critical_path_length": length,
        }


_MERMAID_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
_CRITICAL_STYLE = "stroke:#e8590c,stroke-width:3px"
_OTHER_STATUS_STYLE = "fill:#f1f3f5,stroke:#868e96"


def _mermaid_names(ids: Sequence[str]) -> dict[str, str]:
    """A distinct mermaid-safe node id per task id: `n_` plus the id with `.`, `-` as `_`."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for task_id in ids:
        base = "n_" + _MERMAID_UNSAFE.sub("_", task_id)
        name, suffix = base, 2
        while name in used:
            name, suffix = f"{base}_{suffix}", suffix + 1
        used.add(name)
        names[task_id] = name
    return names


def _mermaid_text(text: str) -> str:
    """Text safe inside a quoted mermaid label."""
    for raw, entity in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(raw, entity)
    return text


def _number(value: float) -> str:
    """A length as a short decimal: 3.0, 2.5, 0.3."""
    return str(round(float(value), 3))
