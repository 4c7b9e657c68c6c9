"""`Quiet`: the Static every redrawn-each-second widget builds on."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


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
