"""Command line: argument parsing and output formatting only."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    print("limitless: not built yet")
    return 2
