"""The fused fast path (governor.engine.fastpath) decides exactly what the stage-by-stage
evaluate would: the same call streams through a governor with and without it give the same
decisions, the same budget usage, the same run states and the same stats."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Any

import pytest

import governor.engine.governor as governor_module
from governor import Governor
from governor.engine.fastpath import fast_check

REPO = Path(__file__).resolve().parents[2]
HEADER = "apiVersion: governor/v1\nkind: Policy\nmetadata: {name: test-policy}\n"


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t

# Every kind of rule the fast path must either decide or hand over: audit routes and stops, a
# max_calls stop with a match, soft thresholds in reach, per-call and audit budgets, context caps
# that trim and reroute, call caps that clamp, an unpriced model, tags and metadata scopes.
MIXED = HEADER + """
defaults: {output_tokens: 300, lease: 10m}
models:
  aliases: {cheap: gpt-4o-mini, strong: gpt-4o}
stop:
  - {id: max-calls, type: max_calls, max: 30}
  - {id: errors, type: consecutive_errors, max: 3}
  - {id: loop, type: repeated_call, max: 3, within: 5m}
  - {id: wall, type: max_wall_time, max: 2h}
  - {id: audit-calls, type: max_calls, max: 12, mode: audit}
routes:
  - {id: classify-cheap, match: {task: classify, input_tokens: {lte: 3000}}, to: cheap, fallbacks: [gpt-4.1-mini]}
  - {id: greeting, match: {last_user_message: {regex: "^(hi|hello)\\\\b"}}, to: cheap}
  - {id: legal, match: {team: legal}, to: strong}
  - {id: audit-batch, match: {tags: {any: [batch]}}, to: cheap, mode: audit}
context:
  - {id: trim-long, match: {messages: {gte: 6}}, max_input_tokens: 6000, action: trim, keep_last: 2}
  - {id: huge, max_input_tokens: 50000, action: reroute, to: gpt-4.1}
calls:
  - {id: clamp-classify, match: {task: classify}, max_output_tokens: 64}
  - {id: cost-cap, max_cost_usd: 0.02}
budgets:
  - {id: per-run, scope: run, limit: {usd: 0.40, calls: 25}}
  - {id: per-user, scope: user, limit: {usd: 1.50}, window: {calendar: day, timezone: UTC}, soft: {at: 0.6, action: warn}}
  - {id: per-team, scope: team, limit: {usd: 3.00}, window: 1h, soft: {at: 0.8, action: downgrade, to: cheap}}
  - {id: per-tag, scope: tag, limit: {usd: 1.00}}
  - {id: per-task, scope: metadata.task, limit: {tokens: 400000}, window: 30m}
  - {id: per-call, match: {task: extract}, scope: call, limit: {usd: 0.15}}
  - {id: audit-legal, match: {team: legal}, scope: global, limit: {usd: 2.0}, mode: audit}
  - {id: strong-only, match: {model: gpt-4o}, scope: global, limit: {usd: 4.0}}
"""

POLICIES = {
    "mixed": MIXED,
    "thirty-rules": (REPO / "benchmarks" / "policies" / "thirty-rules.yaml").read_text(encoding="utf-8"),
    **{p.stem: p.read_text(encoding="utf-8") for p in sorted((REPO / "policies").glob("*.yaml"))
       if not p.name.endswith(".test.yaml")},
}
MODELS = ("gpt-4o", "gpt-4o", "gpt-4o-mini", "cheap", "claude-3-5-sonnet-20240620", "no-such-model-x")
WORDS = "hello hi please fix the parser classify this ticket summarize refund order".split()


def _stream(seed: int, n: int, nest: bool = True) -> list[dict[str, Any]]:
    """Agent runs as they come: each run keeps its user, team, task and model; most calls are
    ordinary, some are not (another model, no max_tokens, a huge prompt, a loop, an error).
    With ``nest``, a third of the runs run inside a parent run's scope (a run chain of two)."""
    rng = random.Random(seed)
    system = {"role": "system", "content": "You are a careful agent."}
    runs: dict[int, dict[str, Any]] = {}
    calls = []
    for i in range(n):
        run = i // 40 + rng.randrange(2)  # runs of some 80 calls, two at a time
        if run not in runs:
            md: dict[str, Any] = {"run_id": f"r{run}", "user": f"u{run % 3}", "team": rng.choice(["t1", "t2", "legal"]),
                                  "task": rng.choice(["code", "classify", "chat", "extract"]), "agent": "coder",
                                  "job_id": f"j{run % 4}"}
            if rng.random() < 0.3:
                md["tags"] = rng.sample(["batch", "nightly", "experiment", "sandbox"], rng.randrange(1, 3))
            if rng.random() < 0.2:
                md["tier"] = "free"
            runs[run] = {"md": md, "model": rng.choice(MODELS[:4]), "history": [system]}
        r = runs[run]
        if rng.random() < 0.9 or len(r["history"]) == 1:  # sometimes the very same call again (a loop)
            r["history"] = r["history"][-8:] + [{"role": "user", "content": " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 8)))}]
        unusual = rng.random() < 0.25
        calls.append({
            "model": rng.choice(MODELS) if unusual else r["model"],
            "messages": [system] + r["history"][1:] if r["history"][0] is not system else list(r["history"]),
            "max_tokens": rng.choice([None, 64, 2000, 512]) if unusual else 512,
            "tools": [{"type": "function", "function": {"name": "grep"}}] if rng.random() < 0.2 else None,
            "metadata": r["md"],
            "input_tokens": rng.choice([300, 2500, 9000, 70000]) if unusual else rng.randrange(200, 1500),
            "out": rng.randrange(0, 400),
            "error": "timeout" if rng.random() < 0.05 else None,
            "advance": rng.choice([0.0, 0.0, 1.0, 30.0, 400.0]),
            "parent": f"p{run % 2}" if nest and run % 3 == 0 else None,
        })
    return calls


def _replay(policy: Path, calls: list[dict[str, Any]]) -> tuple[list[tuple], dict[str, Any], list]:
    """Check every call; record most right away, every 7th only at the end (in flight meanwhile)."""
    clock = Clock()
    gov = Governor.from_path(policy, clock=clock)
    out, late = [], []
    for i, c in enumerate(calls):
        clock.t += c["advance"]
        with gov.run(c["parent"]) if c["parent"] else contextlib.nullcontext():
            d = gov.check(model=c["model"], messages=c["messages"], max_tokens=c["max_tokens"], tools=c["tools"],
                          metadata=c["metadata"], input_tokens=c["input_tokens"])
        out.append((d.verdict, d.model, d.max_tokens, d.rule_ids, d.reasons, d.estimated_cost_usd, d.requested_model,
                    d.input_tokens, d.warnings, d.audit, d.block_kind, d.fallbacks, len(d.messages)))
        if d.allowed and i % 7 == 3:
            late.append((d, c))
        elif d.allowed:
            _record(gov, d, c)
    in_flight = {key: gov.ledger.usage(counter, now=clock()) for key, counter in _counters(gov)}  # reservations included
    for d, c in late:
        _record(gov, d, c)
    runs = [(s.run_id, s.calls, s.consecutive_errors, round(s.cost_usd, 12), sorted(s.seen.items()))
            for s in gov._runs._runs.values()]
    usage = {key: gov.ledger.usage(counter, now=clock()) for key, counter in _counters(gov)}
    snap = gov.stats()
    gov.close()
    return out, {"in_flight": in_flight, "usage": usage, "stats": snap}, runs


def _record(gov: Governor, d: Any, c: dict[str, Any]) -> None:
    gov.record(d, input_tokens=d.input_tokens, output_tokens=0 if c["error"] else c["out"], error=c["error"])


def _counters(gov: Governor) -> list[tuple[str, Any]]:
    return sorted((c.key, c) for b in gov._compiled.budgets for c in b._counters.values())


@pytest.mark.parametrize("name", sorted(POLICIES))
@pytest.mark.parametrize("seed", range(3))
def test_fast_path_decides_as_the_stages_do(name: str, seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = tmp_path / f"{name}.yaml"
    policy.write_text(POLICIES[name], encoding="utf-8")
    calls = _stream(seed, 400, nest=name != "mixed")  # ("mixed" hands over nearly every call as it is)

    monkeypatch.setattr(governor_module, "fast_check", lambda *a: None)
    reference = _replay(policy, calls)

    decided, nested = [], []

    def counting(*args: Any) -> Any:
        out = fast_check(*args)
        decided.append(out is not None)
        if len(args[8]) > 1:  # the run chain
            nested.append(out is not None)
        return out

    monkeypatch.setattr(governor_module, "fast_check", counting)
    fast = _replay(policy, calls)

    for i, (want, got) in enumerate(zip(reference[0], fast[0])):
        assert got == want, f"call {i}: {calls[i]['model']} {calls[i]['metadata']}"
    assert fast[1] == reference[1]  # budget usage of every counter, and the stats
    assert fast[2] == reference[2]  # run states: calls, errors, cost, fingerprints seen
    # the shipped policies: many calls are the usual case; "mixed", built to hand calls over, still has a few
    least = 1 if name == "mixed" else 20
    assert sum(decided) >= least, f"only {sum(decided)} of {len(calls)} calls took the fast path: the comparison shows little"
    if name != "mixed":
        assert any(nested), "no call of a nested run took the fast path"


def test_a_call_a_cost_cap_blocks_is_handed_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a clamp, the cost cap still blocks a call the fast path would otherwise grant."""
    policy = tmp_path / "caps.yaml"
    policy.write_text(HEADER + """
calls:
  - {id: clamp, max_output_tokens: 1000}
  - {id: cost-cap, max_cost_usd: 0.02}
budgets:
  - {id: per-run, scope: run, limit: {usd: 10.0}}
""", encoding="utf-8")
    decided: list[bool] = []

    def counting(*args: Any) -> Any:
        out = fast_check(*args)
        decided.append(out is not None)
        return out

    monkeypatch.setattr(governor_module, "fast_check", counting)
    gov = Governor.from_path(policy, clock=Clock())
    md = {"run_id": "r1"}
    for i in range(3):  # ordinary calls (the first builds the run's plan and its lane)
        d = gov.check(model="gpt-4o", messages=[{"role": "user", "content": f"q{i}"}], max_tokens=4000, metadata=md,
                      input_tokens=1000)
        assert (d.verdict, d.max_tokens, d.rule_ids) == ("allow", 1000, ("clamp",))
        gov.record(d, input_tokens=1000, output_tokens=100)
    assert decided == [True, True, True]
    # clamped to 1000 output tokens: 5000 * $2.5/M + 1000 * $10/M = $0.0225 > $0.02
    d = gov.check(model="gpt-4o", messages=[{"role": "user", "content": "big"}], max_tokens=4000, metadata=md,
                  input_tokens=5000)
    assert (d.verdict, d.block_kind, d.rule_ids) == ("block", "cost", ("clamp", "cost-cap"))
    assert decided[-1] is False
    gov.close()


def test_a_call_handed_over_at_a_soft_threshold_leaves_nothing_behind(tmp_path: Path) -> None:
    """The fast path may take a new allowance for a call and find a soft threshold reached: it
    hands the call over with no reservation held and no run admission made."""
    policy = tmp_path / "soft.yaml"
    policy.write_text(HEADER + """
stop: [{id: max-calls, type: max_calls, max: 1000}]
budgets:
  - {id: per-run, scope: run, limit: {usd: 1.0}, soft: {at: 0.5, action: warn}}
""", encoding="utf-8")
    clock = Clock()
    gov = Governor.from_path(policy, clock=clock)
    md = {"run_id": "r1"}
    msgs = [{"role": "user", "content": "q"}]
    while not (d := gov.check(model="gpt-4o", messages=msgs, max_tokens=100, metadata=md, input_tokens=20000)).warnings:
        gov.record(d, input_tokens=20000, output_tokens=100)
    gov.record(d, input_tokens=20000, output_tokens=100)
    counter = gov._compiled.budgets[0].counter("r1")
    used, calls = gov.ledger.usage(counter, now=clock()), gov._runs.peek("r1").calls

    out = fast_check(gov._compiled, gov._runs, gov.ledger, "gpt-4o", msgs, 100, None, md, ("r1",), 20000, False,
                     clock(), "handed-over", None, None)

    assert out is None
    assert gov.ledger.usage(counter, now=clock()) == used  # nothing reserved (usage counts reservations)
    assert gov._runs.peek("r1").calls == calls  # nor admitted
    d = gov.check(model="gpt-4o", messages=msgs, max_tokens=100, metadata=md, input_tokens=20000)
    assert d.allowed and d.warnings and gov.ledger.usage(counter, now=clock()).calls == used.calls + 1
    gov.close()
