"""Operator actions on a shared ledger: raise or reset a budget scope, resume a stopped run.

What ``governor budget raise|reset`` and ``governor run resume`` do, as
functions. Each writes one :class:`~governor.ledger.base.Adjustment` (who,
when, why, by how much) through the ledger protocol (``Ledger.adjust``) and
returns it; nothing edits the policy file. Running governors that share the
ledger apply it the next time the budget or the stop would refuse a call
(:mod:`governor.engine.adjust`).

* A raise adds to a limit for the current window only, unless ``until`` says
  otherwise (then it applies in every window until then); ``to`` names the
  limit wanted instead of the amount to add. A raise never lowers a limit.
* A reset sets the scope's spend in the current window aside: status shows its
  spend from zero and governors admit up to the full limit again, while the
  ledger keeps every settled call (the set-aside spend is room above the
  limit until the window ends). Rolling windows have no reset (their spend
  leaves them bit by bit): raise them instead.
* A resume clears a stopped run's stop conditions in every governor that
  knew the run before the resume (for a day, the record's ``until``).
"""

from __future__ import annotations

import getpass
import os
import secrets
from dataclasses import dataclass

from governor.engine.adjust import room, widen
from governor.errors import OperatorError
from governor.ledger.base import Adjustment, Amount, Counter, Ledger, Limit, nano_to_usd, usd_to_nano
from governor.ledger.windows import parse_duration, window_period
from governor.policy.model import Budget, Policy

RESUME_FOR_S = 86400.0  # how long a resume waits for the run's governors to meet its stop
METRICS = ("usd", "tokens", "calls")

__all__ = ["Target", "raise_budget", "reset_budget", "resume_run", "target", "until_of", "who"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """The budget scope an action is about."""

    budget: Budget
    """The policy's budget."""
    counter: Counter
    """Its counter for the scope value (key, policy limit, window)."""

    @property
    def scope(self) -> str:
        """The scope value as counter keys spell it (``team=platform``, ``global``)."""
        return self.counter.key.partition("|")[2]


def who(by_user: str | None = None) -> str:
    """The operator: ``by_user`` when given, else the OS user."""
    if by_user:
        return by_user
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name in the environment or the password database
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


def target(policy: Policy, budget_id: str, scope: str | None) -> Target:
    """The counter of ``budget_id`` for ``scope`` (``team=platform``; nothing or ``global`` for a global budget)."""
    from governor.status import counter_of

    budget = next((b for b in policy.budgets if b.id == budget_id), None)
    if budget is None:
        known = ", ".join(b.id for b in policy.budgets) or "none"
        raise OperatorError(f"policy {policy.name} has no budget {budget_id!r} (its budgets: {known})")
    if budget.scope == "call":
        raise OperatorError(f"budget {budget_id} is per call (scope: call): it keeps no spend to raise or reset")
    if budget.mode == "off":
        raise OperatorError(f"budget {budget_id} is off (mode: off): nothing counts against it")
    if budget.scope == "global":
        if scope not in (None, "", "global"):
            raise OperatorError(f"budget {budget_id} is global: leave --scope out (or write --scope global)")
        return Target(budget=budget, counter=counter_of(budget, f"{budget.id}|global"))
    name, sep, value = (scope or "").partition("=")
    if not sep or not value:
        raise OperatorError(
            f"budget {budget_id} is per {budget.scope}: say which one, e.g. --scope {budget.scope}=VALUE"
        )
    if name != budget.scope:
        raise OperatorError(f"budget {budget_id} is per {budget.scope}, not per {name}: --scope {budget.scope}=VALUE")
    return Target(budget=budget, counter=counter_of(budget, f"{budget.id}|{budget.scope}={value}"))


def _metric(budget: Budget, metric: str | None) -> str:
    limited = [
        m
        for m, v in (("usd", budget.limit_usd), ("tokens", budget.limit_tokens), ("calls", budget.limit_calls))
        if v is not None
    ]
    if metric is not None:
        if metric not in METRICS:
            raise OperatorError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
        if metric not in limited:
            raise OperatorError(f"budget {budget.id} has no {metric} limit (it limits {', '.join(limited)})")
        return metric
    if "usd" in limited or len(limited) == 1:
        return "usd" if "usd" in limited else limited[0]
    raise OperatorError(f"budget {budget.id} limits {' and '.join(limited)}: say which with --metric")


def _quantity(metric: str, value: float) -> int:
    if value != value or value in (float("inf"), float("-inf")):
        raise OperatorError(f"the amount must be a finite number, got {value}")
    if metric == "usd":
        return usd_to_nano(value)
    if value != int(value):
        raise OperatorError(f"{metric} are whole numbers, got {value}")
    return int(value)


def _of(limit: Limit, metric: str) -> int:
    value = {"usd": limit.usd_nano, "tokens": limit.tokens, "calls": limit.calls}[metric]
    return value or 0


def _shown(metric: str, quantity: int) -> str:
    return f"${nano_to_usd(quantity):,.4f}" if metric == "usd" else f"{quantity:,} {metric}"


def until_of(text: str | None, t: Target, now: float) -> float | None:
    """``--until``: END_OF_WINDOW (the default), ``never``, a duration from now (``7d``) or an ISO-8601 time."""
    end = window_period(t.budget.window, now)[1]
    if text is None or text.upper() == "END_OF_WINDOW":
        return end
    if text.lower() == "never":
        return None
    try:
        return now + parse_duration(text)
    except ValueError:
        pass
    from datetime import datetime, timezone

    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise OperatorError(
            f"--until {text!r}: expected END_OF_WINDOW, never, a duration (7d, 12h) or an ISO-8601 time"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    ts = when.timestamp()
    if ts <= now:
        raise OperatorError(f"--until {text!r} is in the past")
    return ts


def _new(kind: str, **fields: object) -> Adjustment:
    return Adjustment(id=f"adj-{secrets.token_hex(8)}", kind=kind, **fields)  # type: ignore[arg-type]


def raise_budget(
    policy: Policy,
    ledger: Ledger,
    budget_id: str,
    scope: str | None,
    *,
    by: float | None = None,
    to: float | None = None,
    metric: str | None = None,
    until: str | None = None,
    reason: str,
    operator: str,
    now: float,
) -> Adjustment:
    """Raise one budget scope's limit ``by`` an amount or ``to`` a limit (USD unless ``metric``); write it."""
    t = target(policy, budget_id, scope)
    if (by is None) == (to is None):
        raise OperatorError("say how much: --by AMOUNT (added to the limit) or --to LIMIT (the limit wanted)")
    if not reason.strip():
        raise OperatorError("--reason is required: say why (it is kept in the audit trail)")
    m = _metric(t.budget, metric)
    current = widen(
        t.counter.limit, room([a for a in ledger.adjustments(now=now) if a.kind == "raise" and a.key == t.counter.key])
    )
    if by is not None:
        delta = _quantity(m, by)
        if delta <= 0:
            raise OperatorError(f"--by must be more than 0, got {by}: a raise never lowers a limit (edit the policy)")
    else:
        assert to is not None
        delta = _quantity(m, to) - _of(current, m)
        if delta <= 0:
            raise OperatorError(
                f"budget {t.budget.id} ({t.scope}) already has a {m} limit of {_shown(m, _of(current, m))}: --to "
                f"{_shown(m, _quantity(m, to))} would lower it; a raise never lowers a limit (edit the policy)"
            )
    amount = Amount(**{{"usd": "usd_nano"}.get(m, m): delta})
    adj = _new(
        "raise",
        budget=t.budget.id,
        scope=t.scope,
        amount=amount,
        at=now,
        until=until_of(until, t, now),
        by=operator,
        reason=reason.strip(),
    )
    ledger.adjust(adj)
    return adj


def reset_budget(
    policy: Policy, ledger: Ledger, budget_id: str, scope: str | None, *, reason: str, operator: str, now: float
) -> Adjustment:
    """Set one budget scope's spend in the current window aside (a recorded adjustment; nothing deleted)."""
    t = target(policy, budget_id, scope)
    if t.budget.window.kind == "rolling":
        raise OperatorError(
            f"budget {t.budget.id} has a rolling window: its spend leaves the window bit by bit, so there is "
            "nothing to reset at once; raise it for a while instead (governor budget raise --by ... --until 1h)"
        )
    if not reason.strip():
        raise OperatorError("--reason is required: say why (it is kept in the audit trail)")
    used = ledger.usage(t.counter, now=now)
    _, held = ledger.in_flight(t.counter, now=now)
    earlier = room([a for a in ledger.adjustments(now=now) if a.kind == "reset" and a.key == t.counter.key])
    settled = Amount(
        max(0, used.usd_nano - held.usd_nano - earlier.usd_nano),
        max(0, used.tokens - held.tokens - earlier.tokens),
        max(0, used.calls - held.calls - earlier.calls),
    )
    adj = _new(
        "reset",
        budget=t.budget.id,
        scope=t.scope,
        amount=settled,
        at=now,
        until=window_period(t.budget.window, now)[1],
        by=operator,
        reason=reason.strip(),
    )
    ledger.adjust(adj)
    return adj


def resume_run(ledger: Ledger, run_id: str, *, reason: str, operator: str, now: float) -> Adjustment:
    """Clear a stopped run's stop conditions in the governors sharing ``ledger``."""
    if not run_id:
        raise OperatorError("say which run: governor run resume RUN_ID")
    if not reason.strip():
        raise OperatorError("--reason is required: say why (it is kept in the audit trail)")
    adj = _new("resume", run_id=run_id, at=now, until=now + RESUME_FOR_S, by=operator, reason=reason.strip())
    ledger.adjust(adj)
    return adj
