"""Differences between two policy versions: rule by rule, and decision by decision on real traffic.

Part 1 compares rules by id (added, removed, changed with the changed
fields) plus the policy-wide settings. Part 2 replays the same traces under
both and groups every changed decision by (old verdict -> new verdict, rule),
with its cost delta and example call ids, and says what happens to outcomes.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from governor.policy.model import Policy
from governor.replay.report import _usd
from governor.replay.result import CallResult, ReplayResult

GROUPS = (("stop", "stop"), ("routes", "route"), ("context", "context"), ("calls", "call"), ("budgets", "budget"))
SETTINGS = ("mode", "on_error", "default_output_tokens", "lease_s", "allow_unpriced", "log_content")
EXAMPLES = 5


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.name not in ("source", "version")
        }
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: {"old": old.get(k), "new": new.get(k)} for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}


def rule_diff(old: Policy, new: Policy) -> dict[str, Any]:
    """Rules added, removed and changed (by id, with changed fields), and changed settings."""
    added, removed, changed = [], [], []
    for attr, kind in GROUPS:
        a = {r.id: _plain(r) for r in getattr(old, attr)}
        b = {r.id: _plain(r) for r in getattr(new, attr)}
        added += [{"id": i, "kind": kind, "rule": b[i]} for i in b if i not in a]
        removed += [{"id": i, "kind": kind, "rule": a[i]} for i in a if i not in b]
        for i in a.keys() & b.keys():
            fields = _changes(a[i], b[i])
            if fields:
                changed.append({"id": i, "kind": kind, "fields": fields})
        order_a = [i for i in a if i in b]
        order_b = [i for i in b if i in a]
        if kind == "route" and order_a != order_b:
            changed.append(
                {"id": "(route order)", "kind": "route", "fields": {"order": {"old": order_a, "new": order_b}}}
            )
    settings = _changes({k: getattr(old, k) for k in SETTINGS}, {k: getattr(new, k) for k in SETTINGS})
    settings.update(_changes({"aliases": dict(old.aliases)}, {"aliases": dict(new.aliases)}))
    prices = _changes({m: _plain(p) for m, p in old.prices.items()}, {m: _plain(p) for m, p in new.prices.items()})
    if prices:
        settings["prices"] = prices
    changed.sort(key=lambda c: c["id"])
    return {"added": added, "removed": removed, "changed": changed, "settings": settings}


def _rule_of(a: CallResult, b: CallResult) -> str:
    """The rule behind a change: the new verdict's rule, or the old one's when the new verdict is allow;
    for the same verdict, a rule that acts only under the new policy (else only under the old)."""
    if a.verdict != b.verdict:
        src = b if b.verdict != "allow" else a
        if src.blocked_by:
            return src.blocked_by
        return src.rule_ids[-1] if src.rule_ids else "-"
    only_new = [r for r in b.rule_ids if r not in a.rule_ids]
    only_old = [r for r in a.rule_ids if r not in b.rule_ids]
    pick = only_new or only_old or list(b.rule_ids) or list(a.rule_ids)
    return pick[-1] if pick else "-"


def decision_diff(old: ReplayResult, new: ReplayResult) -> dict[str, Any]:
    """Changed decisions grouped by (old verdict -> new verdict, rule), cost delta, outcome impact."""
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    changed = 0
    by_rule: dict[str, int] = defaultdict(int)
    old_runs = {r.run.run_id: r for r in old.runs}
    for run in new.runs:
        prev = old_runs[run.run.run_id]
        for a, b in zip(prev.calls, run.calls, strict=False):
            if (a.verdict, a.model, a.rule_ids) == (b.verdict, b.model, b.rule_ids):
                continue
            changed += 1
            rule = _rule_of(a, b)
            by_rule[rule] += 1
            key = (a.verdict, b.verdict, rule)
            g = groups.get(key)
            if g is None:
                g = groups[key] = {
                    "old_verdict": a.verdict,
                    "new_verdict": b.verdict,
                    "rule": rule,
                    "calls": 0,
                    "runs": set(),
                    "cost_usd_old": 0.0,
                    "cost_usd_new": 0.0,
                    "unpriced_calls": 0,
                    "examples": [],
                }
            g["calls"] += 1
            g["runs"].add(run.run.run_id)
            if a.cost_governed is None or b.cost_governed is None:
                g["unpriced_calls"] += 1  # left out of both sums, so old and new cover the same calls
            else:
                g["cost_usd_old"] += a.cost_governed
                g["cost_usd_new"] += b.cost_governed
            if len(g["examples"]) < EXAMPLES:
                g["examples"].append(
                    {
                        "call_id": b.call.call_id,
                        "run_id": run.run.run_id,
                        "where": b.call.location(),
                        "old": f"{a.verdict} {a.model}",
                        "new": f"{b.verdict} {b.model}",
                        "reason": b.reason or a.reason,
                    }
                )
    rows = []
    for g in sorted(groups.values(), key=lambda g: -g["calls"]):
        g["runs"] = len(g["runs"])
        g["cost_usd_delta"] = _usd(g["cost_usd_new"] - g["cost_usd_old"])
        g["cost_usd_old"], g["cost_usd_new"] = _usd(g["cost_usd_old"]), _usd(g["cost_usd_new"])
        rows.append(g)
    return {"changed_calls": changed, "groups": rows, "outcomes": _outcome_impact(old, new)}


def _outcome_impact(old: ReplayResult, new: ReplayResult) -> dict[str, Any]:
    old_stopped = {r.run.run_id for r in old.runs if r.stopped_at_call is not None}
    new_stopped = {r.run.run_id for r in new.runs if r.stopped_at_call is not None}
    accepted = {r.run.run_id for r in new.runs if r.run.outcome == "accepted"}
    pairs = [
        (a, b)
        for a, b in zip(old.calls(), new.calls(), strict=True)
        if a.cost_governed is not None and b.cost_governed is not None
    ]  # the same calls on both sides
    gov_old = sum(a.cost_governed or 0.0 for a, _ in pairs)
    gov_new = sum(b.cost_governed or 0.0 for _, b in pairs)
    unpriced = sum(1 for _ in old.calls()) - len(pairs)
    kept_old = len(accepted - old_stopped)
    kept_new = len(accepted - new_stopped)
    return {
        "runs_newly_stopped": len(new_stopped - old_stopped),
        "runs_no_longer_stopped": len(old_stopped - new_stopped),
        "accepted_runs_newly_stopped": len((new_stopped - old_stopped) & accepted),
        "accepted_runs_no_longer_stopped": len((old_stopped - new_stopped) & accepted),
        "newly_stopped_examples": sorted(new_stopped - old_stopped)[:EXAMPLES],
        "calls_compared": len(pairs),
        "calls_unpriced": unpriced,
        "cost_usd_governed_old": _usd(gov_old),
        "cost_usd_governed_new": _usd(gov_new),
        "cost_usd_delta": _usd(gov_new - gov_old),
        "cost_per_accepted_usd_governed_old": _usd(gov_old / kept_old) if kept_old else None,
        "cost_per_accepted_usd_governed_new": _usd(gov_new / kept_new) if kept_new else None,
    }


def build_diff(
    old_policy: Policy,
    new_policy: Policy,
    old: ReplayResult | None,
    new: ReplayResult | None,
    *,
    old_ref: str = "",
    new_ref: str = "",
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "old": {"ref": old_ref, "name": old_policy.name, "revision": str(old_policy.revision)},
        "new": {"ref": new_ref, "name": new_policy.name, "revision": str(new_policy.revision)},
        "rules": rule_diff(old_policy, new_policy),
    }
    if old is not None and new is not None:
        out["replay"] = decision_diff(old, new)
        out["replay"]["calls"] = sum(len(r.calls) for r in new.runs)
        out["replay"]["runs"] = len(new.runs)
        out["replay"]["skipped_records"] = len(new.issues)
    return out
