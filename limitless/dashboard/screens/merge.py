"""The merge view: per branch its merge order, status, conflicted files and gate output."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import ScrollableContainer
from textual.widgets import DataTable, Footer, Static

from limitless.dashboard.model import Snapshot
from limitless.dashboard.screens.view import View
from limitless.dashboard.widgets.cells import status_text
from limitless.states import MergeStatus


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
