"""The graph view: the task graph by waves, each task coloured by its status."""

from __future__ import annotations

import re

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import ScrollableContainer
from textual.widgets import Footer, Static

from limitless.dashboard.model import Snapshot
from limitless.dashboard.screens.view import View
from limitless.dashboard.widgets.cells import status_text
from limitless.errors import LimitlessError
from limitless.fmt import STATUS_STYLES
from limitless.plan.graph import Dag


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
