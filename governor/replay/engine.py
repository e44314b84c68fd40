"""Replay recorded calls through a policy: the production check/record path, a simulated clock.

Every call goes through ``Governor.check`` and ``Governor.record`` exactly as
in production. The clock is set from each call's recorded timestamp, calls of
all runs are replayed in time order (so shared budgets see the real
interleaving), and the ledger starts empty unless a state is given.

Recorded usage and recorded cost are the truth: an unchanged call costs what
was recorded; a rerouted call keeps its tokens and a trimmed call's input
drops by what the trim removed (counted on the trace's messages; estimated and
labelled when the trace has none), and either costs its recorded cost scaled
by the computed ratio of the new call to the old; a call without a recorded
cost is computed from the price table (and labelled so); a blocked call
costs nothing; a stop condition or a run-scoped budget that blocks ends the
run (the agent would have stopped), so its later calls are blocked too
without being checked. Budgets are settled with these costs, so they count
what was paid. The operators' adjustments a governor trace recorded (raises,
resets, resumes) are written to the replay's ledger at their time, so they
apply as they did, and a run they lifted goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from governor._slots import slots_constructor
from governor.ledger.base import Adjustment
from governor.policy.model import Budget, ContextCap, Policy
from governor.pricing import CallUsage, PriceTable
from governor.replay.fingerprint import PrefixFingerprints
from governor.replay.result import CallResult, ReplayResult, RunResult
from governor.traces.model import TraceCall, TraceRun, TraceSet

Progress = Callable[[int, int], None]
_Original = tuple[float | None, str, float | None, str | None]  # (cost, its source, list-price cost, price table)
_result = slots_constructor(CallResult)  # one per call: half the cost of CallResult(...)


_TOKENS: Any = None


def shared_token_counter() -> Any:
    """One token counter per process for all replays: ``diff`` replays the same messages twice,
    and per-message counts are cached by content fingerprint, so the second pass tokenizes nothing."""
    global _TOKENS
    if _TOKENS is None:
        from governor.engine.tokens import TokenCounter

        _TOKENS = TokenCounter()
    return _TOKENS


class SimClock:
    """A settable clock: replay moves it to each call's recorded timestamp."""

    __slots__ = ("now",)

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class _Run:
    """Mutable bookkeeping for one run while its calls are replayed."""

    __slots__ = ("run", "results", "stopped_at", "stop_rule", "stop_kind", "stop_reason", "prefixes")

    def __init__(self, run: TraceRun) -> None:
        self.run = run
        self.results: list[CallResult] = []
        self.stopped_at: int | None = None
        self.stop_rule: str | None = None
        self.stop_kind: str | None = None
        self.stop_reason: str | None = None
        self.prefixes = PrefixFingerprints()  # repeated_call keys, hashing only each call's new messages


def _ordered(runs: Sequence[TraceRun]) -> list[tuple[float, int, int, TraceCall]]:
    """(time, run position, index, call) for every call in recorded time order across runs.

    A run's own order is kept even if its timestamps step back (clock skew):
    each call's sort time is the latest time seen so far in its run.
    """
    out = []
    for i, r in enumerate(runs):
        latest = float("-inf")
        for k, c in enumerate(r.calls):
            if c.timestamp > latest:
                latest = c.timestamp
            out.append((latest, i, k, c))
    out.sort(key=lambda t: (t[0], t[1], t[2]))
    return out


class Replayer:
    """Replays a TraceSet under one policy with the production Governor, a fresh ledger and a simulated clock."""

    def __init__(
        self,
        policy: Policy,
        *,
        ledger: Any = None,
        prices: PriceTable | None = None,
    ) -> None:
        from governor.engine.governor import Governor  # the production engine, imported on use

        self.policy = policy
        self.clock = SimClock()
        if ledger is None:
            from governor.ledger.memory import MemoryLedger

            ledger = MemoryLedger()  # never the policy's production store
        self.ledger = ledger
        # no stats, no span observer: the replay builds its own report from the decisions
        self.gov = Governor(
            policy, ledger=ledger, clock=self.clock, tokens=shared_token_counter(), stats=False, observers=False
        )
        self.prices = prices or PriceTable(policy.prices)
        self._ending = self._ending_rules(policy)
        self._repeat = any(s.type == "repeated_call" for s in policy.stop)  # else no call needs a fingerprint
        self._trim_limits = {c.id: c for c in policy.context if isinstance(c, ContextCap)}
        self._shares: dict[str, float] = {}

    @staticmethod
    def _ending_rules(policy: Policy) -> frozenset[str]:
        """Rule ids whose block ends the run: stop conditions and run-scoped budgets."""
        ids = {s.id for s in policy.stop}
        ids.update(b.id for b in policy.budgets if isinstance(b, Budget) and b.scope == "run")
        return frozenset(ids)

    def replay(self, traces: TraceSet, progress: Progress | None = None) -> ReplayResult:
        runs = traces.runs
        self._shares = self._run_shares(runs)
        state = [_Run(r) for r in runs]
        total = traces.calls
        done = 0
        step = max(total // 200, 1)
        pending = sorted(traces.adjustments, key=lambda a: (a.at, a.id))
        k = 0
        for t, i, _, call in _ordered(runs):
            while k < len(pending) and pending[k].at <= t:  # an operator's action, in the ledger at its time
                self._adjust(pending[k], state)
                k += 1
            st = state[i]
            st.results.append(self._one(st, call))
            done += 1
            if progress is not None and (done % step == 0 or done == total):
                progress(done, total)
            if len(st.results) == len(st.run.calls) and st.run.outcome:
                self.clock.now = call.timestamp
                self.gov.record_outcome(st.run.run_id, st.run.outcome)
        return ReplayResult(
            policy_name=self.policy.name,
            revision=str(self.policy.revision),
            runs=tuple(RunResult(s.run, tuple(s.results), s.stopped_at, s.stop_rule, s.stop_reason) for s in state),
            issues=traces.issues,
            formats=dict(traces.formats),
            adjustments=tuple(pending),
            rule_ids=tuple(
                r.id
                for g in (
                    self.policy.stop,
                    self.policy.routes,
                    self.policy.context,
                    self.policy.calls,
                    self.policy.budgets,
                )
                for r in g
            ),
        )

    def _adjust(self, a: Adjustment, state: Sequence[_Run]) -> None:
        """Write a recorded adjustment to the replay's ledger, and let a run it lifted go on: a resume of a run a
        stop ended, a raise or reset of the run-scoped budget that ended it (the recorded run did go on)."""
        self.ledger.adjust(a)
        for st in state:
            if st.stopped_at is None:
                continue
            run_id = st.run.run_id
            resumed = a.kind == "resume" and a.run_id == run_id and st.stop_kind == "stop"
            raised = a.kind != "resume" and st.stop_kind == "budget" and a.key == f"{st.stop_rule}|run={run_id}"
            if resumed or raised:
                st.stopped_at = st.stop_rule = st.stop_kind = st.stop_reason = None

    def _run_shares(self, runs: Sequence[TraceRun]) -> dict[str, float]:
        """Per-call shares of the costs recorded per run (not per call), by each call's computed cost
        (evenly where any call of the run cannot be priced)."""
        shares: dict[str, float] = {}
        for r in runs:
            whole = r.recorded_cost
            if whole is None or not r.calls or any(c.cost_usd is not None for c in r.calls):
                continue
            computed = [self._quote(c) for c in r.calls]
            weights = [q.usd for q in computed if q is not None] if all(q is not None for q in computed) else []
            total = sum(weights)
            for k, c in enumerate(r.calls):
                shares[c.call_id] = whole * (weights[k] / total if total > 0 else 1.0 / len(r.calls))
        return shares

    def _quote(self, call: TraceCall) -> Any:
        return self.prices.quote(call.paid_model, call.usage(), call.timestamp)

    def _original(self, call: TraceCall) -> _Original:
        """(original cost, its source, list-price cost, the table that priced it) of a recorded call."""
        q = self._quote(call)
        computed = None if q is None else q.usd
        table = None if q is None else q.source
        recorded = call.cost_usd if call.cost_usd is not None else self._shares.get(call.call_id)
        if recorded is not None:
            return recorded, "recorded", computed, table
        if computed is not None:
            return computed, "computed", computed, table
        return None, "unknown", None, None

    def _governed(
        self,
        call: TraceCall,
        model: str,
        inp: int,
        out: int,
        cr: int,
        cw: int,
        cw1: int,
        reasoning: int,
        original: _Original,
    ) -> tuple[float | None, str, float | None]:
        """(governed cost, its source, the scale applied to the recorded cost) of an allowed call."""
        cost, source, computed_old, _ = original
        unchanged = model == call.paid_model and inp == call.input_tokens and out == call.output_tokens
        if unchanged and source == "recorded":
            return cost, "recorded", None
        if unchanged:
            return cost, source, None
        q = self.prices.quote(
            model,
            CallUsage(
                input_tokens=inp,
                output_tokens=out,
                cache_read_tokens=cr,
                cache_write_tokens=cw,
                cache_write_1h_tokens=cw1,
                reasoning_tokens=reasoning,
                service_tier=call.service_tier,
                speed=call.speed,
                inference_geo=call.inference_geo,
            ),
            call.timestamp,
        )
        if q is None:
            return None, "unknown", None
        if source == "recorded" and cost is not None and computed_old:
            scale = q.usd / computed_old
            return cost * scale, "recorded", scale
        return q.usd, "computed", None

    def _one(self, st: _Run, call: TraceCall) -> CallResult:
        original = self._original(call)
        baseline = original[2]
        if st.stopped_at is not None:
            return _result(
                call=call,
                verdict="block",
                model=call.model,
                rule_ids=(st.stop_rule or "",),
                reason="run already stopped",
                block_kind=st.stop_kind,
                input_tokens=call.input_tokens,
                input_estimated=False,
                cost_baseline=baseline,
                cost_governed=0.0,
                cascaded=True,
                audit=(),
                output_tokens=None,
                cost_source="computed",
                cost_original=original[0],
                cost_original_source=original[1],
                cost_scale=None,
                price_source=original[3],
                blocked_by=st.stop_rule,
                overrun=None,
            )
        self.clock.now = call.timestamp
        messages = call.messages if call.messages is not None else ()
        # repeated_call: the run's prefix hash of the messages, else the trace's digest (no prompt text)
        digest = st.prefixes.of(messages) if messages and self._repeat else call.messages_digest
        d = self.gov.check(
            model=call.model,
            messages=messages,
            max_tokens=call.max_tokens,
            metadata=call.metadata,
            input_tokens=call.input_tokens,
            fingerprint=digest,
            message_count=call.message_count,
        )
        audit = tuple(a.rule_id for a in d.audit) if d.audit else ()
        inp, estimated = call.input_tokens, False
        extra: tuple[str, ...] = ()
        if d.verdict == "block" and call.messages is None and d.block_kind == "context":
            limit = self._trim_limit(d, call)
            if limit is not None:
                # the engine cannot trim messages the trace never kept: assume the trim reached the
                # cap, and re-check the call at that size (labelled as an estimate)
                extra = d.rule_ids
                d = self.gov.check(
                    model=call.model,
                    messages=(),
                    max_tokens=call.max_tokens,
                    metadata=call.metadata,
                    input_tokens=limit,
                    fingerprint=digest,
                    message_count=call.message_count,
                )
                inp, estimated = limit, True
        rule_ids = tuple(dict.fromkeys((*extra, *d.rule_ids))) if extra else d.rule_ids
        reason = "; ".join(d.reasons)
        if d.verdict == "block":
            rule = d.blocked_by or ""
            if rule in self._ending and d.block_kind in ("stop", "budget"):
                st.stopped_at, st.stop_rule, st.stop_kind, st.stop_reason = call.index + 1, rule, d.block_kind, reason
            return _result(
                call=call,
                verdict="block",
                model=d.model,
                rule_ids=rule_ids,
                reason=reason,
                block_kind=d.block_kind,
                input_tokens=call.input_tokens,
                input_estimated=False,
                cost_baseline=baseline,
                cost_governed=0.0,
                cascaded=False,
                audit=audit,
                output_tokens=None,
                cost_source="computed",
                cost_original=original[0],
                cost_original_source=original[1],
                cost_scale=None,
                price_source=original[3],
                blocked_by=d.blocked_by,
                overrun=None,
            )
        if d.verdict == "trim" and not estimated:
            inp = min(d.input_tokens, call.input_tokens)  # the engine subtracts what the trim removed
        out = call.output_tokens
        if d.max_tokens is not None and out > d.max_tokens:
            out = d.max_tokens  # a clamped call could not have produced more
        cr = min(call.cache_read_tokens, inp)
        cw = min(call.cache_write_tokens, inp - cr)
        cw1 = min(call.cache_write_1h_tokens, cw)
        reasoning = min(call.reasoning_tokens, out)
        governed, source, scale = self._governed(call, d.model, inp, out, cr, cw, cw1, reasoning, original)
        # the ledger settles the governed cost (what would have been paid), so budgets count it
        cost = self.gov.record(
            d,
            input_tokens=inp,
            output_tokens=out,
            cache_read_tokens=cr,
            cache_write_tokens=cw,
            reasoning_tokens=reasoning,
            error=call.error,
            cache_write_1h_tokens=cw1,
            service_tier=call.service_tier,
            speed=call.speed,
            inference_geo=call.inference_geo,
            cost_usd=governed,
        )
        verdict = "trim" if estimated else d.verdict  # trim outranks reroute and allow
        if estimated:
            reason += f"{'; ' if reason else ''}trim assumed to reach {inp} input tokens (estimate: no messages)"
        return _result(
            call=call,
            verdict=verdict,
            model=d.model,
            rule_ids=rule_ids,
            reason=reason,
            block_kind=None,
            input_tokens=inp,
            input_estimated=estimated,
            cost_baseline=baseline,
            cost_governed=cost,
            cascaded=False,
            audit=audit,
            output_tokens=out,
            cost_source=source if cost is not None else "unknown",
            cost_original=original[0],
            cost_original_source=original[1],
            cost_scale=scale,
            price_source=original[3],
            blocked_by=None,
            overrun=self.gov.last_overrun,
        )

    def _trim_limit(self, d: Any, call: TraceCall) -> int | None:
        """The cap a trim-action context cap would trim to, when it is below the recorded input."""
        cap = self._trim_limits.get(d.blocked_by or "")
        if cap is None or cap.action != "trim":
            return None
        limit = cap.max_input_tokens
        if limit is None:
            price = self.prices.lookup(d.model)
            limit = price.context_window if price is not None else None
        return limit if limit is not None and limit < call.input_tokens else None
