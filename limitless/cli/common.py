"""What every command group of the command line shares: the handler and registration
types, and printing JSON documents and live lines."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

Handler = Callable[[argparse.Namespace], int]
"""A command: parsed arguments in, exit code out."""
Command = Callable[[str, str, Handler], argparse.ArgumentParser]
"""Registers a command (name, help, handler) with the main parser; its own parser back.
A help of `argparse.SUPPRESS` keeps the command out of `--help`."""


def print_json(document: object) -> None:
    """One JSON document on stdout (and nothing else there)."""
    json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def print_flush(line: str) -> None:
    """A line of live progress, shown at once."""
    print(line, flush=True)
