"""What a replay produced: per call, per run, and for the whole trace set."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Mapping

from governor.engine.overrun import Overrun
from governor.traces.model import TraceCall, TraceIssue, TraceRun


@dataclass(frozen=True, slots=True)
class CallResult:
    """The governed fate of one recorded call.

    ``cost_governed`` is 0.0 for a blocked call and None when the model sent
    has no price; ``cost_baseline`` is the recorded usage repriced at the
    requested model with the same price table (None when unpriced).
    """

    call: TraceCall
    verdict: str  # allow | reroute | trim | block
    model: str  # the model that would be sent
    rule_ids: tuple[str, ...]
    reason: str
    block_kind: str | None
    input_tokens: int  # governed input tokens (after a trim)
    input_estimated: bool  # the trim reduction is an estimate (trace had no messages)
    cost_baseline: float | None
    cost_governed: float | None
    cascaded: bool = False  # blocked because an earlier call ended the run
    audit: tuple[str, ...] = ()  # audit-mode rules that would have acted
    output_tokens: int | None = None  # governed output tokens (clamped to max_tokens); None when blocked
    blocked_by: str | None = None  # the rule that blocked the call (for a cascaded block: the one that ended the run)
    overrun: Overrun | None = None  # the recorded usage went past what the check reserved

    @property
    def changed(self) -> bool:
        return self.verdict != "allow"


@dataclass(frozen=True, slots=True)
class RunResult:
    run: TraceRun
    calls: tuple[CallResult, ...]
    ended_at: int | None = None  # 1-based index of the call whose block ended the run
    end_rule: str | None = None
    end_reason: str | None = None

    @property
    def stopped_at_call(self) -> int | None:
        """1-based index of the first blocked call, or None."""
        for k, c in enumerate(self.calls, start=1):
            if c.verdict == "block":
                return k
        return None

    @property
    def stop_rule(self) -> str | None:
        for c in self.calls:
            if c.verdict == "block":
                return c.blocked_by
        return None

    @property
    def cost_recorded(self) -> float:
        return sum(c.call.cost_usd or 0.0 for c in self.calls)

    @property
    def cost_baseline(self) -> float:
        return sum(c.cost_baseline or 0.0 for c in self.calls)

    @property
    def cost_governed(self) -> float:
        return sum(c.cost_governed or 0.0 for c in self.calls)


@dataclass(frozen=True)
class ReplayResult:
    policy_name: str
    revision: str
    runs: tuple[RunResult, ...]
    issues: tuple[TraceIssue, ...] = ()
    formats: Mapping[str, str] = field(default_factory=dict)
    rule_ids: tuple[str, ...] = ()

    def calls(self) -> Iterator[CallResult]:
        for r in self.runs:
            yield from r.calls
