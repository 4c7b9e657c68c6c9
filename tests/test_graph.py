"""Tests of the task graph: cycles, waves, critical path, epics, ready order, drawings."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from limitless.errors import GraphError, UsageError
from limitless.plan.graph import Dag, find_cycles


@dataclass(frozen=True)
class FakeTask:
    """A stand-in for `plan.Task` with only what the graph reads."""

    id: str
    depends_on: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    priority: int = 0
    estimate_s: float | None = None
    epic: str | None = None


def task(
    task_id: str,
    *deps: str,
    after: Sequence[str] = (),
    priority: int = 0,
    estimate: float | None = None,
    epic: str | None = None,
) -> FakeTask:
    """A FakeTask, briefly."""
    return FakeTask(task_id, tuple(deps), tuple(after), priority, estimate, epic)


def shop(estimates: bool = True, **priorities: int) -> list[FakeTask]:
    """The e-commerce plan: three parallel roots, api joining two, e2e at the end.

    With estimates (minutes as seconds) the critical path is
    backend(40) -> api(30) -> payments(40) -> e2e(10) = 120 minutes.
    """
    minutes = {
        "frontend": 30,
        "backend": 40,
        "database": 20,
        "api": 30,
        "frontend-api": 20,
        "payments": 40,
        "e2e": 10,
    }
    deps: dict[str, tuple[str, ...]] = {
        "frontend": (),
        "backend": (),
        "database": (),
        "api": ("backend", "database"),
        "frontend-api": ("frontend", "api"),
        "payments": ("api",),
        "e2e": ("frontend-api", "payments"),
    }
    return [
        task(
            task_id,
            *deps[task_id],
            estimate=minutes[task_id] * 60.0 if estimates else None,
            priority=priorities.get(task_id.replace("-", "_"), 0),
        )
        for task_id in minutes
    ]


# -- find_cycles ------------------------------------------------------------------


class CycleCase(NamedTuple):
    test_id: str
    edges: Mapping[str, Sequence[str]]
    expected: list[list[str]]


CYCLE_CASES = [
    CycleCase("acyclic", {"a": ["b"], "b": ["c"], "c": []}, []),
    CycleCase("empty", {}, []),
    CycleCase("self-loop", {"a": ["a"], "b": ["a"]}, [["a", "a"]]),
    CycleCase("two-cycle", {"a": ["b"], "b": ["a"]}, [["a", "b", "a"]]),
    CycleCase("three-cycle", {"a": ["b"], "b": ["c"], "c": ["a"]}, [["a", "b", "c", "a"]]),
    CycleCase(
        "starts-at-first-in-mapping-order",
        {"c": ["a"], "a": ["b"], "b": ["c"]},
        [["c", "a", "b", "c"]],
    ),
    CycleCase(
        "two-separate-cycles",
        {"x": ["y"], "a": ["b"], "b": ["a"], "y": ["z"], "z": ["x"], "free": ["a"]},
        [["x", "y", "z", "x"], ["a", "b", "a"]],
    ),
    CycleCase(
        "two-cycles-sharing-a-node",
        {"a": ["c", "b"], "b": ["a"], "c": ["a"]},
        [["a", "b", "a"], ["a", "c", "a"]],
    ),
    CycleCase("unknown-ids-ignored", {"a": ["ghost", "b"], "b": ["nobody"]}, []),
    CycleCase("duplicate-edges-once", {"a": ["b", "b"], "b": ["a", "a"]}, [["a", "b", "a"]]),
]


@pytest.mark.parametrize("case", CYCLE_CASES, ids=[case.test_id for case in CYCLE_CASES])
def test_find_cycles(case: CycleCase) -> None:
    """Every elementary cycle is named once, closed, from its first member in mapping order."""
    assert find_cycles(case.edges) == case.expected


def test_find_cycles_caps_a_dense_graph() -> None:
    """A complete graph of 30 nodes has astronomically many cycles; 20 come back, quickly."""
    nodes = [f"t{i}" for i in range(30)]
    edges = {node: [other for other in nodes if other != node] for node in nodes}
    cycles = find_cycles(edges)
    assert len(cycles) == 20
    assert all(cycle[0] == cycle[-1] for cycle in cycles)
    assert len({tuple(cycle) for cycle in cycles}) == 20


def test_find_cycles_matches_brute_force_on_a_tangle() -> None:
    """On a small tangled graph the cycles equal those found by trying every path."""
    edges = {"a": ["b", "c"], "b": ["c", "a"], "c": ["a", "d"], "d": ["b", "d"]}
    assert find_cycles(edges, limit=100) == [
        ["a", "b", "a"],
        ["a", "b", "c", "a"],
        ["a", "c", "a"],
        ["a", "c", "d", "b", "a"],
        ["b", "c", "d", "b"],
        ["d", "d"],
    ]


# -- building the graph -----------------------------------------------------------


class BadGraphCase(NamedTuple):
    test_id: str
    tasks: list[FakeTask]
    message: str


BAD_GRAPH_CASES = [
    BadGraphCase("self-loop", [task("a", "a")], "dependency cycle: a -> a"),
    BadGraphCase("two-cycle", [task("a", "b"), task("b", "a")], "dependency cycle: a -> b -> a"),
    BadGraphCase(
        "three-cycle",
        [task("a", "b"), task("b", "c"), task("c", "a")],
        "dependency cycle: a -> b -> c -> a",
    ),
    BadGraphCase(
        "two-separate-cycles",
        [task("ok"), task("a", "b"), task("b", "a"), task("c", "d", "ok"), task("d", "c")],
        "dependency cycle: a -> b -> a; c -> d -> c",
    ),
]


@pytest.mark.parametrize("case", BAD_GRAPH_CASES, ids=[case.test_id for case in BAD_GRAPH_CASES])
def test_from_tasks_names_cycles(case: BadGraphCase) -> None:
    """A cyclic plan raises GraphError naming every cycle."""
    with pytest.raises(GraphError) as raised:
        Dag.from_tasks(case.tasks)
    assert str(raised.value) == case.message
    assert raised.value.exit_code == 2


def test_soft_cycles_are_allowed() -> None:
    """`after` is only a preference, so a soft cycle is no error."""
    dag = Dag.from_tasks([task("a", after=["b"]), task("b", after=["a"])])
    assert dag.waves() == [["a", "b"]]
    assert dag.soft_predecessors("a") == ("b",)


def test_unknown_ids_are_ignored() -> None:
    """Dependencies and `after` naming no task are left out; the plan loader reports them."""
    dag = Dag.from_tasks([task("a", "ghost", after=["phantom", "b"]), task("b", after=["b"])])
    assert dag.dependencies("a") == ()
    assert dag.soft_predecessors("a") == ("b",)
    assert dag.soft_predecessors("b") == ()


def test_duplicate_ids_keep_the_first_task() -> None:
    """A repeated id keeps its first task (the plan loader reports the duplicate)."""
    dag = Dag.from_tasks([task("a", priority=1), task("b"), task("a", "b", priority=9)])
    assert dag.ids == ("a", "b")
    assert dag.dependencies("a") == ()
    assert dag.node("a").priority == 1


def test_relations_of_the_shop() -> None:
    """Dependencies, dependants, descendants and paths of the e-commerce plan."""
    dag = Dag.from_tasks(shop())
    assert dag.ids == ("frontend", "backend", "database", "api", "frontend-api", "payments", "e2e")
    assert dag.dependencies("api") == ("backend", "database")
    assert dag.dependants("api") == ("frontend-api", "payments")
    assert dag.dependants("e2e") == ()
    assert dag.descendants("backend") == {"api", "frontend-api", "payments", "e2e"}
    assert dag.descendants("e2e") == set()
    assert dag.has_path("database", "e2e")
    assert not dag.has_path("e2e", "database")
    assert not dag.has_path("frontend", "payments")
    assert not dag.has_path("api", "api")


def test_unknown_task_is_a_usage_error() -> None:
    """Asking about an id the graph lacks names it and the known ones."""
    dag = Dag.from_tasks([task("a"), task("b")])
    with pytest.raises(UsageError) as raised:
        dag.dependencies("c")
    assert str(raised.value) == "unknown task 'c': the graph has a, b"


# -- order, waves, critical path ----------------------------------------------------


def test_waves_of_the_shop() -> None:
    """Kahn levels, plan order inside each."""
    dag = Dag.from_tasks(shop())
    assert dag.waves() == [
        ["frontend", "backend", "database"],
        ["api"],
        ["frontend-api", "payments"],
        ["e2e"],
    ]
    assert dag.wave("payments") == 3


def test_topological_order_is_stable() -> None:
    """Among tasks free at once the plan order wins."""
    dag = Dag.from_tasks(shop())
    assert dag.topological_order() == [
        "frontend",
        "backend",
        "database",
        "api",
        "frontend-api",
        "payments",
        "e2e",
    ]
    later_first = Dag.from_tasks([task("z", "y"), task("x"), task("y")])
    assert later_first.topological_order() == ["x", "y", "z"]


def test_critical_path_of_the_shop_with_estimates() -> None:
    """backend -> api -> payments -> e2e is 40+30+40+10 minutes."""
    dag = Dag.from_tasks(shop())
    assert dag.critical_path() == (["backend", "api", "payments", "e2e"], 7200.0)
    assert dag.remaining_path("backend") == 7200.0
    assert dag.remaining_path("database") == 6000.0
    assert dag.remaining_path("frontend") == 3600.0
    assert dag.remaining_path("e2e") == 600.0


def test_critical_path_ties_follow_plan_order() -> None:
    """Without estimates every task weighs 1 and the first of equals is chosen."""
    dag = Dag.from_tasks(shop(estimates=False))
    assert dag.estimate("api") == 1.0
    assert dag.critical_path() == (["backend", "api", "frontend-api", "e2e"], 4.0)


def test_critical_path_of_nothing() -> None:
    """An empty graph has an empty critical path of length 0."""
    dag = Dag.from_tasks([])
    assert dag.critical_path() == ([], 0.0)
    assert dag.waves() == []
    assert dag.render_ascii() == "no tasks\n"


def test_zero_estimate_is_kept() -> None:
    """An estimate of 0 seconds is zero, not the default of 1."""
    dag = Dag.from_tasks([task("a", estimate=0.0), task("b", "a", estimate=2.5)])
    assert dag.estimate("a") == 0.0
    assert dag.critical_path() == (["a", "b"], 2.5)


class ReadyCase(NamedTuple):
    test_id: str
    tasks: list[FakeTask]
    ready: list[str]
    started: list[str]
    expected: list[str]


READY_CASES = [
    ReadyCase(
        "longest-remaining-path-first",
        shop(),
        ["frontend", "backend", "database"],
        [],
        ["backend", "database", "frontend"],
    ),
    ReadyCase(
        "priority-beats-path",
        shop(frontend=5),
        ["frontend", "backend", "database"],
        [],
        ["frontend", "backend", "database"],
    ),
    ReadyCase(
        "plan-order-breaks-ties",
        shop(estimates=False),
        ["database", "frontend", "backend"],
        [],
        ["backend", "database", "frontend"],
    ),
    ReadyCase(
        "soft-predecessor-not-started-goes-last",
        [task("a", after=["c"], priority=9), task("b"), task("c")],
        ["a", "b", "c"],
        [],
        ["b", "c", "a"],
    ),
    ReadyCase(
        "soft-predecessor-started",
        [task("a", after=["c"], priority=9), task("b"), task("c")],
        ["a", "b"],
        ["c"],
        ["a", "b"],
    ),
    ReadyCase("duplicates-once", [task("a"), task("b")], ["b", "a", "b"], [], ["a", "b"]),
]


@pytest.mark.parametrize("case", READY_CASES, ids=[case.test_id for case in READY_CASES])
def test_ready_order(case: ReadyCase) -> None:
    """Soft predecessors started first, then priority, longest remaining path, plan order."""
    dag = Dag.from_tasks(case.tasks)
    assert dag.ready_order(case.ready, case.started) == case.expected


# -- epics --------------------------------------------------------------------------


class EpicCase(NamedTuple):
    test_id: str
    tasks: list[FakeTask]
    dependencies: dict[str, tuple[str, ...]]
    chained: list[tuple[str, str]]


EPIC_CASES = [
    EpicCase(
        "independent-members-chain-in-plan-order",
        [task("a", epic="e"), task("x"), task("b", epic="e"), task("c", epic="e")],
        {"a": (), "x": (), "b": ("a",), "c": ("b",)},
        [("a", "b"), ("b", "c")],
    ),
    EpicCase(
        "already-ordered-adds-nothing",
        [task("a", epic="e"), task("m", "a"), task("b", "m", epic="e")],
        {"a": (), "m": ("a",), "b": ("m",)},
        [],
    ),
    EpicCase(
        "topological-order-then-plan-order",
        [task("late", "early", epic="e"), task("mid", epic="e"), task("early", epic="e")],
        {"late": ("early",), "mid": (), "early": ("mid",)},
        [("mid", "early")],
    ),
    EpicCase(
        "two-epics-apart",
        [task("a1", epic="a"), task("b1", epic="b"), task("a2", epic="a"), task("b2", epic="b")],
        {"a1": (), "b1": (), "a2": ("a1",), "b2": ("b1",)},
        [("a1", "a2"), ("b1", "b2")],
    ),
    EpicCase(
        "stages-already-chained",
        [task("api.build", epic="api"), task("api.review", "api.build", epic="api")],
        {"api.build": (), "api.review": ("api.build",)},
        [],
    ),
]


@pytest.mark.parametrize("case", EPIC_CASES, ids=[case.test_id for case in EPIC_CASES])
def test_epics_run_one_after_another(case: EpicCase) -> None:
    """Each epic member waits for the previous one unless dependencies already order them."""
    dag = Dag.from_tasks(case.tasks)
    assert {task_id: dag.dependencies(task_id) for task_id in dag.ids} == case.dependencies
    chained = [(dep, t) for t in dag.ids for dep in dag.dependencies(t) if dag.is_epic_edge(dep, t)]
    assert chained == case.chained


def test_epic_chain_shapes_waves_and_critical_path() -> None:
    """Chained epic members fall into successive waves and lengthen the critical path."""
    dag = Dag.from_tasks([task("a", epic="e"), task("b", epic="e"), task("c")])
    assert dag.waves() == [["a", "c"], ["b"]]
    assert dag.critical_path() == (["a", "b"], 2.0)


# -- drawings -----------------------------------------------------------------------

SHOP_ASCII = """\
wave 1
    frontend
  * backend
    database
wave 2
  * api           ← backend, database
wave 3
  * frontend-api  ← frontend, api
    payments      ← api
wave 4
  * e2e           ← frontend-api, payments

* critical path: backend -> api -> frontend-api -> e2e (length 4.0)
"""

SHOP_ASCII_TIMED = """\
wave 1
    frontend         30m  [running]
  * backend          40m  [done]
    database         20m  [done]
wave 2
  * api              30m  [ready]    ← backend, database
wave 3
    frontend-api     20m             ← frontend, api
  * payments         40m             ← api
wave 4
  * e2e              10m             ← frontend-api, payments

* critical path: backend -> api -> payments -> e2e (length 2h)
"""


def test_render_ascii_of_the_shop() -> None:
    """Waves, arrows to dependencies, the critical path starred and summed."""
    assert Dag.from_tasks(shop(estimates=False)).render_ascii() == SHOP_ASCII


def test_render_ascii_with_estimates_and_statuses() -> None:
    """Estimates and statuses get columns of their own."""
    statuses = {"frontend": "running", "backend": "done", "database": "done", "api": "ready"}
    assert Dag.from_tasks(shop()).render_ascii(statuses) == SHOP_ASCII_TIMED


def test_render_ascii_marks_epic_and_soft_edges() -> None:
    """Epic chain edges say so; soft predecessors are listed after `after`."""
    dag = Dag.from_tasks([task("a", epic="e"), task("b", epic="e", after=["c"]), task("c")])
    assert dag.render_ascii() == (
        "wave 1\n"
        "  * a\n"
        "    c\n"
        "wave 2\n"
        "  * b  ← a (epic)  (after c)\n"
        "\n"
        "* critical path: a -> b (length 2.0)\n"
    )


def test_render_mermaid_of_a_small_plan() -> None:
    """Sanitized node ids, hard, soft and epic arrows, critical and status classes."""
    dag = Dag.from_tasks(
        [
            task("api.build", epic="api"),
            task("api.review", epic="api"),
            task("web-ui", after=["api.build"]),
            task("e2e", "api.review", "web-ui"),
        ]
    )
    assert dag.render_mermaid({"api.build": "done", "api.review": "running"}) == (
        "flowchart TD\n"
        '    n_api_build["api.build (done)"]\n'
        '    n_api_review["api.review (running)"]\n'
        '    n_web_ui["web-ui"]\n'
        '    n_e2e["e2e"]\n'
        "    n_api_build -->|epic| n_api_review\n"
        "    n_api_build -.-> n_web_ui\n"
        "    n_api_review --> n_e2e\n"
        "    n_web_ui --> n_e2e\n"
        "    classDef critical stroke:#e8590c,stroke-width:3px\n"
        "    class n_api_build,n_api_review,n_e2e critical\n"
        "    linkStyle 0,2 stroke:#e8590c,stroke-width:3px\n"
        "    classDef status_done fill:#d3f9d8,stroke:#2b8a3e\n"
        "    class n_api_build status_done\n"
        "    classDef status_running fill:#fff3bf,stroke:#f08c00\n"
        "    class n_api_review status_running\n"
    )


def test_render_mermaid_keeps_colliding_names_apart() -> None:
    """`a.b`, `a-b` and `a_b` sanitize alike but stay distinct nodes."""
    text = Dag.from_tasks([task("a.b"), task("a-b"), task("a_b")]).render_mermaid()
    assert '    n_a_b["a.b"]\n    n_a_b_2["a-b"]\n    n_a_b_3["a_b"]\n' in text


def test_to_json_of_the_shop() -> None:
    """Tasks with their wave, edges from dependency to dependant, waves and critical path."""
    dag = Dag.from_tasks([*shop()[:4], task("docs", after=["api"], priority=2, epic="d")])
    data = dag.to_json()
    assert json.loads(json.dumps(data)) == data
    assert data == {
        "tasks": [
            {
                "id": "frontend",
                "depends_on": [],
                "after": [],
                "priority": 0,
                "estimate": 1800.0,
                "epic": None,
                "wave": 1,
            },
            {
                "id": "backend",
                "depends_on": [],
                "after": [],
                "priority": 0,
                "estimate": 2400.0,
                "epic": None,
                "wave": 1,
            },
            {
                "id": "database",
                "depends_on": [],
                "after": [],
                "priority": 0,
                "estimate": 1200.0,
                "epic": None,
                "wave": 1,
            },
            {
                "id": "api",
                "depends_on": ["backend", "database"],
                "after": [],
                "priority": 0,
                "estimate": 1800.0,
                "epic": None,
                "wave": 2,
            },
            {
                "id": "docs",
                "depends_on": [],
                "after": ["api"],
                "priority": 2,
                "estimate": 1.0,
                "epic": "d",
                "wave": 1,
            },
        ],
        "edges": [
            ["backend", "api", "hard"],
            ["database", "api", "hard"],
            ["api", "docs", "soft"],
        ],
        "waves": [["frontend", "backend", "database", "docs"], ["api"]],
        "critical_path": ["backend", "api"],
        "critical_path_length": 4200.0,
    }


# -- properties ---------------------------------------------------------------------


@st.composite
def small_dags(draw: st.DrawFn) -> list[FakeTask]:
    """Up to 8 tasks in a shuffled plan order, edges only from later to earlier ranks."""
    size = draw(st.integers(min_value=0, max_value=8))
    names = [f"t{i}" for i in range(size)]
    tasks = []
    for index, name in enumerate(names):
        deps = draw(st.lists(st.sampled_from(names[:index]), unique=True)) if index else []
        estimate = draw(st.none() | st.floats(min_value=0.0, max_value=100.0))
        epic = draw(st.none() | st.sampled_from(["e1", "e2"]))
        tasks.append(task(name, *deps, estimate=estimate, epic=epic))
    return draw(st.permutations(tasks))


def all_path_lengths(dag: Dag) -> list[float]:
    """The estimated length of every hard path of `dag`, found by trying them all."""
    lengths: list[float] = []

    def walk(task_id: str, length: float) -> None:
        length += dag.estimate(task_id)
        lengths.append(length)
        for user in dag.dependants(task_id):
            walk(user, length)

    for task_id in dag.ids:
        walk(task_id, 0.0)
    return lengths


@settings(max_examples=200, deadline=None)
@given(small_dags())
def test_critical_path_is_the_longest_path(tasks: list[FakeTask]) -> None:
    """The critical path's length is the longest of all paths, and it is a real path."""
    dag = Dag.from_tasks(tasks)
    path, length = dag.critical_path()
    assert math.isclose(length, max(all_path_lengths(dag), default=0.0), abs_tol=1e-9)
    assert math.isclose(length, sum(dag.estimate(t) for t in path), abs_tol=1e-9)
    for earlier, later in itertools.pairwise(path):
        assert earlier in dag.dependencies(later)


@settings(max_examples=200, deadline=None)
@given(small_dags())
def test_topological_order_respects_every_edge(tasks: list[FakeTask]) -> None:
    """Every task comes after all its hard dependencies, epic chain edges included."""
    dag = Dag.from_tasks(tasks)
    order = dag.topological_order()
    assert sorted(order) == sorted(dag.ids)
    position = {task_id: index for index, task_id in enumerate(order)}
    for task_id in dag.ids:
        for dep in dag.dependencies(task_id):
            assert position[dep] < position[task_id]
            assert dag.wave(dep) < dag.wave(task_id)
    for members in ({t.id for t in tasks if t.epic == e} for e in ("e1", "e2")):
        ranked = sorted(members, key=position.__getitem__)
        for earlier, later in itertools.pairwise(ranked):
            assert dag.has_path(earlier, later)


def brute_force_cycles(edges: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Every elementary cycle, by trying every simple path from every start."""
    rank = {node: index for index, node in enumerate(edges)}
    found: set[tuple[str, ...]] = set()

    def walk(start: str, path: list[str]) -> None:
        for target in edges[path[-1]]:
            if target not in rank or rank[target] < rank[start]:
                continue
            if target == start:
                found.add((*path, start))
            elif target not in path:
                walk(start, [*path, target])

    for start in edges:
        walk(start, [start])
    return sorted((list(cycle) for cycle in found), key=lambda c: [rank[n] for n in c])


@st.composite
def small_digraphs(draw: st.DrawFn) -> dict[str, list[str]]:
    """Up to 6 nodes with any edges, self-loops and unknown ids included."""
    names = draw(st.permutations([f"n{i}" for i in range(draw(st.integers(0, 6)))]))
    targets = st.sampled_from([*names, "ghost"])
    return {name: draw(st.lists(targets, max_size=4)) for name in names}


@settings(max_examples=300, deadline=None)
@given(small_digraphs())
def test_find_cycles_matches_brute_force(edges: dict[str, list[str]]) -> None:
    """Without the cap, find_cycles returns exactly the brute-force cycles, in order."""
    assert find_cycles(edges, limit=10_000) == brute_force_cycles(edges)
