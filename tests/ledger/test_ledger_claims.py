"""``claim`` / ``unclaim``: once-only markers shared by every handle on one store (alerts dedupe on them)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from governor.ledger.base import Ledger
from governor.ledger.windows import Window, window_period


def test_a_claim_is_granted_once_until_it_expires(ledger: Ledger) -> None:
    now = 1_000_000.0
    assert ledger.claim("alert|a|team=x|d1|0.8", now=now, until=now + 60) is True
    assert ledger.claim("alert|a|team=x|d1|0.8", now=now + 1, until=now + 60) is False
    assert ledger.claim("alert|a|team=x|d1|0.95", now=now + 1, until=now + 60) is True  # another key


def test_unclaim_gives_the_marker_back(ledger: Ledger) -> None:
    assert ledger.claim("k", now=10.0, until=1e12)
    ledger.unclaim("k")
    assert ledger.claim("k", now=11.0, until=1e12)
    ledger.unclaim("never-claimed")  # no error


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_an_expired_claim_can_be_taken_again(make_ledger: Callable[[str], Ledger], kind: str) -> None:
    ledger = make_ledger(kind)  # (Redis expires by its own clock: covered by its TTL, not a fake one)
    assert ledger.claim("k", now=100.0, until=160.0)
    assert not ledger.claim("k", now=159.0, until=220.0)
    assert ledger.claim("k", now=161.0, until=220.0)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_two_handles_and_many_threads_get_exactly_one_claim(make_ledger: Callable[[str], Ledger], kind: str) -> None:
    handles = [make_ledger(kind), make_ledger(kind)]
    wins: list[bool] = []
    lock = threading.Lock()

    def race(h: Ledger) -> None:
        got = h.claim("race-key", now=1000.0, until=1e12)
        with lock:
            wins.append(got)

    threads = [threading.Thread(target=race, args=(handles[i % 2],)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1 and len(wins) == 16


def test_window_periods() -> None:
    day = Window(kind="calendar", unit="day", tz="UTC")
    pid, end = window_period(day, 86400 * 3 + 5)
    assert pid == "d1970-01-04" and end == 86400 * 4
    month = Window(kind="calendar", unit="month", tz="UTC")
    assert window_period(month, 86400 * 40)[1] == 86400 * (31 + 28)
    rolling = Window(kind="rolling", seconds=3600.0)
    assert window_period(rolling, 7300.0) == ("p2", 10800.0)
    assert window_period(Window(), 5.0) == ("all", None)
