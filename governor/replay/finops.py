"""The report for the people who pay: spend over time and by owner, savings per rule, the work a policy stops.

Every list here is bounded, whatever the number of calls (the report of a
month of an organisation's calls stays small), and every run and call is
counted: a table that shows the top rows adds the rest as one ``other`` row
and says how many it holds. Costs are the replay's (recorded = what was paid,
computed where nothing was recorded; governed; baseline = the recorded usage
at list price) in USD; recorded and governed are summed over the same calls
(those whose both costs are known, ``CallResult.compared``), and savings are
their difference. A run's recorded cost is the sum of its calls' recorded
costs, or, when no call has one, the cost the run reports as a whole (a Harbor
trial's ``agent_result.cost_usd``), which replay shares among its calls.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from governor.replay.result import CallResult, ReplayResult, RunResult

TOP = 20  # rows per owner table before the rest become one "other" row
MAX_STOPPED = 200  # stopped runs listed (accepted ones first); the total is always given
DIMENSIONS = ("team", "user", "project", "model", "agent")
TASK_KEYS = ("task", "workflow", "project")  # what groups runs into "tasks" for acceptance rates


def _r(x: float) -> float:
    return round(x, 9)


def _opt(x: float | None) -> float | None:
    return None if x is None else round(x, 9)


def run_recorded(run: RunResult) -> float | None:
    """What the trace says the run cost: its calls' recorded costs, else the run's own recorded total."""
    costs = [c.call.cost_usd for c in run.calls if c.call.cost_usd is not None]
    if costs:
        return sum(costs)
    return run.run.recorded_cost


class _Sum:
    __slots__ = ("calls", "recorded", "baseline", "governed", "runs", "unpriced")

    def __init__(self) -> None:
        self.calls = self.unpriced = 0
        self.recorded = self.baseline = self.governed = 0.0
        self.runs: set[str] = set()

    def add(self, c: CallResult) -> None:
        self.calls += 1
        if c.compared:  # recorded and governed over the same calls; the others are counted, never $0
            self.recorded += c.cost_original or 0.0
            self.governed += c.cost_governed or 0.0
        else:
            self.unpriced += 1
        self.baseline += c.cost_baseline or 0.0
        self.runs.add(c.call.run_id)

    def row(self, **label: Any) -> dict[str, Any]:
        known = self.unpriced < self.calls
        return {
            **label,
            "calls": self.calls,
            "runs": len(self.runs),
            "unpriced_calls": self.unpriced,
            "cost_usd_recorded": _r(self.recorded) if known else None,
            "cost_usd_baseline": _r(self.baseline),
            "cost_usd_governed": _r(self.governed) if known else None,
            "savings_usd": _r(self.recorded - self.governed) if known else None,
        }


def granularity(first: float, last: float) -> str:
    days = (last - first) / 86400.0
    return "day" if days <= 92 else ("week" if days <= 2 * 366 else "month")


def period_of(ts: float, unit: str) -> str:
    d = datetime.fromtimestamp(ts, timezone.utc).date()
    if unit == "week":
        return (d - timedelta(days=d.weekday())).isoformat()  # the Monday that starts the ISO week
    if unit == "month":
        return d.strftime("%Y-%m")
    return d.isoformat()


def _calls(result: ReplayResult) -> Iterable[CallResult]:
    return result.calls()


def spend_over_time(result: ReplayResult) -> dict[str, Any]:
    stamps = [c.call.timestamp for c in _calls(result)]
    if not stamps:
        return {"granularity": "day", "periods": []}
    unit = granularity(min(stamps), max(stamps))
    sums: dict[str, _Sum] = defaultdict(_Sum)
    for c in _calls(result):
        sums[period_of(c.call.timestamp, unit)].add(c)
    return {"granularity": unit, "periods": [sums[p].row(period=p) for p in sorted(sums)]}


def by_dimension(result: ReplayResult, key: str, top: int = TOP) -> dict[str, Any] | None:
    """Spend per value of one metadata key (or the requested model); None when no call has the key."""
    sums: dict[str, _Sum] = defaultdict(_Sum)
    seen = False
    for c in _calls(result):
        value = c.call.model if key == "model" else c.call.metadata.get(key)
        seen = seen or value is not None
        sums["(none)" if value is None else str(value)].add(c)
    if not seen:
        return None
    ordered = sorted(sums.items(), key=lambda kv: (-kv[1].baseline, -kv[1].calls, kv[0]))
    rows = [s.row(value=v) for v, s in ordered[:top]]
    rest = ordered[top:]
    other = None
    if rest:
        merged = _Sum()
        for _, s in rest:
            merged.calls += s.calls
            merged.recorded += s.recorded
            merged.baseline += s.baseline
            merged.governed += s.governed
            merged.unpriced += s.unpriced
            merged.runs |= s.runs
        other = merged.row(value=f"other ({len(rest)} values)")
    return {"key": key, "values": len(sums), "rows": rows, "other": other}


def savings_by_rule(result: ReplayResult) -> list[dict[str, Any]]:
    """Dollars saved per rule: each changed call's recorded minus governed cost, to the rule that decided it."""
    saved: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0])
    for c in _calls(result):
        if c.verdict == "allow":
            continue
        rule = c.blocked_by if c.verdict == "block" else (c.rule_ids[-1] if c.rule_ids else None)
        row = saved[rule or "(unnamed)"]
        row[0] += 1
        if c.compared:
            row[1] += (c.cost_original or 0.0) - (c.cost_governed or 0.0)
        else:
            row[2] += 1
    return sorted(
        (
            {"rule": rule, "calls": int(n), "saved_usd": _r(usd), "calls_unpriced": int(u)}
            for rule, (n, usd, u) in saved.items()
        ),
        key=lambda r: (-r["saved_usd"], r["rule"]),
    )


def stopped_runs(result: ReplayResult, limit: int = MAX_STOPPED) -> dict[str, Any]:
    """The runs the policy would stop, accepted ones first (the price of the policy), then by cost."""
    rank = {"accepted": 0, "edited": 1, "escalated": 2, None: 3, "rejected": 4}
    stopped = [r for r in result.runs if r.stopped_at_call is not None]
    stopped.sort(key=lambda r: (rank.get(r.run.outcome, 3), -(r.cost_recorded or r.cost_baseline or 0.0), r.run.run_id))
    rows = [
        {
            "run_id": r.run.run_id,
            "outcome": r.run.outcome,
            "stop_rule": r.stop_rule,
            "stopped_at_call": r.stopped_at_call,
            "calls": len(r.calls),
            "cost_usd_recorded": None if run_recorded(r) is None else _r(run_recorded(r) or 0.0),
            "cost_usd_baseline": _opt(r.cost_baseline),
            "cost_usd_governed": _opt(r.cost_governed),
        }
        for r in stopped[:limit]
    ]
    by_outcome: dict[str, int] = defaultdict(int)
    for r in stopped:
        by_outcome[r.run.outcome or "unknown"] += 1
    return {"total": len(stopped), "shown": len(rows), "by_outcome": dict(by_outcome), "runs": rows}


def cost_per_accepted_over_time(result: ReplayResult) -> dict[str, Any]:
    """Per period of the runs' first calls: runs, accepted runs, and cost per accepted task."""
    firsts = [r.calls[0].call.timestamp for r in result.runs if r.calls]
    if not firsts:
        return {"granularity": "day", "periods": []}
    unit = granularity(min(firsts), max(firsts))
    rows: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in result.runs:
        if not r.calls:
            continue
        p = rows[period_of(r.calls[0].call.timestamp, unit)]
        p["runs"] += 1
        p["recorded"] += r.cost_recorded or 0.0
        p["baseline"] += r.cost_baseline or 0.0
        p["governed"] += r.cost_governed or 0.0
        p["unpriced_runs"] += 1 if r.cost_recorded is None or r.cost_governed is None else 0
        if r.run.outcome == "accepted":
            p["accepted"] += 1
            if r.stopped_at_call is None:
                p["accepted_kept"] += 1
    out = []
    for period in sorted(rows):
        p = rows[period]
        out.append(
            {
                "period": period,
                "runs": int(p["runs"]),
                "accepted": int(p["accepted"]),
                "unpriced_runs": int(p["unpriced_runs"]),
                "cost_per_accepted_usd_recorded": _r(p["recorded"] / p["accepted"]) if p["accepted"] else None,
                "cost_per_accepted_usd_baseline": _r(p["baseline"] / p["accepted"]) if p["accepted"] else None,
                "cost_per_accepted_usd_governed": _r(p["governed"] / p["accepted_kept"])
                if p["accepted_kept"]
                else None,
            }
        )
    return {"granularity": unit, "periods": out}


def low_acceptance_high_spend(result: ReplayResult, top: int = TOP) -> dict[str, Any]:
    """Tasks (runs grouped by task, workflow or project) that spend most while few of their runs are accepted."""
    key = next(
        (k for k in TASK_KEYS if any(r.calls and r.calls[0].call.metadata.get(k) is not None for r in result.runs)),
        None,
    )
    if key is None:
        return {"key": None, "rows": []}
    groups: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in result.runs:
        if not r.calls:
            continue
        g = groups[str(r.calls[0].call.metadata.get(key, "(none)"))]
        g["runs"] += 1
        g["baseline"] += r.cost_baseline or 0.0
        if r.run.outcome is not None:
            g["judged"] += 1
            g["accepted"] += r.run.outcome == "accepted"
    rows: list[dict[str, Any]] = []
    for value, g in groups.items():
        rate = g["accepted"] / g["judged"] if g["judged"] else None
        rows.append(
            {
                "value": value,
                "runs": int(g["runs"]),
                "judged": int(g["judged"]),
                "accepted": int(g["accepted"]),
                "acceptance": None if rate is None else round(rate, 4),
                "cost_usd_baseline": _r(g["baseline"]),
            }
        )
    # lowest acceptance first among those judged, the costliest first within it; unjudged tasks last
    rows.sort(
        key=lambda r: (
            r["acceptance"] is None,
            r["acceptance"] if r["acceptance"] is not None else 0,
            -r["cost_usd_baseline"],
        )
    )
    return {"key": key, "groups": len(rows), "rows": rows[:top]}


def finops(result: ReplayResult) -> dict[str, Any]:
    dims = {k: d for k in DIMENSIONS if (d := by_dimension(result, k)) is not None}
    recorded_runs = [run_recorded(r) for r in result.runs]
    return {
        "spend_over_time": spend_over_time(result),
        "by": dims,
        "savings_by_rule": savings_by_rule(result),
        "stopped_runs": stopped_runs(result),
        "cost_per_accepted_over_time": cost_per_accepted_over_time(result),
        "low_acceptance_high_spend": low_acceptance_high_spend(result),
        "recorded_by_run": {
            "runs_with_recorded_cost": sum(1 for x in recorded_runs if x is not None),
            "cost_usd_recorded": _r(sum(x or 0.0 for x in recorded_runs)),
        },
    }
