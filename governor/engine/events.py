"""What a governor tells its record observers after it settled a call.

Decision observers (``Governor.add_observer``) see every check; record
observers (``Governor.add_record_observer``) see every settled call as a
:class:`Recorded`: the calls ``record()`` settles, and the calls ``observe()``
accounts after the fact (``Recorded.observed``). Metrics (:mod:`governor.metrics`) and alerts
(:mod:`governor.alerts`) are built on these two hooks only, so they need
nothing else from the engine. Observers run on the caller's thread: they must
be quick (count, or put on a queue) and never raise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from governor.decision import Decision
from governor.ledger.base import Counter

STORE_DOWN = "budget store is down"  # how the budget stage words a ledger outage (governor.engine.budgets)


@dataclass(frozen=True, slots=True, kw_only=True)
class Recorded:
    """One call settled by ``Governor.record``."""

    decision: Decision
    """The check's decision (model sent, rules, revision, metadata, worst-case estimate)."""
    cost_usd: float | None
    """The actual cost; None when the model has no price (never a silent 0)."""
    input_tokens: int
    """Input tokens the provider reported (cache reads included)."""
    output_tokens: int
    """Output tokens the provider reported (reasoning included)."""
    cache_read_tokens: int = 0
    """Input tokens served from the provider's prompt cache."""
    cache_write_tokens: int = 0
    """Input tokens written to the provider's prompt cache."""
    reasoning_tokens: int = 0
    """Output tokens spent on reasoning."""
    error: bool = False
    """The call failed (it may still have used tokens)."""
    counters: tuple[Counter, ...] = ()
    """The budget counters the call was charged to (enforced and audit)."""
    ledger_error: bool = False
    """The store could not take the settlement now (it is queued and retried)."""
    ts: float = 0.0
    """When the call was recorded (the governor's clock, epoch seconds)."""
    observed: bool = False
    """The call was made without a check and accounted after the fact (``Governor.observe``, the coding-agent
    hooks): ``decision`` is made up from what was observed (verdict allow, no rules, no worst case)."""

    @property
    def overrun_usd(self) -> float:
        """How much the actual cost exceeded the check's worst case (0.0 when it did not, or is unknown)."""
        est = self.decision.estimated_cost_usd
        if self.cost_usd is None or est is None or self.observed:
            return 0.0
        return max(0.0, self.cost_usd - est)


RecordObserver = Callable[[Recorded], Any]


def store_outage(decision: Decision) -> bool:
    """Whether the check found the budget store down (blocked fail-closed, or allowed fail-open)."""
    if decision.block_kind == "store":
        return True
    return any(w.startswith(STORE_DOWN) for w in decision.warnings)


__all__ = ["STORE_DOWN", "Recorded", "RecordObserver", "store_outage"]
