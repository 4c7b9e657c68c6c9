"""What Claude Code charges for scripted usage, so cost tests compute their figure.

Claude Code 2.1.197 prices a request's usage by model family, in USD per
million tokens. Derived on this machine by scripting one answer with 100,000
tokens of one kind at a time and reading `total_cost_usd` (×10):

| family | input | output | cache write (5 m) | cache read |
|--------|-------|--------|-------------------|------------|
| opus   | 5.00  | 25.00  | 6.25              | 0.50       |
| sonnet | 3.00  | 15.00  | 3.75              | 0.30       |
| haiku  | 1.00  |  5.00  | 1.25              | 0.10       |

opus: the default `claude-opus-4-8` (reported as `claude-opus-4-8[1m]`),
`claude-opus-4-6`, `-4-7`, `opus`; `--model claude-opus-4-1` is sent as
`claude-opus-4-8`. sonnet: `claude-sonnet-4-5`, `-4-6`, `claude-sonnet-5`,
`sonnet` (sent as claude-sonnet-5). haiku: `claude-haiku-4-5`, `haiku` (sent as
claude-haiku-4-5-20251001). A model name it does not know (`fake-model`) is
priced as opus. 300,000 input tokens in one request cost exactly 3× 100,000:
no long-context surcharge. `test_claude_cost_follows_the_price_table` keeps
this table honest.

Codex reports no cost: limitless prices its usage itself (OpenAI's list prices,
limitless/programs/codex_rollout.py). `codex_cost` is the figure a test expects,
from OpenAI's published prices (USD per million tokens; the Responses API counts
cached and cache-write tokens inside `input_tokens`):

| model         | input | cached input | cache write | output |
|---------------|-------|--------------|-------------|--------|
| gpt-5.5       | 5.00  | 0.50         | 5.00        | 30.00  |
| gpt-5.6-sol   | 5.00  | 0.50         | 6.25        | 30.00  |
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tests.realagents.script import Usage


@dataclass(frozen=True)
class Prices:
    """USD per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float

    def cost(self, usage: Usage) -> float:
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_creation_input_tokens * self.cache_write
            + usage.cache_read_input_tokens * self.cache_read
        ) / 1_000_000


CLAUDE_PRICES: dict[str, Prices] = {
    "opus": Prices(5.0, 25.0, 6.25, 0.50),
    "sonnet": Prices(3.0, 15.0, 3.75, 0.30),
    "haiku": Prices(1.0, 5.0, 1.25, 0.10),
}


def claude_prices(model: str | None) -> Prices:
    """The price list Claude Code applies to `model` (None: its default, opus)."""
    name = (model or "").lower()
    for family in ("sonnet", "haiku"):
        if family in name:
            return CLAUDE_PRICES[family]
    return CLAUDE_PRICES["opus"]


def claude_cost(model: str | None, usages: Iterable[Usage]) -> float:
    """The `total_cost_usd` Claude Code reports for answers with these usages."""
    prices = claude_prices(model)
    return sum(prices.cost(u) for u in usages)


@dataclass(frozen=True)
class OpenAIPrices:
    """USD per million tokens; input tokens include the cached and cache-write ones."""

    input: float
    cached: float
    cache_write: float
    output: float

    def cost(self, usage: Usage) -> float:
        written = usage.cache_creation_input_tokens
        cached = usage.cache_read_input_tokens
        fresh = usage.input_tokens - written - cached
        return (
            fresh * self.input
            + cached * self.cached
            + written * self.cache_write
            + usage.output_tokens * self.output
        ) / 1_000_000


CODEX_PRICES: dict[str, OpenAIPrices] = {
    "gpt-5.5": OpenAIPrices(5.0, 0.50, 5.0, 30.0),
    "gpt-5.6-sol": OpenAIPrices(5.0, 0.50, 6.25, 30.0),
}


def codex_cost(model: str, usages: Iterable[Usage]) -> float:
    """What answers with these usages cost on `model` (OpenAI's list prices)."""
    prices = CODEX_PRICES[model]
    return sum(prices.cost(u) for u in usages)
