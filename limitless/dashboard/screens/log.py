"""The log view: the task's whole log, colours rendered, following."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Footer, RichLog, Static

from limitless.dashboard.model import Monitor, Snapshot
from limitless.dashboard.screens.view import View
from limitless.errors import LimitlessError

LOG_LINES = 20_000


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
