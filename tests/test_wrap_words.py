"""Lines cut at spaces for a narrow pane (a terminal would cut them mid-word)."""

from __future__ import annotations

from limitless.fmt import visible_length, wrap_words

GREEN, RESET = "\x1b[32m", "\x1b[0m"


def test_a_line_that_fits_is_left_alone() -> None:
    assert wrap_words("Reading src/app.py", 25) == ["Reading src/app.py"]


def test_a_long_line_is_cut_at_spaces_and_continued_indented() -> None:
    text = "  Planning: add the order history page with its tests and docs"
    lines = wrap_words(text, 25)
    assert lines == [
        "  Planning: add the order",
        "    history page with its",
        "    tests and docs",
    ]
    assert all(visible_length(line) <= 25 for line in lines)
    assert " ".join(line.strip() for line in lines) == text.strip()


def test_colour_codes_take_no_columns_and_stay_with_their_words() -> None:
    text = f"Running tests: {GREEN}12 passed{RESET} (0 failed) in the shop package"
    lines = wrap_words(text, 25)
    assert all(visible_length(line) <= 25 for line in lines)
    assert "".join(lines).count(GREEN) == 1 and f"{GREEN}12" in lines[0] + lines[1]


def test_a_word_longer_than_the_pane_is_left_whole_and_no_width_cuts_nothing() -> None:
    word = "src/" + "x" * 40 + ".py"
    assert wrap_words(f"✎ Write {word}", 25) == ["✎ Write", f"  {word}"]
    assert wrap_words("a b " * 40, 0) == ["a b " * 40]
