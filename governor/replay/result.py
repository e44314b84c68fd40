"""What a replay produced: per call, per run, and for the whole trace set.

Every cost says where it came from (``COST_SOURCES``):

* ``recorded``: what the trace says was paid (an unchanged call), or that
  figure scaled by the computed ratio of the governed call to the recorded
  one (a rerouted, trimmed or clamped call; ``cost_scale`` holds the ratio);
  a run's cost recorded per run is shared among its calls by computed cost;
* ``computed``: priced from the tables because nothing was recorded (or the
  recorded model has no price to scale by), or 0.0 for a blocked call;
* ``unknown``: no record and no price. The cost is None, never 0.0.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from governor.engine.overrun import Overrun
from governor.ledger.base import Adjustment
from governor.traces.model import TraceCall, TraceIssue, TraceRun

COST_SOURCES = ("recorded", "computed", "unknown")


@dataclass(frozen=True, slots=True)
class CallResult:
    """The governed fate of one recorded call.

    ``cost_original`` is what the recorded call cost (its recorded cost, else
    computed, else None) and ``cost_governed`` what it would cost under the
    policy (0.0 when blocked), each with its source (``COST_SOURCES``);
    ``cost_baseline`` is the recorded usage repriced at list price with the
    same price table (None when unpriced), for reconciliation.
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
    cost_source: str = "computed"  # where cost_governed comes from: recorded | computed | unknown
    cost_original: float | None = None  # what the recorded call cost (recorded, else computed; None: unknown)
    cost_original_source: str = "unknown"  # recorded | computed | unknown
    cost_scale: float | None = None  # governed/recorded computed ratio applied to the recorded cost (changed calls)
    price_source: str | None = None  # the table that priced the computed figures: policy | litellm | genai-prices
    blocked_by: str | None = None  # the rule that blocked the call (for a cascaded block: the one that ended the run)
    overrun: Overrun | None = None  # the recorded usage went past what the check reserved

    @property
    def changed(self) -> bool:
        return self.verdict != "allow"

    @property
    def compared(self) -> bool:
        """Both costs are known, so the call counts in totals that compare original and governed cost."""
        return self.cost_original is not None and self.cost_governed is not None


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
    def unchanged(self) -> bool:
        return all(c.verdict == "allow" and c.cost_scale is None for c in self.calls)

    @property
    def cost_recorded(self) -> float | None:
        """What the run cost as recorded (per-run figure where the source has one; computed for calls
        without a record); None when any call's cost is unknown."""
        whole = self.run.recorded_cost
        if whole is not None and all(c.call.cost_usd is None for c in self.calls):
            return whole
        return _sum(c.cost_original for c in self.calls)

    @property
    def cost_baseline(self) -> float | None:
        return _sum(c.cost_baseline for c in self.calls)

    @property
    def cost_governed(self) -> float | None:
        """What the run would cost under the policy; an unchanged run keeps its recorded cost exactly."""
        whole = self.run.recorded_cost
        if whole is not None and self.unchanged and all(c.call.cost_usd is None for c in self.calls):
            return whole
        return _sum(c.cost_governed for c in self.calls)

    @property
    def unpriced_calls(self) -> int:
        return sum(1 for c in self.calls if not c.compared)


def _sum(values: Iterator[float | None]) -> float | None:
    total = 0.0
    for v in values:
        if v is None:
            return None
        total += v
    return total


@dataclass(frozen=True)
class ReplayResult:
    policy_name: str
    revision: str
    runs: tuple[RunResult, ...]
    issues: tuple[TraceIssue, ...] = ()
    formats: Mapping[str, str] = field(default_factory=dict)
    rule_ids: tuple[str, ...] = ()
    adjustments: tuple[Adjustment, ...] = ()  # the operators' adjustments of the traces, applied at their time

    def calls(self) -> Iterator[CallResult]:
        for r in self.runs:
            yield from r.calls
