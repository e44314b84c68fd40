"""The memory ledger's cell fast path (reserve_cells / settle_cells) has the protocol's semantics:
the same operations through either path leave every counter with the same usage, and deny the same calls."""

from __future__ import annotations

import random

import pytest

from governor.ledger.base import Amount, Counter, Limit
from governor.ledger.memory import MemoryLedger
from governor.ledger.memory_cells import GRANTED, UNLIMITED
from governor.ledger.windows import NO_WINDOW, Window

COUNTERS = (
    Counter("run|run=r", "run", Limit(usd_nano=40_000, calls=30), NO_WINDOW),
    Counter("day|user=u", "day", Limit(usd_nano=25_000), Window("calendar", unit="day", tz="Europe/Berlin")),
    Counter("month|team=t", "month", Limit(usd_nano=60_000), Window("calendar", unit="month", tz="America/New_York")),
    Counter("hour|global", "hour", Limit(usd_nano=20_000, tokens=9_000), Window("rolling", seconds=3600.0)),
)
LIMITS = tuple(tuple(UNLIMITED if x is None else x for x in (c.limit.usd_nano, c.limit.tokens, c.limit.calls)) for c in COUNTERS)


@pytest.mark.parametrize("seed", range(6))
def test_cell_path_matches_the_protocol(seed: int) -> None:
    rng = random.Random(seed)
    fast, slow = MemoryLedger(), MemoryLedger()
    cells = fast.cells(COUNTERS)
    now = 1_774_738_800.0 - 7200 + rng.randrange(3600)  # around a DST change in Europe/Berlin
    open_ids: list[tuple[str, float]] = []
    denials = 0
    for i in range(400):
        op = rng.random()
        if op < 0.5:
            rid = f"c{i}"
            usd, tokens = rng.randrange(0, 3000), rng.randrange(0, 900)
            denied, metric, after = fast.reserve_cells(rid, cells, LIMITS, usd, tokens, 1, now=now, lease_s=300, want=(1, 3))
            res = slow.reserve(rid, COUNTERS, Amount(usd, tokens, 1), now=now, lease_s=300)
            assert (denied == GRANTED) == res.ok
            if res.ok:
                assert after == tuple((a.usd_nano, a.tokens, a.calls) for a in (res.used_after[1], res.used_after[3]))
                open_ids.append((rid, now))
            else:
                assert COUNTERS[denied] == res.denied and metric == res.denied_metric
                denials += 1
        elif op < 0.8 and open_ids:
            rid, at = open_ids.pop(rng.randrange(len(open_ids)))  # settles in any order, some after their lease
            usd, tokens = rng.randrange(0, 3000), rng.randrange(0, 900)
            assert fast.settle_cells(rid, cells, usd, tokens, 1, now=now, reserved_at=at) == \
                slow.settle(rid, COUNTERS, Amount(usd, tokens, 1), now=now, reserved_at=at)
        elif op < 0.85 and open_ids:
            rid, _ = open_ids.pop()
            assert fast.release(rid, now=now) == slow.release(rid, now=now)
        else:
            now += rng.choice((1.0, 59.0, 240.0, 1900.0, 86400.0 / 3))
        for c in COUNTERS:
            assert fast.usage(c, now=now) == slow.usage(c, now=now)
    assert denials  # the limits were reached


def test_settle_of_a_decision_is_idempotent_on_cells() -> None:
    led = MemoryLedger()
    cells = led.cells(COUNTERS)
    assert led.reserve_cells("a", cells, LIMITS, 100, 10, 1, now=1000.0, lease_s=60)[0] == GRANTED
    assert led.settle_cells("a", cells, 70, 7, 1, now=1001.0, reserved_at=1000.0)
    assert not led.settle_cells("a", cells, 70, 7, 1, now=1002.0, reserved_at=1000.0)
    assert led.usage(COUNTERS[0], now=1003.0) == Amount(70, 7, 1)
