"""Prices per token: policy overrides first, then litellm's bundled table.

A :class:`PriceTable` is built once per policy load; a lookup afterwards is a
dict hit. litellm's table is read directly (``litellm.model_cost``), never via
``litellm.cost_per_token`` (~100 us a call) on the per-call path.

Token accounting (normalised, as FIELD-NOTES asks): ``input_tokens`` includes
cached tokens; ``cache_read_tokens`` and ``cache_write_tokens`` are the parts of
it billed at the cache rates; ``reasoning_tokens`` are the part of
``output_tokens`` billed at the reasoning rate.
"""

from __future__ import annotations

import threading
from typing import Mapping

from governor.policy.model import ModelPrice


def _from_litellm(model: str, entry: Mapping) -> ModelPrice | None:
    inp = entry.get("input_cost_per_token")
    out = entry.get("output_cost_per_token")
    if inp is None or out is None:
        return None
    return ModelPrice(
        model=model,
        input=float(inp),
        output=float(out),
        cache_read=_opt(entry.get("cache_read_input_token_cost")),
        cache_write=_opt(entry.get("cache_creation_input_token_cost")),
        reasoning=_opt(entry.get("output_cost_per_reasoning_token")),
        context_window=_opt_int(entry.get("max_input_tokens")),
        max_output_tokens=_opt_int(entry.get("max_output_tokens")),
        source="litellm",
    )


def _opt(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _opt_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


class PriceTable:
    """Model name -> :class:`ModelPrice`, with policy overrides winning.

    ``table`` defaults to litellm's price table (loaded lazily, on the first
    lookup that the overrides do not answer; read from litellm's bundled file
    without importing litellm unless litellm is already imported).
    """

    def __init__(self, overrides: Mapping[str, ModelPrice] | None = None, table: Mapping | None = None) -> None:
        self._overrides = dict(overrides or {})
        self._table = table
        self._cache: dict[str, ModelPrice | None] = dict(self._overrides)
        self._lock = threading.Lock()

    def _litellm_table(self) -> Mapping:
        if self._table is None:
            # litellm's bundled price file, read without importing litellm (~3 s)
            from governor.policy.bundled_prices import litellm_price_table

            self._table = litellm_price_table()
        return self._table

    def lookup(self, model: str) -> ModelPrice | None:
        """The price of ``model``, or None when neither the policy nor litellm knows it."""
        try:
            return self._cache[model]
        except KeyError:
            pass
        price = self._resolve(model)
        with self._lock:
            self._cache[model] = price
        return price

    def _resolve(self, model: str) -> ModelPrice | None:
        table = self._litellm_table()
        entry = table.get(model)
        if entry is None and "/" in model:
            # "openai/gpt-4.1" -> "gpt-4.1" when the table files it under that provider
            provider, _, bare = model.partition("/")
            bare_entry = table.get(bare)
            if bare_entry is not None and bare_entry.get("litellm_provider", "").startswith(provider):
                entry = bare_entry
        if entry is None:
            return None
        return _from_litellm(model, entry)

    def known(self, model: str) -> bool:
        return self.lookup(model) is not None


def call_cost(
    price: ModelPrice,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> float:
    """USD cost of one call: C = p_in*T_in + p_out*T_out (+ cache and reasoning rates)."""
    if not (cache_read_tokens or cache_write_tokens or reasoning_tokens) and input_tokens >= 0 and output_tokens >= 0:
        return input_tokens * price.input + output_tokens * price.output
    cr = price.cache_read if price.cache_read is not None else price.input
    cw = price.cache_write if price.cache_write is not None else price.input
    rr = price.reasoning if price.reasoning is not None else price.output
    plain_in = max(input_tokens - cache_read_tokens - cache_write_tokens, 0)
    plain_out = max(output_tokens - reasoning_tokens, 0)
    return (
        plain_in * price.input
        + cache_read_tokens * cr
        + cache_write_tokens * cw
        + plain_out * price.output
        + reasoning_tokens * rr
    )
