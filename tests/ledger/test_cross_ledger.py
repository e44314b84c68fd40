"""One semantics, three stores: the same call streams through Governor on memory, SQLite and Redis.

Hypothesis writes the streams (checks from several runs, users and models, records
that cost less or more than was reserved, failed calls, time passing over window
and lease boundaries). Each stream runs through three governors that differ only in
their ledger, a real SQLite file and a real redis-server; every decision must be the
same on all three (verdict, model, output limit, rules, reasons, warnings, the rule
that blocked) and so must every counter's usage at the end. On the way the
invariants of a budget hold: no counter passes its limit while actual cost stays
within the reservation, and a ledger's total is the sum of the calls settled.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_workers import SLOW_BOX, unique_prefix

from governor import Governor
from governor.ledger.base import Ledger, usd_to_nano
from governor.ledger.memory import MemoryLedger
from governor.ledger.redis import RedisLedger
from governor.ledger.sqlite import SqliteLedger
from governor.policy.loader import load_policy

POLICY = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: cross-ledger}
defaults: {lease: 2m, output_tokens: 400}
models:
  prices:
    acme/small: {input_per_mtok: 1.0, output_per_mtok: 2.0}
    acme/large: {input_per_mtok: 10.0, output_per_mtok: 30.0}
stop:
  - {id: run-calls, type: max_calls, max: 5}
routes:
  - {id: long-to-small, match: {input_tokens: {gt: 3000}}, to: acme/small}
budgets:
  - {id: per-run, scope: run, limit: {usd: 0.05, calls: 7}}
  - id: per-user-daily
    scope: user
    limit: {usd: 0.08}
    window: {calendar: day, timezone: Europe/Berlin}
    soft: {at: 0.6, action: downgrade, to: acme/small}
  - {id: global-hour, scope: global, limit: {usd: 0.12, tokens: 60000}, window: 1h}
  - {id: audit-all, scope: global, mode: audit, limit: {usd: 0.02}}
"""

check = st.tuples(
    st.just("check"),
    st.sampled_from(["r1", "r2", "r3"]),
    st.sampled_from(["ann", "bob"]),
    st.sampled_from(["acme/small", "acme/large"]),
    st.integers(0, 5000),  # input tokens
    st.one_of(st.none(), st.integers(0, 1500)),  # max_tokens
)
record = st.tuples(
    st.just("record"),
    st.integers(0, 50),  # which pending decision (modulo how many are pending)
    st.floats(0.0, 1.3),  # actual output tokens, as a fraction of the output reserved
    st.booleans(),  # a failed call
)
wait = st.tuples(st.just("wait"), st.sampled_from([1.0, 90.0, 400.0, 3000.0, 40000.0]))
streams = st.lists(st.one_of(check, check, record, record, wait), max_size=40)


class Clock:
    def __init__(self) -> None:
        self.t = 1_767_222_000.0  # 2025-12-31 23:00 UTC: a Berlin midnight within reach

    def __call__(self) -> float:
        return self.t


def _view(d: Any) -> tuple[Any, ...]:
    """What must be the same whichever store holds the budgets (ids differ per governor)."""
    return (
        d.verdict,
        d.model,
        d.max_tokens,
        d.rule_ids,
        d.reasons,
        d.warnings,
        d.blocked_by,
        d.block_kind,
        d.estimated_cost_usd,
        [(a.rule_id, a.would, a.reason) for a in d.audit],
    )


_examples = itertools.count()


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path


def run_stream(stream: list[tuple[Any, ...]], policy_path: Path, tmp_path: Path, redis_url: str) -> list[Any]:
    """Run ``stream`` on the three stores, asserting they agree; the memory governor's decisions."""
    n = next(_examples)
    policy = load_policy(policy_path)
    clock = Clock()
    ledgers: list[Ledger] = [
        MemoryLedger(),
        SqliteLedger(tmp_path / f"cross-{n}.db"),
        RedisLedger(redis_url, key_prefix=unique_prefix(f"cross-{n}"), **SLOW_BOX),
    ]
    govs = [Governor(policy, ledger=ledger, clock=clock, stats=False, observers=False) for ledger in ledgers]
    pending: list[list[Any]] = []  # per pending call: its decision on each governor
    decisions: list[Any] = []
    settled_usd_nano = 0  # what the records cost, in the ledger's units
    try:
        for op in stream:
            if op[0] == "wait":
                clock.t += op[1]
            elif op[0] == "check":
                _, run, user, model, n_in, max_tokens = op
                ds = [
                    g.check(
                        model=model,
                        messages=[{"role": "user", "content": "hi"}],
                        input_tokens=n_in,
                        max_tokens=max_tokens,
                        metadata={"run_id": run, "user": user},
                    )
                    for g in govs
                ]
                assert [_view(d) for d in ds[1:]] == [_view(ds[0])] * 2
                decisions.append(ds[0])
                if ds[0].allowed:
                    pending.append(ds)
            elif pending:
                _, which, fraction, failed = op
                ds = pending.pop(which % len(pending))
                reserved_out = ds[0].max_tokens if ds[0].max_tokens is not None else 400
                out = int(reserved_out * fraction)
                error = "upstream failed" if failed else None
                n_in = 0 if failed and fraction < 0.5 else ds[0].input_tokens  # some failures cost nothing
                n_out = out if n_in else 0
                costs = [
                    g.record(d, input_tokens=n_in, output_tokens=n_out, error=error)
                    for g, d in zip(govs, ds, strict=True)
                ]
                assert costs[1:] == [costs[0]] * 2
                if costs[0] is not None and (n_in or n_out or not failed):
                    settled_usd_nano += usd_to_nano(costs[0])
        # every counter the policy could have charged reads the same on all three stores
        now = clock()
        counters = _counters(govs[0])
        usages = [[ledger.usage(c, now=now) for c in counters] for ledger in ledgers]
        assert usages[1] == usages[0] and usages[2] == usages[0]
        for c, used in zip(counters, usages[0], strict=True):
            if c.budget_id != "audit-all":  # audit budgets never reserve: they may be passed
                assert c.limit.exceeded_by(used) is None, f"{c.key} passed its limit: {used}"
        # the audit budget has no window and is never reserved on: it holds exactly what was settled
        (audit,) = [c for c in counters if c.budget_id == "audit-all"]
        assert usages[0][counters.index(audit)].usd_nano == settled_usd_nano
    finally:
        for g in govs:
            g.close()
        for ledger in ledgers:
            ledger.close()
    return decisions


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(stream=streams)
def test_memory_sqlite_and_redis_decide_and_count_alike(
    stream: list[tuple[Any, ...]], policy_path: Path, tmp_path: Path, redis_server: Any
) -> None:
    run_stream(stream, policy_path, tmp_path, redis_server.url)


def test_a_stream_through_every_rule_kind_agrees_on_all_stores(
    policy_path: Path, tmp_path: Path, redis_server: Any
) -> None:
    """A fixed stream that walks into a downgrade, a budget block, a stop and a route: the
    policy above exercises what the generated streams are meant to compare."""
    stream: list[tuple[Any, ...]] = []
    for run in ("r1", "r2", "r1", "r2"):
        stream += [("check", run, "ann", "acme/large", 1000, 800), ("record", 0, 1.0, False)]
    stream += [("check", "r2", "bob", "acme/large", 4000, 100), ("wait", 3000.0)]
    stream += [("check", "r3", "bob", "acme/small", 100, 10), ("record", 0, 0.5, False)] * 10
    decisions = run_stream(stream, policy_path, tmp_path, redis_server.url)
    outcomes = {d.blocked_by or d.verdict for d in decisions}
    assert {"allow", "reroute", "per-run", "run-calls"} <= outcomes
    assert any("downgraded acme/large -> acme/small" in r for d in decisions for r in d.reasons)


def _counters(gov: Governor) -> list[Any]:
    cp = gov._compiled
    out = []
    for b in cp.budgets:
        values = {"run": ["r1", "r2", "r3"], "user": ["ann", "bob"], "global": [""]}[b.scope]
        out += [b.counter(v) for v in values]
    return out
