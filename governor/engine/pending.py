"""Allowed calls awaiting ``record()``, and forgetting the ones never recorded.

``record`` settles a call against what its check decided with: the compiled
policy (even across a reload), the budget reservation and the run states it
was admitted to. The check leaves those here, keyed by decision id. A call
that is never recorded (the caller crashed, or swallowed the error) must not
stay forever: every ``SWEEP_EVERY`` checks, the oldest entries older than
twice their lease are dropped. The ledger reclaims the reservation itself after
one lease; a record arriving in the second lease still settles the spend
(money was spent).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from governor.engine.budgets import Reservation
from governor.engine.compiled import CompiledPolicy
from governor.engine.runstate import RunState


@dataclass(slots=True, kw_only=True)
class Pending:
    """An allowed call awaiting ``record()``: what its check decided with."""

    policy: CompiledPolicy
    """The compiled policy revision that decided (prices and lease, even across a reload)."""
    reservation: Reservation | None
    """What the check reserved; None when no budget matched."""
    runs: Sequence[RunState]
    """The states of the runs the call was admitted to."""
    checked_at: float
    """The check's time: the reservation's window slots, and when the entry may be forgotten."""


SWEEP_EVERY = 64


class PendingCalls:
    """decision id -> :data:`Pending`. Puts and takes are atomic dict operations;
    only the sweep takes a lock, and a concurrent put merely ends it early."""

    def __init__(self) -> None:
        self._calls: dict[str, Pending] = {}
        self._lock = threading.Lock()
        self._ticks = itertools.count(1)

    def __contains__(self, decision_id: object) -> bool:
        return decision_id in self._calls

    def put(self, decision_id: str, entry: Pending | None, now: float) -> None:
        """Keep ``entry`` (None: nothing to keep, a blocked call) and sweep every SWEEP_EVERY puts."""
        if entry is not None:
            self._calls[decision_id] = entry
        if next(self._ticks) % SWEEP_EVERY == 0:
            self.sweep(now)

    def take(self, decision_id: str) -> Pending | None:
        """The entry of ``decision_id``, removed; None if unknown, settled or forgotten."""
        return self._calls.pop(decision_id, None)

    def sweep(self, now: float) -> None:
        """Forget the oldest calls checked more than two leases before ``now``."""
        calls = self._calls
        with self._lock:
            try:
                while calls:
                    did = next(iter(calls))
                    p = calls.get(did)
                    if p is not None and p.checked_at + 2 * p.policy.lease_s > now:
                        break
                    calls.pop(did, None)
            except RuntimeError:  # the dict changed size under us: sweep again next time
                pass
