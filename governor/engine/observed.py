"""Calls made without a check: account for them after the fact.

A hook that reads a coding agent's transcript (``governor hook claude-code``)
learns of each model call once it happened. :func:`observe` charges it to
every budget whose ``match`` holds for it, through the ledger protocol's
``settle`` with the call's own id as the reservation id (so a call settled
twice, by two hooks or after a lost state file, is charged once: the ledgers
keep settled ids), and counts it in its runs as an admitted call would be
(calls, errors, cost, and what its messages added: :mod:`governor.engine.progress`).
Nothing is refused here: the call was already made. What the next call may do
is a normal :meth:`Governor.check`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from governor.engine.compiled import CompiledPolicy
from governor.engine.match import CallContext
from governor.engine.progress import Tail
from governor.engine.runstate import RunStates
from governor.ledger.base import Amount, Counter, Ledger, usd_to_nano


def observe(
    cp: CompiledPolicy,
    ledger: Ledger,
    runs: RunStates,
    *,
    call_id: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int,
    cache_write_tokens: int,
    cache_write_1h_tokens: int = 0,
    service_tier: str | None = None,
    speed: str | None = None,
    error: bool,
    metadata: Mapping[str, Any],
    run_chain: Sequence[str],
    at: float,
    tail: Tail | None,
) -> tuple[float | None, tuple[Counter, ...], bool]:
    """Charge one call that was made and count it in its runs: its USD cost (None if the model is
    unpriced), the budget counters it was charged to, and False when the ledger had settled this
    ``call_id`` already (charged once: record observers are told only of a first charge)."""
    cost = cp.prices.cost(
        model,
        input_tokens,
        output_tokens,
        cache_read_tokens,
        cache_write_tokens,
        0,
        cache_write_1h_tokens,
        service_tier,
        speed,
        None,
        at,
    )
    ctx = CallContext(model, metadata, input_tokens, ())
    counters = tuple(c for b in cp.budgets if b.holds_fully(ctx) for c in b.counters_for(metadata, run_chain))
    fresh = True
    if counters:
        usd = 0 if cost is None else usd_to_nano(cost)
        fresh = ledger.settle(call_id, counters, Amount(usd, input_tokens + output_tokens, 1), now=at, reserved_at=at)
    if run_chain:
        with runs.lock:
            states = [runs.get(r, at) for r in run_chain]
            for st in states:
                st.calls += 1
                if tail is not None:
                    st.note_tail(tail)
        runs.settle(states, cost, error)
    return cost, counters, fresh
