"""The reviewable output: the suggested policy YAML with its evidence, and a ``*.test.yaml`` of its decisive cases.

The YAML is written by hand (comments carry the evidence: where each value came
from, what it stops in the fit part and on the held-out runs) and then loaded
back through the policy loader, so a policy that would not validate is never
written. The test cases are the boundaries the picks stand on (the costliest
accepted run keeps its last call; a run past the cap is stopped); each is run
through the real engine before it is written, and one that does not hold
against the combined policy (a base rule acting first) is left out with a note.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from governor.policy.model import Policy
from governor.replay.result import ReplayResult, RunResult
from governor.suggest.build import Suggestion
from governor.suggest.figures import ACCEPTED_WORK, Figures
from governor.suggest.knobs import KNOBS, matches
from governor.suggest.pick import Evaluated
from governor.suggest.split import run_start


def usd(v: float | None) -> str:
    return "unpriced" if v is None else f"${v:,.2f}" if abs(v) >= 10 else f"${v:,.4f}" if abs(v) < 0.1 else f"${v:,.3f}"


def effect(f: Figures) -> str:
    """'stops 2 rejected, 0 accepted, 0 unknown runs, saving $0.07 (0.4%)'."""
    pct = "" if f.saved_pct is None else f" ({f.saved_pct:.1f}%)"
    trims = f", trims {f.runs_trimmed} runs ({f.accepted_trimmed} accepted)" if f.runs_trimmed else ""
    unpriced = f"; {f.unpriced_runs} unpriced runs left out" if f.unpriced_runs else ""
    return (
        f"stops {f.rejected_stopped} rejected, {f.accepted_stopped} accepted, {f.unknown_stopped} unknown runs"
        f"{trims}, saving {usd(f.saved_usd)}{pct}{unpriced}"
    )


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def split_text(s: Suggestion) -> str:
    sp = s.split
    if sp.by == "time" and sp.fit.runs:
        last = max(run_start(r) for r in sp.fit.runs)
        how = f"the {len(sp.fit.runs)} earliest runs (by start time, to {_when(last)})"
    else:
        how = f"{len(sp.fit.runs)} runs drawn with seed {sp.seed} (the runs carry no times)"
    return f"fitted on {how}; {len(sp.held.runs)} runs held out"


def _flow(item: Mapping[str, Any]) -> list[str]:
    text = yaml.safe_dump([dict(item)], sort_keys=False, default_flow_style=None, width=110)
    return ["  " + line for line in text.rstrip("\n").splitlines()]


def policy_yaml(s: Suggestion, *, output: Path, name: str, sources: Sequence[str]) -> str:
    """The suggested policy, with its evidence as comments (validated by :func:`check_policy`)."""
    c = s.combined
    lines = [
        f"# Suggested by `governor suggest` from {len(s.split.fit.runs) + len(s.split.held.runs)} recorded runs "
        f"({', '.join(sources)}).",
        f"# Evidence: {split_text(s)}.",
    ]
    if s.match:
        lines.append(f"# Scope: every rule matches the calls with {', '.join(f'{k}={v}' for k, v in s.match.items())}.")
    rel = Path(os.path.relpath(os.path.abspath(s.base), os.path.abspath(output.parent))).as_posix() if s.base else ""
    base = f"the base policy ({rel})" if s.base else "what was paid"
    lines += [
        f"# Savings are against {base}, on the recorded costs (docs/replay.md); a stopped run is assumed",
        "# not to reach its outcome. Review before use: run `governor test` on the .test.yaml beside this file.",
        "#",
        f"# The whole policy, fit part:  {effect(c.fit)}.",
        f"# The whole policy, held out:  {effect(c.held)}.",
        f"# Cost per accepted task, fit: {usd(c.fit.cost_per_accepted_before)} -> {usd(c.fit.cost_per_accepted_after)};"
        f" held out: {usd(c.held.cost_per_accepted_before)} -> {usd(c.held.cost_per_accepted_after)}.",
        "apiVersion: governor/v1",
        "kind: Policy",
        "metadata:",
        f"  name: {name}",
        "  description: Caps and stops suggested from recorded runs (governor suggest)",
    ]
    if s.base:
        lines.append(f"extends: {rel}")
    if s.frame.defaults.get("allow_unpriced"):
        lines += [
            "# Some runs use models no price table knows: an empty policy would block their calls, which is not",
            "# what was measured (what was paid). Better: price them under models.prices and remove this.",
            "defaults:",
            "  allow_unpriced: true",
        ]
    sections: dict[str, list[Evaluated]] = {}
    for e in c.picks:
        sections.setdefault(KNOBS[e.candidate.knob].section, []).append(e)
    for section in ("stop", "context", "budgets"):
        if section not in sections:
            continue
        lines.append(f"{section}:")
        for e in sections[section]:
            knob = KNOBS[e.candidate.knob]
            origin = (
                f"= {e.candidate.basis}, rounded up"
                if knob.section != "stop" or knob.name == "run-calls"
                else (f"({e.candidate.basis})")
            )
            lines += [
                f"  # {knob.label} {knob.text(e.candidate.value)} {origin}",
                f"  #   alone, fit part:  {effect(e.fit)}",
                f"  #   alone, held out:  {effect(e.held)}",
            ]
            item = knob.item(e.candidate.value, s.match)
            lines += _flow(item if s.frame.mode is None else {**item, "mode": s.frame.mode})
    if not c.picks:
        lines.append("# No knob saved anything without stopping accepted work: the base policy is kept as it is.")
    not_suggested = [(k.knob, k.why) for k in s.knobs if k.pick is None]
    not_suggested += list(c.dropped.items()) + list(s.skipped.items())
    if not_suggested:
        lines.append("#")
        lines.append("# Not suggested:")
        lines += [f"#   {KNOBS[k].label}: {why}" for k, why in not_suggested]
    if s.routes:
        lines.append("#")
        lines.append("# Route candidates (an assumption about outcomes, never a measured saving; not in this policy):")
        for r in s.routes:
            group = f"{r.key}={r.value}" if r.key else r.value
            what = ", ".join(f"{usd(x.cost_usd)} on {x.to}" for x in r.reroutes) or "give --route-to MODEL to price it"
            lines.append(f"#   {group}: {r.short_calls} short calls carry {usd(r.short_spend_usd)}; rerouted: {what}")
    return "\n".join(_one_line(x) if x.lstrip().startswith("#") else x for x in lines) + "\n"


def _one_line(comment: str) -> str:
    """A comment stays one line of plain text whatever a path or a --match value holds: a newline would end
    it, and YAML refuses control characters anywhere, so both are written escaped (``\\n``, ``\\x1f``)."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in comment)


def check_policy(text: str, output: Path) -> Policy:
    """Load the written text back through the loader (raises PolicyError if it would not validate)."""
    from governor.policy.loader import load_policy_text

    return load_policy_text(text, file=str(output))


def _model(result: ReplayResult, scope: Mapping[str, str]) -> str:
    models = Counter(c.model for c in result.calls() if matches(c.call.metadata, scope) and c.verdict != "block")
    return models.most_common(1)[0][0] if models else "gpt-4.1"


def _costliest_accepted(result: ReplayResult, scope: Mapping[str, str], key: str) -> RunResult | None:
    def size(r: RunResult) -> float:
        calls = [c for c in r.calls if matches(c.call.metadata, scope) and c.verdict != "block"]
        if key == "usd":
            return sum(c.cost_governed or 0.0 for c in calls)
        return float(sum(c.input_tokens + (c.output_tokens or 0) for c in calls))

    accepted = [r for r in result.runs if r.run.outcome in ACCEPTED_WORK]
    return max(accepted, key=size, default=None)


def _last_call_case(
    r: RunResult, scope: Mapping[str, str], knob: str, rule_id: str, unit: str, default_out: int
) -> dict[str, Any] | None:
    calls = [c for c in r.calls if matches(c.call.metadata, scope) and c.verdict != "block"]
    if not calls:
        return None
    last = calls[-1]
    if unit == "usd":
        if any(c.cost_governed is None for c in calls):
            return None
        before: float | int = round(sum(c.cost_governed or 0.0 for c in calls[:-1]), 6)
    else:
        before = sum(c.input_tokens + (c.output_tokens or 0) for c in calls[:-1])
    meta = {**scope, "run_id": f"case-{knob}-accepted"}
    call: dict[str, Any] = {"model": last.model, "input_tokens": last.call.input_tokens, "metadata": meta}
    if last.call.max_tokens is not None:
        call["max_tokens"] = last.call.max_tokens
    return {
        "name": f"{rule_id}: the largest accepted fit run ({r.run.run_id}) keeps its last call",
        "call": call,
        "state": {"spend": [{"budget": rule_id, "value": meta["run_id"], unit: before}]},
        "expect": {"verdict": "allow"},
    }


def _tool_history(n: int) -> list[list[dict[str, Any]]]:
    """Prompts of calls 1..n of a run whose agent repeats one tool call with the same result from call 3 on."""
    user = {"role": "user", "content": "Where is my order 1234?"}
    out: list[list[dict[str, Any]]] = []
    history: list[dict[str, Any]] = [user]
    for k in range(n):
        if k:
            call_id = f"call_{k}"
            history = [
                *history,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {"name": "get_order", "arguments": '{"order_id": "1234"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": call_id, "content": "status: unknown"},
            ]
        out.append(history)
    return out


def test_cases(s: Suggestion, base_fit: ReplayResult) -> list[dict[str, Any]]:
    """The decisive cases of the picks: each boundary the suggested values stand on."""
    scope = s.match
    model = _model(base_fit, scope)
    default_out = s.base_policy.default_output_tokens
    cases: list[dict[str, Any]] = []

    def meta(tag: str) -> dict[str, Any]:
        return {**scope, "run_id": f"case-{tag}"}

    small = {"model": model, "input_tokens": 1000, "max_tokens": 100}
    for e in s.combined.picks:
        knob = KNOBS[e.candidate.knob]
        v = int(e.candidate.value) if knob.integer else e.candidate.value
        n = int(e.candidate.value)  # the count of a stop condition or a context cap
        rid = knob.rule_id
        if knob.name in ("run-usd", "run-tokens"):
            unit = "usd" if knob.name == "run-usd" else "tokens"
            top = _costliest_accepted(base_fit, scope, unit)
            case = _last_call_case(top, scope, knob.name, rid, unit, default_out) if top is not None else None
            if case is not None:
                cases.append(case)
            cases.append(
                {
                    "name": f"{rid}: a run that spent the cap ({knob.text(v)}) is stopped",
                    "call": {**small, "metadata": meta(f"{knob.name}-over")},
                    "state": {"spend": [{"budget": rid, "value": f"case-{knob.name}-over", unit: v}]},
                    "expect": {"verdict": "block", "blocked_by": rid},
                }
            )
        elif knob.name == "run-calls":
            cases += [
                {
                    "name": f"{rid}: call {n} of a run is allowed",
                    "call": {**small, "metadata": meta("calls-last")},
                    "state": {"run_calls": n - 1},
                    "expect": {"verdict": "allow"},
                },
                {
                    "name": f"{rid}: call {n + 1} of a run is stopped",
                    "call": {**small, "metadata": meta("calls-over")},
                    "state": {"run_calls": n},
                    "expect": {"verdict": "block", "blocked_by": rid, "block_kind": "stop"},
                },
            ]
        elif knob.name == "repeated-call":
            same = [{"role": "user", "content": "Where is my order 1234?"}]
            cases += [
                {
                    "name": f"{rid}: the {n - 1}th identical call is allowed",
                    "call": {"model": model, "messages": same, "max_tokens": 100, "metadata": meta("repeat-ok")},
                    "state": {"prior_calls": [{"messages": same}] * (n - 2)} if n > 2 else {},
                    "expect": {"verdict": "allow"},
                },
                {
                    "name": f"{rid}: the {n}th identical call is stopped",
                    "call": {"model": model, "messages": same, "max_tokens": 100, "metadata": meta("repeat-over")},
                    "state": {"prior_calls": [{"messages": same}] * (n - 1)},
                    "expect": {"verdict": "block", "blocked_by": rid},
                },
            ]
        elif knob.name == "no-progress":
            prompts = _tool_history(n + 2)
            for name, upto, expect in (
                (f"{rid}: call {n - 1} in a row adding nothing new is allowed", n + 1, {"verdict": "allow"}),
                (
                    f"{rid}: call {n} in a row adding nothing new is stopped",
                    n + 2,
                    {"verdict": "block", "blocked_by": rid},
                ),
            ):
                if upto - 2 < 1 and expect["verdict"] == "allow":
                    continue  # max 1: there is no allowed repeat
                cases.append(
                    {
                        "name": name,
                        "call": {
                            "model": model,
                            "messages": prompts[upto - 1],
                            "max_tokens": 100,
                            "metadata": meta(f"progress-{upto}"),
                        },
                        "state": {"prior_calls": [{"messages": p} for p in prompts[: upto - 1]]},
                        "expect": expect,
                    }
                )
        elif knob.name == "consecutive-errors":
            cases.append(
                {
                    "name": f"{rid}: after {n} failed calls in a row the run is stopped",
                    "call": {**small, "metadata": meta("errors")},
                    "state": {"prior_calls": [{"error": "RateLimitError"}] * n},
                    "expect": {"verdict": "block", "blocked_by": rid},
                }
            )
        elif knob.name == "context":
            words = " ".join(["budget"] * max(n // 3, 10))
            msgs = [{"role": "system", "content": "You are a support agent."}]
            msgs += [{"role": "user" if i % 2 == 0 else "assistant", "content": words} for i in range(6)]
            cases += [
                {
                    "name": f"{rid}: a prompt over {n:,} tokens is trimmed",
                    "call": {"model": model, "messages": msgs, "max_tokens": 100, "metadata": meta("context")},
                    "expect": {"verdict": "trim", "rules_include": [rid]},
                },
            ]
    return cases


def verify_cases(policy: Policy, cases: Sequence[dict[str, Any]], file: str) -> tuple[list[dict[str, Any]], list[str]]:
    """(the cases that hold against the policy, a note per case left out) -- each run through the engine."""
    from governor.replay.policytest import run_case

    kept, notes = [], []
    for i, case in enumerate(cases):
        result = run_case(policy, case, f"{file}: cases[{i}]", file)
        if result.ok:
            kept.append(case)
        else:
            notes.append(f"test case left out ({case['name']}): {'; '.join(result.failures)}")
    return kept, notes


class _NoAliases(yaml.SafeDumper):
    """Writes a repeated message out again instead of as a YAML anchor (easier to review)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def test_yaml(cases: Sequence[dict[str, Any]], policy_file: str) -> str:
    head = [
        "# Decisive cases of the suggested policy (governor suggest): `governor test` runs them.",
        "# Each is a boundary a suggested value stands on; a later edit that moves it fails here.",
    ]
    body = yaml.dump(
        {"policy": policy_file, "cases": list(cases)}, Dumper=_NoAliases, sort_keys=False, width=110, allow_unicode=True
    )
    return "\n".join(head) + "\n" + body
