"""The value a check returns: what to do with one LLM call, and why."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Verdict = Literal["allow", "reroute", "trim", "block"]
VERDICTS: tuple[str, ...] = ("allow", "reroute", "trim", "block")
Outcome = Literal["accepted", "edited", "rejected", "escalated"]
OUTCOMES: tuple[str, ...] = ("accepted", "edited", "rejected", "escalated")


@dataclass(frozen=True, slots=True)
class AuditNote:
    """What an audit-mode rule would have done had it been enforced."""

    rule_id: str
    """The audit-mode rule."""
    would: str
    """What it would have done: "block" | "reroute" | "trim" | "clamp" | "downgrade" | "warn"."""
    reason: str
    """Why, worded as the enforced rule's reason would be."""
    model: str | None = None
    """The model it would have sent the call to (reroutes and downgrades), else None."""


@dataclass(frozen=True, slots=True, kw_only=True)
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
    """allow | reroute | trim | block: the strongest change made."""
    model: str
    """The model to send the call to (the requested one, or where a rule rerouted it)."""
    messages: Sequence[Mapping[str, Any]]
    """The messages to send (trimmed by a context cap, or the caller's own)."""
    max_tokens: int | None
    """The output limit to send (clamped by a call cap, or the caller's own)."""
    rule_ids: tuple[str, ...]
    """Every enforced rule that shaped or blocked the call, in the order they acted."""
    reasons: tuple[str, ...]
    """One sentence per change; a blocked call's first reason is the blocking rule's."""
    revision: str
    """The policy revision that decided."""
    estimated_cost_usd: float | None
    """The worst case reserved (input + output allowance at the model sent); None when unpriced."""
    decision_id: str
    """Unique per check in this process; ``record()`` settles by it."""
    requested_model: str = ""
    """The model the caller asked for (after aliases)."""
    input_tokens: int = 0
    """The input tokens the decision was made on."""
    input_tokens_estimated: bool = False
    """True when ``input_tokens`` was counted by an approximate tokenizer."""
    warnings: tuple[str, ...] = ()
    """What the caller should know that did not change the call (soft thresholds, unknown prices)."""
    audit: tuple[AuditNote, ...] = ()
    """What audit-mode rules would have done."""
    policy_name: str = ""
    """The policy's ``metadata.name``."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """The call's metadata as the rules saw it (run scope merged with the caller's)."""
    block_kind: str | None = None
    """Why it was blocked: "budget" | "stop" | "context" | "cost" | "unpriced" | "store"; None if not."""
    fallbacks: tuple[str, ...] = ()
    """The route's fallback models, in order, for the caller to try when the model fails."""
    blocked_by: str | None = None
    """The id of the rule that blocked the call; None unless ``verdict == "block"``."""
    adjustments: tuple[str, ...] = ()
    """The ids of the operators' adjustments (``governor budget raise|reset``, ``governor run resume``) without
    which this call would have been refused; empty when none changed the outcome."""

    @property
    def blocked(self) -> bool:
        return self.verdict == "block"

    @property
    def allowed(self) -> bool:
        return self.verdict != "block"
