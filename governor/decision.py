"""The value a check returns: what to do with one LLM call, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

Verdict = Literal["allow", "reroute", "trim", "block"]
VERDICTS: tuple[str, ...] = ("allow", "reroute", "trim", "block")
Outcome = Literal["accepted", "edited", "rejected", "escalated"]
OUTCOMES: tuple[str, ...] = ("accepted", "edited", "rejected", "escalated")


@dataclass(frozen=True, slots=True)
class AuditNote:
    """What an audit-mode rule would have done had it been enforced."""

    rule_id: str
    would: str  # "block" | "reroute" | "trim" | "clamp" | "downgrade" | "warn"
    reason: str
    model: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The governor's answer for one call.

    ``verdict`` is the strongest change made: block > trim > reroute > allow.
    ``model``, ``messages`` and ``max_tokens`` are what to send. ``blocked_by``
    is the id of the one rule, stop condition, cap or budget that blocked the
    call (``None`` when it was not blocked), and a blocked call's first reason
    is that rule's. ``rule_ids`` names every enforced rule that shaped or
    blocked the call, in the order they acted (and budgets that warned);
    ``audit`` lists what audit-mode rules would have done.
    """

    verdict: Verdict
    model: str
    messages: Sequence[Mapping[str, Any]]
    max_tokens: int | None
    rule_ids: tuple[str, ...]
    reasons: tuple[str, ...]
    revision: str
    estimated_cost_usd: float | None
    decision_id: str
    requested_model: str = ""
    input_tokens: int = 0
    input_tokens_estimated: bool = False
    warnings: tuple[str, ...] = ()
    audit: tuple[AuditNote, ...] = ()
    policy_name: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    block_kind: str | None = None  # "budget" | "stop" | "context" | "cost" | "unpriced" | "store"
    fallbacks: tuple[str, ...] = ()
    blocked_by: str | None = None  # the rule that blocked the call; None unless verdict == "block"

    @property
    def blocked(self) -> bool:
        return self.verdict == "block"

    @property
    def allowed(self) -> bool:
        return self.verdict != "block"
