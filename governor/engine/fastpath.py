"""The usual check, in one pass: allow, or reroute by a route (max_tokens perhaps clamped).

Most checks of a working policy end the same way: no stop is near its limit,
a route may pick the model, no context or call cap can act, and the budgets
reserve from their lane's allowance with no soft threshold in reach. This
module decides exactly that case with a few lookups, and returns None --
having undone what it did -- as soon as the call is anything else, so that
:func:`governor.engine.evaluate.evaluate` (the reference, stage by stage)
decides it. The two must agree on every call they both decide:
``tests/engine/test_fastpath.py`` runs them side by side.

Returns None (the general path decides) when:

* the policy reads run state in its matches, or the requested model's view
  has audit routes, or stops the floors cannot screen (``View.stop_floors``);
* the routed model's view has a context cap that could act (input above its
  lowest limit, or a limit of an unknown context window), a call cap that could
  act and is in audit mode or has a per-call match, a cost cap the call is
  above, budgets with per-call matches, or a model without a price (call caps
  that only clamp ``max_tokens`` are applied here, as the stages would);
* the budget plan is not a lane's (another ledger, audit or per-call budgets);
* a run is at or past a stop's floor;
* the lane, given a new allowance if its own does not cover the call
  (``reserve_lane``), denies the call or reports a soft threshold reached.

A missing plan is built (as the budget stage would) and a lane short of
allowance takes a new one here, so a run's first call and a lane's refill do
not go through the stages. What the fast path did before handing over -- a run
admission, a reservation granted with a soft threshold to word -- is undone
before it returns None; the plan it built and the allowance its lane took stay,
as after the budget stage (an allowance is not usage).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from governor.engine.budgets import cached_plan
from governor.engine.compiled import CompiledPolicy
from governor.engine.decision_factory import new_decision
from governor.engine.match import CallContext
from governor.engine.caps import clamp_reason
from governor.engine.runstate import RunStates, call_fingerprint
from governor.ledger.base import Ledger, usd_to_nano

_EMPTY: tuple = ()


def fast_check(
    cp: CompiledPolicy,
    runs: RunStates,
    ledger: Ledger,
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
    fingerprint: str | int | None,
    message_count: int | None,
) -> tuple | None:
    """``(decision, reservation, run states)`` as :func:`evaluate` returns it, or None.

    Written for speed: what the stages reach through methods (``cp.view``,
    ``cp.worst_case_usd``) is read here from the view caches directly, and the
    method runs only when the cache misses.
    """
    get = metadata.get
    try:  # cp.view, when the view is cached and the fingerprint is plain values
        fp: tuple | None = tuple(map(get, cp.meta_keys))
        view = cp.views.young[(model, fp)]
    except (KeyError, TypeError):
        fp = None
        view = cp.view(model, metadata)
    if not view.fast_front:
        return None

    # 2. routing: the first matching route (no audit routes in this view)
    to, rule_ids, reasons, fallbacks = model, _EMPTY, _EMPTY, _EMPTY
    ctx = None
    for dynamic, rto, rfallbacks, rids, rreasons in view.steps:
        if dynamic is not None:
            if ctx is None:
                ctx = CallContext(model, metadata, input_tokens, messages, tools, None, message_count)
            if not dynamic(ctx):
                continue
        to, fallbacks, rule_ids, reasons = rto, rfallbacks, rids, rreasons
        break
    if to == model:
        target = view
    else:
        try:
            target = cp.views.young[(to, fp)]
        except (KeyError, TypeError):
            target = cp.view(to, metadata)

    # 3-5 on the routed model: nothing may act but the budgets' reservation
    rates = target.rates
    if rates is None or not target.fast_back or input_tokens > target.ctx_floor or target.ctx_floor < 0:
        return None
    worst = input_tokens * rates[0] + (cp.default_output_tokens if max_tokens is None else max_tokens) * rates[1]
    if target.calls and (max_tokens is None or max_tokens > target.out_floor or worst > target.cost_floor):
        if not target.plain_calls:
            return None
        for cap in target.calls:  # caps.call_stage, for caps that only clamp (no audit, no per-call match)
            rule = cap.rule
            cap_out = rule.max_output_tokens
            if cap_out is not None and (max_tokens is None or max_tokens > cap_out):
                if cap.id not in rule_ids:
                    rule_ids += (cap.id,)
                reasons += (clamp_reason(cap.id, max_tokens, cap_out),)
                max_tokens = cap_out
                worst = input_tokens * rates[0] + cap_out * rates[1]
            if rule.max_cost_usd is not None and worst > rule.max_cost_usd:
                return None  # it blocks: the stages word it
    plan = key = None
    if target.budgets:
        key = (tuple(map(get, cp.scope_keys)), run_chain) if cp.scope_keys else run_chain
        try:
            plan = cp.plans.young.get((target, key))
        except TypeError:  # a list among the scope values: the stages make it hashable
            return None
        if plan is not None and (plan.reservation is None or not plan.fast or plan.ledger is not ledger):
            return None

    # 1. stop conditions (under every floor) and admission: the first change made
    states: Sequence[Any] = _EMPTY
    call_fp = None
    if run_chain and cp.needs_runs:
        if view.repeat:
            call_fp = call_fingerprint(model, messages, fingerprint)
        admitted = runs.admit_under(run_chain, view.stop_floors, call_fp, now)  # type: ignore[arg-type]
        if admitted is None:
            return None
        states = admitted

    # 5. the reservation, from the lane's allowance (a new one when it is short)
    reservation = None
    if key is not None:
        if plan is None:  # a run's first call: its plan, built after admission as the budget stage would
            plan = cached_plan(cp, target, key, metadata, run_chain, ledger)
            if plan.reservation is None or not plan.fast:
                _unadmit(runs, states, call_fp)
                return None
        usd = usd_to_nano(worst)
        tokens = input_tokens + (cp.default_output_tokens if max_tokens is None else max_tokens)
        if not ledger.take_lane(decision_id, plan.lane, usd, tokens, now, cp.lease_s):  # type: ignore[attr-defined]
            denied, _, soft_hits = ledger.reserve_lane(  # type: ignore[attr-defined]
                decision_id, plan.lane, usd, tokens, 1, now=now, lease_s=cp.lease_s)
            if denied >= 0 or soft_hits:  # a block or a soft threshold: the stages word it
                if denied < 0:
                    ledger.release(decision_id, now=now)
                _unadmit(runs, states, call_fp)
                return None
        reservation = plan.reservation

    decision = new_decision(
        "allow" if to == model else "reroute", to, messages, max_tokens, rule_ids, reasons, cp.revision, worst,
        decision_id, model, input_tokens, estimated, _EMPTY, _EMPTY, cp.name, metadata, None, fallbacks, None,
    )
    return decision, reservation, states


def _unadmit(runs: RunStates, states: Sequence[Any], call_fp: int | None) -> None:
    """Undo a run admission (the call is handed over to the stages, which admit it again)."""
    if states:
        with runs.lock:
            for st in states:
                st.unadmit(call_fp)
