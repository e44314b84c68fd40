"""Redis Cluster: each budget in one slot, calls spanning budgets on different nodes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ledger_workers import SLOW_BOX, unique_prefix
from redis_proc import RedisClusterNodes

from governor.errors import LedgerError
from governor.ledger.base import ZERO, Amount, Counter, Limit
from governor.ledger.redis import RedisLedger
from governor.ledger.windows import NO_WINDOW

T0 = 1_790_000_000.0


def _budgets_on_distinct_nodes(ledger: RedisLedger, n: int) -> list[Counter]:
    """Counters of ``n`` budgets whose hash tags map to ``n`` different cluster nodes."""
    assert ledger._clustered()
    picked: dict[str, Counter] = {}
    for i in range(200):
        c = Counter(f"b{i}|team=a", f"b{i}", Limit(usd_nano=1000), NO_WINDOW)
        node = ledger._client.get_node_from_key(ledger._base(c) + ":s").name
        picked.setdefault(node, c)
        if len(picked) == n:
            return list(picked.values())
    raise AssertionError("could not spread budgets over the nodes")


def test_cluster_is_detected_and_a_budget_keeps_its_keys_in_one_slot(redis_cluster: RedisClusterNodes) -> None:
    ledger = RedisLedger(redis_cluster.url, key_prefix=unique_prefix("cluster"), **SLOW_BOX)
    c = Counter("team-usd|team=a", "team-usd", Limit(usd_nano=1000), NO_WINDOW)
    assert ledger.reserve("r1", [c], Amount(10), now=T0, lease_s=30).ok
    assert ledger.cluster is True
    slots = {ledger._client.keyslot(k) for k in ledger._counter_keys([c]) + ledger._id_keys("r1", "team-usd")}
    assert len(slots) == 1
    ledger.close()


def test_denial_on_a_later_budget_releases_the_earlier_ones(redis_cluster: RedisClusterNodes) -> None:
    ledger = RedisLedger(redis_cluster.url, key_prefix=unique_prefix("cluster"), **SLOW_BOX)
    a, b, c = _budgets_on_distinct_nodes(ledger, 3)
    assert ledger.reserve("fill", [c], Amount(950), now=T0, lease_s=30).ok
    r = ledger.reserve("call", [a, b, c], Amount(100), now=T0, lease_s=30)
    assert not r.ok and r.denied == c and r.denied_metric == "usd"
    assert ledger.usage(a, now=T0) == ZERO and ledger.usage(b, now=T0) == ZERO  # compensated
    assert ledger.release("call", now=T0) is False

    assert ledger.reserve("ok", [a, b], Amount(600), now=T0, lease_s=30).ok
    assert ledger.release("ok", now=T0) is True  # found through the reservation's locator
    assert ledger.usage(a, now=T0) == ZERO and ledger.usage(b, now=T0) == ZERO
    assert ledger.reserve("ok2", [a, b, c], Amount(50), now=T0, lease_s=30).ok
    assert ledger.settle("ok2", [a, b, c], Amount(40), now=T0, reserved_at=T0)
    assert ledger.settle("ok2", [a, b, c], Amount(40), now=T0, reserved_at=T0) is False
    assert [ledger.usage(x, now=T0).usd_nano for x in (a, b, c)] == [40, 40, 990]
    ledger.close()


def test_a_node_down_fails_its_budgets_fast_and_recovers(tmp_path: Path) -> None:
    nodes = RedisClusterNodes(tmp_path / "cluster", persist=True).start()
    try:
        ledger = RedisLedger(nodes.url, key_prefix="node-down", **SLOW_BOX)
        a, b = _budgets_on_distinct_nodes(ledger, 2)
        now = time.time()
        assert ledger.reserve("r1", [a, b], Amount(10), now=now, lease_s=60).ok
        assert ledger.settle("r1", [a, b], Amount(7), now=now, reserved_at=now)
        port = ledger._client.get_node_from_key(ledger._base(b) + ":s").port
        victim = next(n for n in nodes.nodes if n.port == port)
        victim.stop()
        with pytest.raises(LedgerError, match="unavailable"):
            ledger.reserve("r2", [a, b], Amount(10), now=now, lease_s=60)
        assert ledger.usage(a, now=now) == Amount(7)  # the other nodes keep serving their budgets
        victim.start()  # same port, data and cluster config: it rejoins
        deadline = time.monotonic() + 20
        while True:
            try:
                assert ledger.reserve("r3", [a, b], Amount(10), now=now, lease_s=60).ok
                break
            except LedgerError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert ledger.settle("r3", [a, b], Amount(5), now=now, reserved_at=now)
        # r2 may have reserved on a before b failed; after its lease only settled spend is left
        later = now + 61
        assert ledger.usage(a, now=later) == ledger.usage(b, now=later) == Amount(12)
        ledger.close()
    finally:
        nodes.stop()
