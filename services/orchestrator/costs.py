"""Estimated cost of an answer from a configurable price table (USD per million tokens)."""

from __future__ import annotations

from collections.abc import Mapping


class PriceTable:
    def __init__(self, prices: Mapping[str, tuple[float, float]]) -> None:
        self._prices = dict(prices)  # model -> (prompt, completion) USD per million tokens

    def estimate_usd(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """None when the model has no price: unknown is not the same as free."""
        price = self._prices.get(model)
        if price is None:
            return None
        return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000
