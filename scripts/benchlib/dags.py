"""Synthetic task graphs for the scheduling figures, their lower bounds and a list-scheduling model.

Durations are the seconds each task's script sleeps. The bound of a graph on
`slots` slots is max(critical path, total work / slots); `simulate` plays the
engine's policy (critical path first, `deps` or `waves`) with a fixed per-task
overhead, to tell whether a graph leaves room for `deps` to beat `waves`.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Node:
    id: str
    seconds: float
    deps: tuple[str, ...] = ()


@dataclass(frozen=True)
class Graph:
    name: str
    nodes: tuple[Node, ...]

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)

    @property
    def work(self) -> float:
        return sum(n.seconds for n in self.nodes)


def wide(roots: int = 12, leaves: int = 6) -> Graph:
    """Many independent tasks of mixed length, a few of them each freeing one more task."""
    lengths = (3.0, 1.0, 1.0, 2.0, 1.0, 3.0)
    nodes = [Node(f"w{i:02d}", lengths[i % len(lengths)]) for i in range(roots)]
    short = [n.id for n in nodes if n.seconds == 1.0]
    nodes += [Node(f"x{i:02d}", 2.0, (short[i % len(short)],)) for i in range(leaves)]
    return Graph("wide", tuple(nodes))


def chain(length: int = 6, step: float = 1.5, side: float = 2.5) -> Graph:
    """A deep chain c0 -> c1 -> ... where every link also frees a longer side task."""
    nodes: list[Node] = []
    for i in range(length):
        nodes.append(Node(f"c{i}", step, (f"c{i - 1}",) if i else ()))
        nodes.append(Node(f"s{i}", side, (f"c{i}",)))
    return Graph("chain", tuple(nodes))


def randomized(count: int = 50, seed: int = 7) -> Graph:
    """`count` tasks of 0.5-3 s; each depends on up to 2 of the 10 tasks before it."""
    rng = random.Random(seed)
    nodes: list[Node] = []
    for i in range(count):
        earlier = [n.id for n in nodes[max(0, i - 10) :]]
        deps = tuple(sorted(rng.sample(earlier, min(len(earlier), rng.randint(0, 2)))))
        nodes.append(Node(f"r{i:02d}", round(rng.uniform(0.5, 3.0), 1), deps))
    return Graph("random", tuple(nodes))


def _remaining(graph: Graph, overhead: float) -> dict[str, float]:
    """Longest path (task + overhead each) from every task to the end of the graph."""
    dependants: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    for n in graph.nodes:
        for dep in n.deps:
            dependants[dep].append(n.id)
    memo: dict[str, float] = {}
    for n in reversed(graph.nodes):  # nodes are listed after their dependencies
        tail = max((memo[d] for d in dependants[n.id]), default=0.0)
        memo[n.id] = n.seconds + overhead + tail
    return memo


def critical_path(graph: Graph, overhead: float = 0.0) -> float:
    return max(_remaining(graph, overhead).values(), default=0.0)


def lower_bound(graph: Graph, slots: int, overhead: float = 0.0) -> float:
    """max(critical path, total work / slots), each task counted with `overhead` more."""
    work = graph.work + overhead * len(graph.nodes)
    return max(critical_path(graph, overhead), work / slots)


def waves(graph: Graph) -> dict[str, int]:
    level: dict[str, int] = {}
    for n in graph.nodes:
        level[n.id] = 1 + max((level[d] for d in n.deps), default=-1)
    return level


def simulate(graph: Graph, slots: int, schedule: str, overhead: float = 0.0) -> float:
    """Makespan of list scheduling, longest remaining path first, as the supervisor does."""
    remaining = _remaining(graph, overhead)
    wave = waves(graph)
    done: set[str] = set()
    started: set[str] = set()
    running: list[tuple[float, str]] = []
    now = 0.0
    while len(done) < len(graph.nodes):
        ready = [n for n in graph.nodes if n.id not in started and all(d in done for d in n.deps)]
        if schedule == "waves":
            current = min(wave[n.id] for n in graph.nodes if n.id not in done)
            ready = [n for n in ready if wave[n.id] == current]
        ready.sort(key=lambda n: -remaining[n.id])
        for n in ready[: slots - len(running)]:
            started.add(n.id)
            heapq.heappush(running, (now + n.seconds + overhead, n.id))
        now, finished = heapq.heappop(running)
        done.add(finished)
        while running and running[0][0] <= now:
            done.add(heapq.heappop(running)[1])
    return now
