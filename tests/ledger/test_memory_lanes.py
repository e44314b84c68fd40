"""The memory ledger's lane fast path (take_lane / reserve_lane / settle_lane) has the protocol's semantics:
the same operations through either path deny the same calls, report the same soft-threshold
fractions and leave every counter with the same usage -- though lanes hold allowances between calls."""

from __future__ import annotations

import random

import pytest

from governor.ledger.base import Amount, Counter, Limit
import governor.ledger.memory as memory_module
import governor.ledger.memory_lanes as lanes_module
from governor.ledger.memory import MemoryLedger
from governor.ledger.memory_lanes import GRANTED, UNLIMITED
from governor.ledger.windows import NO_WINDOW, Window

COUNTERS = (
    Counter("run|run=r", "run", Limit(usd_nano=40_000, calls=30), NO_WINDOW),
    Counter("day|user=u", "day", Limit(usd_nano=25_000), Window("calendar", unit="day", tz="Europe/Berlin")),
    Counter("month|team=t", "month", Limit(usd_nano=60_000), Window("calendar", unit="month", tz="America/New_York")),
    Counter("hour|global", "hour", Limit(usd_nano=20_000, tokens=9_000), Window("rolling", seconds=3600.0)),
)
OTHER_RUN = (Counter("run|run=q", "run", Limit(usd_nano=40_000, calls=30), NO_WINDOW),) + COUNTERS[1:]
AUDIT = Counter("audit|global", "audit", Limit(usd_nano=1), Window("rolling", seconds=600.0))


def limits(counters: tuple[Counter, ...]) -> tuple[tuple[int, int, int], ...]:
    return tuple(tuple(UNLIMITED if x is None else x for x in (c.limit.usd_nano, c.limit.tokens, c.limit.calls)) for c in counters)


SOFT = ((1, 0.6), (3, 0.8))  # soft thresholds on the day and hour counters


def fraction(a: Amount, lim: Limit) -> float:
    return lim.fraction(a)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("usage_every", [1, 25])
def test_lane_path_matches_the_protocol(seed: int, usage_every: int) -> None:
    """Two plans (two runs) share the user, team and global counters; settles come in any order,
    some after their lease, some for more than was reserved; time crosses DST, slot and day changes."""
    rng = random.Random(seed)
    fast, slow = MemoryLedger(), MemoryLedger()
    plans = [(cs, fast.lane(cs, limits(cs), SOFT, (AUDIT,))) for cs in (COUNTERS, OTHER_RUN)]
    now = 1_774_738_800.0 - 7200 + rng.randrange(3600)  # around a DST change in Europe/Berlin
    open_ids: list[tuple[str, float, int]] = []
    denials = soft_hits = 0
    for i in range(600):
        op = rng.random()
        p = rng.randrange(2)
        cs, lane = plans[p]
        if op < 0.5:
            rid = f"c{i}"
            usd, tokens = rng.randrange(0, 3000), rng.randrange(0, 900)
            if rng.random() < 0.7 and fast.take_lane(rid, lane, usd, tokens, now, 300):  # the governor's first try
                denied, metric, hits = GRANTED, None, ()  # no soft threshold can be reached: the protocol must agree
            else:
                denied, metric, hits = fast.reserve_lane(rid, lane, usd, tokens, 1, now=now, lease_s=300)
            res = slow.reserve(rid, cs, Amount(usd, tokens, 1), now=now, lease_s=300)
            assert (denied == GRANTED) == res.ok
            if res.ok:
                want = tuple((j, fraction(res.used_after[j], cs[j].limit)) for j, at in SOFT
                             if fraction(res.used_after[j], cs[j].limit) >= at)
                assert hits == want
                soft_hits += bool(hits)
                open_ids.append((rid, now, p))
            else:
                assert cs[denied] == res.denied and metric == res.denied_metric
                denials += 1
        elif op < 0.8 and open_ids:
            rid, at, p = open_ids.pop(rng.randrange(len(open_ids)))  # settles in any order, some after their lease
            cs, lane = plans[p]
            usd, tokens = rng.randrange(0, 4000), rng.randrange(0, 1200)  # sometimes more than reserved
            assert fast.settle_lane(rid, lane, usd, tokens, 1, now=now, reserved_at=at) == \
                slow.settle(rid, cs + (AUDIT,), Amount(usd, tokens, 1), now=now, reserved_at=at)
        elif op < 0.85 and open_ids:
            rid, _, _ = open_ids.pop()
            assert fast.release(rid, now=now) == slow.release(rid, now=now)
        else:
            now += rng.choice((1.0, 59.0, 240.0, 1900.0, 86400.0 / 3))
        if i % usage_every == 0:
            for c in COUNTERS + OTHER_RUN[:1] + (AUDIT,):
                assert fast.usage(c, now=now) == slow.usage(c, now=now)
    for c in COUNTERS + OTHER_RUN[:1] + (AUDIT,):
        assert fast.usage(c, now=now) == slow.usage(c, now=now)
    assert denials and soft_hits  # the limits and the thresholds were reached


def test_take_lane_only_takes_the_usual_case() -> None:
    """take_lane grants from the allowance while nothing has changed since the soft thresholds last
    passed their upper-bound test; it does nothing (False) when a cell changed, the allowance is
    short, or the soft threshold is within reach -- reserve_lane then decides, with exact figures."""
    led = MemoryLedger()
    day = Counter("day|user=u", "day", Limit(usd_nano=100_000), Window("calendar", unit="day", tz="UTC"))
    runs = [Counter(f"run|run={r}", "run", Limit(), NO_WINDOW) for r in "mo"]
    mine = led.lane((runs[0], day), limits((runs[0], day)), ((1, 0.5),))
    other = led.lane((runs[1], day), limits((runs[1], day)), ((1, 0.5),))
    now = 1_700_000_000.0
    assert not led.take_lane("a0", mine, 100, 10, now, 60)  # no allowance yet
    assert led.reserve_lane("a1", mine, 100, 10, 1, now=now, lease_s=60) == (GRANTED, None, ())
    assert led.take_lane("a2", mine, 100, 10, now, 60)
    assert led.reserve_lane("b1", other, 100, 10, 1, now=now, lease_s=60)[0] == GRANTED  # a grant changes `day`
    assert not led.take_lane("a3", mine, 100, 10, now, 60)
    assert led.reserve_lane("a3", mine, 100, 10, 1, now=now, lease_s=60) == (GRANTED, None, ())
    assert led.take_lane("a4", mine, 100, 10, now, 60)
    assert led.usage(day, now=now) == Amount(500, 50, 5)  # what was taken is reserved, exactly
    led.settle_lane("a4", mine, 60_000, 10, 1, now, now)  # spend far above the reservation: past the threshold
    assert not led.take_lane("a5", mine, 100, 10, now, 60)
    denied, _, hits = led.reserve_lane("a5", mine, 100, 10, 1, now=now, lease_s=60)
    assert denied == GRANTED and [i for i, _ in hits] == [1]


def test_an_allowance_never_denies_what_the_protocol_grants() -> None:
    """Lane A takes an allowance on a shared counter; lane B's call that fits only once A's
    allowance is given back is granted, and the shared counter ends exact."""
    led = MemoryLedger()
    shared = Counter("org|global", "org", Limit(usd_nano=1_000), NO_WINDOW)
    a = led.lane((Counter("run|run=a", "run", Limit(), NO_WINDOW), shared), limits((COUNTERS[0], shared)))
    b = led.lane((Counter("run|run=b", "run", Limit(), NO_WINDOW), shared), limits((COUNTERS[0], shared)))
    assert led.reserve_lane("a1", a, 100, 0, 1, now=10.0, lease_s=60)[0] == GRANTED
    assert led.usage(shared, now=10.0) == Amount(100, 0, 1)  # exact, not the allowance
    assert led.reserve_lane("a2", a, 100, 0, 1, now=10.0, lease_s=60)[0] == GRANTED  # from A's allowance
    assert led.reserve_lane("b1", b, 800, 0, 1, now=10.0, lease_s=60)[0] == GRANTED  # 100 + 100 + 800 fits
    assert led.reserve_lane("b2", b, 1, 0, 1, now=10.0, lease_s=60)[:2] == (1, "usd")  # the shared counter is full
    assert led.settle_lane("a1", a, 40, 0, 1, now=11.0, reserved_at=10.0)
    assert led.usage(shared, now=11.0) == Amount(940, 0, 3)


def test_settle_of_a_decision_is_idempotent_on_lanes() -> None:
    led = MemoryLedger()
    lane = led.lane(COUNTERS, limits(COUNTERS))
    assert led.reserve_lane("a", lane, 100, 10, 1, now=1000.0, lease_s=60)[0] == GRANTED
    assert led.settle_lane("a", lane, 70, 7, 1, now=1001.0, reserved_at=1000.0)
    assert not led.settle_lane("a", lane, 70, 7, 1, now=1002.0, reserved_at=1000.0)
    assert led.usage(COUNTERS[0], now=1003.0) == Amount(70, 7, 1)


def test_settled_ids_are_bounded_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """A busy process settles millions of calls a day: the ids kept for idempotency stop at
    MAX_SETTLED_IDS, the oldest forgotten first; the recent ones still refuse a second settle."""
    monkeypatch.setattr(memory_module, "MAX_SETTLED_IDS", 64)
    led = MemoryLedger()
    counter = Counter("run|run=big", "run", Limit(usd_nano=10**9), NO_WINDOW)
    lane = led.lane((counter,), limits((counter,)))
    for i in range(200):
        rid = f"d{i}"
        assert led.reserve_lane(rid, lane, 10, 1, 1, now=1000.0 + i, lease_s=60)[0] == GRANTED
        assert led.settle_lane(rid, lane, 10, 1, 1, now=1000.0 + i, reserved_at=1000.0 + i)
    assert len(led._settled_ids) <= 64
    assert not led.settle_lane("d199", lane, 10, 1, 1, now=1300.0, reserved_at=1199.0)  # recent: still known
    assert not led.settle("d190", [counter], Amount(10, 1, 1), now=1300.0, reserved_at=1190.0)  # the protocol path too
    assert "d0" not in led._settled_ids  # the oldest went first
    assert led.usage(counter, now=1300.0) == Amount(2000, 200, 200)



def test_the_lease_expiry_heap_forgets_settled_calls_and_still_reclaims_live_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each reservation puts its lease end on a heap; settled ones are dropped when the heap
    outgrows the live reservations by EXPIRY_SLACK (else: one entry per call for a whole lease).
    A call never settled keeps its entry through every rebuild, and its lease still ends."""
    monkeypatch.setattr(memory_module, "EXPIRY_SLACK", 32)
    led = MemoryLedger()
    led._compact_at = 32
    counter = Counter("run|run=big", "run", Limit(usd_nano=10**9), NO_WINDOW)
    lane = led.lane((counter,), limits((counter,)))
    assert led.reserve_lane("forgotten", lane, 500, 1, 1, now=1000.0, lease_s=60)[0] == GRANTED  # never settled
    assert led.reserve("protocol", [counter], Amount(300, 1, 1), now=1000.0, lease_s=60).ok  # the other path
    for i in range(300):
        rid = f"d{i}"
        assert led.reserve_lane(rid, lane, 10, 1, 1, now=1000.0 + i / 10, lease_s=60)[0] == GRANTED
        assert led.settle_lane(rid, lane, 10, 1, 1, now=1000.0 + i / 10, reserved_at=1000.0 + i / 10)
    assert len(led._expiry) <= 2 + 2 * 32  # not one entry per call
    assert {rid for _, rid in led._expiry} >= {"forgotten", "protocol"}
    assert led.usage(counter, now=1059.0) == Amount(3000 + 800, 300 + 2, 300 + 2)  # both still held
    assert led.usage(counter, now=1061.0) == Amount(3000, 300, 300)  # their leases ended: reclaimed


def test_idle_counters_beyond_the_bound_are_forgotten_and_lanes_find_their_cells_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One counter per run, for ever more runs: the ledger keeps at most MAX_CELLS of them (once
    their lanes, beyond MAX_LANES, gave their allowances back),
    forgetting idle ones (least recently spent first). A counter in use -- the global one, or
    one with a call in flight -- is never forgotten, and a lane whose cell was forgotten
    charges the cell the ledger has now, so lane and protocol never see two cells for one key."""
    monkeypatch.setattr(memory_module, "MAX_CELLS", 32)
    monkeypatch.setattr(lanes_module, "MAX_LANES", 8)  # beyond, the oldest lanes give their allowance back
    led = MemoryLedger()
    glob = Counter("g|global", "g", Limit(usd_nano=10**12), NO_WINDOW)
    first = Counter("run|run=0", "run", Limit(usd_nano=10**12), NO_WINDOW)
    first_lane = led.lane((first, glob), limits((first, glob)))
    assert led.reserve_lane("held", first_lane, 5, 1, 1, now=1000.0, lease_s=600)[0] == GRANTED  # in flight throughout
    spent = 5
    lanes = {}
    for i in range(1, 300):
        run = Counter(f"run|run={i}", "run", Limit(usd_nano=10**12), NO_WINDOW)
        lane = lanes[i] = led.lane((run, glob), limits((run, glob)))
        for j in range(3):
            rid = f"{i}-{j}"
            assert led.reserve_lane(rid, lane, 10, 1, 1, now=1000.0 + i, lease_s=600)[0] == GRANTED
            assert led.settle_lane(rid, lane, 7, 1, 1, now=1000.0 + i, reserved_at=1000.0 + i)
            spent += 7
    assert len(led._cells) <= 33
    assert "run|run=1" not in led._cells  # an idle run's counter, long unused
    assert first.key in led._cells  # a call in flight keeps it
    assert led.settle_lane("held", first_lane, 5, 1, 1, now=1400.0, reserved_at=1000.0)
    # the first run's lane charges the live cells; the protocol path sees the same figures
    assert led.reserve_lane("again", first_lane, 10, 1, 1, now=1401.0, lease_s=600)[0] == GRANTED
    assert led.settle_lane("again", first_lane, 8, 1, 1, now=1401.0, reserved_at=1401.0)
    assert led.usage(first, now=1402.0) == Amount(13, 2, 2)
    assert led.usage(glob, now=1402.0) == Amount(spent + 8, 3 * 299 + 2, 3 * 299 + 2)
    # a forgotten run's counter starts again from zero, and its old lane charges the new cell
    old = Counter("run|run=1", "run", Limit(usd_nano=10**12), NO_WINDOW)
    assert led.usage(old, now=1402.0) == Amount(0, 0, 0)
    assert led.reserve_lane("late", lanes[1], 10, 1, 1, now=1403.0, lease_s=600)[0] == GRANTED
    assert led.settle_lane("late", lanes[1], 9, 1, 1, now=1403.0, reserved_at=1403.0)
    assert led.usage(old, now=1404.0) == Amount(9, 1, 1)
    assert led.reserve("proto", [old], Amount(1, 0, 0), now=1404.0, lease_s=600).used_after == (Amount(10, 1, 1),)


def test_counters_all_in_use_are_kept_and_not_rescanned_on_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the bound with every counter in flight, nothing can be forgotten: all are kept, and
    the ledger looks again only after another MAX_CELLS/16 new counters, not on every call."""
    monkeypatch.setattr(memory_module, "MAX_CELLS", 32)
    passes = []
    original = MemoryLedger._evict_cells
    monkeypatch.setattr(MemoryLedger, "_evict_cells", lambda self: (passes.append(len(self._cells)), original(self)))
    led = MemoryLedger()
    counters = [Counter(f"run|run={i}", "run", Limit(usd_nano=10**12), NO_WINDOW) for i in range(60)]
    for i, c in enumerate(counters):  # a call in flight on each: none is idle
        assert led.reserve(f"r{i}", [c], Amount(5, 1, 1), now=1000.0, lease_s=600).ok
    assert len(led._cells) == 60
    assert passes == list(range(33, 58, 3))  # after a pass that forgot too little: 32 // 16 more counters first
    for i, c in enumerate(counters):  # settled: now idle; a later pass forgets down to 30
        assert led.settle(f"r{i}", [c], Amount(5, 1, 1), now=1001.0, reserved_at=1000.0)
    for i in range(6):  # the first settle looked (all in flight still): the next look is 2 counters later
        new = Counter(f"run|run=new{i}", "run", Limit(usd_nano=10**12), NO_WINDOW)
        assert led.reserve(f"n{i}", [new], Amount(1, 0, 0), now=1002.0, lease_s=600).ok
    assert len(led._cells) <= 33 and "run|run=new5" in led._cells


def test_a_spend_counts_in_the_window_slot_it_was_reserved_in() -> None:
    """A call reserved before a rolling bucket / calendar day ends and settled after it."""
    led, ref = MemoryLedger(), MemoryLedger()
    lane = led.lane(COUNTERS, limits(COUNTERS))
    day_end = 1_774_738_800.0 + 22 * 3600 - 1  # just before midnight in Berlin
    for led_, op in ((led, "lane"), (ref, "protocol")):
        for k, t in enumerate((day_end - 30, day_end - 1)):
            if op == "lane":
                assert led_.reserve_lane(f"r{k}", lane, 500, 50, 1, now=t, lease_s=600)[0] == GRANTED
            else:
                assert led_.reserve(f"r{k}", COUNTERS, Amount(500, 50, 1), now=t, lease_s=600).ok
        for k, t in enumerate((day_end - 30, day_end - 1)):
            if op == "lane":
                led_.settle_lane(f"r{k}", lane, 300, 30, 1, now=day_end + 120, reserved_at=t)
            else:
                led_.settle(f"r{k}", COUNTERS, Amount(300, 30, 1), now=day_end + 120, reserved_at=t)
    for c in COUNTERS:
        for t in (day_end - 0.5, day_end + 121, day_end + 4000):
            assert led.usage(c, now=t) == ref.usage(c, now=t)


def test_fractional_rolling_buckets_keep_every_spend_in_its_bucket() -> None:
    """A 90 s rolling window has 1.5 s buckets: epochs computed in floats must never straddle two."""
    window = Window("rolling", seconds=90.0)
    c = Counter("short|global", "short", Limit(usd_nano=10**9), window)
    led, ref = MemoryLedger(), MemoryLedger()
    lane = led.lane((c,), limits((c,)))
    now = 1_000_000.0
    for k in range(400):
        now += 0.37 + (k % 7) * 0.11
        assert led.reserve_lane(f"r{k}", lane, 10, 1, 1, now=now, lease_s=60)[0] == GRANTED
        assert ref.reserve(f"r{k}", (c,), Amount(10, 1, 1), now=now, lease_s=60).ok
        led.settle_lane(f"r{k}", lane, 7, 1, 1, now=now, reserved_at=now)
        ref.settle(f"r{k}", (c,), Amount(7, 1, 1), now=now, reserved_at=now)
        if k % 37 == 0:
            assert led.usage(c, now=now) == ref.usage(c, now=now)
    for t in (now, now + 45.0, now + 89.0, now + 200.0):
        assert led.usage(c, now=t) == ref.usage(c, now=t)


def test_lanes_beyond_the_bound_give_their_allowance_back() -> None:
    """At most MAX_LANES lanes hold an allowance: the oldest gives its back, and totals stay exact."""
    from governor.ledger.memory_lanes import MAX_LANES

    led = MemoryLedger()
    org = Counter("org|global", "org", Limit(usd_nano=10**12), NO_WINDOW)
    runs = [Counter(f"run|run={i}", "run", Limit(usd_nano=10**9), NO_WINDOW) for i in range(MAX_LANES + 10)]
    for i, run in enumerate(runs):
        lane = led.lane((run, org), limits((run, org)))
        assert led.reserve_lane(f"r{i}", lane, 100, 0, 1, now=5.0, lease_s=60)[0] == GRANTED
        assert led.settle_lane(f"r{i}", lane, 60, 0, 1, now=5.0, reserved_at=5.0)
    assert len(led._lanes) == MAX_LANES
    assert led.usage(org, now=6.0) == Amount(60 * len(runs), 0, len(runs))
    assert led.usage(runs[0], now=6.0) == Amount(60, 0, 1) and led.usage(runs[-1], now=6.0) == Amount(60, 0, 1)


def test_idle_lanes_do_not_keep_a_shared_counters_headroom() -> None:
    """Runs that ended hold allowances on the org counter; a new run's lane takes back the
    longest-held ones rather than living on one-call allowances (a grant per call)."""
    led = MemoryLedger()
    org = Counter("org|global", "org", Limit(usd_nano=100_000), NO_WINDOW)
    for i in range(40):  # 40 runs of one call each: their lanes keep what is left of their allowance
        run = Counter(f"run|run={i}", "run", Limit(), NO_WINDOW)
        lane = led.lane((run, org), limits((run, org)))
        assert led.reserve_lane(f"r{i}", lane, 100, 0, 1, now=1.0, lease_s=60)[0] == GRANTED
        led.settle_lane(f"r{i}", lane, 100, 0, 1, now=1.0, reserved_at=1.0)
    run = Counter("run|run=new", "run", Limit(), NO_WINDOW)
    lane = led.lane((run, org), limits((run, org)))
    assert led.reserve_lane("n0", lane, 100, 0, 1, now=2.0, lease_s=60)[0] == GRANTED
    assert lane.au >= 8 * 100  # an allowance for several more calls, not just this one
    assert led.usage(org, now=2.0) == Amount(4_100, 0, 41)
