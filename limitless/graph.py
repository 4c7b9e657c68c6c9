"""The task graph: cycles (named), waves, critical path, ready ordering, drawings.

Edges point from a task to the tasks it depends on (`depends_on`), the way a
plan spells them. Hard edges block; soft edges (`after`) only order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

MAX_CYCLES = 20
"""How many cycles `find_cycles` reports at most, so a dense graph cannot explode."""


def _strong_component(start: str, adjacency: Mapping[str, Sequence[str]]) -> set[str]:
    """The strongly connected component holding `start`, within `adjacency`."""
    forward = _reach(start, adjacency)
    reverse: dict[str, list[str]] = {}
    for node, targets in adjacency.items():
        for target in targets:
            reverse.setdefault(target, []).append(node)
    backward = _reach(start, reverse)
    return forward & backward


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

    found: list[list[str]] = []
    for start in edges:
        if len(found) >= limit:
            break
        low = rank[start]
        sub = {
            node: [t for t in targets if rank[t] >= low]
            for node, targets in clean.items()
            if rank[node] >= low
        }
        component = _strong_component(start, sub)
        adjacency = {node: [t for t in sub[node] if t in component] for node in component}
        if start not in adjacency[start] and len(component) == 1:
            continue
        found.extend(_circuits(start, adjacency, limit - len(found)))
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
