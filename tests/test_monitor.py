"""Tests of the dashboard's model: a store filled by hand, real git worktrees, real tmux panes."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pytest

from limitless.dashboard.model import (
    BASE,
    Monitor,
    Snapshot,
    conflicts_by_task,
    estimated_progress,
    head_token,
    last_lines_of,
    strip_ansi,
)
from limitless.git import worktrees
from limitless.git.refs import branch_name
from limitless.plan import loader as plan_mod
from limitless.states import ControlAction, MergeStatus, RunStatus, TaskStatus, Waiting
from limitless.store import Prediction, Run, Store, TaskRow
from limitless.tmux.session import session_name
from tests.conftest import git

DEADLINE_S = 15.0

SHOP_PLAN = """\
name: shop
agent: shell
max_concurrency: 3
tasks:
  - {id: backend, prompt: "write the api"}
  - {id: frontend, prompt: "write the web app", estimate: 100s}
  - {id: database, prompt: "write migrations"}
  - {id: api, prompt: "glue", depends_on: [backend, database]}
  - {id: docs, prompt: "write docs"}
  - {id: payments, prompt: "take money", depends_on: [backend], estimate: 50s}
"""

# What each running pane prints before it sleeps.
PANE_OUTPUT = {
    "frontend": "building component 3 of 8",
    "docs": "Do you want to proceed? (y/n)",
}


def tmux(socket: str, *args: str) -> str:
    """Run tmux on the private socket (fixture work only) and return its stdout."""
    result = subprocess.run(
        ["tmux", "-L", socket, *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        msg = f"tmux {' '.join(args)} failed: {result.stderr.strip()}"
        raise AssertionError(msg)
    return result.stdout


def wait_until(condition: Callable[[], bool], what: str, seconds: float = DEADLINE_S) -> None:
    """Poll `condition` until it holds; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            msg = f"timed out after {seconds}s waiting for {what}"
            raise AssertionError(msg)
        time.sleep(0.02)


@dataclass(frozen=True)
class ShopRun:
    """A run of six tasks in every interesting state, built by hand."""

    repo: Path
    state_dir: Path
    run_id: str
    socket: str
    panes: dict[str, str]

    def store(self) -> Store:
        return Store.open(self.state_dir)

    def worktree(self, task_id: str) -> Path:
        with self.store() as store:
            return Path(store.get_task(self.run_id, task_id).worktree)


def _pane_script(text: str) -> str:
    return f"printf '%s\\n' 'starting' '{text}'; exec sleep 600"


def build_shop(repo: Path, state_dir: Path, socket: str) -> ShopRun:
    """Store rows, worktrees with real commits, a log, and tmux panes for the running tasks.

    backend done (one commit, +3), frontend running in a pane (one commit +2, a
    dirty file, agent progress 40), database failed (a log), api blocked, docs
    waiting in a pane, payments pending. backend and frontend are predicted to
    conflict, frontend also with base.
    """
    plan = plan_mod.loads(SHOP_PLAN, source="shop.yaml", base_dir=repo)
    base_sha = git(repo, "rev-parse", "main")
    store = Store.open(state_dir)
    run_id = store.next_run_id("shop")
    name = session_name(run_id)
    first = tmux(
        socket,
        *("new-session", "-d", "-s", name, "-x", "120", "-y", "35", "-n", "agents"),
        *("-P", "-F", "#{pane_id}", "sh", "-c", _pane_script(PANE_OUTPUT["frontend"])),
    ).strip()
    second = tmux(
        socket,
        *("split-window", "-t", f"={name}:agents", "-P", "-F", "#{pane_id}"),
        *("sh", "-c", _pane_script(PANE_OUTPUT["docs"])),
    ).strip()
    panes = {"frontend": first, "docs": second}
    worktree_root = repo.parent / "shop.worktrees"
    now = time.time()
    store.create_run(
        Run(
            id=run_id,
            plan_name=plan.name,
            plan_path=str(repo / "shop.yaml"),
            plan_json=plan.to_json(),
            repo_root=str(repo),
            base="main",
            base_sha=base_sha,
            worktree_root=str(worktree_root),
            status=RunStatus.RUNNING,
            created_at=now - 100,
            tmux_socket=socket,
            tmux_session=name,
            max_concurrency=3,
            slot_panes=",".join([first, second, first]),
        )
    )
    rows = [
        TaskRow(
            run_id=run_id,
            id=task.id,
            position=position,
            agent="shell",
            branch=branch_name(run_id, task.id),
            worktree=str(worktrees.worktree_path(worktree_root, run_id, task.id)),
        )
        for position, task in enumerate(plan.tasks)
    ]
    store.add_tasks(run_id, rows)
    by_id = {row.id: row for row in rows}
    for task_id, files in (
        ("backend", {"api.py": "def health():\n    return 'ok'\n# end\n"}),
        ("frontend", {"web.js": "export const App = 1;\nexport const Cart = 2;\n"}),
        ("database", {"schema.sql": "CREATE TABLE products (id int);\n"}),
        ("docs", {}),
    ):
        path = Path(by_id[task_id].worktree)
        worktrees.prepare_worktree(
            repo, path=path, branch=by_id[task_id].branch, base_sha=base_sha, lock_dir=state_dir
        )
        for rel, text in files.items():
            (path / rel).write_text(text)
            git(path, "add", rel)
            git(path, "commit", "-q", "-m", f"{task_id}: {rel}")
    (Path(by_id["frontend"].worktree) / "notes.txt").write_text("not committed\n")
    backend_head = git(Path(by_id["backend"].worktree), "rev-parse", "HEAD")
    store.update_task(
        run_id,
        "backend",
        status=TaskStatus.DONE,
        attempt=1,
        started_at=now - 90,
        ended_at=now - 60,
        start_sha=base_sha,
        head_sha=backend_head,
        progress=100.0,
        cost_usd=0.5,
        commits=1,
        files_changed=1,
        insertions=3,
    )
    store.update_task(
        run_id,
        "frontend",
        status=TaskStatus.RUNNING,
        attempt=1,
        started_at=now - 40,
        start_sha=base_sha,
        pane_id=first,
        slot=0,
        progress=40.0,
        cost_usd=0.25,
    )
    store.update_task(
        run_id,
        "database",
        status=TaskStatus.FAILED,
        attempt=2,
        started_at=now - 80,
        ended_at=now - 70,
        start_sha=base_sha,
        exit_code=3,
        reason="agent exited with 3",
    )
    store.update_task(run_id, "api", status=TaskStatus.BLOCKED, reason="blocked: database failed")
    store.update_task(
        run_id,
        "docs",
        status=TaskStatus.WAITING,
        attempt=1,
        started_at=now - 30,
        start_sha=base_sha,
        pane_id=second,
        slot=1,
        waiting_reason="Do you want to proceed? (y/n)",
        waiting_kind=Waiting.INPUT,
    )
    store.set_predictions(
        run_id,
        [
            Prediction(run_id, "backend", "frontend", ("shared.py",), now),
            Prediction(run_id, "frontend", "", ("README.md",), now),
        ],
    )
    log = store.log_path(run_id, "database")
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"\x1b[1m> migrate\x1b[0m\r\nrunning 001_products\nmigrations failed: boom\n")
    store.add_event(run_id, "task_failed", "database", reason="agent exited with 3")
    store.close()
    shop = ShopRun(repo=repo, state_dir=state_dir, run_id=run_id, socket=socket, panes=panes)
    for task_id, pane in panes.items():
        wait_until(
            lambda pane=pane, task_id=task_id: (
                PANE_OUTPUT[task_id] in tmux(socket, "capture-pane", "-p", "-t", pane)
            ),
            f"the output of {task_id}'s pane",
        )
    return shop


@pytest.fixture
def shop(repo: Path, tmp_path: Path, tmux_socket: str) -> ShopRun:
    """The hand-built shop run on a private tmux socket."""
    return build_shop(repo, tmp_path / "state", tmux_socket)


@pytest.fixture
def monitor(shop: ShopRun) -> Iterator[Monitor]:
    """A Monitor of the shop run."""
    watcher = Monitor(shop.state_dir, shop.run_id, shop.socket)
    yield watcher
    watcher.close()


def views_by_id(snapshot: Snapshot) -> dict[str, object]:
    return {task.id: task for task in snapshot.tasks}


# ----------------------------------------------------------------------------- the snapshot


def test_rows_and_statuses_match_the_store(shop: ShopRun, monitor: Monitor) -> None:
    """Every task appears once, in plan order, with the store's status, attempt and agent."""
    snapshot = monitor.poll()
    with shop.store() as store:
        rows = store.get_tasks(shop.run_id)
    assert [(t.id, t.status, t.attempt, t.agent) for t in snapshot.tasks] == [
        (r.id, r.status, r.attempt, r.agent) for r in rows
    ]


def test_header_figures(shop: ShopRun, monitor: Monitor) -> None:
    """Done/total, slots in use/limit, total cost and speedup come from the rows."""
    snapshot = monitor.poll()
    assert (snapshot.run_id, snapshot.plan_name, snapshot.base) == (shop.run_id, "shop", "main")
    assert snapshot.status is RunStatus.RUNNING
    assert (snapshot.summary.done, snapshot.summary.total) == (1, 6)
    assert (snapshot.slots_used, snapshot.summary.slots) == (2, 3)
    assert snapshot.summary.cost_usd == pytest.approx(0.75)
    # 30 s (backend) + 10 s (database) + ~40 s (frontend) + ~30 s (docs) over ~100 s of wall
    assert snapshot.summary.wall_s == pytest.approx(100, abs=5)
    assert snapshot.summary.speedup == pytest.approx(110 / snapshot.summary.wall_s, abs=0.1)


def test_running_pane_gives_last_line_tail_and_process_figures(
    shop: ShopRun, monitor: Monitor
) -> None:
    """A running task's last line, tail and CPU/memory come from its tmux pane."""
    frontend = monitor.poll().task("frontend")
    assert frontend is not None
    assert frontend.last_line == PANE_OUTPUT["frontend"]
    assert frontend.tail[-2:] == ("starting", PANE_OUTPUT["frontend"])
    assert frontend.pane_id == shop.panes["frontend"]
    assert frontend.rss_mb is not None and frontend.rss_mb > 0
    assert frontend.cpu_percent is not None


def test_finished_tasks_show_their_log_tail_without_escapes(monitor: Monitor) -> None:
    """An ended task's last line comes from its log, ANSI codes and carriage returns gone."""
    database = monitor.poll().task("database")
    assert database is not None
    assert database.tail == ("> migrate", "running 001_products", "migrations failed: boom")
    assert database.last_line == "migrations failed: boom"
    assert database.cpu_percent is None and database.rss_mb is None


def test_git_figures_come_from_the_worktrees(monitor: Monitor) -> None:
    """Commits ahead, files, +/− and the dirty flag are read from each real worktree."""
    tasks = {task.id: task for task in monitor.poll().tasks}
    frontend, backend = tasks["frontend"], tasks["backend"]
    assert (frontend.ahead, frontend.files_changed, frontend.insertions) == (1, 1, 2)
    assert frontend.dirty and frontend.dirty_files == ("notes.txt",)
    assert (backend.ahead, backend.files_changed, backend.insertions, backend.dirty) == (
        1,
        1,
        3,
        False,
    )
    assert tasks["payments"].ahead == 0 and tasks["payments"].head is None


def test_a_remote_task_shows_the_figures_its_wrapper_read_there(shop: ShopRun) -> None:
    """A running task on a host: its worktree here stays at the start commit, so the
    dashboard shows the commits and diffstat its wrapper recorded from the host."""
    with shop.store() as store:
        store.update_task(
            shop.run_id, "frontend", host="box1", commits=4, files_changed=3, insertions=30
        )
    monitor = Monitor(shop.state_dir, shop.run_id, shop.socket)
    try:
        frontend = monitor.poll().task("frontend")
    finally:
        monitor.close()
    assert frontend is not None
    assert (frontend.ahead, frontend.files_changed, frontend.insertions) == (4, 3, 30)


class ProgressCase(NamedTuple):
    test_id: str
    task_id: str
    progress: float | None
    estimated: bool


@pytest.mark.parametrize(
    "case",
    [
        ProgressCase("agent figure wins over estimate", "frontend", 40.0, False),
        ProgressCase("done is 100", "backend", 100.0, False),
        ProgressCase("no figure no estimate", "docs", None, False),
        ProgressCase("not running", "payments", None, False),
        ProgressCase("failed shows nothing", "database", None, False),
    ],
    ids=lambda case: case.test_id,
)
def test_progress_per_task(monitor: Monitor, case: ProgressCase) -> None:
    """Progress is the agent's figure, 100 when done, else an estimate only while running."""
    task = monitor.poll().task(case.task_id)
    assert task is not None
    assert (task.progress, task.progress_estimated) == (case.progress, case.estimated)


def test_estimated_progress_while_running(shop: ShopRun, monitor: Monitor) -> None:
    """Without the agent's figure, a running task shows elapsed/estimate, marked estimated."""
    with shop.store() as store:
        store.update_task(shop.run_id, "frontend", progress=None)
    frontend = monitor.poll().task("frontend")
    assert frontend is not None and frontend.progress_estimated
    assert frontend.progress == pytest.approx(40, abs=3)  # ~40 s of an estimated 100 s


def test_predicted_conflicts_both_ways(monitor: Monitor) -> None:
    """A prediction between two tasks shows on both; one against base shows `base`."""
    tasks = {task.id: task for task in monitor.poll().tasks}
    assert tasks["backend"].conflicts == ("frontend",)
    assert tasks["frontend"].conflicts == ("backend", BASE)
    assert tasks["docs"].conflicts == ()


def test_waiting_task_shows_what_it_waits_for(monitor: Monitor) -> None:
    """A waiting task's reason is the question it waits on."""
    docs = monitor.poll().task("docs")
    assert docs is not None
    assert docs.status is TaskStatus.WAITING
    assert docs.reason == "Do you want to proceed? (y/n)"
    assert docs.last_line == PANE_OUTPUT["docs"]


# ----------------------------------------------------------------------------- cheapness


def test_store_is_read_again_only_after_a_change(shop: ShopRun, monitor: Monitor) -> None:
    """An unchanged database is not re-read; another connection's write is seen next poll."""
    assert monitor.poll().stats.store_read
    assert not monitor.poll().stats.store_read
    with shop.store() as store:
        store.update_task(shop.run_id, "frontend", progress=55.0)
    snapshot = monitor.poll()
    assert snapshot.stats.store_read
    frontend = snapshot.task("frontend")
    assert frontend is not None and frontend.progress == 55.0


def test_one_tmux_call_per_poll_and_none_without_running_tasks(
    shop: ShopRun, monitor: Monitor
) -> None:
    """Panes are read in one tmux call; with nothing running, tmux is not asked at all."""
    assert monitor.poll().stats.tmux_calls == 1
    with shop.store() as store:
        for task_id in ("frontend", "docs"):
            store.update_task(shop.run_id, task_id, status=TaskStatus.DONE, ended_at=time.time())
    assert monitor.poll().stats.tmux_calls == 0


def test_git_runs_only_for_worktrees_that_changed(shop: ShopRun, monitor: Monitor) -> None:
    """A second poll inspects nothing; a new commit is inspected at once and shown."""
    first = monitor.poll()
    assert first.stats.git_inspections == 4  # each of the four worktrees is read once
    assert monitor.poll().stats.git_inspections == 0
    worktree = shop.worktree("frontend")
    (worktree / "cart.js").write_text("a\nb\nc\n")
    git(worktree, "add", "cart.js")
    git(worktree, "commit", "-q", "-m", "cart")
    snapshot = monitor.poll()
    assert snapshot.stats.git_inspections == 1
    frontend = snapshot.task("frontend")
    assert frontend is not None
    assert (frontend.ahead, frontend.files_changed, frontend.insertions) == (2, 2, 5)


def test_new_pane_output_triggers_git_after_the_interval(shop: ShopRun) -> None:
    """Pane output alone re-inspects a worktree, but not more often than `git_interval`."""
    watcher = Monitor(
        shop.state_dir, shop.run_id, shop.socket, git_interval=0.0, background_git_interval=0.0
    )
    watcher.poll()
    tmux(shop.socket, "send-keys", "-t", shop.panes["docs"], "y")
    wait_until(lambda: watcher.poll().stats.git_inspections == 1, "an inspection after new output")
    lazy = Monitor(shop.state_dir, shop.run_id, shop.socket, git_interval=3600.0)
    lazy.poll()
    tmux(shop.socket, "send-keys", "-t", shop.panes["docs"], "n")
    wait_until(lambda: "yn" in (lazy.poll().task("docs") or _none()).last_line, "the keys echoed")
    assert lazy.poll().stats.git_inspections == 0


def test_only_the_focused_task_is_inspected_often_for_output(shop: ShopRun) -> None:
    """New output re-inspects the focused task's worktree after `git_interval`; the others
    wait for `background_git_interval`."""
    watcher = Monitor(
        shop.state_dir, shop.run_id, shop.socket, git_interval=0.0, background_git_interval=3600
    )
    watcher.poll(focus="frontend")
    tmux(shop.socket, "send-keys", "-t", shop.panes["docs"], "q")
    wait_until(
        lambda: (watcher.poll(focus="frontend").task("docs") or _none()).last_line.endswith("q"),
        "the key echoed",
    )
    assert watcher.poll(focus="frontend").stats.git_inspections == 0
    tmux(shop.socket, "send-keys", "-t", shop.panes["docs"], "w")
    wait_until(
        lambda: watcher.poll(focus="docs").stats.git_inspections == 1,
        "an inspection of the focused task",
    )


def test_process_figures_cover_the_whole_pane_tree(shop: ShopRun) -> None:
    """Memory is summed over the pane's shell and all its children."""
    import psutil

    pane = tmux(
        shop.socket,
        *("split-window", "-d", "-t", f"={session_name(shop.run_id)}:agents"),
        *("-P", "-F", "#{pane_id} #{pane_pid}", "sh", "-c", "sleep 600 & sleep 601 & wait"),
    ).split()
    with shop.store() as store:
        store.update_task(shop.run_id, "frontend", pane_id=pane[0])
    root = psutil.Process(int(pane[1]))
    wait_until(lambda: len(root.children()) == 2, "the pane's two children")
    watcher = Monitor(shop.state_dir, shop.run_id, shop.socket)
    frontend = watcher.poll().task("frontend")
    watcher.close()
    assert frontend is not None and frontend.rss_mb is not None
    tree = [root, *root.children(recursive=True)]
    expected = sum(proc.memory_info().rss for proc in tree) / (1 << 20)
    assert frontend.rss_mb == pytest.approx(expected, rel=0.2)
    assert frontend.rss_mb > 1.5 * root.memory_info().rss / (1 << 20)


def test_a_busy_child_shows_its_cpu(shop: ShopRun) -> None:
    """CPU is measured between polls over the pane's tree: a spinning child shows it."""
    pane = tmux(
        shop.socket,
        *("split-window", "-d", "-t", f"={session_name(shop.run_id)}:agents"),
        *("-P", "-F", "#{pane_id}", "sh", "-c", "while :; do :; done & sleep 600"),
    ).strip()
    with shop.store() as store:
        store.update_task(shop.run_id, "frontend", pane_id=pane)
    watcher = Monitor(shop.state_dir, shop.run_id, shop.socket)
    first = watcher.poll().task("frontend")
    assert first is not None and first.cpu_percent is not None

    def busy() -> bool:
        task = watcher.poll().task("frontend")
        return task is not None and (task.cpu_percent or 0) > 20

    try:
        wait_until(busy, "the spinning child's CPU above 20 %")
    finally:
        watcher.close()
        tmux(shop.socket, "kill-pane", "-t", pane)


def _none() -> object:
    msg = "task missing"
    raise AssertionError(msg)


def test_focus_task_gets_a_diffstat(monitor: Monitor) -> None:
    """Only the focused task gets `git diff --stat`."""
    snapshot = monitor.poll(focus="backend")
    backend, frontend = snapshot.task("backend"), snapshot.task("frontend")
    assert backend is not None and frontend is not None
    assert "api.py | 3 +++" in backend.diffstat
    assert frontend.diffstat == ""


# ----------------------------------------------------------------------------- notices


def test_old_events_are_not_news_and_new_ones_are_told_once(
    shop: ShopRun, monitor: Monitor
) -> None:
    """The first poll reports nothing old; a failure, a question and the end each come once."""
    assert monitor.poll().notices == ()
    with shop.store() as store:
        store.update_task(
            shop.run_id, "frontend", status=TaskStatus.FAILED, reason="agent exited with 1"
        )
        store.add_event(shop.run_id, "task_failed", "frontend", reason="agent exited with 1")
    notices = monitor.poll().notices
    assert [(n.kind, n.task_id, n.severity) for n in notices] == [("failed", "frontend", "error")]
    assert "frontend failed" in notices[0].text
    assert monitor.poll().notices == ()
    with shop.store() as store:
        store.update_task(
            shop.run_id,
            "payments",
            status=TaskStatus.WAITING,
            waiting_kind=Waiting.INPUT,
            attempt=1,
        )
        store.update_run(
            shop.run_id, status=RunStatus.FAILED, ended_at=time.time(), reason="1/6 done"
        )
        store.add_event(shop.run_id, "run_done", status="failed", exit_code=1)
    kinds = [(n.kind, n.task_id) for n in monitor.poll().notices]
    assert kinds == [("run_ended", None), ("waiting", "payments")]
    assert monitor.poll().notices == ()


def test_a_finished_run_is_not_announced_on_opening(shop: ShopRun) -> None:
    """Opening the dashboard of a run that already ended tells nothing."""
    with shop.store() as store:
        store.update_run(shop.run_id, status=RunStatus.DONE, ended_at=time.time())
    watcher = Monitor(shop.state_dir, shop.run_id, shop.socket)
    assert watcher.poll().notices == ()
    assert watcher.poll().notices == ()


# ----------------------------------------------------------------------------- actions


def test_request_writes_a_dashboard_control_request(shop: ShopRun, monitor: Monitor) -> None:
    """request() queues the action for the supervisor, marked as coming from the dashboard."""
    monitor.request(ControlAction.KILL, "frontend")
    with shop.store() as store:
        pending = store.pending_requests(shop.run_id)
    assert [(r.action, r.task_id, r.source) for r in pending] == [
        (ControlAction.KILL, "frontend", "dashboard")
    ]


def test_diff_is_the_branch_against_its_start(monitor: Monitor) -> None:
    """diff() is the real patch of the task's branch since its start point."""
    text = monitor.diff("backend")
    assert "+++ b/api.py" in text and "+def health():" in text
    assert "web.js" not in text


def test_read_log_follows_from_an_offset(shop: ShopRun, monitor: Monitor) -> None:
    """read_log returns new bytes from the offset it handed out, and b'' for no log."""
    data, offset = monitor.read_log("database")
    assert data.endswith(b"boom\n")
    with shop.store() as store:
        log = store.log_path(shop.run_id, "database")
    with log.open("ab") as handle:
        handle.write(b"retrying\n")
    assert monitor.read_log("database", offset) == (b"retrying\n", offset + 9)
    assert monitor.read_log("payments") == (b"", 0)


def test_jump_selects_the_task_pane(shop: ShopRun, monitor: Monitor) -> None:
    """jump() makes the task's pane the active one of its window."""
    monitor.jump(shop.panes["docs"])
    active = tmux(
        shop.socket, "display-message", "-p", "-t", f"={session_name(shop.run_id)}:", "#{pane_id}"
    )
    assert active.strip() == shop.panes["docs"]


# ----------------------------------------------------------------------------- helpers


class EstimateCase(NamedTuple):
    test_id: str
    elapsed: float | None
    estimate: float | None
    expected: float | None


@pytest.mark.parametrize(
    "case",
    [
        EstimateCase("half way", 30.0, 60.0, 50.0),
        EstimateCase("over the estimate caps at 99", 120.0, 60.0, 99.0),
        EstimateCase("no estimate", 30.0, None, None),
        EstimateCase("zero estimate", 30.0, 0.0, None),
        EstimateCase("not started", None, 60.0, None),
    ],
    ids=lambda case: case.test_id,
)
def test_estimated_progress(case: EstimateCase) -> None:
    """elapsed/estimate in percent, never 100, None without both."""
    assert estimated_progress(case.elapsed, case.estimate) == case.expected


class ConflictCase(NamedTuple):
    test_id: str
    pairs: tuple[tuple[str, str, tuple[str, ...]], ...]
    expected: dict[str, tuple[str, ...]]


@pytest.mark.parametrize(
    "case",
    [
        ConflictCase("none", (), {}),
        ConflictCase("pair", (("a", "b", ("f",)),), {"a": ("b",), "b": ("a",)}),
        ConflictCase("base", (("a", "", ("f",)),), {"a": (BASE,)}),
        ConflictCase("no files is no conflict", (("a", "b", ()),), {}),
        ConflictCase(
            "several",
            (("a", "b", ("f",)), ("a", "c", ("g",)), ("c", "", ("h",))),
            {"a": ("b", "c"), "b": ("a",), "c": ("a", BASE)},
        ),
    ],
    ids=lambda case: case.test_id,
)
def test_conflicts_by_task(case: ConflictCase) -> None:
    """Predictions become, per task, the others it conflicts with (both ways round)."""
    predictions = [Prediction("r", a, b, files, 0.0) for a, b, files in case.pairs]
    assert conflicts_by_task(predictions) == case.expected


def test_head_token_changes_with_commits_and_staging(repo: Path, tmp_path: Path) -> None:
    """The token moves on a commit and on `git add`, and is None outside a linked worktree."""
    assert head_token(repo) is None  # a main checkout has a .git folder, not a file
    path = tmp_path / "wt"
    worktrees.prepare_worktree(
        repo,
        path=path,
        branch="limitless/t/x",
        base_sha=git(repo, "rev-parse", "HEAD"),
        lock_dir=tmp_path / "locks",
    )
    before = head_token(path)
    assert before is not None
    (path / "x.txt").write_text("x\n")
    git(path, "add", "x.txt")
    staged = head_token(path)
    assert staged != before
    git(path, "commit", "-q", "-m", "x")
    assert head_token(path) not in (before, staged)


class StripCase(NamedTuple):
    test_id: str
    data: bytes
    lines: tuple[str, ...]


@pytest.mark.parametrize(
    "case",
    [
        StripCase("colours", b"\x1b[32mok\x1b[0m\n", ("ok",)),
        StripCase("blank lines dropped", b"a\n\n  \nb\n", ("a", "b")),
        StripCase("crlf", b"a\r\nb\r\n", ("a", "b")),
        StripCase("osc title", b"\x1b]0;title\x07text\n", ("text",)),
        StripCase("bad utf-8", b"caf\xe9\n", ("caf\ufffd",)),
    ],
    ids=lambda case: case.test_id,
)
def test_last_lines_of(case: StripCase) -> None:
    """Terminal output becomes clean lines."""
    assert last_lines_of(case.data, 10) == case.lines


def test_strip_ansi_keeps_tabs() -> None:
    """Tabs survive; other control characters go."""
    assert strip_ansi("a\tb\x07c\x1b[1md") == "a\tbcd"


def test_merge_status_is_shown_once_merging_began(shop: ShopRun, monitor: Monitor) -> None:
    """A task's shown status becomes its merge status (merging, merged, conflict)."""
    with shop.store() as store:
        store.update_task(shop.run_id, "backend", merge_status=MergeStatus.CONFLICT)
    backend = monitor.poll().task("backend")
    assert backend is not None and backend.shown_status == "conflict"
