"""The mutable scratch state of one check while the stages run.

Each stage reads and changes one :class:`Work`; at the end it becomes a frozen
:class:`governor.decision.Decision`. Kept separate so the stage modules share
one small type and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from governor.decision import AuditNote

RANK = {"allow": 0, "reroute": 1, "trim": 2, "block": 3}


class Work:
    __slots__ = (
        "model",
        "messages",
        "max_tokens",
        "input_tokens",
        "estimated",
        "trimmed",
        "rule_ids",
        "reasons",
        "warnings",
        "audit",
        "block_kind",
        "blocked_by",
        "fallbacks",
        "estimated_cost",
        "context_rerouted",
        "adjustments",
    )

    def __init__(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        max_tokens: int | None,
        input_tokens: int,
        estimated: bool,
    ) -> None:
        self.model = model
        self.messages = messages
        self.max_tokens = max_tokens
        self.input_tokens = input_tokens
        self.estimated = estimated
        self.trimmed = False
        self.rule_ids: list[str] = []
        self.reasons: list[str] = []
        self.warnings: list[str] = []
        self.audit: list[AuditNote] = []
        self.block_kind: str | None = None
        self.blocked_by: str | None = None
        self.fallbacks: tuple[str, ...] = ()
        self.estimated_cost: float | None = None
        self.context_rerouted = False
        self.adjustments: list[Any] = []  # the operators' adjustments that changed the outcome (ledger.base.Adjustment)

    def copy(self) -> Work:
        w = Work(self.model, self.messages, self.max_tokens, self.input_tokens, self.estimated)
        w.trimmed = self.trimmed
        w.rule_ids = list(self.rule_ids)
        w.reasons = list(self.reasons)
        w.warnings = list(self.warnings)
        w.audit = list(self.audit)
        w.block_kind = self.block_kind
        w.blocked_by = self.blocked_by
        w.fallbacks = self.fallbacks
        w.estimated_cost = self.estimated_cost
        w.context_rerouted = self.context_rerouted
        w.adjustments = list(self.adjustments)
        return w

    def block(self, rule_id: str, kind: str, reason: str) -> None:
        """Block the call: ``rule_id`` is what blocked it, and its reason comes first."""
        self.block_kind = kind
        self.blocked_by = rule_id
        if rule_id not in self.rule_ids:
            self.rule_ids.append(rule_id)
        self.reasons.insert(0, reason)

    def change(self, rule_id: str, reason: str) -> None:
        if rule_id not in self.rule_ids:
            self.rule_ids.append(rule_id)
        self.reasons.append(reason)

    def note(self, rule_id: str, would: str, reason: str, model: str | None = None) -> None:
        self.audit.append(AuditNote(rule_id=rule_id, would=would, reason=reason, model=model))

    @property
    def blocked(self) -> bool:
        return self.block_kind is not None
