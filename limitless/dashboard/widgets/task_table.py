"""The task table: one row per task, its columns chosen to fit the width; the cursor
follows the task that needs watching.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from rich.text import Text
from textual.events import Key, MouseDown, Resize
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from limitless.dashboard.model import Snapshot, TaskView
from limitless.dashboard.widgets.cells import (
    changes_text,
    megabytes,
    money,
    progress_text,
    status_text,
)
from limitless.fmt import duration
from limitless.states import MergeStatus, TaskStatus


def in_table_order(tasks: Sequence[TaskView]) -> list[TaskView]:
    """Tasks that need input first (a person is wanted there), then the plan's order."""
    return sorted(tasks, key=lambda task: not task.needs_input)


CONFLICTS_WIDTH = 9
COST_WIDTH = 6  # `$0.083`: money() keeps the decimals that fit


@dataclass(frozen=True)
class Column:
    """A task table column: `width` excludes the one-space gap before it; lower `rank`
    columns drop first when the table is narrow."""

    key: str
    label: str
    width: int
    rank: int
    justify: Literal["left", "right"] = "left"


COLUMNS: tuple[Column, ...] = (
    Column("id", "task", 12, 100),
    Column("status", "status", 13, 100),
    Column("attempt", "#", 2, 35, "right"),
    Column("agent", "agent", 6, 20),
    Column("progress", "progress", 9, 90),
    Column("elapsed", "time", 6, 85, "right"),
    Column("ahead", "↑", 3, 70, "right"),
    Column("files", "files", 5, 50, "right"),
    Column("lines", "+/−", 9, 55, "right"),
    Column("dirty", "✎", 1, 45),
    Column("conflicts", "conflicts", CONFLICTS_WIDTH, 40),
    Column("cpu", "cpu", 4, 30, "right"),
    Column("mem", "mem", 5, 25, "right"),
    Column("cost", "cost", COST_WIDTH, 60, "right"),
    Column("last", "last line", 0, 100),
)
LAST_LINE_MIN = 14
"""The last line column is never narrower (at 110 cells and more; wider below)."""
ID_WIDTH_RANGE = (4, 18)


def choose_columns(width: int, id_width: int) -> tuple[tuple[Column, ...], int]:
    """The columns that fit `width` cells (dropping low ranks first) and the last line's width."""
    id_width = max(ID_WIDTH_RANGE[0], min(ID_WIDTH_RANGE[1], id_width))
    columns = [
        Column(c.key, c.label, id_width, c.rank) if c.key == "id" else c
        for c in COLUMNS
        if c.key != "last"
    ]

    def used() -> int:
        return sum(c.width + 1 for c in columns) + 1  # + the gap before the last line

    wanted = LAST_LINE_MIN + max(0, 110 - width) // 3
    while used() + wanted > width:
        droppable = [c for c in columns if c.rank < 100]
        if not droppable:
            break
        columns.remove(min(droppable, key=lambda c: c.rank))
    last = Column("last", "last line", max(8, width - used()), 100)
    return (*columns, last), last.width


def cell(value: Text | str, column: Column) -> Text:
    """A cell's text with its leading gap, fitted (cut with an ellipsis) to the column."""
    text = value.copy() if isinstance(value, Text) else Text(value)
    text.truncate(column.width, overflow="ellipsis")
    if column.justify == "right":
        text.pad_left(column.width - text.cell_len)
    else:
        text.pad_right(column.width - text.cell_len)
    text.pad_left(1)
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


def conflicts_cell(others: tuple[str, ...], width: int = CONFLICTS_WIDTH) -> str:
    """`backend,base` when it fits `width`, else the first one cut and a count: `backe…+2`."""
    joined = ",".join(others)
    if len(joined) <= width or len(others) < 2:
        return joined
    more = f"+{len(others) - 1}"
    first = others[0]
    room = width - len(more)
    return (first if len(first) <= room else first[: room - 1] + "…") + more


def task_cells(task: TaskView) -> dict[str, Text | str]:
    """Every column's content for one task (before fitting)."""
    running = task.active
    return {
        "id": Text(task.id, style="bold" if running else ""),
        "status": status_text(task.shown_status),
        "attempt": str(task.attempt) if task.attempt else "",
        "agent": task.agent,
        "progress": progress_text(task),
        "elapsed": duration(task.elapsed) if task.elapsed is not None else "",
        "ahead": str(task.ahead) if task.ahead else "",
        "files": str(task.files_changed) if task.files_changed else "",
        "lines": changes_text(task),
        "dirty": Text("✎", style="yellow") if task.dirty else "",
        "conflicts": Text(conflicts_cell(task.conflicts), style="bold red"),
        "cpu": f"{task.cpu_percent:.0f}%" if task.cpu_percent is not None else "",
        "mem": megabytes(task.rss_mb),
        "cost": money(task.cost, COST_WIDTH),
        "last": Text(task.last_line, style="" if running else "dim"),
    }


ROW_KEY = "row"
"""The task table's one DataTable column: each row is drawn as one line of text."""


def row_text(cells: dict[str, Text | str], columns: tuple[Column, ...]) -> Text:
    """One table line: every column's content fitted to its width, side by side."""
    return Text("", no_wrap=True, overflow="ellipsis").join(
        cell(cells[column.key], column) for column in columns
    )


class TaskTable(DataTable[Text]):
    """One row per task; columns chosen to fit the width (see `choose_columns`).

    Each row is one DataTable cell holding the whole line, laid out by
    `choose_columns`: a changed row costs one cell to render, not fifteen (the
    table is redrawn every second beside twenty busy agents)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", cell_padding=0, zebra_stripes=False)
        self._columns_shown: tuple[Column, ...] = ()
        self._snapshot: Snapshot | None = None
        self._lines: dict[str, Text] = {}
        self.following = True
        """The cursor goes to the task that needs watching (see `task_to_follow`)
        until the user presses a key or clicks here; `f` turns it back on."""

    @property
    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return str(key.value) if key.value is not None else None

    @property
    def headings(self) -> tuple[str, ...]:
        """The labels of the columns shown now."""
        return tuple(column.label for column in self._columns_shown)

    def show(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        id_width = max((len(task.id) for task in snapshot.tasks), default=4)
        width = self.size.width or 80
        columns, _ = choose_columns(width - 1, id_width)  # - the scrollbar
        order = [task.id for task in in_table_order(snapshot.tasks)]
        shown = [str(key.value) for key in self.rows]
        if columns != self._columns_shown or (shown and shown != order):
            self._rebuild(columns, snapshot)
        else:
            self._update(snapshot)
        if self.following:
            self.follow()

    def follow(self) -> None:
        """Move the cursor to the task worth watching now, if another one."""
        if self._snapshot is None:
            return
        target = task_to_follow(self._snapshot.tasks, self.selected_id)
        if target is not None and target != self.selected_id:
            self._select(target)

    def on_key(self, event: Key) -> None:
        if event.key != "f":
            self.following = False

    def on_mouse_down(self, event: MouseDown) -> None:
        self.following = False

    def on_resize(self, event: Resize) -> None:
        if self._snapshot is not None:
            self.show(self._snapshot)

    def _rebuild(self, columns: tuple[Column, ...], snapshot: Snapshot) -> None:
        selected = self.selected_id
        self.clear(columns=True)
        self._lines.clear()
        self._columns_shown = columns
        labels: dict[str, Text | str] = {c.key: Text(c.label, style="bold") for c in columns}
        width = sum(column.width + 1 for column in columns)
        self.add_column(row_text(labels, columns), width=width, key=ROW_KEY)
        for task in in_table_order(snapshot.tasks):
            self._add(task)
        if selected is not None:
            self._select(selected)

    def _add(self, task: TaskView) -> None:
        line = row_text(task_cells(task), self._columns_shown)
        self._lines[task.id] = line
        self.add_row(line, key=task.id)

    def _update(self, snapshot: Snapshot) -> None:
        present = {str(key.value) for key in self.rows}
        for task in snapshot.tasks:
            if task.id not in present:
                self._add(task)
                continue
            line = row_text(task_cells(task), self._columns_shown)
            if self._lines.get(task.id) != line:
                self._lines[task.id] = line
                self.update_cell(task.id, ROW_KEY, line)
        gone = present - {task.id for task in snapshot.tasks}
        for task_id in gone:
            self.remove_row(task_id)
            self._lines.pop(task_id, None)

    def _select(self, task_id: str) -> None:
        try:
            self.move_cursor(row=self.get_row_index(task_id))
        except RowDoesNotExist:
            return

    def select_task(self, task_id: str) -> None:
        self._select(task_id)


def task_to_follow(tasks: Sequence[TaskView], current: str | None) -> str | None:
    """The row a watching user wants in view: a task asking for input first, then a
    branch being merged or in conflict, then a running task (the current one if it
    runs, so the cursor does not hop between running tasks). None: stay."""
    by_id = {task.id: task for task in tasks}
    now = by_id.get(current or "")
    preferences: tuple[Callable[[TaskView], bool], ...] = (
        lambda task: task.needs_input,
        lambda task: task.status is TaskStatus.WAITING and task.state != "idle",
        lambda task: task.merge_status in (MergeStatus.MERGING, MergeStatus.CONFLICT),
        lambda task: task.status is TaskStatus.RUNNING,
    )
    for wanted in preferences:
        if now is not None and wanted(now):
            return now.id
        found = next((task.id for task in tasks if wanted(task)), None)
        if found is not None:
            return found
    return None
