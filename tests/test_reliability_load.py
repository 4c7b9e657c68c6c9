"""Load: many writers on the store during a run, and a wide run on this small machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from limitless.states import RunStatus, TaskStatus
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, wait_for, write_plan

pytestmark = pytest.mark.usefixtures("tmux_socket")

WRITERS = 20
EACH = 25

WRITER = """\
import sys
from pathlib import Path
from limitless.states import ControlAction
from limitless.store import Store

state_dir, run_id = Path(sys.argv[1]), sys.argv[2]
writer, count = int(sys.argv[3]), int(sys.argv[4])
with Store.open(state_dir) as store:
    for i in range(count):
        store.request(run_id, ControlAction.RETRY, "hold", source=f"load-{writer}-{i}")
        store.add_event(run_id, "load_status", "hold", writer=writer, i=i)
print("ok", writer)
"""


def test_twenty_writers_during_a_run_lose_nothing_and_never_see_a_lock(repo: Path) -> None:
    """20 processes write 500 requests and 500 status events while tasks run: all kept."""
    go = repo.parent / "go"
    write_plan(
        repo,
        f"""\
name: load
agent: shell
max_concurrency: 2
merge: {{land: manual}}
tasks:
  - {{id: hold, prompt: "while [ ! -f {go} ]; do sleep 0.1; done; echo h > h.txt"}}
  - {{id: beside, prompt: "sleep 1; echo b > b.txt"}}
  - {{id: after, depends_on: [hold], prompt: "echo a > a.txt"}}
""",
    )
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stderr
    run_id = latest_run(repo).id
    with open_store(repo) as store:
        state_dir = store.state_dir
    wait_for(lambda: tasks_of(repo, run_id)["hold"].status is TaskStatus.RUNNING, 60, "hold runs")
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(state_dir), run_id, str(n), str(EACH)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(WRITERS)
    ]
    results = [writer.communicate(timeout=180) for writer in writers]
    for n, (writer, (out, err)) in enumerate(zip(writers, results, strict=True)):
        assert writer.returncode == 0, err
        assert out.strip() == f"ok {n}"
        assert "locked" not in err

    def handled() -> int:
        with open_store(repo) as store:
            return sum(r.done_at is not None for r in store.requests(run_id))

    wait_for(lambda: handled() == WRITERS * EACH, 120, "every request handled")
    go.touch()
    waited = cli(repo, "wait", run_id, "--timeout", "120", "--quiet", timeout=150)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    with open_store(repo) as store:
        requests = store.requests(run_id)
        events = store.events(run_id)
    sources = {r.source for r in requests}
    assert sources == {f"load-{w}-{i}" for w in range(WRITERS) for i in range(EACH)}
    assert all(r.result and r.result.startswith("not retried") for r in requests)
    written = {(e.data["writer"], e.data["i"]) for e in events if e.kind == "load_status"}
    assert written == {(w, i) for w in range(WRITERS) for i in range(EACH)}
    rows = tasks_of(repo, run_id)
    assert {row.status for row in rows.values()} == {TaskStatus.DONE}


@pytest.mark.slow
def test_a_fifty_task_run_with_concurrency_sixteen_finishes(repo: Path) -> None:
    """50 tasks, 16 slots, merge and landing: everything done and on base."""
    lines = ["name: wide", "agent: shell", "max_concurrency: 16", "tasks:"]
    for n in range(50):
        deps = f", depends_on: [t{n - 16}]" if n >= 16 else ""
        lines.append(f'  - {{id: t{n}{deps}, prompt: "echo {n} > f{n}.txt"}}')
    write_plan(repo, "\n".join(lines) + "\n")
    result = cli(repo, "run", "--headless", timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    run = latest_run(repo)
    assert run.status is RunStatus.DONE
    files = set(git(repo, "ls-tree", "--name-only", "main").splitlines())
    assert {f"f{n}.txt" for n in range(50)} <= files
    assert "50/50 tasks done" in result.stdout
