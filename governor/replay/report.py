"""The replay report as plain data (the ``--format json`` shape; text, markdown and HTML render it).

Schema (stable keys; more may be added): ``policy {name, revision}``,
``totals {...}``, ``runs[]``, ``rules[]``, ``outcomes {...}``,
``diagnostics {...}``, ``finops {...}`` (spend over time and by owner, savings
per rule, stopped runs accepted first: governor/replay/finops.py),
``reconciliation {...}``, ``unpriced[]``, ``skipped[]`` (every malformed
record with its place). Costs are USD rounded to 1e-9; a cost that cannot be
known is ``null``, counted in ``unpriced_calls`` and listed, never added as
zero.

``totals.cost_usd_recorded`` (what the calls cost as recorded, computed where
the trace records none) and ``totals.cost_usd_governed`` (what they would cost
under the policy) sum the same calls: those whose both costs are known
(``totals.cost_basis`` says how many, how many of them were computed rather
than recorded, and which were left out). ``savings_usd`` is their difference.
``cost_usd_baseline`` is the same calls at list price; ``reconciliation``
explains the gap per model and day.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from governor.policy.model import Policy
from governor.pricing import PriceTable
from governor.replay.diagnostics import LONG_CONTEXT_TOKENS, diagnostics
from governor.replay.finops import finops
from governor.replay.reconcile import reconcile
from governor.replay.result import COST_SOURCES, CallResult, ReplayResult, RunResult

REPORT_VERSION = 2


def _usd(x: float | None) -> float | None:
    return None if x is None else round(x, 9)


def _rule_kinds(policy: Policy | None) -> dict[str, str]:
    if policy is None:
        return {}
    kinds = {}
    for kind, group in (
        ("stop", policy.stop),
        ("route", policy.routes),
        ("context", policy.context),
        ("call", policy.calls),
        ("budget", policy.budgets),
    ):
        for r in group:
            kinds[r.id] = kind
    return kinds


def run_row(r: RunResult) -> dict[str, Any]:
    verdicts = Counter(c.verdict for c in r.calls)
    return {
        "run_id": r.run.run_id,
        "file": r.run.file,
        "calls": len(r.calls),
        "calls_blocked": verdicts["block"],
        "calls_rerouted": verdicts["reroute"],
        "calls_trimmed": verdicts["trim"],
        "input_tokens": sum(c.call.input_tokens for c in r.calls),
        "output_tokens": sum(c.call.output_tokens for c in r.calls),
        "cost_usd_recorded": _usd(r.cost_recorded),
        "cost_usd_baseline": _usd(r.cost_baseline),
        "cost_usd_governed": _usd(r.cost_governed),
        "unpriced_calls": r.unpriced_calls,
        "stopped_at_call": r.stopped_at_call,
        "stop_rule": r.stop_rule,
        "ended_by": r.end_rule,
        "outcome": r.run.outcome,
    }


def unpriced_list(calls: list[CallResult]) -> list[dict[str, Any]]:
    """Every model whose cost is unknown somewhere, with how many calls and which side (recorded/governed)."""
    rows: dict[str, dict[str, Any]] = {}
    for c in calls:
        if c.compared and c.block_kind != "unpriced":
            continue
        side = "recorded" if c.cost_original is None else "governed"
        model = c.call.model if side == "recorded" else c.model
        row = rows.setdefault(
            model, {"model": model, "calls": 0, "recorded_side": 0, "governed_side": 0, "example_call": c.call.call_id}
        )
        row["calls"] += 1
        row[f"{side}_side"] += 1
    return sorted(rows.values(), key=lambda r: -r["calls"])


def build_report(
    result: ReplayResult,
    policy: Policy | None = None,
    *,
    long_context_tokens: int = LONG_CONTEXT_TOKENS,
    with_diagnostics: bool = True,
    prices: PriceTable | None = None,
) -> dict[str, Any]:
    calls = list(result.calls())
    verdicts = Counter(c.verdict for c in calls)
    runs = [run_row(r) for r in result.runs]
    compared = [c for c in calls if c.compared]
    excluded = [c for c in calls if not c.compared]
    unpriced = len(excluded) + sum(1 for c in compared if c.block_kind == "unpriced")
    recorded = sum(c.cost_original or 0.0 for c in compared)
    governed = sum(c.cost_governed or 0.0 for c in compared)
    with_baseline = [c for c in compared if c.cost_baseline is not None]
    baseline = sum(c.cost_baseline or 0.0 for c in with_baseline)
    none_known = not compared
    sources = Counter(c.cost_source for c in calls)
    basis = {
        "compared_calls": len(compared),
        "recorded_calls": sum(1 for c in compared if c.cost_original_source == "recorded"),
        "computed_calls": sum(1 for c in compared if c.cost_original_source == "computed"),
        "excluded_calls": len(excluded),
        "excluded_models": sorted({c.call.model if c.cost_original is None else c.model for c in excluded}),
        "baseline_calls": len(with_baseline),
        "governed_sources": {k: sources[k] for k in COST_SOURCES},
        "excludes": (
            "calls whose recorded or governed cost is unknown (unpriced model, no recorded cost)"
            if excluded
            else "nothing"
        ),
    }
    totals = {
        "runs": len(result.runs),
        "calls": len(calls),
        "input_tokens": sum(c.call.input_tokens for c in calls),
        "output_tokens": sum(c.call.output_tokens for c in calls),
        "cache_read_tokens": sum(c.call.cache_read_tokens for c in calls),
        "cache_write_tokens": sum(c.call.cache_write_tokens for c in calls),
        "input_tokens_governed": sum(c.input_tokens for c in calls if c.verdict != "block"),
        "output_tokens_governed": sum(c.output_tokens or 0 for c in calls if c.verdict != "block"),
        "calls_output_clamped": sum(
            1 for c in calls if c.output_tokens is not None and c.output_tokens < c.call.output_tokens
        ),
        "cost_usd_recorded": None if none_known else _usd(recorded),
        "cost_usd_baseline": None if not with_baseline else _usd(baseline),
        "cost_usd_governed": None if none_known else _usd(governed),
        "savings_usd": None if none_known else _usd(recorded - governed),
        "savings_pct": round(100.0 * (recorded - governed) / recorded, 2) if recorded else None,
        "cost_basis": basis,
        "calls_allowed": verdicts["allow"],
        "calls_rerouted": verdicts["reroute"],
        "calls_trimmed": verdicts["trim"],
        "calls_trimmed_estimated": sum(1 for c in calls if c.input_estimated),
        "calls_blocked": verdicts["block"],
        "calls_blocked_after_stop": sum(1 for c in calls if c.cascaded),
        "calls_overran": sum(1 for c in calls if c.overrun is not None),
        "overrun_usd": _usd(sum(c.overrun.usd for c in calls if c.overrun is not None)),
        "runs_stopped": sum(1 for r in result.runs if r.stopped_at_call is not None),
        "runs_ended": sum(1 for r in result.runs if r.ended_at is not None),
        "unpriced_calls": unpriced,
        "calls_without_recorded_cost": sum(1 for c in calls if c.call.cost_usd is None),
        "skipped_records": len(result.issues),
    }
    kinds = _rule_kinds(policy)
    fired: Counter[str] = Counter()
    blocked: Counter[str] = Counter()
    audit: Counter[str] = Counter()
    for c in calls:
        if c.cascaded:
            continue
        for rid in c.rule_ids:
            fired[rid] += 1
        if c.verdict == "block" and c.blocked_by:
            blocked[c.blocked_by] += 1
        for rid in c.audit:
            audit[rid] += 1
    rule_ids = list(result.rule_ids) + [r for r in fired if r not in result.rule_ids]
    rules = [
        {
            "id": rid,
            "kind": kinds.get(rid),
            "fired": fired[rid],
            "blocked": blocked[rid],
            "audit_would_fire": audit[rid],
        }
        for rid in rule_ids
    ]
    accepted = [r for r in result.runs if r.run.outcome == "accepted"]
    rejected = sum(1 for r in result.runs if r.run.outcome == "rejected")
    kept = [r for r in accepted if r.stopped_at_call is None]
    by_outcome = Counter(r.run.outcome for r in result.runs)
    outcomes = {
        "accepted": len(accepted),
        "rejected": rejected,
        "edited": by_outcome["edited"],
        "escalated": by_outcome["escalated"],
        "unknown": by_outcome[None],  # no outcome recorded or joined: never counted as accepted
        "other": len(result.runs) - len(accepted) - rejected,
        "accepted_runs_stopped": len(accepted) - len(kept),
        "cost_per_accepted_usd_recorded": _usd(recorded / len(accepted)) if accepted and not none_known else None,
        "cost_per_accepted_usd_baseline": _usd(baseline / len(accepted)) if accepted and with_baseline else None,
        "cost_per_accepted_usd_governed": _usd(governed / len(kept)) if kept and not none_known else None,
    }
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "policy": {"name": result.policy_name, "revision": result.revision},
        "inputs": {"files": dict(result.formats)},
        "totals": totals,
        "runs": runs,
        "rules": rules,
        "outcomes": outcomes,
    }
    report["reconciliation"] = reconcile(result, prices or PriceTable(policy.prices if policy is not None else None))
    report["unpriced"] = unpriced_list(calls)
    if with_diagnostics:
        report["diagnostics"] = diagnostics(result, long_context_tokens)
        report["diagnostics"]["allow_unpriced"] = bool(policy is not None and policy.allow_unpriced)
        report["finops"] = finops(result)
    report["skipped"] = [
        {"file": i.file, "line": i.line, "where": i.where, "message": i.message} for i in result.issues
    ]
    report["adjustments"] = [a.as_dict() for a in result.adjustments]
    return report
