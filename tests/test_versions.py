"""Tests for limitless.versions: banners read the same wherever they were printed."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from limitless.versions import GIT, MIN_GIT, MIN_PYTHON, MIN_TMUX, TMUX, parse_version, tool_version


class BannerCase(NamedTuple):
    test_id: str
    text: str
    expected: tuple[int, int] | None


BANNER_CASES = [
    BannerCase("git", "git version 2.39.5\n", (2, 39)),
    BannerCase("git-apple", "git version 2.39.5 (Apple Git-154)", (2, 39)),
    BannerCase("python", "Python 3.11.4\n", (3, 11)),
    BannerCase("tmux", "tmux 3.3a", (3, 3)),
    BannerCase("nothing", "command not found", None),
]


@pytest.mark.parametrize("case", BANNER_CASES, ids=[c.test_id for c in BANNER_CASES])
def test_parse_version(case: BannerCase) -> None:
    """A version banner of git, python or tmux is read as (major, minor)."""
    assert parse_version(case.text) == case.expected


def test_minimums() -> None:
    """The minimums limitless states, one place for each."""
    assert (MIN_GIT, MIN_TMUX, MIN_PYTHON) == ((2, 38), (3, 2), (3, 11))
    assert (GIT.wanted, TMUX.wanted) == ("2.38", "3.2")


def test_tool_version_of_a_missing_tool() -> None:
    """A program that is not there has no banner and no version."""
    assert tool_version(["limitless-no-such-program", "--version"]) == ("", None)


def test_tool_version_of_git() -> None:
    """git's own banner and version, at least the minimum."""
    banner, version = tool_version(GIT.argv)
    assert banner.startswith("git version")
    assert version is not None and version >= MIN_GIT
