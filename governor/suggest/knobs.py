"""The knobs ``governor suggest`` sweeps, and their candidate values measured on the fit runs.

Each knob is one rule with a fixed id (``suggested-<knob>``) added to the base
policy. Per-run caps (USD, tokens, calls) and the context cap take candidates at
percentiles of the accepted runs' own figures under the base policy (what the
cap would meet), rounded up, plus a few margins above the largest; the stop
conditions take a short list of counts. A ``--match`` scope restricts every
rule, and every figure a candidate is drawn from, to the calls it matches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from governor.replay.result import ReplayResult
from governor.suggest.figures import ACCEPTED_WORK

PERCENTILES = (50, 75, 90, 95, 99, 100)
MARGINS = (1.1, 1.25, 1.5, 2.0)
REPEATED_MAX = (2, 3, 4, 5, 8)
NO_PROGRESS_MAX = (1, 2, 3, 4, 5)
ERRORS_MAX = (2, 3, 5, 8)
REPEATED_WITHIN = "1h"
_META_KEYS = {"task": "task", "agent": "agent", "user": "user", "team": "team", "workflow": "workflow"}


@dataclass(frozen=True, kw_only=True)
class Knob:
    """One knob: the rule it writes and how it is described."""

    name: str
    """run-usd | run-tokens | run-calls | repeated-call | no-progress | consecutive-errors | context."""
    section: str
    """The policy section the rule goes in: budgets | stop | context."""
    label: str
    """What a person reads: 'per-run cap (USD)'."""
    integer: bool
    """Whether values are counts (written without decimals)."""

    @property
    def rule_id(self) -> str:
        return f"suggested-{self.name}"

    def item(self, value: float, match: Mapping[str, str]) -> dict[str, Any]:
        """The rule as a policy item (a mapping the loader validates)."""
        v: float | int = int(value) if self.integer else value
        head: dict[str, Any] = {"id": self.rule_id}
        if self.section == "budgets":
            unit = {"run-usd": "usd", "run-tokens": "tokens"}[self.name]
            head.update(scope="run", limit={unit: v}, window="none")
        elif self.name == "run-calls":
            head.update(type="max_calls", max=v)
        elif self.name == "repeated-call":
            head.update(type="repeated_call", max=v, within=REPEATED_WITHIN)
        elif self.name == "no-progress":
            head.update(type="no_progress", max=v)
        elif self.name == "consecutive-errors":
            head.update(type="consecutive_errors", max=v)
        else:
            head.update(max_input_tokens=v, action="trim")
        scope = match_item(match)
        if scope:
            head["match"] = scope
        return head

    def text(self, value: float) -> str:
        """The value as a person reads it: '$0.59', '25 calls', '190,000 tokens'."""
        if self.name == "run-usd":
            return f"${value:,.2f}" if value >= 0.1 else f"${value:.4g}"
        unit = {"run-tokens": "tokens", "run-calls": "calls", "context": "input tokens"}.get(self.name, "")
        if unit:
            return f"{int(value):,} {unit}"
        return f"max {int(value)}"


KNOBS = {
    k.name: k
    for k in (
        Knob(name="run-usd", section="budgets", label="per-run cap (USD)", integer=False),
        Knob(name="run-tokens", section="budgets", label="per-run cap (tokens)", integer=True),
        Knob(name="run-calls", section="stop", label="per-run cap (calls)", integer=True),
        Knob(name="repeated-call", section="stop", label="repeated_call", integer=True),
        Knob(name="no-progress", section="stop", label="no_progress", integer=True),
        Knob(name="consecutive-errors", section="stop", label="consecutive_errors", integer=True),
        Knob(name="context", section="context", label="context cap (trim)", integer=True),
    )
}


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """One value of one knob, and where it came from."""

    knob: str
    """The knob's name (a key of KNOBS)."""
    value: float
    """The rule's value (a count for integer knobs)."""
    basis: str
    """Where the value came from: 'p95 of accepted runs ($0.4617)', '1.25 x the largest accepted run'."""


def match_item(match: Mapping[str, str]) -> dict[str, Any]:
    """A ``--match KEY=VALUE`` scope as a policy ``match:`` mapping."""
    out: dict[str, Any] = {}
    meta: dict[str, str] = {}
    for key, value in match.items():
        if key in _META_KEYS:
            out[_META_KEYS[key]] = value
        else:
            meta[key] = value
    if meta:
        out["metadata"] = meta
    return out


def matches(metadata: Mapping[str, Any], match: Mapping[str, str]) -> bool:
    """Whether a call's metadata holds every ``KEY=VALUE`` of the scope (values compared as text)."""
    return all(k in metadata and str(metadata[k]) == v for k, v in match.items())


def nice_up(x: float, digits: int = 2) -> float:
    """``x`` rounded up to ``digits`` significant digits (0.58011 -> 0.59; 183412 -> 190000)."""
    if x <= 0:
        return x
    step = 10.0 ** (math.floor(math.log10(x)) - digits + 1)
    return round(math.ceil(x / step - 1e-9) * step, 10)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least p% of the values at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, kw_only=True)
class Spend:
    """Per accepted run of the fit part (under the base policy, the calls in scope only)."""

    usd: tuple[float, ...]
    """What each accepted run spent (runs with an unknown cost left out)."""
    tokens: tuple[int, ...]
    """Input + output tokens of each accepted run."""
    calls: tuple[int, ...]
    """Calls each accepted run made."""
    call_inputs: tuple[int, ...]
    """Input tokens of every call of the accepted runs (what a context cap meets)."""
    with_messages: bool
    """Some call in scope kept its prompt (or a digest of it): repeated_call can compare calls."""
    with_text: bool
    """Some call in scope kept its prompt text: no_progress can judge what a call adds."""
    with_errors: bool
    """Some call in scope failed: consecutive_errors has something to count."""


def measure(base_fit: ReplayResult, match: Mapping[str, str]) -> Spend:
    """What the accepted runs of the fit part spent under the base policy, on the calls in scope."""
    usd: list[float] = []
    tokens: list[int] = []
    calls: list[int] = []
    inputs: list[int] = []
    with_messages = with_text = with_errors = False
    for r in base_fit.runs:
        scoped = [c for c in r.calls if matches(c.call.metadata, match)]
        for c in scoped:
            with_messages = with_messages or bool(c.call.messages) or c.call.messages_digest is not None
            with_text = with_text or bool(c.call.messages)
            with_errors = with_errors or c.call.error is not None
        if r.run.outcome not in ACCEPTED_WORK:
            continue
        allowed = [c for c in scoped if c.verdict != "block"]
        if not allowed:
            continue  # a run with no call in scope says nothing about a cap on the calls in scope
        costs = [c.cost_governed for c in allowed]
        if all(v is not None for v in costs):
            usd.append(sum(v for v in costs if v is not None))
        tokens.append(sum(c.input_tokens + (c.output_tokens or 0) for c in allowed))
        calls.append(len(allowed))
        inputs += [c.call.input_tokens for c in allowed]
    return Spend(
        usd=tuple(usd),
        tokens=tuple(tokens),
        calls=tuple(calls),
        call_inputs=tuple(inputs),
        with_messages=with_messages,
        with_text=with_text,
        with_errors=with_errors,
    )


def _cap_candidates(
    knob: str, values: Sequence[float], what: str, fmt: Callable[[float], str], integer: bool
) -> list[Candidate]:
    if not values or max(values) <= 0:
        return []
    out: dict[float, Candidate] = {}
    for p in PERCENTILES:
        raw = percentile(values, p)
        v = float(math.ceil(raw)) if integer else nice_up(raw)
        if v <= 0:
            continue  # a cap of nothing is no candidate (and no valid limit)
        name = "the largest" if p == 100 else f"p{p}"
        out.setdefault(v, Candidate(knob=knob, value=v, basis=f"{name} of {what} ({fmt(raw)})"))
    top = max(values)
    for m in MARGINS:
        v = float(math.ceil(top * m)) if integer else nice_up(top * m)
        out.setdefault(v, Candidate(knob=knob, value=v, basis=f"{m:g} x the largest of {what} ({fmt(top)})"))
    return sorted(out.values(), key=lambda c: c.value)


def candidates(spend: Spend) -> tuple[list[Candidate], dict[str, str]]:
    """(every candidate, why a knob has none) for the spend measured on the fit runs."""
    out: list[Candidate] = []
    skipped: dict[str, str] = {}
    usd = _cap_candidates("run-usd", spend.usd, "accepted runs' spend", lambda v: f"${v:.4f}", False)
    tok = _cap_candidates("run-tokens", spend.tokens, "accepted runs' tokens", lambda v: f"{int(v):,}", False)
    calls = _cap_candidates("run-calls", spend.calls, "accepted runs' calls", lambda v: f"{int(v)}", True)
    ctx = _cap_candidates(
        "context", spend.call_inputs, "accepted runs' call inputs", lambda v: f"{int(v):,} tokens", False
    )
    ctx = [c for c in ctx if c.value >= percentile(spend.call_inputs, 90)] if spend.call_inputs else []
    for name, found in (("run-usd", usd), ("run-tokens", tok), ("run-calls", calls), ("context", ctx)):
        if found:
            out += found
        else:
            skipped[name] = "no accepted run in the fit part spent anything in scope"
    if spend.with_messages:
        swept = ", ".join(map(str, REPEATED_MAX))
        out += [
            Candidate(knob="repeated-call", value=float(m), basis=f"within {REPEATED_WITHIN}; swept max {swept}")
            for m in REPEATED_MAX
        ]
    else:
        skipped["repeated-call"] = "no call in scope kept its prompt or a digest of it: calls cannot be compared"
    if spend.with_text:
        swept = ", ".join(map(str, NO_PROGRESS_MAX))
        out += [Candidate(knob="no-progress", value=float(m), basis=f"swept max {swept}") for m in NO_PROGRESS_MAX]
    else:
        skipped["no-progress"] = "no call in scope kept its prompt text: what a call adds cannot be judged"
    if spend.with_errors:
        swept = ", ".join(map(str, ERRORS_MAX))
        out += [Candidate(knob="consecutive-errors", value=float(m), basis=f"swept max {swept}") for m in ERRORS_MAX]
    else:
        skipped["consecutive-errors"] = "no call in scope failed in the fit part: nothing to measure"
    return out, skipped
