"""Pricing: which table matches what was paid, and what a call's price costs on the per-call path.

    LITELLM_LOCAL_MODEL_COST_MAP=True python benchmarks/bench_pricing.py [--traces ../shared/traces/tau2] [--quick]

1. **Sources against recorded cost.** Every tau2 call with a recorded cost is
   priced from its usage (raw provider usage where the trace kept it) by
   litellm's bundled table (``litellm.cost_per_token``, litellm's own function)
   and by ``genai_prices.calc_price`` at the call's date, and by the governor's
   resolver; the table prints computed/recorded per model for each. 1.000 is
   a table that reproduces the bill; a model a source cannot price is "-".
2. **Per-call speed**, best of several runs over the same calls: the
   governor's ``PriceTable.cost`` (the engine's path in ``Governor.record``),
   the code it replaced (``lookup`` + ``call_cost`` with the base rates only),
   ``PriceTable.quote`` (replay's full path), ``litellm.cost_per_token`` and
   ``genai_prices.calc_price``.

Figures, not assertions.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TRACES = ROOT.parent / "shared" / "traces" / "tau2"


def calls(traces: Path) -> list[dict[str, Any]]:
    """(model, usage, recorded cost, time) of every tau2 call, through the governor's importer."""
    from governor.traces import load_traces

    ts = load_traces(sorted(traces.glob("*.json*")))
    return [
        {"model": c.model, "u": c.usage(), "cost": c.cost_usd, "at": c.timestamp}
        for r in ts.runs
        for c in r.calls
        if c.cost_usd
    ]


def by_litellm(model: str, u: Any, at: float) -> float | None:
    import litellm

    try:
        inp, out = litellm.cost_per_token(
            model=model,
            prompt_tokens=u.input_tokens,
            completion_tokens=u.output_tokens,
            cache_read_input_tokens=u.cache_read_tokens,
            cache_creation_input_tokens=u.cache_write_tokens,
        )
    except Exception:  # litellm raises for a model it does not price
        return None
    return float(inp + out)


def by_genai(model: str, u: Any, at: float) -> float | None:
    import genai_prices

    provider, _, bare = model.rpartition("/")
    provider = {"xai": "x-ai"}.get(provider, provider) or None
    usage = genai_prices.Usage(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cache_read_tokens=u.cache_read_tokens,
        cache_write_tokens=u.cache_write_tokens,
    )
    try:
        calc = genai_prices.calc_price(
            usage, bare, provider_id=provider, genai_request_timestamp=datetime.fromtimestamp(at, tz=timezone.utc)
        )
    except LookupError:
        return None
    return float(calc.total_price)


def sources(rows: list[dict[str, Any]]) -> None:
    from governor.pricing import PriceTable

    table = PriceTable()

    def ours(model: str, u: Any, at: float) -> float | None:
        q = table.quote(model, u, at)
        return None if q is None else q.usd

    fns: dict[str, Callable[[str, Any, float], float | None]] = {
        "litellm": by_litellm,
        "genai-prices": by_genai,
        "governor": ours,
    }
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0, 0]))
    raw = defaultdict(int)
    for r in rows:
        if r["u"].cache_read_tokens or r["u"].cache_write_tokens or r["model"].startswith("claude"):
            raw[r["model"]] += 1
        for name, fn in fns.items():
            v = fn(r["model"], r["u"], r["at"])
            s = sums[r["model"]][name]
            s[2] += 1
            if v is not None:
                s[0] += v
                s[1] += r["cost"]
    print("computed / recorded per model (1.000 reproduces the bill; '-' cannot price it)")
    print(f"{'model':<28}{'calls':>7}{'litellm':>10}{'genai':>10}{'governor':>10}  governor's source")
    for model in sorted(sums):
        cells = []
        for name in fns:
            total, rec, _ = sums[model][name]
            cells.append(f"{total / rec:>10.3f}" if rec else f"{'-':>10}")
        n = sums[model]["litellm"][2]
        last = rows[[r["model"] for r in rows].index(model)]
        q = table.quote(model, last["u"], last["at"])
        note = "" if q is None else q.source + (" (raw usage)" if raw[model] else " (no cache split)")
        print(f"{model:<28}{n:>7}{''.join(cells)}  {note}")


def best(fn: Callable[[], Any], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def speed(rows: list[dict[str, Any]], repeat: int, quick: bool) -> None:
    from governor.pricing import PriceTable, call_cost

    table = PriceTable()
    work = [(r["model"], r["u"], r["at"]) for r in rows]
    args = [
        (m, u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens)
        for m, u, _ in work
    ]
    for m, *_ in args:
        table.lookup(m)

    def engine() -> None:
        cost = table.cost
        for a in args:
            cost(*a)

    def replaced() -> None:  # the per-call path before this change: base rates only
        lookup = table.lookup
        for m, i, o, cr, cw, rs in args:
            p = lookup(m)
            if p is not None:
                call_cost(p, i, o, cr, cw, rs)

    def full() -> None:
        for m, u, at in work:
            table.quote(m, u, at)

    def lite() -> None:
        for m, u, at in work[: len(work) // (20 if not quick else 100) or 1]:
            by_litellm(m, u, at)

    def genai() -> None:
        for m, u, at in work[: len(work) // (20 if not quick else 100) or 1]:
            by_genai(m, u, at)

    n = len(work)
    cases = [
        ("PriceTable.cost (engine: Governor.record)", engine, n),
        ("lookup + call_cost (the path it replaced)", replaced, n),
        ("PriceTable.quote (replay: tiers, dates, provenance)", full, n),
        ("litellm.cost_per_token", lite, len(work) // (20 if not quick else 100) or 1),
        ("genai_prices.calc_price", genai, len(work) // (20 if not quick else 100) or 1),
    ]
    print(f"\nper-call price, best of {repeat} runs over {n:,} recorded calls")
    base = None
    for label, fn, count in cases:
        us = best(fn, repeat) / count * 1e6
        base = base or us
        print(f"{label:<54}{us:>10.2f} us/call {us / base:>8.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=Path, default=DEFAULT_TRACES)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="one repeat, fewer calls for the slow libraries")
    a = ap.parse_args()
    rows = calls(a.traces)
    sources(rows)
    speed(rows, 1 if a.quick else a.repeat, a.quick)


if __name__ == "__main__":
    main()
