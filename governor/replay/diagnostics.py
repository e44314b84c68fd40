"""Diagnostics users ask for, computed from a replay: where the money went and why.

Retry storms, long-context waste, repeated identical calls, the most
expensive runs, cost per accepted task by model and by agent, and unpriced
models with their call counts. Pure functions over a ReplayResult; prompt
text is hashed, never copied into the report.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from governor.replay.result import CallResult, ReplayResult

LONG_CONTEXT_TOKENS = 32_000
GROWTH_FACTOR = 4.0
STORM_MIN = 3
TOP = 10


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def retry_storms(result: ReplayResult, min_calls: int = STORM_MIN) -> list[dict[str, Any]]:
    """Retry groups with many calls, and runs with ``min_calls`` or more consecutive failed calls."""
    out: list[dict[str, Any]] = []
    for run in result.runs:
        groups: dict[str, list[CallResult]] = defaultdict(list)
        for c in run.calls:
            if c.call.retry_group:
                groups[c.call.retry_group].append(c)
        for gid, items in groups.items():
            if len(items) >= min_calls:
                out.append(
                    {
                        "kind": "retry-group",
                        "run_id": run.run.run_id,
                        "retry_group": gid,
                        "calls": len(items),
                        "errors": sum(1 for c in items if c.call.error),
                        "cost_usd_recorded": _r(_known(c.call.cost_usd for c in items)),
                        "call_ids": [c.call.call_id for c in items[:5]],
                    }
                )
        streak: list[CallResult] = []
        for failed in (*run.calls, None):
            if failed is not None and failed.call.error:
                streak.append(failed)
                continue
            if len(streak) >= min_calls:
                out.append(
                    {
                        "kind": "consecutive-errors",
                        "run_id": run.run.run_id,
                        "calls": len(streak),
                        "errors": len(streak),
                        "first_call": streak[0].call.index + 1,
                        "call_ids": [s.call.call_id for s in streak[:5]],
                    }
                )
            streak = []
    return sorted(out, key=lambda s: -s["calls"])


def long_context(result: ReplayResult, threshold: int = LONG_CONTEXT_TOKENS) -> dict[str, Any]:
    """Calls above ``threshold`` input tokens, and runs whose context grew ``GROWTH_FACTOR``x or more."""
    big = [c for c in result.calls() if c.call.input_tokens > threshold]
    total_in = sum(c.call.input_tokens for c in result.calls()) or 1
    growth: list[dict[str, Any]] = []
    for run in result.runs:
        calls = [c.call for c in run.calls]
        by_model: dict[str, list[int]] = defaultdict(list)
        for c in calls:
            by_model[c.model].append(c.input_tokens)
        for model, sizes in by_model.items():
            if len(sizes) >= 3 and sizes[0] > 0 and sizes[-1] >= GROWTH_FACTOR * sizes[0]:
                growth.append(
                    {
                        "run_id": run.run.run_id,
                        "model": model,
                        "calls": len(sizes),
                        "first_input_tokens": sizes[0],
                        "last_input_tokens": sizes[-1],
                        "input_tokens": sum(sizes),
                    }
                )
    growth.sort(key=lambda g: -g["input_tokens"])
    stale = _growth_without_new_content(result)
    return {
        "threshold_tokens": threshold,
        "calls_over_threshold": len(big),
        "input_tokens_over_threshold": sum(c.call.input_tokens for c in big),
        "share_of_input": _r(sum(c.call.input_tokens for c in big) / total_in),
        "cost_usd_baseline_over_threshold": _r(sum(c.cost_baseline or 0.0 for c in big)),
        "largest_calls": [
            {
                "call_id": c.call.call_id,
                "run_id": c.call.run_id,
                "model": c.call.model,
                "input_tokens": c.call.input_tokens,
            }
            for c in sorted(big, key=lambda c: -c.call.input_tokens)[:TOP]
        ],
        "growing_runs": growth[:TOP],
        "growing_runs_count": len(growth),
        "grew_without_new_content": {
            "calls": len(stale),
            "input_tokens_added": sum(n for _, n in stale),
            "examples": [c.call.call_id for c, _ in stale[:TOP]],
        },
    }


def _growth_without_new_content(result: ReplayResult) -> list[tuple[CallResult, int]]:
    """Calls whose prompt grew over the previous call of the same run and model, yet every message
    added repeats one already sent (re-sent tool results, duplicated history): tokens paid for nothing."""
    memo: dict[int, int] = {}
    out = []
    for run in result.runs:
        last: dict[str, tuple[int, int, set[int]]] = {}  # model -> (input tokens, message count, seen hashes)
        for c in run.calls:
            msgs = c.call.messages
            if not msgs:
                continue
            hashes = [_message_hash(m, memo) for m in msgs]
            prev = last.get(c.call.model)
            if prev is not None and c.call.input_tokens > prev[0] and len(hashes) > prev[1]:
                added = hashes[prev[1] :]
                if all(h in prev[2] for h in added):
                    out.append((c, c.call.input_tokens - prev[0]))
            last[c.call.model] = (c.call.input_tokens, len(hashes), set(hashes))
    return out


def _message_hash(m: Mapping[str, Any], memo: dict[int, int]) -> int:
    """Hash of one message's role, content and tool calls, memoised by object id (histories share dicts)."""
    key = id(m)
    h = memo.get(key)
    if h is None:
        h = memo[key] = hash((m.get("role"), str(m.get("content")), repr(m.get("tool_calls"))))
    return h


def _fingerprint(model: str, messages: Sequence[Mapping[str, Any]], memo: dict[int, int]) -> int:
    """Hash of model + messages."""
    return hash((model, tuple(_message_hash(m, memo) for m in messages)))


def repeated_calls(result: ReplayResult) -> dict[str, Any]:
    """Calls within a run identical to an earlier one (same model and messages)."""
    memo: dict[int, int] = {}
    groups: list[dict[str, Any]] = []
    extra = 0
    wasted = 0.0
    for run in result.runs:
        seen: dict[int, list[CallResult]] = defaultdict(list)
        for c in run.calls:
            if c.call.messages:
                seen[_fingerprint(c.call.model, c.call.messages, memo)].append(c)
        for items in seen.values():
            if len(items) > 1:
                extra += len(items) - 1
                wasted += sum(i.call.cost_usd or 0.0 for i in items[1:])
                groups.append(
                    {
                        "run_id": run.run.run_id,
                        "model": items[0].call.model,
                        "calls": len(items),
                        "call_ids": [i.call.call_id for i in items[:5]],
                    }
                )
    groups.sort(key=lambda g: -g["calls"])
    return {
        "repeated_calls": extra,
        "cost_usd_recorded": _r(wasted),
        "groups": groups[:TOP],
        "calls_with_messages": sum(1 for c in result.calls() if c.call.messages),
    }


def expensive_runs(result: ReplayResult, top: int = TOP) -> list[dict[str, Any]]:
    runs = sorted(result.runs, key=lambda r: -(r.cost_recorded or r.cost_baseline or 0.0))
    return [
        {
            "run_id": r.run.run_id,
            "calls": len(r.calls),
            "cost_usd_recorded": _r(r.cost_recorded),
            "cost_usd_baseline": _r(r.cost_baseline),
            "cost_usd_governed": _r(r.cost_governed),
            "outcome": r.run.outcome,
            "input_tokens": sum(c.call.input_tokens for c in r.calls),
        }
        for r in runs[:top]
    ]


def cost_per_accepted(result: ReplayResult, key: str) -> list[dict[str, Any]]:
    """Spend by model (``key="model"``) or by agent label, divided by the accepted runs that used it."""
    spend: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0, 0])
    accepted: dict[str, set[str]] = defaultdict(set)
    accepted_kept: dict[str, set[str]] = defaultdict(set)
    runs_using: dict[str, set[str]] = defaultdict(set)
    for run in result.runs:
        kept = run.stopped_at_call is None
        for c in run.calls:
            name = c.call.model if key == "model" else str(c.call.metadata.get(key) or "-")
            s = spend[name]
            if c.compared:  # recorded and governed over the same calls; the others are counted apart
                s[0] += c.cost_original or 0.0
                s[2] += c.cost_governed or 0.0
                s[1] += c.cost_baseline or 0.0
            else:
                s[4] += 1
            s[3] += 1
            runs_using[name].add(run.run.run_id)
            if run.run.outcome == "accepted":
                accepted[name].add(run.run.run_id)
                if kept:
                    accepted_kept[name].add(run.run.run_id)
    rows = []
    for name, (rec, base, gov, calls, unpriced) in sorted(spend.items(), key=lambda kv: -kv[1][0]):
        n_acc, n_kept = len(accepted[name]), len(accepted_kept[name])
        if unpriced == calls:  # nothing known: unpriced, never $0
            rec = base = gov = None  # type: ignore[assignment]
        rows.append(
            {
                key: name,
                "calls": calls,
                "unpriced_calls": int(unpriced),
                "runs": len(runs_using[name]),
                "accepted_runs": n_acc,
                "cost_usd_recorded": _r(rec),
                "cost_usd_baseline": _r(base),
                "cost_usd_governed": _r(gov),
                "cost_per_accepted_usd_recorded": _r(rec / n_acc) if n_acc and rec is not None else None,
                "cost_per_accepted_usd_baseline": _r(base / n_acc) if n_acc and base is not None else None,
                "cost_per_accepted_usd_governed": _r(gov / n_kept) if n_kept and gov is not None else None,
            }
        )
    return rows


def _known(values: Any) -> float | None:
    """The sum of the known values; None when none is known (unknown is never $0)."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def unpriced_models(result: ReplayResult) -> list[dict[str, Any]]:
    """Models without a price: in the recorded calls (baseline) or among the models the policy sends."""
    baseline: Counter[str] = Counter()
    governed: Counter[str] = Counter()
    for c in result.calls():
        if c.cost_baseline is None:
            baseline[c.call.model] += 1
        if (c.verdict != "block" and c.cost_governed is None) or c.block_kind == "unpriced":
            governed[c.model] += 1
    models = sorted(set(baseline) | set(governed), key=lambda m: -(baseline[m] + governed[m]))
    return [{"model": m, "calls_recorded": baseline[m], "calls_governed": governed[m]} for m in models]


def diagnostics(result: ReplayResult, long_context_tokens: int = LONG_CONTEXT_TOKENS) -> dict[str, Any]:
    return {
        "retry_storms": retry_storms(result),
        "long_context": long_context(result, long_context_tokens),
        "repeated_identical_calls": repeated_calls(result),
        "most_expensive_runs": expensive_runs(result),
        "cost_per_accepted_by_model": cost_per_accepted(result, "model"),
        "cost_per_accepted_by_agent": cost_per_accepted(result, "agent"),
        "unpriced_models": unpriced_models(result),
    }
