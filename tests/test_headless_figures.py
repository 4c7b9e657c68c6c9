"""The live figures a headless renderer keeps beside its facts file (read over SSH for a
task on another host)."""

from __future__ import annotations

from limitless.programs import StreamFacts
from limitless.programs.headless_run import Figures, figures_json, parse_figures


def test_figures_read_back_what_was_written() -> None:
    facts = StreamFacts(session_id="abc-123", cost_usd=0.0125, progress=0.5)
    assert parse_figures(figures_json(facts)) == Figures(0.0125, "abc-123", 0.5)


def test_no_figures_yet_or_a_cut_file_reads_as_none() -> None:
    assert parse_figures("") is None
    assert parse_figures('{"cost_usd": 0.1') is None
    assert parse_figures("[1, 2]") is None


def test_figures_of_the_wrong_type_are_left_out() -> None:
    text = '{"cost_usd": "a lot", "session_id": 7, "progress": null}'
    assert parse_figures(text) == Figures(None, None, None)
