"""Reconcile computed cost with the cost the source recorded, per model and per model and day.

For every call that has both a recorded cost (tau2 ``cost``, litellm
``response_cost``, OTel ``gen_ai.usage.cost``, the governor's own records) and
a computed one (its recorded usage at the price table's rates), the gap is
``computed / recorded``. A gap above ``DRIFT_PCT`` is flagged with its likely
cause, read off the calls:

* the trace has no cache split and recorded is below list: consistent with
  about N% of input read from cache (N solved from the model's input and
  cache-read rates);
* the ratio differs between days of one model: the price changed;
* recorded above list: a price rise since (the table has today's price), a
  service tier, a long-context tier or a residency surcharge;
* otherwise: a tier or rate the trace does not show.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

from governor.pricing import PriceTable
from governor.replay.result import ReplayResult

DRIFT_PCT = 1.0


class _Acc:
    __slots__ = ("calls", "recorded", "computed", "input", "cache_read", "tiers", "unpriced", "sources")

    def __init__(self) -> None:
        self.calls = 0
        self.recorded = 0.0
        self.computed = 0.0
        self.input = 0
        self.cache_read = 0
        self.tiers: set[str] = set()
        self.unpriced = 0
        self.sources: set[str] = set()


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d")


def _row(a: _Acc) -> dict[str, Any]:
    ratio = a.computed / a.recorded if a.recorded > 0 else None
    drift = None if ratio is None else round(100.0 * (ratio - 1.0), 2)
    return {
        "calls": a.calls,
        "cost_usd_recorded": round(a.recorded, 9),
        "cost_usd_computed": round(a.computed, 9),
        "computed_over_recorded": None if ratio is None else round(ratio, 4),
        "drift_pct": drift,
        "flagged": drift is not None and abs(drift) > DRIFT_PCT,
        "cache_read_tokens": a.cache_read,
        "input_tokens": a.input,
        "calls_without_computed_cost": a.unpriced,
        "price_sources": sorted(a.sources),
    }


def _cause(model: str, a: _Acc, days: list[dict[str, Any]], prices: PriceTable) -> str:
    ratio = a.computed / a.recorded if a.recorded > 0 else None
    if ratio is None:
        return "nothing recorded to compare"
    if abs(ratio - 1.0) * 100 <= DRIFT_PCT:
        return "matches the table within 1%"
    ratios = [d["computed_over_recorded"] for d in days if d["computed_over_recorded"] is not None]
    moves = ""
    if len(ratios) > 1 and max(ratios) / min(ratios) > 1.0 + DRIFT_PCT / 100:
        moves = (
            f"; the ratio moves from {min(ratios):.2f}x to {max(ratios):.2f}x across days (a price change, "
            "or a different share of cached input)"
        )
        if a.cache_read or ratio < 1.0:
            return (
                "consistent with a price change: the ratio moves from "
                f"{min(ratios):.2f}x to {max(ratios):.2f}x across days (price the older dates with a dated "
                "models.prices entry)"
            )
    tier = f"; the trace reports service tier {', '.join(sorted(a.tiers))}" if a.tiers else ""
    if ratio > 1.0:
        price = prices.lookup(model)
        if a.cache_read == 0 and price is not None and price.cache_read is not None and a.input:
            per_token = price.input - price.cache_read
            share = (a.computed - a.recorded) / (a.input * per_token) if per_token > 0 else None
            if share is not None and 0 < share <= 1:
                return (
                    f"recorded is {ratio:.2f}x below list: consistent with about {share * 100:.0f}% of input "
                    f"tokens read from cache at ${price.cache_read * 1e6:g}/M; the trace has no cache split"
                    f"{tier}{moves}"
                )
        if a.cache_read == 0:
            return (
                f"recorded is {ratio:.2f}x below list and the trace has no cache split: cached input, a "
                f"discount or a lower price when the calls were made{tier}{moves}"
            )
        return f"recorded is {ratio:.2f}x below list: a discount, batch or flex tier, or a lower past price{tier}"
    return (
        f"recorded is {1 / ratio:.2f}x above list: a price rise since the calls were made, a priority or "
        f"long-context tier, or a residency surcharge{tier}"
    )


def reconcile(result: ReplayResult, prices: PriceTable) -> dict[str, Any]:
    """Computed vs recorded cost per model, and per model and day, each gap above 1% flagged with its cause."""
    by_model: dict[str, _Acc] = defaultdict(_Acc)
    by_day: dict[tuple[str, str], _Acc] = defaultdict(_Acc)
    not_recorded: dict[str, int] = defaultdict(int)
    for c in result.calls():
        call = c.call
        model = call.paid_model
        if c.cost_original_source != "recorded":
            not_recorded[model] += 1
            continue
        for acc in (by_model[model], by_day[(model, _day(call.timestamp))]):
            if c.cost_baseline is None:
                acc.unpriced += 1
                continue
            acc.calls += 1
            acc.recorded += c.cost_original or 0.0
            acc.computed += c.cost_baseline
            acc.input += call.input_tokens
            acc.cache_read += call.cache_read_tokens
            if call.service_tier:
                acc.tiers.add(call.service_tier)
            if c.price_source:
                acc.sources.add(c.price_source)
    days: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (model, day), acc in sorted(by_day.items()):
        days[model].append({"model": model, "day": day, **_row(acc)})
    models = []
    for model, acc in sorted(by_model.items(), key=lambda kv: -kv[1].recorded):
        row = {"model": model, **_row(acc)}
        row["cause"] = (
            _cause(model, acc, days[model], prices) if acc.calls else ("no price: the computed cost is unknown")
        )
        models.append(row)
    causes = {m["model"]: m["cause"] for m in models}
    for model_days in days.values():
        for d in model_days:
            if d["flagged"]:
                d["cause"] = causes.get(d["model"], "")
    return {
        "drift_threshold_pct": DRIFT_PCT,
        "by_model": models,
        "by_model_day": [d for model in sorted(days) for d in days[model]],
        "calls_without_recorded_cost": dict(sorted(not_recorded.items())),
    }
