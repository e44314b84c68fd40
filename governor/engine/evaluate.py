"""One check, in the documented order (docs/engine.md):

1. stop conditions of the run (and of every enclosing run)
2. routing: the first matching enforced route wins
3. context caps on the routed model        (governor.engine.caps)
4. per-call caps                           (governor.engine.caps)
5. budgets: reserve the worst case          (governor.engine.budgets)
6. soft thresholds: warn / downgrade        (governor.engine.budgets)

Stop-condition state and the admission of the call are updated in one step
under the run-state lock; a call blocked by a later stage is un-admitted.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from governor.decision import Decision
from governor.engine.decision_factory import new_decision
from governor.engine.budgets import Reservation, budget_stage
from governor.engine.caps import call_stage, context_stage
from governor.engine.compiled import CompiledPolicy, CompiledRule, View
from governor.engine.match import CallContext
from governor.engine.runstate import RunSnapshot, RunState, RunStates, call_fingerprint, under_floors
from governor.engine.tokens import TokenCounter
from governor.engine.work import Work
from governor.ledger.base import Ledger


# What a check produced: the decision, its reservation, and the states of the runs the
# call was admitted to (record settles into them).
Outcome = tuple[Decision, "Reservation | None", Sequence[RunState]]


def evaluate(
    cp: CompiledPolicy,
    runs: RunStates,
    ledger: Ledger,
    tokens: TokenCounter,
    *,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    max_tokens: int | None,
    tools: Sequence[Any] | None,
    metadata: Mapping[str, Any],
    run_chain: tuple[str, ...],
    input_tokens: int,
    estimated: bool,
    now: float,
    decision_id: str,
    fingerprint: str | int | None = None,
    message_count: int | None = None,
) -> Outcome:
    fp = cp.fingerprint(metadata)
    view = cp.view(model, metadata, fp)
    w = Work(model, messages, max_tokens, input_tokens, estimated)
    ctx = CallContext(model, metadata, input_tokens, messages, tools, message_count=message_count)

    # 1. stop conditions, and admission of the call into its runs
    states: list[RunState] = []
    counted: list[str] = []  # max_calls stops with a match that this call matches: they count it
    call_fp: int | None = None
    if run_chain and cp.needs_runs:
        if view.repeat:
            call_fp = call_fingerprint(model, messages, fingerprint)
        with runs.lock:
            states = [runs.get(r, now) for r in run_chain]
            cur = states[-1]
            if cp.reads_runs:
                ctx.run = RunSnapshot(cur.calls, cur.cost_usd, cur.consecutive_errors, cur.overruns)  # before this call
            if view.stop_floors is None or not under_floors(states, view.stop_floors, call_fp, now):
                _stops(view, states, w, ctx, call_fp, counted, now)
            if not w.blocked:
                for st in states:
                    st.admit(call_fp, now, counted)

    # 2. routing
    reservation = None
    if not w.blocked:
        audited = False
        for route in view.routes:
            if route.dynamic is not None and not route.dynamic(ctx):
                continue
            rule = route.rule
            if route.audit:
                if not audited:
                    if rule.to != model:  # a route to the requested model would change nothing: no note
                        w.note(route.id, "reroute", f"route {route.id}: would send {model} to {rule.to}", rule.to)
                    audited = True
                continue
            if rule.to != model:
                w.change(route.id, route.route_reason(model))
            else:
                w.rule_ids.append(route.id)
            w.model = rule.to
            w.fallbacks = rule.fallbacks
            break
        # 3-6, each on the view of the model it judges; a stage that cannot act is skipped (View)
        if w.model != model:
            view = cp.view(w.model, metadata, fp)
        if input_tokens > view.ctx_floor or view.ctx_floor < 0:
            context_stage(cp, w, ctx, tokens, metadata, fp, view)
            if w.model != view.model:
                view = cp.view(w.model, metadata, fp)
        if not w.blocked and view.calls and (
            w.max_tokens is None or w.max_tokens > view.out_floor
            or (cp.worst_case_usd(w.model, w.input_tokens, w.max_tokens) or 0.0) > view.cost_floor
        ):
            call_stage(cp, w, ctx, metadata, fp, view)
        if not w.blocked:
            w, reservation = budget_stage(cp, w, ctx, metadata, fp, run_chain, ledger, decision_id, now, tokens, view)

    if w.blocked:
        if states and not w.block_kind == "stop":
            with runs.lock:
                for st in states:
                    st.unadmit(call_fp, counted)
        verdict = "block"
        if w.estimated_cost is None:
            w.estimated_cost = cp.worst_case_usd(w.model, w.input_tokens, w.max_tokens)
    elif w.trimmed:
        verdict = "trim"
    elif w.model != model:
        verdict = "reroute"
    else:
        verdict = "allow"
    decision = new_decision(
        verdict, w.model, w.messages, w.max_tokens, tuple(w.rule_ids), tuple(w.reasons), cp.revision,
        w.estimated_cost, decision_id, model, w.input_tokens, w.estimated, tuple(w.warnings), tuple(w.audit),
        cp.name, metadata, w.block_kind, w.fallbacks, w.blocked_by,
    )
    return decision, reservation, states if not w.blocked else ()


def _stops(
    view: View, states: Sequence[RunState], w: Work, ctx: CallContext, call_fp: int | None, counted: list[str], now: float,
) -> None:
    """Stage 1 rule by rule (run-state lock held): a stop that fires blocks, or notes in audit mode."""
    for stop in view.stops:
        if stop.dynamic is not None and not stop.dynamic(ctx):
            continue
        if stop.counts_matched:
            counted.append(stop.id)
        kind, limit = stop.kind, stop.max
        text = None
        for st in states:  # inline comparisons; the reason is worded only on a hit
            if kind == "max_calls":
                hit = (st.matched.get(stop.id, 0) if stop.counts_matched else st.calls) >= limit
            elif kind == "consecutive_errors":
                hit = st.consecutive_errors >= limit
            elif kind == "repeated_call":
                hit = call_fp is not None and st.repeats(call_fp, stop.within, now) + 1 >= limit
            else:
                hit = now - st.started_at > limit
            if hit:
                text = _stop_reason(stop, st, call_fp, now)
                break
        if text is None:
            continue
        if stop.audit:
            w.note(stop.id, "block", text)
            continue
        w.block(stop.id, "stop", text)
        return


def _stop_reason(stop: CompiledRule, st: RunState, fp: int | None, now: float) -> str:
    """Why ``stop`` fires for run state ``st`` (the caller's comparison said it does)."""
    kind, limit = stop.kind, stop.max
    if kind == "max_calls":
        calls = st.matched.get(stop.id, 0) if stop.counts_matched else st.calls
        which = " matching calls" if stop.counts_matched else " calls"
        return f"stop {stop.id}: run {st.run_id} already made {calls}{which} (max {limit:g})"
    if kind == "consecutive_errors":
        return f"stop {stop.id}: run {st.run_id} had {st.consecutive_errors} consecutive failed calls (max {limit:g})"
    if kind == "repeated_call":
        n = st.repeats(fp, stop.within, now) + 1 if fp is not None else 0  # this call is the n-th identical one
        return f"stop {stop.id}: run {st.run_id} would make the same call {n} times within {stop.within:g}s (max {limit:g})"
    return f"stop {stop.id}: run {st.run_id} started {now - st.started_at:.0f}s ago (max {limit:g}s)"
