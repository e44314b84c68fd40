"""Overruns: a call whose actual usage exceeded what its check reserved.

A check reserves the call's worst case: its input tokens plus ``max_tokens``
(or ``defaults.output_tokens`` when the call sets none), priced. A provider
that ignores ``max_tokens``, an input count the estimate got wrong, or a call
sent without a cap can use more; ``record()`` then settles the actual cost in
full (the money was spent), and the budget can end above its limit by at most
the sum of the overruns of the calls in flight at that moment. Each overrun is
an event: logged with the amounts, counted in ``Governor.stats()`` and in a
replay's report, written to the decision log's ``record`` line (``overrun``),
and counted in the run's state, which a policy reads as ``run_overruns`` (to
stop the run after one, see docs/budgets.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from governor.decision import Decision

__all__ = ["Overrun", "measure"]

log = logging.getLogger("governor.engine")

_USD_SLACK = 1e-9  # float noise between the estimate and the settled cost is no overrun


@dataclass(frozen=True, kw_only=True, slots=True)
class Overrun:
    """How far one call's actual usage went past its reservation."""

    decision_id: str
    """The call's decision."""
    reserved_usd: float | None
    """The worst case the check reserved, in USD (None: the model is unpriced)."""
    actual_usd: float | None
    """What the call cost, in USD (None: the model is unpriced)."""
    reserved_tokens: int
    """Input plus the output tokens the check reserved."""
    actual_tokens: int
    """Input plus output tokens the call used."""

    @property
    def usd(self) -> float:
        """USD above the reservation (0.0 when only the tokens went over, or unpriced)."""
        if self.reserved_usd is None or self.actual_usd is None:
            return 0.0
        return max(self.actual_usd - self.reserved_usd, 0.0)

    @property
    def tokens(self) -> int:
        """Tokens above the reservation (0 when only the cost went over)."""
        return max(self.actual_tokens - self.reserved_tokens, 0)

    def as_dict(self) -> dict[str, float | int]:
        return {"usd": round(self.usd, 12), "tokens": self.tokens}

    def __str__(self) -> str:
        usd = (
            f"${self.actual_usd:.6f} against ${self.reserved_usd:.6f} reserved (+${self.usd:.6f}), "
            if self.actual_usd is not None and self.reserved_usd is not None
            else ""
        )
        return (
            f"decision {self.decision_id} overran its reservation: {usd}"
            f"{self.actual_tokens} tokens against {self.reserved_tokens} reserved"
        )


def measure(
    decision: Decision, cost_usd: float | None, input_tokens: int, output_tokens: int, default_output_tokens: int
) -> Overrun | None:
    """The overrun of one recorded call, or None when it stayed within what its check reserved."""
    reserved_out = decision.max_tokens if decision.max_tokens is not None else default_output_tokens
    reserved_tokens = decision.input_tokens + reserved_out
    actual_tokens = input_tokens + output_tokens
    reserved_usd = decision.estimated_cost_usd
    over_usd = cost_usd is not None and reserved_usd is not None and cost_usd > reserved_usd + _USD_SLACK
    if actual_tokens <= reserved_tokens and not over_usd:
        return None
    return Overrun(
        decision_id=decision.decision_id,
        reserved_usd=reserved_usd,
        actual_usd=cost_usd,
        reserved_tokens=reserved_tokens,
        actual_tokens=actual_tokens,
    )
