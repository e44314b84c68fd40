"""Operators' adjustments in a running governor: read when a budget or a stop would refuse a call.

``governor budget raise|reset`` and ``governor run resume`` write
:class:`~governor.ledger.base.Adjustment` records to the shared ledger; nothing
edits the policy. A governor reads them (``Ledger.adjustments``) only when a
call would be refused, so a call that passes pays nothing for them and a
refused call pays one more ledger read:

* a budget counter that denies a reservation is tried once more with its limit
  widened by the raises and resets in force for it (:func:`widened`): a reset
  sets the window's spend aside as room above the limit, so nothing is deleted
  and the ledger's total stays the sum of the settled calls;
* a stop condition that fires is looked at again after the resumes of the
  run chain are applied (:func:`resume_runs`): each clears, once per governor,
  the stop state of a run that governor knew before the resume was written.

The decision names the adjustments that changed its outcome
(``Decision.adjustments``); the decision log writes each one once as an
``adjustment`` line.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from governor.engine.runstate import RunStates
from governor.errors import LedgerError
from governor.ledger.base import MAX_QUANTITY, Adjustment, Amount, Counter, Ledger, Limit, nano_to_usd

log = logging.getLogger("governor.engine")


def room(adjustments: Sequence[Adjustment]) -> Amount:
    """What raises and resets add above a limit, in total."""
    total = Amount()
    for a in adjustments:
        if a.kind in ("raise", "reset"):
            total = total + a.amount
    return total


def widen(limit: Limit, extra: Amount) -> Limit:
    """``limit`` with ``extra`` added to each limited metric (an unlimited metric stays unlimited)."""

    def add(value: int | None, more: int) -> int | None:
        return None if value is None else min(value + more, MAX_QUANTITY)

    return Limit(
        usd_nano=add(limit.usd_nano, extra.usd_nano),
        tokens=add(limit.tokens, extra.tokens),
        calls=add(limit.calls, extra.calls),
    )


def read(ledger: Ledger, now: float) -> list[Adjustment] | None:
    """The adjustments in force at ``now``; None when the store cannot answer (the refusal stands)."""
    try:
        return ledger.adjustments(now=now)
    except LedgerError as exc:
        log.warning("could not read adjustments (%s): the refusal stands", exc)
        return None


def widened(
    ledger: Ledger, counters: Sequence[Counter], now: float
) -> tuple[tuple[Counter, ...], tuple[Adjustment, ...]] | None:
    """``counters`` with the raises and resets in force for each added to its limit, and those adjustments;
    None when none applies (or the store cannot say)."""
    found = read(ledger, now)
    if not found:
        return None
    by_key: dict[str, list[Adjustment]] = {}
    for a in found:
        if a.kind in ("raise", "reset"):
            by_key.setdefault(a.key, []).append(a)
    if not by_key:
        return None
    out: list[Counter] = []
    used: list[Adjustment] = []
    for c in counters:
        adj = by_key.get(c.key)
        if not adj:
            out.append(c)
            continue
        out.append(Counter(c.key, c.budget_id, widen(c.limit, room(adj)), c.window))
        used += [a for a in adj if a not in used]
    return (tuple(out), tuple(used)) if used else None


def resume_runs(ledger: Ledger, runs: RunStates, run_chain: Sequence[str], now: float) -> tuple[Adjustment, ...]:
    """Apply the resumes in force for the runs of ``run_chain`` that this governor has not applied yet;
    the resumes applied (empty: nothing changed, the stop stands)."""
    wanted = set(run_chain)
    found = read(ledger, now)
    resumes = [a for a in found or () if a.kind == "resume" and a.run_id in wanted]
    if not resumes:
        return ()
    return tuple(runs.resume(resumes, now))


def describe(a: Adjustment) -> str:
    """One line for a decision's warning, a status table, a replay report."""
    if a.kind == "resume":
        what = f"resume run {a.run_id}"
    else:
        parts = []
        if a.amount.usd_nano:
            parts.append(f"${nano_to_usd(a.amount.usd_nano):,.4f}")
        if a.amount.tokens:
            parts.append(f"{a.amount.tokens:,} tokens")
        if a.amount.calls:
            parts.append(f"{a.amount.calls:,} calls")
        amount = " + ".join(parts) or "nothing"
        if a.kind == "raise":
            what = f"raise {a.budget} ({a.scope}) by {amount}"
        else:
            what = f"reset {a.budget} ({a.scope}): {amount} of spend set aside"
    return f"{a.id} {what}, by {a.by or 'unknown'}: {a.reason}"
