"""scripts/bench.py: its lower bounds and list-scheduling model, and a smoke run of one group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib import dags  # noqa: E402


class BoundCase(NamedTuple):
    test_id: str
    graph: dags.Graph
    slots: int
    bound: float


BOUND_CASES = [
    BoundCase("chain-is-critical-path-bound", dags.chain(3, 1.0, 2.0), 4, 1.0 + 1.0 + 1.0 + 2.0),
    BoundCase("chain-on-one-slot-is-work-bound", dags.chain(3, 1.0, 2.0), 1, 9.0),
    BoundCase(
        "independent-tasks-are-work-bound",
        dags.Graph("flat", tuple(dags.Node(f"t{i}", 2.0) for i in range(6))),
        3,
        4.0,
    ),
]


@pytest.mark.parametrize("case", BOUND_CASES, ids=[c.test_id for c in BOUND_CASES])
def test_lower_bound_is_max_of_critical_path_and_work_per_slot(case: BoundCase) -> None:
    """The bound is max(critical path, total work / slots)."""
    assert dags.lower_bound(case.graph, case.slots) == pytest.approx(case.bound)


def run_quick_group(group: str, socket: str, out: Path) -> subprocess.CompletedProcess[str]:
    """`bench.py --quick --only GROUP` on a 200-file repository and `socket`, JSON to `out`."""
    argv = [sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--only", group]
    argv += ["--files", "200", "--socket", socket, "--json", str(out)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)


def test_waves_lose_to_deps_on_a_chain_with_side_branches() -> None:
    """Side branches hold back the next wave: deps finishes earlier than waves."""
    graph = dags.chain(4, 1.0, 3.0)
    deps = dags.simulate(graph, 4, "deps")
    assert deps == pytest.approx(dags.critical_path(graph))
    assert dags.simulate(graph, 4, "waves") == pytest.approx(4 * 3.0 + 1.0)


def test_quick_detection_group_prints_and_writes_its_figures(
    tmux_socket: str, tmp_path: Path
) -> None:
    """`bench.py --quick --only detection` measures on the private socket and writes the JSON."""
    out = tmp_path / "bench.json"
    result = run_quick_group("detection", tmux_socket, out)
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(out.read_text())
    assert document["machine"]["quick"] is True
    names = [f["name"] for f in document["figures"]]
    assert names == ["detection.p95", "detection.p50", "detection.max"]
    for figure in document["figures"]:
        assert set(figure) == {"name", "value", "unit", "goal", "ok"}
        assert 0 < figure["value"] < 60
    header = result.stdout.splitlines()[0].split()
    assert header == ["figure", "value", "unit", "goal", "ok"]
    assert "detection.p95" in result.stdout


def test_bigrepo_group_times_limitless_against_git_worktree_add(
    tmux_socket: str, tmp_path: Path
) -> None:
    """`bench.py --only bigrepo` (a 2,000-file repository here): three figures side by side."""
    out = tmp_path / "bench.json"
    env = {**os.environ, "LIMITLESS_BENCH_BIGREPO_FILES": "2000", "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench.py"),
            "--quick",
            "--only",
            "bigrepo",
            "--socket",
            tmux_socket,
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = {f["name"]: f for f in json.loads(out.read_text())["figures"]}
    assert figures["bigrepo.files"]["value"] == 2000
    assert figures["bigrepo.git_worktree_add"]["value"] > 0
    assert figures["bigrepo.limitless_sparse_s"]["value"] > 0
    assert (tmp_path / "limitless-bench-bigrepo-2000" / ".git").is_dir()  # kept for next time
    assert "built" in result.stderr


def test_quick_handoff_group_measures_every_dependant(tmux_socket: str, tmp_path: Path) -> None:
    """`bench.py --quick --only handoff`: 10 hand-offs timed from the store's ms times."""
    out = tmp_path / "bench.json"
    result = run_quick_group("handoff", tmux_socket, out)
    assert result.returncode == 0, result.stdout + result.stderr
    figures = {f["name"]: f for f in json.loads(out.read_text())["figures"]}
    assert figures["handoff.samples"]["value"] == 10  # 2 chains of 6: 5 dependants each
    p50, p95 = figures["handoff.p50"], figures["handoff.p95"]
    assert (p50["goal"], p95["goal"]) == ("<= 150", "<= 300")
    assert 0 < p50["value"] <= p95["value"] <= figures["handoff.max"]["value"] < 10_000
    stages = [figures[f"handoff.{name}.p50"]["value"] for name in ("to_launch", "to_wrapper")]
    assert all(0 < ms < 10_000 for ms in stages)
    assert "10 hand-offs:" in result.stderr  # the progress lines
