"""The dashboard: a Textual app in the run's bottom pane; a viewer and a remote control.

It never schedules anything. It polls (`Monitor.poll` in a thread worker, one
tick at a time: a one-shot timer starts the worker, the worker posts `Polled`,
the handler draws and arms the next timer), and it writes requests (kill,
retry, done) into the store for the supervisor. tmux and git only ever run in
thread workers; quitting leaves the run going.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TypeVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.geometry import Size
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import DataTable, Footer
from textual.worker import Worker, WorkerState

from limitless.dashboard.model import Monitor, Snapshot, TaskView
from limitless.dashboard.screens.confirm import ConfirmScreen
from limitless.dashboard.screens.diff import DiffView
from limitless.dashboard.screens.graph import GraphView
from limitless.dashboard.screens.help import HelpScreen
from limitless.dashboard.screens.log import LogView
from limitless.dashboard.screens.merge import MergeView
from limitless.dashboard.screens.view import View
from limitless.dashboard.widgets.detail import Detail
from limitless.dashboard.widgets.header import HeaderBar, HeaderNote
from limitless.dashboard.widgets.task_table import TaskTable
from limitless.dashboard.widgets.ticker import Ticker
from limitless.errors import LimitlessError
from limitless.states import ControlAction, TaskStatus
from limitless.store import Store

DEFAULT_INTERVAL_S = 1.0
KEEP_ROWS = 7
"""The dashboard pane's rows, grown back to when a small client shrinks it: the
header, the table's heading and first three rows, the keys."""
KEEP_ROWS_LEAVE = 12
"""Rows the agents' panes keep above it; a shorter window keeps the tiny layout."""
NOTIFY_TIMEOUT_S = 10.0
TOASTS_FROM_ROWS = 18
"""Shorter screens say notices in the header instead of toasts over the table."""
ACTIVE_STATUSES: tuple[TaskStatus, ...] = (TaskStatus.RUNNING, TaskStatus.WAITING)
"""A task in these can be marked done."""
RETRYABLE_STATUSES: tuple[TaskStatus, ...] = (
    TaskStatus.FAILED,
    TaskStatus.KILLED,
    TaskStatus.BLOCKED,
)
W = TypeVar("W", bound=Widget)
VIEWS: dict[str, type[View]] = {
    "diff": DiffView,
    "log": LogView,
    "graph": GraphView,
    "merge": MergeView,
}


@dataclass
class Polled(Message):
    """A poll finished (posted from the poll thread)."""

    snapshot: Snapshot


@dataclass
class PollFailed(Message):
    """A poll could not read the store (posted from the poll thread)."""

    error: str


class DashboardApp(App[int]):
    """The dashboard of one run."""

    CSS_PATH = "dashboard.tcss"
    TITLE = "limitless"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "view('diff')", "diff"),
        Binding("l", "view('log')", "log"),
        Binding("g", "view('graph')", "graph"),
        Binding("m", "view('merge')", "merge"),
        Binding("k", "kill", "kill"),
        Binding("r", "retry", "retry", show=False),
        Binding("D", "mark_done", "done", show=False),
        Binding("z", "zoom", "zoom", show=False),
        Binding("f", "follow", "follow"),
        Binding("enter", "jump", "pane", show=False),
        Binding("question_mark", "help", "keys"),
        Binding("q", "quit_dashboard", "quit"),
        Binding("escape", "close_view", "back", show=False),
    ]
    VERTICAL_BREAKPOINTS = [(0, "-tiny"), (7, "-short"), (18, "-tall")]  # noqa: RUF012 - textual reads it

    def __init__(
        self,
        state_dir: Path,
        run_id: str,
        *,
        socket_name: str | None = None,
        interval: float = DEFAULT_INTERVAL_S,
    ) -> None:
        super().__init__()
        self.monitor = Monitor(state_dir, run_id, socket_name)
        self.run_id = run_id
        self.interval = interval
        self.snapshot: Snapshot | None = None
        self.polls = 0
        self.problem = ""
        self._focus: str | None = None
        self._rows_kept_at = Size(0, 0)
        self._note: HeaderNote | None = None

    # -- layout -------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        yield TaskTable(id="tasks")
        yield Ticker(id="ticker")
        yield Detail(id="detail")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"limitless · {self.run_id}"
        self._main(TaskTable).focus()
        self.call_after_refresh(self._start_poll)

    def _keep_rows(self) -> None:
        """In the run's own pane, keep the rows that show the table's first rows
        (looked at on the poll after the size changed: the App gets no resize event)."""
        if self.size == self._rows_kept_at:
            return
        self._rows_kept_at = self.size
        pane = os.environ.get("TMUX_PANE")
        if pane and self.size.height < KEEP_ROWS:
            self._in_thread(
                lambda: self.monitor.keep_rows(pane, KEEP_ROWS, KEEP_ROWS_LEAVE), "tmux"
            )

    # -- polling ------------------------------------------------------------------

    def _start_poll(self) -> None:
        self.run_worker(self._poll, thread=True, group="poll", name="poll", exit_on_error=False)

    def _poll(self) -> None:
        """Runs in a thread: one poll, then a message back to the event loop."""
        try:
            snapshot = self.monitor.poll(focus=self._focus)
        except (LimitlessError, OSError) as exc:
            self.post_message(PollFailed(str(exc)))
            return
        self.post_message(Polled(snapshot))

    def _arm(self) -> None:
        if self.is_running:
            self.set_timer(self.interval, self._start_poll)

    def on_polled(self, message: Polled) -> None:
        self.problem = ""
        try:
            self._apply(message.snapshot)
        except NoMatches:
            return  # a poll that ends while the app closes has nowhere to go
        self._arm()

    def on_poll_failed(self, message: PollFailed) -> None:
        self.problem = message.error
        if self.snapshot is not None:
            self._main(HeaderBar).show(self.snapshot, self.problem, self._live_note())
        self._arm()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A bug in a poll must not stop the polling: say it and go on."""
        if event.worker.group == "poll" and event.state is WorkerState.ERROR:
            self.problem = f"poll failed: {event.worker.error!r}"
            if self.snapshot is not None:
                self._main(HeaderBar).show(self.snapshot, self.problem, self._live_note())
            self._arm()

    def _apply(self, snapshot: Snapshot) -> None:
        self._keep_rows()
        self.snapshot = snapshot
        self.polls += 1
        self._main(HeaderBar).show(snapshot, self.problem, self._live_note())
        table = self._main(TaskTable)
        table.show(snapshot)
        self._focus = table.selected_id
        self._show_ticker(snapshot)
        self._main(Detail).show(snapshot.task(self._focus))
        for screen in self.screen_stack:
            if isinstance(screen, View):
                screen.show(snapshot)
        for notice in snapshot.notices:
            self.notify(notice.text, severity=notice.severity, timeout=NOTIFY_TIMEOUT_S)
        if snapshot.notices:
            texts = [notice.text for notice in snapshot.notices]
            self._in_thread(lambda: self._alert(texts), "alert")

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """A toast, except in a short pane (the run's bottom one), where a toast
        would cover the table: there the header says it for a while."""
        if self.size.height >= TOASTS_FROM_ROWS:
            super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)
            return
        shown = timeout if timeout is not None else NOTIFY_TIMEOUT_S
        self._note = HeaderNote(message, severity, time.monotonic() + shown)
        if self.snapshot is not None and self.screen_stack:
            self._main(HeaderBar).show(self.snapshot, self.problem, self._live_note())

    def _show_ticker(self, snapshot: Snapshot) -> None:
        """The ticker line, only while it shows (tiny panes): no work on other ticks."""
        ticker = self._main(Ticker)
        if ticker.display:
            ticker.show(snapshot, self._focus)

    def _live_note(self) -> HeaderNote | None:
        if self._note is not None and time.monotonic() >= self._note.until:
            self._note = None
        return self._note

    def _alert(self, texts: list[str]) -> None:
        """tmux status-line messages and a bell (in a thread)."""
        self.monitor.alert(" · ".join(texts))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "tasks" or self.snapshot is None:
            return
        self._focus = str(event.row_key.value) if event.row_key.value is not None else None
        self._show_ticker(self.snapshot)
        self._main(Detail).show(self.snapshot.task(self._focus))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "tasks":
            self.action_jump()

    # -- helpers ------------------------------------------------------------------

    def _main(self, kind: type[W]) -> W:
        """A widget of the main screen, also while a view or dialog is pushed over it
        (`App.query_one` searches only the screen on top)."""
        if not self.screen_stack:
            msg = "the app is closing"
            raise NoMatches(msg)
        return self.screen_stack[0].query_one(kind)

    def _in_thread(self, work: Callable[[], object], group: str) -> None:
        """Run `work()` (tmux, git or a store write) off the event loop; report failures."""

        def run() -> None:
            try:
                work()
            except (LimitlessError, OSError, ValueError) as exc:
                self.call_from_thread(self.notify, str(exc), severity="error")

        self.run_worker(run, thread=True, group=group, exit_on_error=False)

    @property
    def following(self) -> bool:
        """Whether the cursor follows the task that needs watching (`f`)."""
        return self._main(TaskTable).following

    def selected_task(self) -> TaskView | None:
        if self.snapshot is None:
            return None
        return self.snapshot.task(self._main(TaskTable).selected_id)

    def _task_or_say(self) -> TaskView | None:
        task = self.selected_task()
        if task is None:
            self.notify("no task selected", severity="warning")
        return task

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """No dashboard key works while a dialog is open (it has its own keys)."""
        return not isinstance(self.screen, ModalScreen)

    # -- actions ------------------------------------------------------------------

    def action_follow(self) -> None:
        """Turn on or off the cursor following the task that needs watching."""
        table = self._main(TaskTable)
        table.following = not table.following
        if table.following:
            table.follow()
            self.notify("following: the cursor goes to the task that needs watching")
        else:
            self.notify("not following: the cursor stays where you put it")

    def action_view(self, name: str) -> None:
        task = self.selected_task()
        if name in ("diff", "log") and task is None:
            self.notify("no task selected", severity="warning")
            return
        while isinstance(self.screen, View):
            self.pop_screen()
        self.push_screen(VIEWS[name](self.monitor, task.id if task else None, self.snapshot))

    def action_close_view(self) -> None:
        if isinstance(self.screen, View):
            self.pop_screen()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_quit_dashboard(self) -> None:
        """Quit the dashboard only: nothing is written, the run goes on."""
        self.exit(0)

    def action_jump(self) -> None:
        task = self._task_or_say()
        if task is None:
            return
        if not task.pane_id:
            self.notify(f"{task.id} has no pane yet ({task.status})", severity="warning")
            return
        pane = task.pane_id
        self._in_thread(lambda: self.monitor.jump(pane), "tmux")
        if not os.environ.get("TMUX"):
            self.notify(
                f"selected pane {pane} of {task.id}; `limitless attach {self.run_id}` shows it"
            )

    def action_zoom(self) -> None:
        task = self._task_or_say()
        if task is None:
            return
        if not task.pane_id:
            self.notify(f"{task.id} has no pane yet ({task.status})", severity="warning")
            return
        pane = task.pane_id
        self._in_thread(lambda: self.monitor.zoom(pane), "tmux")

    def action_kill(self) -> None:
        task = self._task_or_say()
        if task is None:
            return
        if task.status.terminal:
            self.notify(f"{task.id} is already {task.status}", severity="warning")
            return
        task_id = task.id

        def answered(yes: bool | None) -> None:
            if yes:
                self._request(ControlAction.KILL, task_id)

        self.push_screen(
            ConfirmScreen(f"Kill task {task_id} ({task.status})? Its process tree stops.", "Kill"),
            answered,
        )

    def action_retry(self) -> None:
        task = self._task_or_say()
        if task is None:
            return
        if task.status not in RETRYABLE_STATUSES:
            self.notify(
                f"{task.id} is {task.status}: only failed, killed or blocked tasks are retried",
                severity="warning",
            )
            return
        self._request(ControlAction.RETRY, task.id)

    def action_mark_done(self) -> None:
        task = self._task_or_say()
        if task is None:
            return
        if task.status not in ACTIVE_STATUSES:
            self.notify(
                f"{task.id} is {task.status}: only running or waiting tasks can be marked done",
                severity="warning",
            )
            return
        self._request(ControlAction.DONE, task.id)

    def _request(self, action: ControlAction, task_id: str) -> None:
        def work() -> None:
            self.monitor.request(action, task_id)
            self.call_from_thread(self.notify, f"{action} {task_id}: requested")

        self._in_thread(work, "request")


def run_dashboard(
    state_dir: Path,
    run_id: str,
    *,
    socket_name: str | None,
    interval: float = DEFAULT_INTERVAL_S,
) -> int:
    """Show the dashboard of `run_id` until the user quits; returns the exit code (0)."""
    with Store.open(state_dir) as store:
        store.get_run(run_id)  # UsageError naming the known runs, before the screen changes
    app = DashboardApp(state_dir, run_id, socket_name=socket_name, interval=interval)
    result = app.run()
    return result if isinstance(result, int) else 0
