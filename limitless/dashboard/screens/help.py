"""The help dialog: the dashboard's keys."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

KEYS: tuple[tuple[str, str], ...] = (
    ("↑ ↓ / mouse", "select a task"),
    ("f", "follow the task that needs watching (other keys stop it)"),
    ("enter", "go to the task's pane in tmux (window and pane)"),
    ("z", "zoom the task's pane (toggle)"),
    ("d", "diff of the task's branch against its start point"),
    ("l", "the task's full log"),
    ("g", "the task graph, coloured by status"),
    ("m", "the merge view: order, status, conflicts, gate output"),
    ("k", "kill the task (asks first)"),
    ("r", "retry a failed, killed or blocked task"),
    ("D", "mark a running or waiting task done"),
    ("escape", "back from a view"),
    ("?", "this help"),
    ("q", "quit the dashboard (the run goes on)"),
)


class HelpScreen(ModalScreen[None]):
    """The keys, in a box; any of escape, q, ? or enter closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,enter", "close", "close"),
    ]

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, what in KEYS:
            table.add_row(key, what)
        with VerticalScroll(id="help-box"):
            yield Label(
                Text("limitless dashboard — keys (↑ ↓ scroll, escape closes)", style="bold")
            )
            yield Static(table, id="help-keys")
            yield Label(Text("kill, retry and done are requests the supervisor carries out", "dim"))

    def on_mount(self) -> None:
        self.query_one("#help-box").focus()

    def action_close(self) -> None:
        self.dismiss(None)
