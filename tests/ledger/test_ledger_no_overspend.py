"""With every actual at or below its reservation, no budget ever goes over its limit, on every ledger,
and once every call is settled the ledger holds exactly the sum of the settled costs.

Threads check and record concurrently against one governor per ledger kind (memory, SQLite, a real
redis-server); hypothesis picks each call's size and how much of its reservation it used.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_workers import SLOW_BOX, unique_prefix

from governor import Governor
from governor.ledger.base import usd_to_nano
from governor.ledger.memory import MemoryLedger
from governor.ledger.redis import RedisLedger
from governor.ledger.sqlite import SqliteLedger
from governor.policy.loader import load_policy_text

POLICY = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: no-overspend}
defaults: {lease: 1h}
budgets:
  - {id: usd, scope: team, limit: {usd: 0.05}}
  - {id: tokens, scope: global, limit: {tokens: 40000}}
  - {id: calls, scope: global, limit: {calls: 30}}
  - {id: total, scope: global, limit: {usd: 1000}}
"""

calls = st.lists(
    st.tuples(st.integers(1, 4000), st.integers(0, 100), st.sampled_from(["a", "b"])), min_size=1, max_size=40
)


def open_ledger(kind: str, tmp: Path, redis_url: str | None) -> Any:
    if kind == "memory":
        return MemoryLedger()
    if kind == "sqlite":
        return SqliteLedger(tmp / "ledger.db")
    assert redis_url is not None
    return RedisLedger(redis_url, key_prefix=unique_prefix("overspend"), **SLOW_BOX)


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_no_budget_goes_over_its_limit_when_actuals_stay_within_reservations(
    kind: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> None:
    redis_url = request.getfixturevalue("redis_server").url if kind == "redis" else None

    @settings(max_examples=15 if kind != "memory" else 40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(calls)
    def run(plan: list[tuple[int, int, str]]) -> None:
        ledger = open_ledger(kind, tmp_path_factory.mktemp(kind), redis_url)
        gov = Governor(load_policy_text(POLICY, "p.yaml"), ledger=ledger, observers=False, stats=False)
        usd_b, tokens_b, calls_b, total_b = gov._compiled.budgets
        settled = {"nano": 0, "calls": 0, "tokens": 0}
        lock = threading.Lock()

        def worker(items: list[tuple[int, int, str]]) -> None:
            for max_tokens, used_pct, team in items:
                d = gov.check(model="gpt-4o", input_tokens=200, max_tokens=max_tokens, metadata={"team": team})
                if not d.allowed:
                    continue
                out = d.max_tokens * used_pct // 100 if d.max_tokens is not None else 0
                cost = gov.record(d, input_tokens=200, output_tokens=out)
                assert cost is not None and cost <= d.estimated_cost_usd + 1e-12  # within its reservation
                with lock:
                    settled["nano"] += usd_to_nano(cost)
                    settled["calls"] += 1
                    settled["tokens"] += 200 + out

        threads = [threading.Thread(target=worker, args=(plan[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        now = gov._clock()
        for team in ("a", "b"):
            assert ledger.usage(usd_b.counter(team), now=now).usd_nano <= usd_b.limit.usd_nano
        assert ledger.usage(tokens_b.counter(""), now=now).tokens <= 40000
        assert ledger.usage(calls_b.counter(""), now=now).calls <= 30
        total = ledger.usage(total_b.counter(""), now=now)
        assert (total.usd_nano, total.calls, total.tokens) == (settled["nano"], settled["calls"], settled["tokens"])
        gov.close()
        ledger.close()

    run()
