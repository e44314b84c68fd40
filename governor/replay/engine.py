"""Replay recorded calls through a policy: the production check/record path, a simulated clock.

Every call goes through ``Governor.check`` and ``Governor.record`` exactly as
in production. The clock is set from each call's recorded timestamp, calls of
all runs are replayed in time order (so shared budgets see the real
interleaving), and the ledger starts empty unless a state is given.

Recorded usage is the truth: a rerouted call keeps its tokens, repriced at the
new model; a trimmed call's input drops by what the trim removed (counted on
the trace's messages; estimated and labelled when the trace has none); a
blocked call costs nothing; a stop condition or a run-scoped budget that
blocks ends the run (the agent would have stopped), so its later calls are
blocked too without being checked.
"""

from __future__ import annotations

import heapq
from typing import Any, Callable, Iterable, Mapping

from governor.policy.model import Budget, ContextCap, Policy
from governor.pricing import PriceTable, call_cost
from governor.replay.result import CallResult, ReplayResult, RunResult
from governor.traces.model import TraceCall, TraceRun, TraceSet

Progress = Callable[[int, int], None]


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

    __slots__ = ("run", "results", "stopped_at", "stop_rule", "stop_reason")

    def __init__(self, run: TraceRun) -> None:
        self.run = run
        self.results: list[CallResult] = []
        self.stopped_at: int | None = None
        self.stop_rule: str | None = None
        self.stop_reason: str | None = None


def _ordered(runs: Iterable[TraceRun]) -> Iterable[tuple[int, TraceCall]]:
    """(run position, call) for every call, in recorded time order across runs (stable)."""
    streams = [[(c.timestamp, i, k, c) for k, c in enumerate(r.calls)] for i, r in enumerate(runs)]
    for ts, i, k, c in heapq.merge(*streams):
        yield i, c


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
        self.gov = Governor(policy, ledger=ledger, clock=self.clock, tokens=shared_token_counter())
        self.prices = prices or PriceTable(policy.prices)
        self._ending = self._ending_rules(policy)
        self._trim_limits = {c.id: c for c in policy.context if isinstance(c, ContextCap)}

    @staticmethod
    def _ending_rules(policy: Policy) -> frozenset[str]:
        """Rule ids whose block ends the run: stop conditions and run-scoped budgets."""
        ids = {s.id for s in policy.stop}
        ids.update(b.id for b in policy.budgets if isinstance(b, Budget) and b.scope == "run")
        return frozenset(ids)

    def replay(self, traces: TraceSet, progress: Progress | None = None) -> ReplayResult:
        runs = traces.runs
        state = [_Run(r) for r in runs]
        total = traces.calls
        done = 0
        step = max(total // 200, 1)
        for i, call in _ordered(runs):
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
            runs=tuple(
                RunResult(s.run, tuple(s.results), s.stopped_at, s.stop_rule, s.stop_reason) for s in state
            ),
            issues=traces.issues,
            formats=dict(traces.formats),
            rule_ids=tuple(r.id for g in (self.policy.stop, self.policy.routes, self.policy.context,
                                          self.policy.calls, self.policy.budgets) for r in g),
        )

    def _baseline(self, call: TraceCall) -> float | None:
        price = self.prices.lookup(call.model)
        if price is None:
            return None
        return call_cost(price, call.input_tokens, call.output_tokens, call.cache_read_tokens,
                         call.cache_write_tokens, call.reasoning_tokens)

    def _one(self, st: _Run, call: TraceCall) -> CallResult:
        baseline = self._baseline(call)
        if st.stopped_at is not None:
            return CallResult(call, "block", call.model, (st.stop_rule or "",), "run already stopped",
                              "stop", call.input_tokens, False, baseline, 0.0, cascaded=True)
        self.clock.now = call.timestamp
        messages = call.messages if call.messages is not None else ()
        d = self.gov.check(model=call.model, messages=messages, max_tokens=call.max_tokens,
                           metadata=call.metadata, input_tokens=call.input_tokens)
        audit = tuple(a.rule_id for a in d.audit)
        if d.verdict == "block":
            if call.messages is None and d.block_kind == "context":
                trimmed = self._estimated_trim(call, d, baseline, audit)
                if trimmed is not None:
                    return trimmed
            rule = d.rule_ids[-1] if d.rule_ids else ""
            if rule in self._ending and d.block_kind in ("stop", "budget"):
                st.stopped_at = call.index + 1
                st.stop_rule = rule
                st.stop_reason = "; ".join(d.reasons)
            return CallResult(call, "block", d.model, d.rule_ids, "; ".join(d.reasons), d.block_kind,
                              call.input_tokens, False, baseline, 0.0, audit=audit)
        inp = call.input_tokens
        estimated = False
        if d.verdict == "trim":
            inp = min(d.input_tokens, call.input_tokens)  # the engine subtracts what the trim removed
        return self._settle(call, d, inp, estimated, baseline, audit)

    def _settle(self, call: TraceCall, d: Any, inp: int, estimated: bool, baseline: float | None,
                audit: tuple[str, ...]) -> CallResult:
        cr = min(call.cache_read_tokens, inp)
        cw = min(call.cache_write_tokens, inp - cr)
        cost = self.gov.record(d, input_tokens=inp, output_tokens=call.output_tokens, cache_read_tokens=cr,
                               cache_write_tokens=cw, reasoning_tokens=call.reasoning_tokens, error=call.error)
        return CallResult(call, d.verdict, d.model, d.rule_ids, "; ".join(d.reasons), None, inp, estimated,
                          baseline, cost, audit=audit)

    def _estimated_trim(self, call: TraceCall, d: Any, baseline: float | None,
                        audit: tuple[str, ...]) -> CallResult | None:
        """A trim cap on a trace without messages: assume the trim brought input down to the cap.

        The engine cannot trim messages it never saw, so it blocks; we re-check
        the call at the capped size and label its input as estimated.
        """
        cap = self._trim_limits.get(d.rule_ids[-1]) if d.rule_ids else None
        if cap is None or cap.action != "trim":
            return None
        limit = cap.max_input_tokens
        if limit is None:
            price = self.prices.lookup(d.model)
            limit = price.context_window if price is not None else None
        if limit is None or limit >= call.input_tokens:
            return None
        d2 = self.gov.check(model=call.model, messages=(), max_tokens=call.max_tokens,
                            metadata=call.metadata, input_tokens=limit)
        if d2.verdict == "block":
            return None
        result = self._settle(call, d2, limit, True, baseline, audit)
        rule_ids = tuple(dict.fromkeys((*d.rule_ids, *d2.rule_ids)))
        return CallResult(call, "trim", result.model, rule_ids, result.reason + f"; trimmed to {limit} (estimated)",
                          None, limit, True, baseline, result.cost_governed, audit=audit)
