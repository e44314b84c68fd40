"""One semantics on every ledger: the same assertions run on memory, SQLite and Redis."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from governor.ledger.base import NANO, ZERO, Amount, Counter, Ledger, Limit, usd_to_nano
from governor.ledger.windows import NO_WINDOW, Window

T0 = 1_790_000_000.0  # an epoch second in 2026
LEASE = 30.0


def usd_counter(limit_usd: float, key: str = "team-usd|team=a", window: Window = NO_WINDOW) -> Counter:
    return Counter(key, key.split("|")[0], Limit(usd_nano=usd_to_nano(limit_usd)), window)


def usd(x: float, calls: int = 0, tokens: int = 0) -> Amount:
    return Amount(usd_to_nano(x), tokens, calls)


def test_reserve_within_limit_counts_in_flight(ledger: Ledger) -> None:
    c = usd_counter(1.0)
    r = ledger.reserve("r1", [c], usd(0.4, calls=1), now=T0, lease_s=LEASE)
    assert r.ok and r.denied is None
    assert r.used_after == (usd(0.4, calls=1),)
    assert ledger.usage(c, now=T0) == usd(0.4, calls=1)


def test_reserve_denial_names_counter_and_metric(ledger: Ledger) -> None:
    c = usd_counter(1.0)
    assert ledger.reserve("r1", [c], usd(0.7), now=T0, lease_s=LEASE).ok
    r = ledger.reserve("r2", [c], usd(0.31), now=T0, lease_s=LEASE)
    assert not r.ok and r.denied == c and r.denied_metric == "usd" and r.used_after == ()
    assert ledger.reserve("r3", [c], usd(0.3), now=T0, lease_s=LEASE).ok  # exactly at the limit is allowed
    assert ledger.usage(c, now=T0) == usd(1.0)


@pytest.mark.parametrize(
    ("limit", "metric"),
    [
        (Limit(usd_nano=10, tokens=1000, calls=5), "usd"),
        (Limit(usd_nano=10**6, tokens=100, calls=5), "tokens"),
        (Limit(calls=0), "calls"),
    ],
)
def test_denied_metric(ledger: Ledger, limit: Limit, metric: str) -> None:
    c = Counter("b|x", "b", limit, NO_WINDOW)
    r = ledger.reserve("r", [c], Amount(11, 101, 1), now=T0, lease_s=LEASE)
    assert (r.ok, r.denied_metric) == (False, metric)


def test_reserve_is_all_or_nothing_across_counters(ledger: Ledger) -> None:
    team, user = usd_counter(10.0, "team|team=a"), usd_counter(1.0, "user|user=u")
    calls = Counter("calls|global", "calls", Limit(calls=100), NO_WINDOW)
    r = ledger.reserve("r1", [team, calls, user], usd(1.5, calls=1), now=T0, lease_s=LEASE)
    assert not r.ok and r.denied == user
    for c in (team, calls, user):
        assert ledger.usage(c, now=T0) == ZERO  # the counters before the denying one are untouched
    assert ledger.release("r1", now=T0) is False  # nothing was reserved


def test_settle_turns_reservation_into_actual_spend_once(ledger: Ledger) -> None:
    team, calls = usd_counter(1.0), Counter("calls|global", "calls", Limit(calls=10), NO_WINDOW)
    assert ledger.reserve("r1", [team, calls], usd(0.5, calls=1), now=T0, lease_s=LEASE).ok
    assert ledger.settle("r1", [team, calls], usd(0.123456789, calls=1), now=T0 + 1, reserved_at=T0) is True
    assert ledger.usage(team, now=T0 + 1) == usd(0.123456789, calls=1)
    # a retried record never double counts
    assert ledger.settle("r1", [team, calls], usd(0.123456789, calls=1), now=T0 + 2, reserved_at=T0) is False
    assert ledger.usage(team, now=T0 + 2) == usd(0.123456789, calls=1)
    assert ledger.usage(calls, now=T0 + 2) == usd(0.123456789, calls=1)
    assert ledger.release("r1", now=T0 + 2) is False  # settled: nothing left to release


def test_settle_may_exceed_reservation_and_counts_actual(ledger: Ledger) -> None:
    c = usd_counter(1.0)
    assert ledger.reserve("r1", [c], usd(0.1), now=T0, lease_s=LEASE).ok
    assert ledger.settle("r1", [c], usd(0.25), now=T0, reserved_at=T0)
    assert ledger.usage(c, now=T0) == usd(0.25)


def test_reserve_is_idempotent_by_id(ledger: Ledger) -> None:
    c = usd_counter(1.0)
    first = ledger.reserve("r1", [c], usd(0.6), now=T0, lease_s=LEASE)
    again = ledger.reserve("r1", [c], usd(0.6), now=T0, lease_s=LEASE)
    assert first.ok and again.ok and again.used_after == (usd(0.6),)
    assert ledger.usage(c, now=T0) == usd(0.6)
    assert ledger.settle("r1", [c], usd(0.5), now=T0, reserved_at=T0)
    assert ledger.reserve("r1", [c], usd(0.6), now=T0, lease_s=LEASE).ok  # a settled id is not charged again
    assert ledger.usage(c, now=T0) == usd(0.5)


def test_release_frees_the_reservation_and_is_idempotent(ledger: Ledger) -> None:
    c = usd_counter(1.0)
    assert ledger.reserve("r1", [c], usd(0.9), now=T0, lease_s=LEASE).ok
    assert not ledger.reserve("r2", [c], usd(0.2), now=T0, lease_s=LEASE).ok
    assert ledger.release("r1", now=T0) is True
    assert ledger.release("r1", now=T0) is False
    assert ledger.usage(c, now=T0) == ZERO
    assert ledger.reserve("r2", [c], usd(1.0), now=T0, lease_s=LEASE).ok


def test_lease_expiry_reclaims_and_late_settle_still_counts(ledger: Ledger) -> None:
    c = usd_counter(1.0)
    assert ledger.reserve("r1", [c], usd(0.8), now=T0, lease_s=LEASE).ok
    assert ledger.usage(c, now=T0 + LEASE - 0.001) == usd(0.8)
    assert not ledger.reserve("r2", [c], usd(0.5), now=T0 + LEASE - 0.001, lease_s=LEASE).ok
    # at expires_at the reservation is gone: no leaked counter, no false block
    assert ledger.usage(c, now=T0 + LEASE) == ZERO
    assert ledger.reserve("r2", [c], usd(0.5), now=T0 + LEASE, lease_s=LEASE).ok
    # the first call finished after its lease: its money was spent, so it counts
    assert ledger.settle("r1", [c], usd(0.3), now=T0 + LEASE + 1, reserved_at=T0)
    assert ledger.usage(c, now=T0 + LEASE + 1) == usd(0.8)
    assert ledger.release("r1", now=T0 + LEASE + 1) is False


def test_settle_without_reservation_counts(ledger: Ledger) -> None:
    c = usd_counter(1.0)
    assert ledger.settle("never-reserved", [c], usd(0.2), now=T0, reserved_at=T0)
    assert ledger.usage(c, now=T0) == usd(0.2)


def test_large_amounts_add_exactly(ledger: Ledger) -> None:
    big = 2_000_000 * NANO + 123_456_789  # two million USD and change, in nano-USD
    c = Counter("g|all", "g", Limit(usd_nano=10 * big), NO_WINDOW)
    for i in range(3):
        assert ledger.reserve(f"r{i}", [c], Amount(big), now=T0, lease_s=LEASE).ok
        assert ledger.settle(f"r{i}", [c], Amount(big - i), now=T0, reserved_at=T0)
    assert ledger.usage(c, now=T0).usd_nano == 3 * big - 3


def test_rolling_window_slides(ledger: Ledger) -> None:
    hour = Window("rolling", 3600.0)
    c = usd_counter(1.0, "hourly|team=a", hour)
    start = (T0 // 60) * 60  # the start of a one-minute slot
    assert ledger.reserve("a", [c], usd(0.6), now=start, lease_s=LEASE).ok
    assert ledger.settle("a", [c], usd(0.6), now=start + 1, reserved_at=start)
    assert ledger.reserve("b", [c], usd(0.3), now=start + 1800, lease_s=LEASE).ok
    assert ledger.settle("b", [c], usd(0.3), now=start + 1801, reserved_at=start + 1800)
    assert not ledger.reserve("c", [c], usd(0.2), now=start + 3599, lease_s=LEASE).ok
    assert ledger.usage(c, now=start + 3599) == usd(0.9)
    # an hour after the first charge its slot has left the window; the second stays
    assert ledger.usage(c, now=start + 3600) == usd(0.3)
    assert ledger.reserve("c", [c], usd(0.7), now=start + 3600, lease_s=LEASE).ok
    assert ledger.usage(c, now=start + 3600 + LEASE) == usd(0.3)  # "c" was never settled: its lease ended
    assert ledger.usage(c, now=start + 5400) == ZERO


def _berlin(*args: int) -> float:
    return datetime(*args, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()


def test_calendar_day_resets_at_local_midnight(ledger: Ledger) -> None:
    day = Window("calendar", unit="day", tz="Europe/Berlin")
    c = usd_counter(1.0, "daily|team=a", day)
    evening = _berlin(2026, 11, 22, 23, 30)
    assert ledger.reserve("a", [c], usd(0.9), now=evening, lease_s=LEASE).ok
    assert ledger.settle("a", [c], usd(0.9), now=evening + 5, reserved_at=evening)
    assert not ledger.reserve("b", [c], usd(0.2), now=_berlin(2026, 11, 22, 23, 59, 59), lease_s=LEASE).ok
    # 23:00 UTC is midnight in Berlin: a new day, a fresh budget
    midnight = _berlin(2026, 11, 23, 0, 0)
    assert ledger.usage(c, now=midnight) == ZERO
    assert ledger.reserve("b", [c], usd(0.2), now=midnight, lease_s=LEASE).ok
    # a call reserved before midnight and settled after counts for the day it started
    assert ledger.settle("late", [c], usd(0.05), now=midnight + 10, reserved_at=midnight - 10)
    assert ledger.usage(c, now=midnight + 10) == usd(0.2)


def test_calendar_month_rolls_over(ledger: Ledger) -> None:
    month = Window("calendar", unit="month", tz="UTC")
    c = usd_counter(5.0, "monthly|team=a", month)
    nov = datetime(2026, 11, 30, 23, 59, tzinfo=ZoneInfo("UTC")).timestamp()
    assert ledger.settle("a", [c], usd(4.0), now=nov, reserved_at=nov)
    assert not ledger.reserve("b", [c], usd(1.5), now=nov + 30, lease_s=LEASE).ok
    assert ledger.reserve("b", [c], usd(1.5), now=nov + 60, lease_s=LEASE).ok  # December 1st
    assert ledger.usage(c, now=nov + 60) == usd(1.5)


def test_two_handles_share_one_store(make_ledger, request: pytest.FixtureRequest) -> None:  # type: ignore[no-untyped-def]
    for kind in ("sqlite", "redis", "redis-cluster"):
        a, b = make_ledger(kind), make_ledger(kind)
        c = usd_counter(1.0, f"shared-{kind}|x")
        assert a.reserve("r1", [c], usd(0.6), now=T0, lease_s=LEASE).ok
        assert not b.reserve("r2", [c], usd(0.6), now=T0, lease_s=LEASE).ok, kind
        assert b.settle("r1", [c], usd(0.5), now=T0, reserved_at=T0)  # settled by another process
        assert a.settle("r1", [c], usd(0.5), now=T0, reserved_at=T0) is False
        assert a.usage(c, now=T0) == b.usage(c, now=T0) == usd(0.5)


def test_threads_sharing_one_ledger_object(ledger: Ledger) -> None:
    import threading

    c = Counter("g|all", "g", Limit(usd_nano=250, calls=10**6), NO_WINDOW)
    results: list[bool] = []
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            calls(t)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    def calls(t: int) -> None:
        for i in range(40):
            rid = f"t{t}-{i}"
            ok = ledger.reserve(rid, [c], Amount(2, 0, 1), now=T0, lease_s=LEASE).ok
            if ok:
                assert ledger.settle(rid, [c], Amount(1, 0, 1), now=T0, reserved_at=T0)
            results.append(ok)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(results) == 320 and 234 < sum(results) <= 250  # denied only near the limit
    assert ledger.usage(c, now=T0) == Amount(sum(results), 0, sum(results))
