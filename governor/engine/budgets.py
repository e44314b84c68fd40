"""Stages 5 and 6: reserve the worst case on every matching budget, then soft thresholds.

* The worst case is input tokens + (max_tokens or the output allowance), priced
  at the model to be sent, plus one call. It is reserved atomically on every
  counter of every matching enforced budget (one ledger call), so concurrent
  callers can never together pass a limit.
* ``scope: call`` budgets compare the worst case with their limit directly.
* Audit budgets never reserve: they compare usage + worst case with the limit
  and say what they would do; their counters still receive the actual spend
  at record, so "would have blocked" reflects real traffic.
* Unknown price: ``defaults.allow_unpriced`` or ``on_error: fail_open`` allows
  with a warning (USD unknown, tokens and calls still counted); otherwise the
  call is blocked with a reason that says how to add a price. Never $0.
* Store errors (:class:`LedgerError`) follow the budgets' ``on_error``.
* A denied reservation is tried once more with the operators' raises and
  resets in force for its counters (:mod:`governor.engine.adjust`); the
  decision names those that admitted it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from governor.engine.adjust import describe, widened
from governor.engine.caps import call_stage, context_stage
from governor.engine.compiled import CompiledBudget, CompiledPolicy, View
from governor.engine.match import CallContext
from governor.engine.tokens import TokenCounter
from governor.engine.work import Work
from governor.errors import LedgerError
from governor.ledger.base import (
    MAX_QUANTITY,
    Adjustment,
    Amount,
    Counter,
    Ledger,
    Limit,
    ReserveResult,
    nano_to_usd,
    usd_to_nano,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reservation:
    """What a check reserved, kept until ``record()`` settles it."""

    counters: tuple[Counter, ...]
    """The enforced budgets' counters the worst case was reserved on."""
    audit_counters: tuple[Counter, ...]
    """Audit budgets' counters: never reserved on, they receive the actual spend at record."""
    reserved: bool
    """False when the store was down and the budgets fail open (nothing to settle against)."""


class Plan:
    """Which counters a call charges, for one set of matching budgets and scope values.

    Cached per (view, scope values and run chain) when no budget of it has a
    per-call (dynamic) match, so a check of an ongoing run reuses it.
    """

    __slots__ = (
        "budgets",
        "per_call",
        "counters",
        "owners",
        "audit_counters",
        "audit_owners",
        "soft",
        "ledger",
        "granted",
    )

    def __init__(
        self, budgets: Sequence[CompiledBudget], metadata: Mapping[str, Any], run_chain: Sequence[str], ledger: Ledger
    ) -> None:
        self.budgets = tuple(budgets)
        per_call: list[CompiledBudget] = []
        counters: list[Counter] = []
        owners: list[CompiledBudget] = []
        audit_counters: list[Counter] = []
        audit_owners: list[CompiledBudget] = []
        for b in budgets:
            if b.scope == "call":
                per_call.append(b)
                continue
            cs = b.counters_for(metadata, run_chain)
            if b.audit:
                audit_counters += cs
                audit_owners += [b] * len(cs)
            else:
                counters += cs
                owners += [b] * len(cs)
        self.per_call = tuple(per_call)
        self.counters, self.owners = tuple(counters), tuple(owners)
        self.audit_counters, self.audit_owners = tuple(audit_counters), tuple(audit_owners)
        # (position in counters, budget, threshold) per soft threshold: the usages reserve is read for
        self.soft = tuple((i, b, b.rule.soft.at) for i, b in enumerate(owners) if b.rule.soft is not None)
        self.ledger = ledger  # the ledger the plan was made for (a plan is never shared between ledgers)
        # what every call granted on this plan reserved: one value, shared (it is frozen)
        self.granted = Reservation(counters=self.counters, audit_counters=self.audit_counters, reserved=True)


def cached_plan(
    cp: CompiledPolicy,
    view: View,
    key: Any,
    metadata: Mapping[str, Any],
    run_chain: Sequence[str],
    ledger: Ledger,
) -> Plan:
    """The plan of ``view`` (its budgets without a per-call match) for ``key`` -- the scope
    values and the run chain -- built and cached when missing or built for another ledger.

    One cache for the policy (``cp.plans``, two generations of PLAN_CACHE_MAX), keyed by
    ``(view, key)``: some 8,000 budget plans in use at once are never rebuilt, and memory
    stays bounded however many runs come and go.
    """
    ck = (view, key)
    plan = cp.plans.get(ck, lambda: Plan(view.budgets, metadata, run_chain, ledger))
    if plan.ledger is not ledger:
        plan = Plan(view.budgets, metadata, run_chain, ledger)
        cp.plans.put(ck, plan)
    return plan  # type: ignore[no-any-return]


def unpriced_reason(model: str) -> str:
    return (
        f"model {model} has no price (neither the policy's models.prices nor litellm's table lists it); "
        f"add it under models.prices (input_per_mtok, output_per_mtok) or set defaults.allow_unpriced: true"
    )


def budget_stage(
    cp: CompiledPolicy,
    w: Work,
    ctx: CallContext,
    metadata: Mapping[str, Any],
    fp: tuple[Any, ...],
    run_chain: tuple[str, ...],  # hashable: part of the plan cache key
    ledger: Ledger,
    decision_id: str,
    now: float,
    tokens: TokenCounter,
    view: View | None = None,
) -> tuple[Work, Reservation | None]:
    ctx.model = w.model
    ctx.input_tokens = w.input_tokens
    if view is None or view.model != w.model:
        view = cp.view(w.model, metadata, fp)
    if not view.budgets:  # nothing to reserve: only the price matters
        worst = cp.worst_case_usd(w.model, w.input_tokens, w.max_tokens)
        if worst is None and not _unpriced(cp, w, ()):
            return w, None
        w.estimated_cost = worst
        return w, None
    if view.static_budgets:
        plan = cached_plan(
            cp,
            view,
            (cp.scope_fingerprint(metadata), run_chain) if cp.scope_keys else run_chain,
            metadata,
            run_chain,
            ledger,
        )
    else:
        plan = Plan([b for b in view.budgets if b.holds(ctx)], metadata, run_chain, ledger)
    worst = cp.worst_case_usd(w.model, w.input_tokens, w.max_tokens)
    if worst is None and not _unpriced(cp, w, plan.budgets):
        return w, None
    w.estimated_cost = worst
    out = cp.default_output_tokens if w.max_tokens is None else w.max_tokens
    usd_nano = 0 if worst is None else usd_to_nano(worst)
    n_tokens = w.input_tokens + out
    amount = Amount(usd_nano, n_tokens, 1)
    beyond = amount.beyond_storage()
    if beyond is not None and (plan.counters or plan.audit_counters):  # refused before anything is reserved
        b = (plan.owners or plan.audit_owners)[0]
        w.block(
            b.id,
            "budget",
            f"budget {b.id}: this call's worst case {_amount_text(amount, beyond)} is more than "
            f"a ledger stores ({MAX_QUANTITY:,} {'nano-USD' if beyond == 'usd' else beyond})",
        )
        return w, None

    soft_hits: list[tuple[CompiledBudget, float]] = []
    for b in plan.per_call:
        metric = b.limit.exceeded_by(amount)
        if metric is not None:
            text = (
                f"budget {b.id} (per call): worst case {_amount_text(amount, metric)} > {metric} limit "
                f"{_limit_text(b, metric)}"
            )
            if b.audit:
                w.note(b.id, "block", text)
                continue
            w.block(b.id, "budget", text)
            return w, None
        if b.rule.soft is not None and b.limit.fraction(amount) >= b.rule.soft.at:
            soft_hits.append((b, b.limit.fraction(amount)))
    counters, owners = plan.counters, plan.owners
    audit_counters, audit_owners = plan.audit_counters, plan.audit_owners

    reserved = False
    adjusted = None  # (counters, adjustments, result) when a denial was looked at again with adjustments
    if counters:
        try:
            result = ledger.reserve(decision_id, counters, amount, now=now, lease_s=cp.lease_s)
        except LedgerError as exc:
            closed = [b for b in owners if not b.fail_open]
            if closed:
                w.block(closed[0].id, "store", f"budget store is down ({exc}); budget {closed[0].id} is fail_closed")
                return w, None
            ids = ", ".join(dict.fromkeys(b.id for b in owners))
            w.warnings.append(f"budget store is down ({exc}); budgets {ids} fail open: call not counted")
            counters, owners = (), ()
        else:
            if not result.ok:  # an operator may have raised or reset a denying budget: look once, in the ledger
                adjusted = _with_adjustments(ledger, decision_id, counters, amount, now, cp.lease_s)
                if adjusted is not None:
                    counters, applied, result = adjusted
                    if result.ok:
                        w.adjustments += applied
                        w.warnings += [f"admitted by adjustment {describe(a)}" for a in applied]
            if not result.ok:
                b = owners[counters.index(result.denied)] if result.denied in counters else owners[0]
                w.block(b.id, "budget", _denied_text(b, result.denied, result.denied_metric, amount, ledger, now))
                return w, None
            reserved = True
            for i, b, at in plan.soft:
                frac = counters[i].limit.fraction(result.used_by(i))  # the budget's limit, widened by adjustments
                if frac >= at:
                    soft_hits.append((b, frac))
        if reserved and adjusted is None and not (soft_hits or audit_counters):  # the usual case: nothing to say
            return w, plan.granted

    for c, b in zip(audit_counters, audit_owners, strict=True):
        try:
            total = ledger.usage(c, now=now) + amount
        except LedgerError as exc:
            w.note(b.id, "warn", f"budget {b.id}: store unavailable ({exc})")
            continue
        metric = b.limit.exceeded_by(total)
        if metric is not None:
            w.note(
                b.id,
                "block",
                f"budget {b.id} ({_scope_value(c)}): would exceed its {metric} limit {_limit_text(b, metric)}",
            )
        elif b.rule.soft is not None and b.limit.fraction(total) >= b.rule.soft.at:
            soft = b.rule.soft
            w.note(
                b.id,
                soft.action,
                f"budget {b.id} ({_scope_value(c)}) at {b.limit.fraction(total):.0%} of its limit",
                soft.to,
            )

    reservation = Reservation(counters=counters, audit_counters=audit_counters, reserved=reserved)
    seen: set[str] = set()
    for b, frac in soft_hits:
        if b.id in seen:
            continue
        seen.add(b.id)
        w = _soft(cp, w, b, frac, ctx, metadata, fp, tokens, usd_nano)
    return w, reservation


def _with_adjustments(
    ledger: Ledger, decision_id: str, counters: tuple[Counter, ...], amount: Amount, now: float, lease_s: float
) -> tuple[tuple[Counter, ...], tuple[Adjustment, ...], ReserveResult] | None:
    """A denied reservation tried once more on the counters widened by the raises and resets in force for
    them (:mod:`governor.engine.adjust`): (the counters, the adjustments, the result); None when none applies."""
    found = widened(ledger, counters, now)
    if found is None:
        return None
    wider, applied = found
    try:
        result = ledger.reserve(decision_id, wider, amount, now=now, lease_s=lease_s)
    except LedgerError:
        return None
    return wider, applied, result


def _unpriced(cp: CompiledPolicy, w: Work, budgets: Sequence[CompiledBudget]) -> bool:
    """Handle an unknown price; False when the call is blocked."""
    if cp.allow_unpriced:
        w.warnings.append(f"model {w.model} has no price: cost unknown (allowed by defaults.allow_unpriced)")
        return True
    enforced = [b for b in budgets if not b.audit]
    usd = [b for b in enforced if b.has_usd]
    closed = [b for b in usd if not b.fail_open]
    if closed or (not enforced and not cp.fail_open):
        w.block(closed[0].id if closed else "on_error", "unpriced", unpriced_reason(w.model))
        return False
    if usd or not enforced:
        w.warnings.append(f"model {w.model} has no price: cost unknown (on_error: fail_open)")
    else:  # the matching budgets limit only calls and tokens: the price is irrelevant to them
        ids = ", ".join(dict.fromkeys(b.id for b in enforced))
        w.warnings.append(f"model {w.model} has no price: cost unknown (budgets {ids} limit only calls/tokens)")
    return True


def _soft(
    cp: CompiledPolicy,
    w: Work,
    b: CompiledBudget,
    frac: float,
    ctx: CallContext,
    metadata: Mapping[str, Any],
    fp: tuple[Any, ...],
    tokens: TokenCounter,
    reserved_usd_nano: int,
) -> Work:
    soft = b.rule.soft
    text = f"budget {b.id} at {frac:.0%} of its limit (soft threshold {soft.at:.0%})"
    if soft.action == "warn" or soft.to is None or soft.to == w.model:
        w.warnings.append(text)
        if b.id not in w.rule_ids:
            w.rule_ids.append(b.id)
        return w
    trial = w.copy()
    trial.model = soft.to
    trial.context_rerouted = False
    context_stage(cp, trial, ctx, tokens, metadata, fp)
    if not trial.blocked and not trial.context_rerouted:
        call_stage(cp, trial, ctx, metadata, fp)
    why = ""
    if trial.blocked:
        why = trial.reasons[0]
    elif trial.context_rerouted:
        why = "a context cap would reroute it"
    else:
        worst = cp.worst_case_usd(trial.model, trial.input_tokens, trial.max_tokens)
        if worst is None:
            why = unpriced_reason(trial.model)
        elif usd_to_nano(worst) > reserved_usd_nano:
            why = f"its worst case ${worst:.4f} is above the reserved ${nano_to_usd(reserved_usd_nano):.4f}"
        else:
            trial.estimated_cost = worst
    if why:
        w.warnings.append(f"{text}; downgrade to {soft.to} skipped: {why}")
        if b.id not in w.rule_ids:
            w.rule_ids.append(b.id)
        return w
    # the budget caused the downgrade: it comes before what the re-checked caps changed
    n_ids, n_reasons = len(w.rule_ids), len(w.reasons)
    trial.rule_ids[n_ids:n_ids] = [b.id]
    trial.reasons[n_reasons:n_reasons] = [f"{text}: downgraded {w.model} -> {soft.to}"]
    trial.warnings.append(text)
    return trial


def _scope_value(c: Counter) -> str:
    return c.key.partition("|")[2]


def _limit_text(b: CompiledBudget, metric: str) -> str:
    return _limit_value(b.limit, metric)


def _limit_value(limit: Limit, metric: str) -> str:
    if metric == "usd":
        return f"${nano_to_usd(limit.usd_nano or 0):.4f}"
    return str(limit.tokens if metric == "tokens" else limit.calls)


def _amount_text(a: Amount, metric: str) -> str:
    if metric == "usd":
        return f"${a.usd:.4f}"
    return f"{a.tokens} tokens" if metric == "tokens" else f"{a.calls} call(s)"


def _denied_text(
    b: CompiledBudget, c: Counter | None, metric: str | None, amount: Amount, ledger: Ledger, now: float
) -> str:
    metric = metric or "usd"
    used = ""
    if c is not None:
        try:
            u = ledger.usage(c, now=now)
            used = f"used {_amount_text(u, metric)} + "
        except LedgerError:
            pass
    where = _scope_value(c) if c is not None else b.scope
    limit = _limit_text(b, metric)
    if c is not None and c.limit != b.limit:
        limit = f"{_limit_value(c.limit, metric)} (the policy's {limit}, raised by operators' adjustments)"
    return (
        f"budget {b.id} ({where}, {b.window.describe()}): {used}this call's worst case {_amount_text(amount, metric)} "
        f"would exceed the {metric} limit {limit}"
    )
