"""Command line of reports: report, events, stats. (Stub: filled in by the reports issue.)"""

from __future__ import annotations

import argparse
from collections.abc import Callable

Handler = Callable[[argparse.Namespace], int]
Command = Callable[[str, str, Handler], argparse.ArgumentParser]


def add_commands(command: Command) -> None:
    """Register this module's commands with the main parser."""
