"""Tests of the dashboard app: `App.run_test()` against real stores, git and tmux panes.

Most tests use the hand-built shop run of `tests/test_monitor.py` (six tasks in
every interesting state, two of them running in real panes on a private tmux
socket). The last ones drive real runs of shell tasks, one of them with the
dashboard in the run's bottom pane, read back with `tmux capture-pane -p`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import pytest
from textual.pilot import Pilot

from limitless.dashboard.app import DashboardApp
from limitless.dashboard.model import TaskView
from limitless.dashboard.screens.confirm import ConfirmScreen
from limitless.dashboard.screens.diff import DiffView
from limitless.dashboard.screens.graph import GraphView
from limitless.dashboard.screens.help import HelpScreen
from limitless.dashboard.screens.log import LogView
from limitless.dashboard.screens.merge import MergeView
from limitless.dashboard.widgets.info import diffstat_lines
from limitless.dashboard.widgets.task_table import (
    COLUMNS,
    TaskTable,
    choose_columns,
    task_to_follow,
)
from limitless.states import ControlAction, MergeStatus, RunStatus, TaskStatus, Waiting, task_state
from limitless.store import ControlRequest
from limitless.tmux.session import TmuxSession
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, wait_for, write_plan
from tests.test_monitor import ShopRun, build_shop, tmux

DEADLINE_S = 30.0
SHOP_ORDER = ("backend", "frontend", "database", "api", "docs", "payments")
FULL_COLUMNS = ("task", "status", "agent", "progress", "time", "files", "+/−", "conflicts")
FULL_ONLY = ("agent", "files", "conflicts", "cpu", "mem")
"""Headings shown at 120 columns and dropped at 80."""


@pytest.fixture
def shop(repo: Path, tmp_path: Path, tmux_socket: str) -> ShopRun:
    """The hand-built shop run on a private tmux socket."""
    return build_shop(repo, tmp_path / "state", tmux_socket)


def make_app(shop: ShopRun, interval: float = 0.2) -> DashboardApp:
    return DashboardApp(shop.state_dir, shop.run_id, socket_name=shop.socket, interval=interval)


def screen_text(app: DashboardApp) -> str:
    """What the terminal shows now, as plain text (one line per row)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text for strip in strips)


def line_of(app: DashboardApp, word: str) -> str:
    """The first screen line that holds `word` ("" if none)."""
    return next((line for line in screen_text(app).splitlines() if word in line), "")


def notices(app: DashboardApp) -> dict[str, str]:
    """The notifications (toasts) shown so far: message → severity."""
    return {notice.message: notice.severity for notice in app._notifications}


def told(app: DashboardApp, words: str) -> bool:
    """A notification holding `words` was shown."""
    return any(words in message for message in notices(app))


def row_of(app: DashboardApp, task_id: str) -> str:
    """The task table's row of `task_id` ("" if not shown)."""
    lines = screen_text(app).splitlines()
    return next((line for line in lines if line.startswith(f" {task_id} ")), "")


async def until(
    pilot: Pilot[int], condition: Callable[[], bool], what: str, seconds: float = DEADLINE_S
) -> None:
    """Let the app run until `condition` holds; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            msg = f"timed out after {seconds}s waiting for {what}"
            raise AssertionError(msg)
        await pilot.pause(0.05)


async def polled(pilot: Pilot[int], app: DashboardApp, count: int = 1) -> None:
    """Wait until the app has drawn `count` more polls."""
    target = app.polls + count
    await until(pilot, lambda: app.polls >= target, f"{count} poll(s)")
    await pilot.pause()


async def select(pilot: Pilot[int], app: DashboardApp, task_id: str) -> None:
    """Move the table's cursor to `task_id` with the arrow keys, as a user would."""
    await until(pilot, lambda: app.selected_task() is not None, "a selection")
    if app.following:
        await pilot.press("f")  # the cursor stays where the user puts it from now on
    current = app.selected_task()
    assert current is not None
    order = table_order(app)
    steps = order.index(task_id) - order.index(current.id)
    await pilot.press(*(["down"] * steps if steps > 0 else ["up"] * -steps))
    selected = app.selected_task()
    assert selected is not None and selected.id == task_id


def table_order(app: DashboardApp) -> list[str]:
    """The task ids in the order the table lists them."""
    table = app.screen_stack[0].query_one(TaskTable)
    return [str(key.value) for key in table.rows]


def requests_of(shop: ShopRun) -> list[ControlRequest]:
    with shop.store() as store:
        return store.pending_requests(shop.run_id)


# ----------------------------------------------------------------------------- the main screen


class SizeCase(NamedTuple):
    test_id: str
    size: tuple[int, int]
    shown: tuple[str, ...]
    dropped: tuple[str, ...]


SIZES = [
    SizeCase("120x35", (120, 35), (*FULL_COLUMNS, "cpu", "mem", "cost", "last line"), ()),
    SizeCase("80x24", (80, 24), ("task", "status", "progress", "time", "last line"), FULL_ONLY),
]


@pytest.mark.parametrize("case", SIZES, ids=[case.test_id for case in SIZES])
async def test_rows_statuses_and_header_match_the_store(shop: ShopRun, case: SizeCase) -> None:
    """Each task is a row with its store status; the header's figures; columns fit the size."""
    app = make_app(shop)
    async with app.run_test(size=case.size) as pilot:
        await polled(pilot, app)
        text = screen_text(app)
        lines = text.splitlines()
        assert all(len(line) <= case.size[0] for line in lines)
        with shop.store() as store:
            rows = store.get_tasks(shop.run_id)
        for row in rows:
            shown = task_state(row.status, row.waiting_kind).replace("_", " ")
            assert shown in row_of(app, row.id), (row.id, text)
        # the task that needs input comes first, the others in the plan's order
        assert table_order(app) == ["docs", "backend", "frontend", "database", "api", "payments"]
        header = "\n".join(lines[:2])
        for figure in (shop.run_id, "shop", "main", "running", "1/6 done", "slots 2/3", "$0.75"):
            assert figure in header, (figure, header)
        assert "speedup" in header
        headings = line_of(app, " task ")
        # columns line up: statuses start under their heading, times end under theirs
        status_at = headings.index(" status") + 1
        time_end = headings.index(" time") + len(" time") - 1
        for row in rows:
            line = row_of(app, row.id)
            assert line[status_at - 1] == " " and line[status_at] != " ", line
            if row.started_at is not None:
                assert line[time_end] != " " and line[time_end + 1] == " ", line
        for label in case.shown:
            assert f" {label}" in headings, (label, headings)
        for label in case.dropped:
            assert f" {label} " not in headings + " ", (label, headings)
        # the running task's last pane line, its cost, its progress
        frontend = row_of(app, "frontend")
        assert "building comp" in frontend
        assert "$0.25" in frontend and "40%" in frontend
        assert "▶ running" in frontend
        assert "? needs input" in row_of(app, "docs")


async def test_a_commit_on_base_during_the_run_shows_a_stale_base(shop: ShopRun) -> None:
    """Someone commits to base mid-run: the header says base moved, and where to."""
    app = make_app(shop)
    async with app.run_test(size=(120, 35)) as pilot:
        await polled(pilot, app)
        assert "stale base" not in screen_text(app)
        (shop.repo / "hotfix.txt").write_text("fix\n")
        git(shop.repo, "add", "hotfix.txt")
        git(shop.repo, "commit", "-qm", "hotfix on main")
        tip = git(shop.repo, "rev-parse", "main")
        await until(pilot, lambda: "stale base" in screen_text(app), "the stale-base warning")
        header = "\n".join(screen_text(app).splitlines()[:2])
        assert f"stale base: main moved to {tip[:8]}" in header, header


async def test_full_width_shows_git_figures_conflicts_and_processes(shop: ShopRun) -> None:
    """At 120 columns a row shows commits ahead, files, +/−, dirty, conflicts, CPU and memory."""
    app = make_app(shop)
    async with app.run_test(size=(120, 35)) as pilot:
        await polled(pilot, app)
        backend = row_of(app, "backend")
        assert "+3 −0" in backend and "frontend" in backend
        frontend = row_of(app, "frontend")
        assert "+2 −0" in frontend and "✎" in frontend and "backend+1" in frontend
        assert "%" in frontend.split("backend+1")[1] and "M " in frontend
        database = row_of(app, "database")
        assert " 2 " in database  # attempt


async def test_detail_area_shows_tail_diffstat_and_reason(shop: ShopRun) -> None:
    """The selected task's output tail, its status reason and its diffstat are under the table."""
    app = make_app(shop)
    async with app.run_test(size=(120, 35)) as pilot:
        await polled(pilot, app)
        await select(pilot, app, "frontend")
        await until(pilot, lambda: "web.js" in screen_text(app), "frontend's diffstat")
        text = screen_text(app)
        assert "frontend · pane" in text and "building component 3 of 8" in text
        assert "uncommitted: notes.txt" in text
        await select(pilot, app, "database")
        await until(pilot, lambda: "agent exited with 3" in screen_text(app), "database's reason")
        assert "migrations failed: boom" in screen_text(app)


async def test_short_pane_gives_the_table_every_row(shop: ShopRun) -> None:
    """In a 12-row pane (the run's bottom pane) the detail area hides and all rows show."""
    app = make_app(shop)
    async with app.run_test(size=(100, 12)) as pilot:
        await polled(pilot, app)
        text = screen_text(app)
        for task_id in SHOP_ORDER:
            assert f" {task_id} " in text
        assert "· pane" not in text


async def test_the_cursor_follows_the_task_that_needs_watching(shop: ShopRun) -> None:
    """In the short bottom pane, the cursor goes to the task asking for input (docs,
    below the first rows), then to a running one; a key hands it to the user, `f`
    gives it back."""
    app = make_app(shop)
    async with app.run_test(size=(100, 10)) as pilot:
        await until(pilot, lambda: selected_id(app) == "docs", "the waiting task")
        assert " docs " in screen_text(app)
        with shop.store() as store:
            store.update_task(shop.run_id, "docs", status=TaskStatus.DONE)
        await until(pilot, lambda: selected_id(app) == "frontend", "the running task")
        await pilot.press("down")
        assert (selected_id(app), app.following) == ("database", False)
        with shop.store() as store:
            store.update_task(
                shop.run_id,
                "payments",
                status=TaskStatus.WAITING,
                waiting_kind=Waiting.INPUT,
                attempt=1,
            )
        # a short pane says notices in its header: a toast would cover the table
        await until(pilot, lambda: "payments needs input" in screen_text(app), "the question")
        assert notices(app) == {}
        await polled(pilot, app)
        assert selected_id(app) == "database"  # the user's choice stands
        await pilot.press("f")
        await until(pilot, lambda: selected_id(app) == "payments", "the question, followed")
        assert app.following and " payments " in screen_text(app)


async def test_a_tiny_pane_shows_a_ticker_of_the_tasks(shop: ShopRun) -> None:
    """The run's bottom pane at 80x24 has three lines: the header in one (with the
    count done), the tasks worth watching with the followed one marked, the keys."""
    app = make_app(shop)
    async with app.run_test(size=(80, 3)) as pilot:
        await until(pilot, lambda: "needs input" in screen_text(app), "the ticker")
        header, ticker, keys = screen_text(app).splitlines()
        assert shop.run_id in header and "1/6 done" in header
        # the selected (followed) task first, then the others worth watching, then counts
        assert ticker.strip().split("  ") == [
            "? docs needs input",
            "▶ frontend 40%",
            "1 done",
            "1 failed",
            "1 blocked",
            "1 pending",
        ]
        assert "f follow" in keys
        assert selected_id(app) == "docs"
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirm dialog")
        text = screen_text(app)
        assert "Kill task docs" in text and "Kill (y)" in text and "Cancel (n)" in text
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "the dialog closed")
        await app.workers.wait_for_complete()
        assert requests_of(shop) == []


async def test_a_narrow_tiny_pane_counts_with_icons(shop: ShopRun) -> None:
    """Where the counts in words do not fit, the table's icons say them."""
    app = make_app(shop)
    async with app.run_test(size=(56, 3)) as pilot:
        await until(pilot, lambda: "needs input" in screen_text(app), "the ticker")
        ticker = screen_text(app).splitlines()[1]
        assert ticker.strip().split("  ")[2:] == ["✓1", "✗1", "⊘1", "·1"]


async def test_help_and_the_kill_dialog_fit_the_runs_bottom_pane(shop: ShopRun) -> None:
    """In the 7-row bottom pane the help fills the pane and scrolls; the kill
    dialog shows its question, not only its buttons."""
    app = make_app(shop)
    async with app.run_test(size=(120, 7)) as pilot:
        await polled(pilot, app)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        assert "limitless dashboard — keys" in screen_text(app)
        assert "quit the dashboard" not in screen_text(app)
        for _ in range(12):
            await pilot.press("down")
        await until(pilot, lambda: "quit the dashboard" in screen_text(app), "the help scrolled")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen), "the help closed")
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirm dialog")
        text = screen_text(app)
        assert "Kill task docs" in text and "Kill (y)" in text and "Cancel (n)" in text
        await pilot.press("n")


def selected_id(app: DashboardApp) -> str | None:
    task = app.selected_task()
    return task.id if task else None


# ----------------------------------------------------------------------------- keys


async def test_kill_asks_first_and_then_requests_a_kill(shop: ShopRun) -> None:
    """`k` opens a confirm dialog; `n` writes nothing, `y` writes a kill request."""
    app = make_app(shop)
    async with app.run_test(size=(120, 35)) as pilot:
        await polled(pilot, app)
        await select(pilot, app, "frontend")
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirm dialog")
        assert "Kill task frontend" in screen_text(app)
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "the dialog closed")
        await app.workers.wait_for_complete()
        assert requests_of(shop) == []
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirm dialog")
        await pilot.press("y")
        await until(pilot, lambda: len(requests_of(shop)) == 1, "the kill request")
    (request,) = requests_of(shop)
    assert (request.action, request.task_id, request.source) == (
        ControlAction.KILL,
        "frontend",
        "dashboard",
    )


class KeyCase(NamedTuple):
    test_id: str
    task: str
    key: str
    action: ControlAction | None
    """None: the key is refused with a warning and nothing is written."""


KEY_CASES = [
    KeyCase("retry-failed", "database", "r", ControlAction.RETRY),
    KeyCase("retry-blocked", "api", "r", ControlAction.RETRY),
    KeyCase("retry-running-refused", "frontend", "r", None),
    KeyCase("done-waiting", "docs", "D", ControlAction.DONE),
    KeyCase("done-running", "frontend", "D", ControlAction.DONE),
    KeyCase("done-pending-refused", "payments", "D", None),
    KeyCase("kill-done-refused", "backend", "k", None),
]


@pytest.mark.parametrize("case", KEY_CASES, ids=[case.test_id for case in KEY_CASES])
async def test_keys_write_control_requests(shop: ShopRun, case: KeyCase) -> None:
    """`r` and `D` write the request for the selected task, or say why they cannot."""
    app = make_app(shop)
    async with app.run_test(size=(120, 35)) as pilot:
        await polled(pilot, app)
        await select(pilot, app, case.task)
        await pilot.press(case.key)
        if case.action is None:
            await until(pilot, lambda: told(app, f"{case.task} is "), "the warning")
            assert not isinstance(app.screen, ConfirmScreen)
            await app.workers.wait_for_complete()
            assert requests_of(shop) == []
            return
        await until(pilot, lambda: bool(requests_of(shop)), "the request")
        await until(pilot, lambda: told(app, "requested"), "the confirmation toast")
    (request,) = requests_of(shop)
    assert (request.action, request.task_id, request.source) == (
        case.action,
        case.task,
        "dashboard",
    )


async def test_enter_selects_the_task_pane_and_z_zooms_it(shop: ShopRun) -> None:
    """`enter` makes the task's pane the active one in tmux; `z` zooms it."""
    session = TmuxSession(shop.socket, shop.run_id)

    def active_pane() -> str:
        return tmux(shop.socket, "display-message", "-p", "-t", session.name, "#{pane_id}").strip()

    def zoomed() -> bool:
        flag = tmux(
            shop.socket, "display-message", "-p", "-t", session.name, "#{window_zoomed_flag}"
        )
        return flag.strip() == "1"

    assert active_pane() == shop.panes["docs"]  # the last split is active
    app = make_app(shop)
    async with app.run_test(size=(120, 35)) as pilot:
        await polled(pilot, app)
        await select(pilot, app, "frontend")
        await pilot.press("enter")
        await until(pilot, lambda: active_pane() == shop.panes["frontend"], "frontend's pane")
        assert not zoomed()
        await select(pilot, app, "docs")
        await pilot.press("z")
        await until(pilot, zoomed, "the zoom")
        assert active_pane() == shop.panes["docs"]


async def test_help_lists_the_keys(shop: ShopRun) -> None:
    """`?` shows every key; escape closes it."""
    app = make_app(shop)
    async with app.run_test(size=(80, 24)) as pilot:
        await polled(pilot, app)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        text = screen_text(app)
        for words in ("enter", "zoom", "kill the task", "retry", "mark a running", "quit"):
            assert words in text
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen), "the help closed")


async def test_quit_leaves_the_run_alone(shop: ShopRun) -> None:
    """`q` ends the dashboard with 0 and writes nothing: no request, the run still runs."""
    app = make_app(shop)
    async with app.run_test(size=(80, 24)) as pilot:
        await polled(pilot, app)
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, "the app to end")
    assert app.return_code == 0
    assert requests_of(shop) == []
    with shop.store() as store:
        assert store.get_run(shop.run_id).status is RunStatus.RUNNING
        assert store.get_task(shop.run_id, "frontend").status is TaskStatus.RUNNING
    assert shop.panes["frontend"] in tmux(shop.socket, "list-panes", "-a", "-F", "#{pane_id}")


# ----------------------------------------------------------------------------- views


async def test_d_shows_the_highlighted_diff(shop: ShopRun) -> None:
    """`d` shows the task branch's patch since its start point; escape goes back."""
    app = make_app(shop)
    async with app.run_test(size=(120, 35)) as pilot:
        await polled(pilot, app)
        await select(pilot, app, "backend")
        await pilot.press("d")
        await until(pilot, lambda: "+def health():" in screen_text(app), "the diff")
        assert isinstance(app.screen, DiffView)
        text = screen_text(app)
        assert "diff --git a/api.py b/api.py" in text
        assert "diff backend" in text and "1 file " in text
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DiffView), "the table again")


async def test_l_shows_the_whole_log(shop: ShopRun) -> None:
    """`l` shows the task's log with its escapes rendered, not printed."""
    app = make_app(shop)
    async with app.run_test(size=(80, 24)) as pilot:
        await polled(pilot, app)
        await select(pilot, app, "database")
        await pilot.press("l")
        await until(pilot, lambda: "migrations failed: boom" in screen_text(app), "the log")
        assert isinstance(app.screen, LogView)
        text = screen_text(app)
        assert "> migrate" in text and "running 001_products" in text
        assert "\x1b" not in text and "[1m" not in text


@pytest.mark.parametrize("size", [(80, 24), (120, 35)], ids=["80x24", "120x35"])
async def test_g_shows_every_task_in_the_graph(shop: ShopRun, size: tuple[int, int]) -> None:
    """`g` draws the graph with every task and its status."""
    app = make_app(shop)
    async with app.run_test(size=size) as pilot:
        await polled(pilot, app)
        await pilot.press("g")
        await until(pilot, lambda: isinstance(app.screen, GraphView), "the graph")
        await until(pilot, lambda: "wave" in screen_text(app), "the drawing")
        text = screen_text(app)
        for task_id in SHOP_ORDER:
            assert task_id in text, (task_id, text)
        for status in ("done", "running", "failed", "blocked", "waiting", "pending"):
            assert status in text


async def test_m_shows_the_merge_view(shop: ShopRun) -> None:
    """`m` lists branches in merge order with merge status, conflicted files and reasons."""
    with shop.store() as store:
        store.update_run(shop.run_id, status=RunStatus.MERGING)
        store.update_task(shop.run_id, "backend", merge_status=MergeStatus.MERGED, merge_order=1)
        store.update_task(
            shop.run_id,
            "frontend",
            merge_status=MergeStatus.CONFLICT,
            merge_order=2,
            conflict_files=["shared.py"],
            merge_reason="conflict in shared.py",
        )
        store.update_task(
            shop.run_id,
            "docs",
            merge_status=MergeStatus.GATE_FAILED,
            merge_reason="gate failed (exit 1, log docs.log):\nFAILED test_docs.py::test_links",
        )
    app = make_app(shop)
    async with app.run_test(size=(120, 35)) as pilot:
        await polled(pilot, app)
        assert "◆ merged" in row_of(app, "backend")
        assert "⚠ conflict" in row_of(app, "frontend")
        await pilot.press("m")
        await until(pilot, lambda: "conflict in shared.py" in screen_text(app), "the merge view")
        assert isinstance(app.screen, MergeView)
        rows = {
            line.split()[1]: line for line in screen_text(app).splitlines() if len(line.split()) > 1
        }
        backend, frontend = rows["backend"], rows["frontend"]
        assert backend.split()[0] == "1" and "merged" in backend
        assert frontend.split()[0] == "2" and "conflict" in frontend
        assert "shared.py" in frontend
        assert set(SHOP_ORDER) <= set(rows)
        assert "gate failed (exit 1" in rows["docs"] and "test_links" not in rows["docs"]
        # backend, frontend (in merge order), then database, api, docs
        await pilot.press("down", "down", "down", "down")
        await until(pilot, lambda: "FAILED test_docs.py::test_links" in screen_text(app), "gate")


# ----------------------------------------------------------------------------- notifications


async def test_failure_waiting_and_budget_are_notified(shop: ShopRun) -> None:
    """A new failure, a new question and a budget alert each show a notification."""
    app = make_app(shop)
    async with app.run_test(size=(120, 35)) as pilot:
        await polled(pilot, app)
        with shop.store() as store:
            store.update_task(
                shop.run_id, "frontend", status=TaskStatus.FAILED, reason="tests failed"
            )
            store.add_event(shop.run_id, "task_failed", "frontend", reason="tests failed")
            store.add_event(shop.run_id, "budget_alert", cost_usd=8.0, max_cost_usd=10.0)
        await until(pilot, lambda: told(app, "frontend failed"), "the failure toast")
        await until(pilot, lambda: told(app, "budget alert"), "the budget toast")
        assert notices(app)["✗ frontend failed — tests failed"] == "error"
        assert notices(app)["budget alert: $8.00 of $10.00 spent (80%)"] == "warning"
        assert "✗ failed" in row_of(app, "frontend")
        with shop.store() as store:
            store.update_task(
                shop.run_id,
                "payments",
                status=TaskStatus.WAITING,
                waiting_kind=Waiting.INPUT,
                attempt=1,
            )
        await until(pilot, lambda: told(app, "payments needs input"), "the question")
        assert notices(app)["? payments needs input"] == "warning"


async def test_the_run_end_is_notified(shop: ShopRun) -> None:
    """When the run ends while the dashboard is open, a notification says how."""
    app = make_app(shop)
    async with app.run_test(size=(80, 24)) as pilot:
        await polled(pilot, app)
        with shop.store() as store:
            store.update_run(shop.run_id, status=RunStatus.FAILED, reason="database failed")
        await until(pilot, lambda: told(app, f"run {shop.run_id} failed"), "the end toast")
        assert notices(app)[f"run {shop.run_id} failed: database failed"] == "error"
        assert "✗ failed" in screen_text(app).splitlines()[0]


# ----------------------------------------------------------------------------- polling


async def test_polls_never_overlap_and_follow_the_interval(shop: ShopRun) -> None:
    """Ticks run one at a time, in threads, re-armed after each; a slow poll delays the next."""
    app = make_app(shop, interval=0.05)
    running: list[int] = []
    most = [0]
    real_poll = app.monitor.poll

    def slow_poll(focus: str | None = None):  # type: ignore[no-untyped-def]
        running.append(1)
        most[0] = max(most[0], len(running))
        time.sleep(0.2)
        try:
            return real_poll(focus)
        finally:
            running.pop()

    app.monitor.poll = slow_poll  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await polled(pilot, app, 4)
    assert most[0] == 1


async def test_a_failing_store_is_shown_and_polling_goes_on(shop: ShopRun) -> None:
    """A poll that fails shows the problem in the header and the next poll still runs."""
    app = make_app(shop, interval=0.05)
    real_poll = app.monitor.poll
    failures = [2]

    def flaky_poll(focus: str | None = None):  # type: ignore[no-untyped-def]
        if app.polls and failures[0]:
            failures[0] -= 1
            raise OSError("database is locked")
        return real_poll(focus)

    app.monitor.poll = flaky_poll  # type: ignore[method-assign]
    async with app.run_test(size=(120, 35)) as pilot:
        await polled(pilot, app)
        await until(pilot, lambda: "database is locked" in screen_text(app), "the problem")
        await until(pilot, lambda: failures[0] == 0, "both failures")
        await polled(pilot, app)
        assert "database is locked" not in screen_text(app)


# ----------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize("width", [80, 100, 120, 160])
def test_choose_columns_fills_the_width(width: int) -> None:
    """The chosen columns never overflow, keep the essentials and show all from 120 on."""
    columns, last = choose_columns(width - 1, 12)
    keys = [column.key for column in columns]
    assert {"id", "status", "progress", "last"} <= set(keys)
    assert sum(column.width + 1 for column in columns) <= width
    if width >= 120:
        assert len(columns) == len(COLUMNS) - 1  # all but host (a plan without hosts:)
    assert last >= 8


def test_a_run_on_hosts_shows_where_each_task_runs() -> None:
    """With a hosts: block the table has a host column holding each task's host."""
    from limitless.dashboard.widgets.task_table import task_cells

    keys = [column.key for column in choose_columns(159, 12, hosts=True)[0]]
    assert "host" in keys and "host" not in [c.key for c in choose_columns(159, 12)[0]]
    assert task_cells(replace(SAMPLE_VIEW, host="box1"))["host"] == "box1"


def test_diffstat_lines_keep_the_figures_of_long_paths() -> None:
    """A narrow detail area cuts a long path from its start, never the counts."""
    stat = (
        " apps/web/src/components/ProductGrid.tsx | 13 +++++++++++++\n"
        " README.md                               |  2 +-\n"
        " 2 files changed, 14 insertions(+), 1 deletion(-)\n"
    )
    lines = [line.plain for line in diffstat_lines(stat, 30)]
    assert lines[0].startswith("…") and "ProductGrid.tsx 13 +++++++" in lines[0]
    assert lines[1].startswith("README.md") and lines[1].endswith(" 2 +-")
    assert lines[2].startswith("2 files changed, 14 insertion")
    assert all(len(line) <= 30 for line in lines)


# ----------------------------------------------------------------------------- real runs

SHELL_PLAN = """\
name: tiny
agent: shell
max_concurrency: 2
merge: {land: manual}
tasks:
  - id: alpha
    prompt: |
      echo "progress 50%"; printf 'alpha line\\n' > alpha.txt
      git add alpha.txt && git commit -qm "alpha: add"
  - id: beta
    prompt: |
      printf 'beta line\\n' > beta.txt && git add beta.txt && git commit -qm "beta: add"
  - id: gamma
    depends_on: [alpha]
    prompt: |
      test -f alpha.txt && printf 'gamma\\n' > gamma.txt
      git add gamma.txt && git commit -qm "gamma: add"
"""


async def test_dashboard_of_a_real_run(repo: Path, tmux_socket: str) -> None:
    """After a real run of shell tasks: rows and statuses match the store; `d` shows the diff."""
    write_plan(repo, SHELL_PLAN)
    result = cli(repo, "run", "--headless", "--no-merge")
    assert result.returncode == 0, result.stdout + result.stderr
    run = latest_run(repo)
    rows = tasks_of(repo, run.id)
    with open_store(repo) as store:
        state_dir = store.state_dir
    app = DashboardApp(state_dir, run.id, socket_name=tmux_socket, interval=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await polled(pilot, app)
        assert "3/3 done" in screen_text(app)
        for row in rows.values():
            assert f"✓ {row.status}" in row_of(app, row.id)
        await pilot.press("d")
        await until(pilot, lambda: "+alpha line" in screen_text(app), "alpha's diff")
        assert "alpha.txt" in screen_text(app)


GATED_PLAN = """\
name: gated
agent: shell
max_concurrency: 1
merge: {land: manual}
tasks:
  - id: slowpoke
    prompt: |
      while [ ! -f go ]; do sleep 0.1; done
      echo done > done.txt && git add done.txt && git commit -qm "slowpoke: done"
"""


async def test_quitting_the_dashboard_leaves_a_real_run_going(repo: Path, tmux_socket: str) -> None:
    """Quit the dashboard while a task runs: the task and the run still end done."""
    write_plan(repo, GATED_PLAN)
    (repo / ".git" / "info" / "exclude").write_text("go\n")
    result = cli(repo, "run", "--detach", "--no-merge")
    assert result.returncode == 0, result.stdout + result.stderr
    run = latest_run(repo)
    wait_for(
        lambda: tasks_of(repo, run.id)["slowpoke"].status is TaskStatus.RUNNING,
        DEADLINE_S,
        "slowpoke to run",
    )
    with open_store(repo) as store:
        state_dir = store.state_dir
    app = DashboardApp(state_dir, run.id, socket_name=tmux_socket, interval=0.2)
    async with app.run_test(size=(120, 35)) as pilot:
        await polled(pilot, app)
        assert "▶ running" in row_of(app, "slowpoke")
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, "the app to end")
    worktree = Path(tasks_of(repo, run.id)["slowpoke"].worktree)
    (worktree / "go").write_text("")
    waited = cli(repo, "wait", run.id, "--timeout", "60")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert tasks_of(repo, run.id)["slowpoke"].status is TaskStatus.DONE


def test_dashboard_pane_of_a_real_run_shows_tasks_and_statuses(
    repo: Path, tmux_socket: str
) -> None:
    """A run's bottom pane, read with capture-pane, shows the header and each task's status."""
    write_plan(repo, SHELL_PLAN)
    result = cli(repo, "run", "--detach", "--no-merge")
    assert result.returncode == 0, result.stdout + result.stderr
    run = latest_run(repo)
    session = TmuxSession(tmux_socket, run.id)
    assert run.dashboard_pane, "the run has no dashboard pane"
    pane = run.dashboard_pane

    def screen() -> str:
        return "\n".join(session.capture([pane], lines=60).get(pane, []))

    def row(task_id: str) -> str:
        return next((line for line in screen().splitlines() if f" {task_id} " in line), "")

    wait_for(
        lambda: "3/3 done" in screen() and all("✓ done" in row(t) for t in ("alpha", "gamma")),
        60.0,
        "the dashboard pane to show 3/3 done",
    )
    text = screen()
    assert run.id in text and "tiny" in text
    for task_id in ("alpha", "beta", "gamma"):
        assert "✓ done" in row(task_id), (task_id, text)


async def test_polls_go_on_while_a_view_is_open(shop: ShopRun) -> None:
    """A view pushed over the main screen: polls keep updating the main screen underneath."""
    app = make_app(shop, interval=0.05)
    async with app.run_test(size=(120, 35)) as pilot:
        await polled(pilot, app)
        await pilot.press("g")
        await until(pilot, lambda: isinstance(app.screen, GraphView), "the graph view")
        with shop.store() as store:
            store.update_task(shop.run_id, "frontend", progress=90.0)
        await polled(pilot, app, 3)
        await pilot.press("escape")
        await until(pilot, lambda: "90%" in row_of(app, "frontend"), "the newer progress")


class FollowCase(NamedTuple):
    test_id: str
    rows: tuple[tuple[str, TaskStatus, MergeStatus], ...]
    current: str | None
    followed: str | None


SAMPLE_VIEW = TaskView(
    id="a",
    status=TaskStatus.PENDING,
    attempt=0,
    agent="shell",
    progress=None,
    progress_estimated=False,
    elapsed=None,
    last_line="",
    ahead=0,
    files_changed=0,
    insertions=0,
    deletions=0,
    dirty=False,
    conflicts=(),
    cpu_percent=None,
    rss_mb=None,
    cost=None,
    reason="",
    pane_id=None,
    merge_status=MergeStatus.UNMERGED,
)
_RUN, _WAIT, _DONE = TaskStatus.RUNNING, TaskStatus.WAITING, TaskStatus.DONE
_UN, _MERGING = MergeStatus.UNMERGED, MergeStatus.MERGING

FOLLOW_CASES = (
    FollowCase("first running", (("a", _DONE, _UN), ("b", _RUN, _UN), ("c", _RUN, _UN)), "a", "b"),
    FollowCase(
        "stays on running", (("a", _DONE, _UN), ("b", _RUN, _UN), ("c", _RUN, _UN)), "c", "c"
    ),
    FollowCase("question first", (("a", _RUN, _UN), ("b", _WAIT, _UN)), "a", "b"),
    FollowCase("merging branch", (("a", _DONE, _MERGING), ("b", _DONE, _UN)), "b", "a"),
    FollowCase("nothing to watch", (("a", _DONE, _UN), ("b", TaskStatus.FAILED, _UN)), "b", None),
)


@pytest.mark.parametrize("case", FOLLOW_CASES, ids=[case.test_id for case in FOLLOW_CASES])
def test_task_to_follow(case: FollowCase) -> None:
    tasks = [
        replace(SAMPLE_VIEW, id=task_id, status=status, merge_status=merge)
        for task_id, status, merge in case.rows
    ]
    assert task_to_follow(tasks, case.current) == case.followed


def test_a_cost_of_cents_fits_its_column() -> None:
    """A real agent's $0.0825 shows as `$0.083` in the 6-cell cost column, not cut to `$0.08…`."""
    from limitless import fmt
    from limitless.dashboard.widgets.task_table import COST_WIDTH

    assert fmt.money(0.0825) == "$0.0825"
    assert fmt.money(0.0825, COST_WIDTH) == "$0.083"
    assert all(len(fmt.money(v, COST_WIDTH)) <= COST_WIDTH for v in (0.0042, 0.0825, 0.37, 42.0))


async def test_no_speedup_before_a_task_has_ended(shop: ShopRun) -> None:
    """With no task done the header shows no speedup (a young run's would be below 1×)."""
    with shop.store() as store:
        for row in store.get_tasks(shop.run_id):
            if row.status is TaskStatus.DONE:
                store.update_task(shop.run_id, row.id, status=TaskStatus.RUNNING)
    app = make_app(shop)
    async with app.run_test(size=(120, 35)) as pilot:
        await polled(pilot, app)
        header = "\n".join(screen_text(app).splitlines()[:2])
        assert "0/6 done" in header and "speedup" not in header, header
