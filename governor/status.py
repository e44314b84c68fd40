"""What every budget scope of a policy has used, read from its shared ledger (``governor status``).

:func:`budget_status` lists, for each budget of the policy (call-scoped and
``mode: off`` budgets hold nothing), every scope value the ledger holds spend or
live reservations for (``Ledger.scopes``), with spend, limit, remaining, when the
window resets and the reservations in flight (``Ledger.in_flight``), with the
operators' raises and resets in force applied (``Ledger.adjustments``). It reads
through the ledger protocol only, so it works on any store the policy names.
Stopped runs live in each governor's memory; :func:`stopped_runs` finds them
in a decision log (the last check of a run that a stop condition blocked).
A memory ledger lives in its process: :func:`ledger_from_trace` rebuilds it
from the governor's trace (``record_to=``) or JSON decision log.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from governor.engine.adjust import room, widen
from governor.ledger.base import MAX_QUANTITY, Adjustment, Amount, Counter, Ledger, Limit, nano_to_usd, usd_to_nano
from governor.ledger.memory import MemoryLedger
from governor.ledger.windows import window_period
from governor.policy.model import Budget, Policy


@dataclass(frozen=True, slots=True, kw_only=True)
class ScopeStatus:
    """One budget scope (a counter) as the ledger holds it now."""

    budget: str
    """The budget's id."""
    scope: str
    """The scope value, e.g. ``team=platform`` (``global`` for a global budget)."""
    window: str
    """The budget's window, described (``calendar day (UTC)``, ``rolling 3600s``, ``no window``)."""
    spend_usd: float
    """Settled USD in the current window."""
    spend_tokens: int
    """Settled tokens in the current window."""
    spend_calls: int
    """Settled calls in the current window."""
    limit_usd: float | None
    """The USD limit (None: not limited)."""
    limit_tokens: int | None
    """The token limit (None: not limited)."""
    limit_calls: int | None
    """The call limit (None: not limited)."""
    remaining_usd: float | None
    """USD left after spend and reservations (None: not limited)."""
    utilization: float
    """Largest (spend + in flight) / limit over the limited metrics."""
    resets_at: float | None
    """When the window resets (epoch seconds; rolling: the end of the current period); None: never."""
    in_flight: int
    """Reservations held now (calls checked, not yet recorded)."""
    in_flight_usd: float
    """USD those reservations hold."""
    policy_limit_usd: float | None = None
    """The USD limit the policy sets, before operators' raises (``limit_usd`` includes them)."""
    adjustments: tuple[str, ...] = ()
    """The ids of the operators' raises and resets in force for this scope (``governor budget raise|reset``)."""


def counter_of(budget: Budget, key: str) -> Counter:
    limit = Limit(
        usd_nano=None if budget.limit_usd is None else usd_to_nano(budget.limit_usd),
        tokens=budget.limit_tokens,
        calls=budget.limit_calls,
    )
    return Counter(key, budget.id, limit, budget.window)


def budget_status(policy: Policy, ledger: Ledger, *, now: float) -> list[ScopeStatus]:
    """Every scope of every budget of ``policy`` that ``ledger`` holds something for, with the operators'
    adjustments in force applied: raises add to the limit, resets set spend aside (``Ledger.adjustments``)."""
    by_key: dict[str, list[Adjustment]] = {}
    for a in ledger.adjustments(now=now):
        if a.kind in ("raise", "reset"):
            by_key.setdefault(a.key, []).append(a)
    out: list[ScopeStatus] = []
    for b in policy.budgets:
        if b.scope == "call" or b.mode == "off":
            continue
        keys = set(ledger.scopes(b.id, now=now)) | {k for k in by_key if k.partition("|")[0] == b.id}
        for key in sorted(keys):
            c = counter_of(b, key)
            adj = by_key.get(key, [])
            limit = widen(c.limit, room([a for a in adj if a.kind == "raise"]))
            aside = room([a for a in adj if a.kind == "reset"])
            used = ledger.usage(c, now=now)
            n, held = ledger.in_flight(c, now=now)
            spend_usd, spend_tokens, spend_calls = (
                max(0, used.usd_nano - held.usd_nano - aside.usd_nano),
                max(0, used.tokens - held.tokens - aside.tokens),
                max(0, used.calls - held.calls - aside.calls),
            )
            counted = Amount(spend_usd + held.usd_nano, spend_tokens + held.tokens, spend_calls + held.calls)
            remaining = None
            if limit.usd_nano is not None:
                remaining = round(max(0.0, nano_to_usd(limit.usd_nano - counted.usd_nano)), 9)
            out.append(
                ScopeStatus(
                    budget=b.id,
                    scope=key.partition("|")[2],
                    window=b.window.describe(),
                    spend_usd=nano_to_usd(spend_usd),
                    spend_tokens=spend_tokens,
                    spend_calls=spend_calls,
                    limit_usd=None if limit.usd_nano is None else nano_to_usd(limit.usd_nano),
                    limit_tokens=limit.tokens,
                    limit_calls=limit.calls,
                    remaining_usd=remaining,
                    utilization=round(limit.fraction(counted), 6),
                    resets_at=window_period(b.window, now)[1],
                    in_flight=n,
                    in_flight_usd=nano_to_usd(held.usd_nano),
                    policy_limit_usd=b.limit_usd,
                    adjustments=tuple(a.id for a in adj),
                )
            )
    return out


def stopped_runs(records: Iterable[dict[str, Any]], resumes: Iterable[Adjustment] = ()) -> list[dict[str, Any]]:
    """Runs whose last check in a decision log was blocked by a stop condition: run_id, stop, reason, ts, and
    ``resumed_by``: the id of an operator's resume written after that check (None when none was)."""
    last: dict[str, dict[str, Any]] = {}
    for rec in records:
        if rec.get("event") == "check" and rec.get("run_id") is not None:
            last[str(rec["run_id"])] = rec
    resumed: dict[str, list[Adjustment]] = {}
    for a in resumes:
        if a.kind == "resume":
            resumed.setdefault(a.run_id, []).append(a)
    out = []
    for run, rec in sorted(last.items()):
        if rec.get("verdict") != "block" or rec.get("block_kind") != "stop":
            continue
        ts = rec.get("ts")
        later = [a for a in resumed.get(run, ()) if not isinstance(ts, (int, float)) or a.at >= ts]
        out.append(
            {
                "run_id": run,
                "stop": rec.get("blocked_by"),
                "reason": (rec.get("reasons") or [""])[0],
                "ts": ts,
                "resumed_by": later[-1].id if later else None,
            }
        )
    return out


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSONL decision log (lines that are not JSON objects are skipped)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
    return out


def as_json(
    scopes: list[ScopeStatus],
    stopped: list[dict[str, Any]],
    policy: Policy,
    now: float,
    adjustments: Iterable[Adjustment] = (),
    ledger: str | None = None,
) -> dict[str, Any]:
    return {
        "policy": policy.name,
        "revision": str(policy.revision),
        "ledger": ledger or policy.ledger.type,
        "ts": now,
        "scopes": [asdict(s) for s in scopes],
        "stopped_runs": stopped,
        "adjustments": [a.as_dict() for a in adjustments],
    }


def read_trace(path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The records of a governor trace or JSON decision log, and one ``FILE:LINE: problem`` per line skipped."""
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as exc:
                problems.append(f"{path}:{n}: not JSON ({getattr(exc, 'msg', exc)}); skipped")
                continue
            if not isinstance(rec, dict):
                problems.append(f"{path}:{n}: not a JSON object; skipped")
                continue
            records.append(rec)
    return records, problems


def _number(rec: dict[str, Any], key: str) -> float | None:
    v = rec.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and v >= 0 else None


def _count(rec: dict[str, Any], key: str) -> int:
    v = rec.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_QUANTITY else 0


def ledger_from_trace(
    policy: Policy, records: Iterable[dict[str, Any]], *, problems: list[str] | None = None
) -> MemoryLedger:
    """A memory ledger holding what a governor trace says (``record_to=``, or a JSON decision log): a memory
    ledger lives in its process, so its trace is how ``governor status`` sees it from outside.

    Each ``record`` line is settled (by its decision id, at its check time, for its recorded cost) on the
    counters of the budgets whose match holds for its model and metadata (one that failed before using a
    token is not: the governor released it); each allowed ``check`` without a
    ``record`` is a reservation of its worst case until its lease ends; each ``adjustment`` line is stored.
    A line that cannot be used is named in ``problems`` and skipped; the rest is counted.
    """
    from governor.engine.compiled import CompiledPolicy
    from governor.engine.match import CallContext

    cp = CompiledPolicy(policy)
    budgets = [b for b in cp.budgets if b.scope != "call" and b.rule.mode != "off"]
    ledger = MemoryLedger()
    checks: dict[str, dict[str, Any]] = {}
    settled: set[str] = set()
    problems = problems if problems is not None else []

    def counters(rec: dict[str, Any]) -> tuple[Counter, ...]:
        given = rec.get("metadata")
        meta: dict[str, Any] = dict(given) if isinstance(given, dict) else {}
        for k in ("run_id", "user", "team"):
            if k in rec and k not in meta:
                meta[k] = rec[k]
        sent = rec.get("model")
        model = sent if isinstance(sent, str) else ""
        ctx = CallContext(model, meta, _count(rec, "input_tokens"), ())
        run = meta.get("run_id")
        chain = (str(run),) if run is not None else ()
        found = [c for b in budgets if b.holds_fully(ctx) for c in b.counters_for(meta, chain)]
        return tuple(Counter(c.key, c.budget_id, Limit(), c.window) for c in found)  # held and settled, never denied

    for rec in records:
        event, did = rec.get("event"), rec.get("decision_id")
        if event == "adjustment":
            try:
                doc = rec.get("adjustment")
                ledger.adjust(Adjustment.from_dict(doc if isinstance(doc, dict) else {}))
            except ValueError as exc:
                problems.append(f"adjustment line skipped: {exc}")
            continue
        if event not in ("check", "record") or not isinstance(did, str):
            continue
        if event == "check":
            if rec.get("verdict") != "block":
                checks[did] = rec
            continue
        at = _number(rec, "check_ts") or _number(rec, "ts")
        if at is None:
            problems.append(f"record {did}: no time; skipped")
            continue
        settled.add(did)
        if rec.get("error") and not (_count(rec, "input_tokens") or _count(rec, "output_tokens")):
            continue  # failed before it cost anything: the governor released its reservation
        cost = _number(rec, "cost_usd")
        actual = Amount(
            0 if cost is None else min(usd_to_nano(cost), MAX_QUANTITY),
            min(_count(rec, "input_tokens") + _count(rec, "output_tokens"), MAX_QUANTITY),
            1,
        )
        cs = counters(rec)
        if cs:
            ledger.settle(did, cs, actual, now=at, reserved_at=at)
    for did, rec in checks.items():
        at = _number(rec, "ts")
        if did in settled or at is None:
            continue
        cost = _number(rec, "estimated_cost_usd")
        limit = rec.get("max_tokens")
        out = limit if isinstance(limit, int) else cp.default_output_tokens
        worst = Amount(
            0 if cost is None else min(usd_to_nano(cost), MAX_QUANTITY),
            min(_count(rec, "input_tokens") + max(0, out), MAX_QUANTITY),
            1,
        )
        cs = counters(rec)
        if cs:
            ledger.reserve(did, cs, worst, now=at, lease_s=cp.lease_s)
    return ledger
