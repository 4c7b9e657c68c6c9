"""The dashboard's pieces: header, task table, detail area, and the views and dialogs.

Widgets here only draw `Snapshot`s handed to them (`show(snapshot)`); the app
polls and decides. Views that need more than a snapshot (a diff, a log) fetch
it through the `Monitor` in a thread worker, never on the event loop.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from rich.console import RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, ScrollableContainer, VerticalScroll
from textual.events import Key, MouseDown, Resize
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Label, RichLog, Static
from textual.widgets.data_table import RowDoesNotExist

from limitless import fmt
from limitless.dashboard.model import Monitor, Snapshot, TaskView
from limitless.errors import LimitlessError
from limitless.fmt import RUN_LOOKS, STATUS_ICONS, STATUS_STYLES, duration
from limitless.plan.graph import Dag
from limitless.states import MergeStatus, TaskStatus
from limitless.views.status import label

_EIGHTHS = " ▏▎▍▌▋▊▉"
MAX_DIFF_CHARS = 400_000
"""A bigger diff is cut there (with a note): rendering it whole would stall the view."""
LOG_LINES = 20_000


# ----------------------------------------------------------------------------- cells


def status_text(status: str) -> Text:
    """`▶ running`, `? needs input`, coloured by status."""
    return Text(
        f"{STATUS_ICONS.get(status, '•')} {label(status)}", style=STATUS_STYLES.get(status, "")
    )


def in_table_order(tasks: Sequence[TaskView]) -> list[TaskView]:
    """Tasks that need input first (a person is wanted there), then the plan's order."""
    return sorted(tasks, key=lambda task: not task.needs_input)


def bar(fraction: float, width: int, style: str = "green") -> Text:
    """A bar of `width` cells filled to `fraction` (eighths of a cell), the rest dim."""
    fraction = min(1.0, max(0.0, fraction))
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    filled = "█" * full + (_EIGHTHS[part] if part and full < width else "")
    text = Text(filled, style=style)
    text.append("░" * (width - len(filled)), style="grey35")
    return text


def progress_text(task: TaskView, width: int = 4) -> Text:
    """`███▌ 62%` (the agent's figure) or the same dimmed (an estimate); blank if unknown;
    `✓ in 24s` for an idle agent whose task is done then unless the user types."""
    if task.idle_done_at is not None and task.state == "idle":
        left = max(0.0, task.idle_done_at - time.time())
        return Text(f"✓ in {left:.0f}s", style=STATUS_STYLES["idle"])
    if task.progress is None:
        return Text("")
    style = "dim " + STATUS_STYLES.get(str(task.status), "") if task.progress_estimated else ""
    text = bar(task.progress / 100, width, style or STATUS_STYLES.get(str(task.status), "green"))
    text.append(f" {task.progress:3.0f}%", style="dim" if task.progress_estimated else "")
    return text


def plural(count: int, word: str) -> str:
    """`1 file`, `3 files`."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def megabytes(value: float | None) -> str:
    if value is None:
        return ""
    if value >= 1024:
        return f"{value / 1024:.1f}G"
    return f"{value:.0f}M"


def money(value: float | None) -> str:
    return "" if value is None else fmt.money(value)


def changes_text(task: TaskView) -> Text:
    if not (task.insertions or task.deletions):
        return Text("")
    return Text.assemble((f"+{task.insertions}", "green"), " ", (f"−{task.deletions}", "red"))


CONFLICTS_WIDTH = 9


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
    Column("cost", "cost", 6, 60, "right"),
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
        "cost": money(task.cost),
        "last": Text(task.last_line, style="" if running else "dim"),
    }


# ----------------------------------------------------------------------------- main screen


class Quiet(Static):
    """A Static that skips the redraw when nothing changed, and never asks for a layout:
    its size comes from the stylesheet (fixed height, or a share of its parent), not
    from its content — a layout of the whole screen every second cost more than the
    redraw itself."""

    _shown: object = None

    def draw(self, content: Text | str) -> None:
        if content != self._shown:
            self._shown = content
            self.update(content, layout=False)


@dataclass(frozen=True)
class HeaderNote:
    """A notice the header shows until `until` (monotonic), in a pane too short for toasts."""

    text: str
    severity: str
    until: float


NOTE_STYLES = {"error": "bold red", "warning": "bold yellow", "information": "bold cyan"}


class HeaderBar(Quiet):
    """Two lines: who and what (run, plan, base, status, time); how far (bar, slots, cost)."""

    def show(self, snapshot: Snapshot, problem: str = "", notice: HeaderNote | None = None) -> None:
        width = max(40, (self.size.width or 80) - 2)
        status = str(snapshot.status)
        first = Text(no_wrap=True, overflow="ellipsis")
        if width >= 100:
            first.append("◆ limitless ", style="bold magenta")
        first.append(snapshot.run_id, style="bold")
        first.append("  plan " if width >= 100 else "  ", style="dim")
        first.append(snapshot.plan_name)
        first.append("  base " if width >= 100 else " → ", style="dim")
        first.append(snapshot.base)
        first.append("  ")
        look = RUN_LOOKS.get(status)
        first.append(f"{look.icon if look else '•'} {status}", style=look.style if look else "")
        first.append("  ⏱ ", style="dim")
        first.append(duration(snapshot.wall_s))
        fraction = snapshot.done / snapshot.total if snapshot.total else 0.0
        second = Text(no_wrap=True, overflow="ellipsis")
        second.append_text(bar(fraction, max(8, min(30, width // 6)), "green"))
        second.append(f" {snapshot.done}/{snapshot.total} done", style="bold")
        second.append("  slots ", style="dim")
        second.append(f"{snapshot.slots_used}/{snapshot.slots_limit}")
        if snapshot.cost is not None:
            second.append("  cost ", style="dim")
            second.append(money(snapshot.cost))
        second.append("  speedup ", style="dim")
        second.append(f"{snapshot.speedup:.1f}×", style="bold cyan")
        clock = Text(time.strftime("%H:%M:%S", time.localtime(snapshot.at)), style="dim")
        note = problem or "; ".join(snapshot.problems)
        style = "italic red"
        if not note and snapshot.base_moved_to and not snapshot.finished:
            note = f"⚠ stale base: {snapshot.base} moved to {snapshot.base_moved_to[:8]}"
            style = "yellow"
        if not note:
            note, style = snapshot.reason, "italic"
        said = None
        if notice is not None:
            said = Text(notice.text, style=NOTE_STYLES.get(notice.severity, "bold"))
        if (self.size.height or 2) < 2:  # a tiny pane: one line says how far too
            first.append(f"  {snapshot.done}/{snapshot.total} done", style="bold")
            if said is not None:  # the notice instead of the clock, alone if need be
                self.draw(said if first.cell_len + 12 > width else _spread(first, said, width))
                return
            self.draw(_spread(first, clock, width))
            return
        right = said if said is not None and not problem else Text(note, style=style)
        lines = [
            _spread(first, clock, width),
            _spread(second, right, width),
        ]
        self.draw(Text("\n").join(lines))


class Ticker(Quiet):
    """One line for a pane too short for the table: the selected task (in reverse),
    the tasks worth watching, then how many others are in each state."""

    SEPARATOR = "  "

    def show(self, snapshot: Snapshot, selected: str | None) -> None:
        width = max(20, (self.size.width or 80) - 2)
        line = Text(no_wrap=True, overflow="ellipsis")
        watched = [
            task
            for task in snapshot.tasks
            if task.id == selected
            or task.status.active
            or task.merge_status in (MergeStatus.MERGING, MergeStatus.CONFLICT)
        ]
        # the selected one first, then the ones that need input
        watched.sort(key=lambda task: (task.id != selected, not task.needs_input))
        for task in watched:
            status = task.shown_status
            name = f"{STATUS_ICONS.get(status, '•')} {task.id}"
            if task.status is TaskStatus.RUNNING and task.progress is not None:
                name += f" {task.progress:.0f}%"
            elif task.status is TaskStatus.WAITING:
                name += f" {label(task.state)}"
            elif not task.status.active:
                name += f" {label(status)}"
            style = STATUS_STYLES.get(status, "")
            if line:
                line.append(self.SEPARATOR)
            line.append(name, style=f"{style} reverse" if task.id == selected else style)
        counts: dict[str, int] = {}
        for task in snapshot.tasks:
            if task not in watched:
                counts[task.shown_status] = counts.get(task.shown_status, 0) + 1
        # where the words do not fit, the table's icons: "✓ 3"
        in_words = line.cell_len + sum(
            len(f"  {n} {label(status)}") for status, n in counts.items()
        )
        for status, count in counts.items():
            if line:
                line.append(self.SEPARATOR)
            icon = STATUS_ICONS.get(status, "•").strip() or "•"
            shown = f"{count} {label(status)}" if in_words <= width else f"{icon}{count}"
            line.append(shown, style=STATUS_STYLES.get(status, "dim"))
        line.truncate(width, overflow="ellipsis")
        self.draw(line)


def _spread(left: Text, right: Text, width: int) -> Text:
    """`left`, then `right` flush right in what is left of `width` (cut, or dropped)."""
    line = left.copy()
    line.truncate(width, overflow="ellipsis")
    room = width - line.cell_len - 2
    if room >= 4 and right.plain:
        right = right.copy()
        right.truncate(room, overflow="ellipsis")
        line.append(" " * (width - line.cell_len - right.cell_len))
        line.append_text(right)
    return line


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


class TailView(Quiet):
    """The last lines of the selected task's pane (or log, once it ended)."""

    def show(self, task: TaskView | None) -> None:
        if task is None:
            self.border_title = "output"
            self.draw(Text("no task selected", style="dim"))
            return
        where = f"pane {task.pane_id}" if task.active and task.pane_id else "log"
        self.border_title = f"{task.id} · {where}"
        height = max(1, self.size.height or 8)
        lines = task.tail[-height:]
        if not lines:
            self.draw(Text("no output yet", style="dim"))
            return
        self.draw(Text("\n".join(lines), no_wrap=True, overflow="ellipsis"))


class InfoView(Quiet):
    """The selected task's status reason, branch, diffstat, dirty files and conflicts."""

    def show(self, task: TaskView | None) -> None:
        if task is None:
            self.border_title = "task"
            self.draw("")
            return
        self.border_title = task.branch or task.id
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append_text(status_text(task.shown_status))
        if task.attempt:
            text.append(f"  attempt {task.attempt}", style="dim")
        if task.reason:
            text.append("\n")
            text.append(task.reason, style="italic")
        text.append("\n")
        text.append(f"↑{plural(task.ahead, 'commit')}  {plural(task.files_changed, 'file')}")
        if task.insertions or task.deletions:
            text.append("  ")
            text.append_text(changes_text(task))
        if task.head:
            text.append(f"  @{task.head[:10]}", style="dim")
        if task.dirty_files:
            shown = ", ".join(task.dirty_files[:4])
            more = f" +{len(task.dirty_files) - 4}" if len(task.dirty_files) > 4 else ""
            text.append(f"\n✎ uncommitted: {shown}{more}", style="yellow")
        if task.conflicts:
            text.append(f"\n⚠ predicted conflicts with {', '.join(task.conflicts)}", style="red")
        if task.merge_status is not MergeStatus.UNMERGED:
            text.append("\nmerge ", style="dim")
            text.append_text(status_text(str(task.merge_status)))
            if task.merge_reason:
                text.append(f" — {task.merge_reason}", style="italic")
        if task.diffstat:
            width = max(20, (self.content_size.width or 40))
            for line in diffstat_lines(task.diffstat, width):
                text.append("\n")
                text.append_text(line)
        self.draw(text)


_STAT_LINE = re.compile(r"^\s*(?P<path>.+?)\s+\|\s+(?P<count>\d+|Bin.*?)\s*(?P<bar>[+-]*)\s*$")


def diffstat_lines(diffstat: str, width: int) -> list[Text]:
    """`git diff --stat` redrawn for `width` cells: long paths lose their start, not the
    figures (`…/ProductGrid.tsx  13 ++++`); the summary line is kept as it is."""
    parsed: list[tuple[str, str, int, int] | str] = []
    for raw in diffstat.splitlines():
        match = _STAT_LINE.match(raw)
        if match is None:
            if raw.strip():
                parsed.append(raw.strip())
            continue
        bars = match["bar"]
        parsed.append((match["path"], match["count"], bars.count("+"), bars.count("-")))
    entries = [entry for entry in parsed if isinstance(entry, tuple)]
    bar_width = max(1, min(12, width // 4))
    count_width = max((len(entry[1]) for entry in entries if entry[1].isdigit()), default=1)
    longest = max((len(entry[0]) for entry in entries), default=0)
    path_width = max(6, min(longest, width - count_width - bar_width - 2))
    lines: list[Text] = []
    for entry in parsed:
        if isinstance(entry, str):
            summary = Text(entry, style="dim")
            summary.truncate(width, overflow="ellipsis")
            lines.append(summary)
            continue
        path, count, plus, minus = entry
        if plus + minus > bar_width:
            plus = round(plus * bar_width / (plus + minus))
            minus = bar_width - plus
        if len(path) > path_width:
            path = "…" + path[len(path) - path_width + 1 :]
        line = Text(path.ljust(path_width))
        if not count.isdigit():  # a binary file: "Bin 0 -> 10 bytes"
            line.append(f" {count}", style="dim")
            line.truncate(width, overflow="ellipsis")
            lines.append(line)
            continue
        line.append(f" {count.rjust(count_width)} ", style="bold")
        line.append("+" * plus, style="green")
        line.append("-" * minus, style="red")
        line.truncate(width, overflow="ellipsis")
        lines.append(line)
    return lines


class Detail(Horizontal):
    """The area under the table: output tail on the left, facts on the right."""

    def compose(self) -> ComposeResult:
        yield TailView(id="tail")
        yield InfoView(id="info")

    def show(self, task: TaskView | None) -> None:
        self.query_one(TailView).show(task)
        self.query_one(InfoView).show(task)


# ----------------------------------------------------------------------------- views


class View(Screen[None]):
    """A full-screen view over the dashboard; `escape` goes back, the app's keys still work."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.close_view", "back")]

    def __init__(
        self, monitor: Monitor, task_id: str | None, snapshot: Snapshot | None = None
    ) -> None:
        super().__init__()
        self.monitor = monitor
        self.task_id = task_id
        self.first = snapshot

    def on_mount(self) -> None:
        """Draw the snapshot the view was opened with now (the next poll may be a second away)."""
        self.prepare()
        if self.first is not None:
            self.show(self.first)

    def prepare(self) -> None:
        """Set up what `show` needs (runs once, after compose, before the first `show`)."""

    def show(self, snapshot: Snapshot) -> None:
        """Called on every poll while the view is open."""


class DiffView(View):
    """`git diff` of the task's branch against its start point, highlighted and scrollable."""

    def __init__(
        self, monitor: Monitor, task_id: str | None, snapshot: Snapshot | None = None
    ) -> None:
        super().__init__(monitor, task_id, snapshot)
        self._head: str | None = None
        self._loading = False
        self.text = ""

    def compose(self) -> ComposeResult:
        yield Static(id="view-title", classes="view-title")
        with ScrollableContainer(id="diff-scroll"):
            yield Static(Text("loading the diff…", style="dim"), id="diff")
        yield Footer()

    def prepare(self) -> None:
        self.query_one("#view-title", Static).update(Text(f"diff · {self.task_id}", "bold"))
        self._load()

    def show(self, snapshot: Snapshot) -> None:
        task = snapshot.task(self.task_id)
        if task is None:
            return
        self.query_one("#view-title", Static).update(
            Text.assemble(
                ("diff ", "bold"),
                (task.id, "bold"),
                f"  {task.branch}  ",
                (f"{plural(task.files_changed, 'file')} ", "dim"),
                changes_text(task),
                ("  (uncommitted changes not shown)" if task.dirty else "", "yellow"),
            )
        )
        if task.head != self._head and not self._loading:
            self._head = task.head
            self._load()

    def _load(self) -> None:
        if self.task_id is None:
            return
        self._loading = True
        self.run_worker(self._fetch, thread=True, group="diff", exclusive=True)

    def _fetch(self) -> None:
        task_id = self.task_id or ""
        try:
            text = self.monitor.diff(task_id)
            error = ""
        except (LimitlessError, OSError) as exc:
            text, error = "", str(exc)
        self.app.call_from_thread(self._loaded, text, error)

    def _loaded(self, text: str, error: str) -> None:
        self._loading = False
        if not self.is_attached:
            return
        self.text = text
        body = self.query_one("#diff", Static)
        if error:
            body.update(Text(f"cannot show the diff: {error}", style="red"))
            return
        if not text.strip():
            body.update(Text("no committed changes on this branch yet", style="dim"))
            return
        note = ""
        if len(text) > MAX_DIFF_CHARS:
            cut = text.rfind("\n", 0, MAX_DIFF_CHARS)
            hidden = text.count("\n", cut)
            text, note = text[:cut], f"\n… {hidden} more lines: run `git diff` to see them all"
        renderable: RenderableType = Syntax(
            text + note, "diff", theme="ansi_dark", word_wrap=False, background_color="default"
        )
        body.update(renderable)


def _printable_line(line: str) -> str:
    """What a terminal would have left of a line rewritten with carriage returns."""
    return line.rsplit("\r", 1)[-1] if "\r" in line.rstrip("\r") else line.rstrip("\r")


class LogView(View):
    """The task's whole log (its last `LOG_LINES` lines), colours rendered, following."""

    def __init__(
        self, monitor: Monitor, task_id: str | None, snapshot: Snapshot | None = None
    ) -> None:
        super().__init__(monitor, task_id, snapshot)
        self._offset = 0
        self._partial = b""
        self._loading = False
        self.lines_written = 0

    def compose(self) -> ComposeResult:
        yield Static(Text(f"log · {self.task_id}", style="bold"), classes="view-title")
        yield RichLog(id="log", max_lines=LOG_LINES, wrap=False, markup=False, highlight=False)
        yield Footer()

    def show(self, snapshot: Snapshot) -> None:
        self._load()

    def _load(self) -> None:
        if self.task_id is None or self._loading:
            return
        self._loading = True
        self.run_worker(self._fetch, thread=True, group="log")

    def _fetch(self) -> None:
        try:
            data, offset = self.monitor.read_log(self.task_id or "", self._offset)
        except (LimitlessError, OSError) as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self._loaded, data, offset)

    def _failed(self, error: str) -> None:
        self._loading = False
        if self.is_attached:
            self.query_one(RichLog).write(Text(f"cannot read the log: {error}", style="red"))

    def _loaded(self, data: bytes, offset: int) -> None:
        self._loading = False
        if not self.is_attached:
            return
        if offset < self._offset:  # the log was replaced (a new attempt)
            self._partial = b""
            self.query_one(RichLog).clear()
        self._offset = offset
        data = self._partial + data
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        if not cut:
            return
        log = self.query_one(RichLog)
        for line in data[:cut].decode("utf-8", errors="replace").split("\n")[:-1]:
            log.write(Text.from_ansi(_printable_line(line), no_wrap=True))
            self.lines_written += 1


def graph_text(dag: Dag, snapshot: Snapshot) -> Text:
    """`Dag.render_ascii` with every task id and status coloured by the task's status."""
    statuses = snapshot.statuses
    drawing = Text(dag.render_ascii(statuses))
    ids = sorted(statuses, key=len, reverse=True)
    if ids:
        pattern = re.compile(
            r"(?<![\w.\-])(" + "|".join(re.escape(i) for i in ids) + r")(?![\w\-])"
        )
        for match in pattern.finditer(drawing.plain):
            style = STATUS_STYLES.get(statuses.get(match.group(1), ""), "")
            drawing.stylize(style, match.start(), match.end())
    for status, style in STATUS_STYLES.items():
        drawing.highlight_words([f"[{status}]"], style=style)
    drawing.highlight_regex(r"^wave \d+", style="bold underline")
    drawing.highlight_regex(r"critical path:", style="bold magenta")
    return drawing


class GraphView(View):
    """The task graph by waves, each task coloured by its status."""

    def compose(self) -> ComposeResult:
        yield Static(Text("graph", style="bold"), classes="view-title")
        with ScrollableContainer(id="graph-scroll"):
            yield Static(id="graph")
        yield Footer()

    def prepare(self) -> None:
        self._dag: Dag | None = None
        plan = self.monitor.plan()
        if plan is not None:
            try:
                self._dag = Dag.from_tasks(plan.tasks)
            except LimitlessError:
                self._dag = None

    def show(self, snapshot: Snapshot) -> None:
        legend = Text("  ")
        for status in (
            "pending",
            "ready",
            "running",
            "needs_input",
            "idle",
            "waiting",
            "done",
            "failed",
            "merged",
        ):
            legend.append_text(status_text(status))
            legend.append("  ")
        self.query_one(".view-title", Static).update(
            Text.assemble(("graph ", "bold"), (snapshot.run_id, "bold"), legend)
        )
        body = self.query_one("#graph", Static)
        if self._dag is None:
            listing = Text()
            for task in snapshot.tasks:
                listing.append_text(status_text(task.shown_status))
                listing.append(f"  {task.id}\n")
            body.update(listing)
            return
        body.update(graph_text(self._dag, snapshot))


class MergeView(View):
    """Per task branch: merge order, merge status, conflicted files, merge reason or gate output.

    The table shows each reason's first line; the selected branch's whole reason
    (a failed gate's output tail) is shown under it."""

    def compose(self) -> ComposeResult:
        yield Static(Text("merge", style="bold"), classes="view-title")
        yield DataTable[Text](id="merge-table", cursor_type="row", zebra_stripes=True)
        with ScrollableContainer(id="merge-detail-scroll"):
            yield Static(id="merge-detail")
        yield Footer()

    def prepare(self) -> None:
        self._snapshot: Snapshot | None = None
        table = self.query_one("#merge-table", DataTable)
        for key, heading in (
            ("order", "order"),
            ("task", "task"),
            ("merge", "merge"),
            ("files", "conflicted files"),
            ("reason", "merge reason / gate output"),
            ("status", "task status"),
            ("predicted", "predicted conflicts"),
        ):
            table.add_column(heading, key=key)
        table.focus()

    def show(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        title = Text.assemble(("merge ", "bold"), (snapshot.run_id, "bold"), "  ")
        title.append_text(status_text(str(snapshot.status)))
        if snapshot.reason:
            title.append(f"  {snapshot.reason}", style="italic")
        self.query_one(".view-title", Static).update(title)
        table: DataTable[Text] = self.query_one("#merge-table", DataTable)
        cursor = table.cursor_row
        table.clear()
        ordered = sorted(
            snapshot.tasks,
            key=lambda t: (t.merge_order is None, t.merge_order or 0),
        )
        for task in ordered:
            first_line = task.merge_reason.strip().splitlines()[0] if task.merge_reason else ""
            table.add_row(
                Text(str(task.merge_order) if task.merge_order is not None else "–"),
                Text(task.id, style="bold"),
                status_text(str(task.merge_status)),
                Text(", ".join(task.conflict_files), style="bold red"),
                Text(first_line, style="italic"),
                status_text(task.state),
                Text(", ".join(task.conflicts), style="red"),
                key=task.id,
            )
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))
        self._show_detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        table: DataTable[Text] = self.query_one("#merge-table", DataTable)
        detail = self.query_one("#merge-detail", Static)
        if self._snapshot is None or not table.row_count:
            detail.update("")
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        task = self._snapshot.task(str(key))
        if task is None:
            detail.update("")
            return
        text = Text.assemble((task.id, "bold"), "  ")
        text.append_text(status_text(str(task.merge_status)))
        if task.conflict_files:
            text.append(f"\nconflicted files: {', '.join(task.conflict_files)}", style="red")
        if task.merge_reason:
            text.append("\n")
            text.append(task.merge_reason.rstrip(), style="")
        elif task.merge_status is MergeStatus.UNMERGED:
            text.append("\nnot merged yet", style="dim")
        detail.update(text)


# ----------------------------------------------------------------------------- dialogs


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


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; dismisses with True only on an explicit yes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "yes"),
        Binding("n,escape", "answer(False)", "no"),
    ]

    def __init__(self, question: str, yes: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Grid(id="confirm-box"):
            yield Label(self.question, id="confirm-question")
            yield Button(f"{self.yes} (y)", variant="error", id="confirm-yes")
            yield Button("Cancel (n)", variant="primary", id="confirm-no")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


ACTIVE_STATUSES: tuple[TaskStatus, ...] = (TaskStatus.RUNNING, TaskStatus.WAITING)
RETRYABLE_STATUSES: tuple[TaskStatus, ...] = (
    TaskStatus.FAILED,
    TaskStatus.KILLED,
    TaskStatus.BLOCKED,
)
