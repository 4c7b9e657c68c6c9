"""The diff view: the task's branch against its start point, highlighted."""

from __future__ import annotations

from rich.console import RenderableType
from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import ScrollableContainer
from textual.widgets import Footer, Static

from limitless.dashboard.model import Monitor, Snapshot
from limitless.dashboard.screens.view import View
from limitless.dashboard.widgets.cells import changes_text, plural
from limitless.errors import LimitlessError

MAX_DIFF_CHARS = 400_000
"""A bigger diff is cut there (with a note): rendering it whole would stall the view."""


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
