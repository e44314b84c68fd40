"""Redis going away mid-run: operations fail fast with LedgerError, service resumes
by itself when Redis is back, and totals stay exact."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from ledger_workers import SLOW_BOX
from redis_proc import RedisServer

from governor.errors import LedgerError
from governor.ledger.base import Amount, Counter, Limit
from governor.ledger.redis import RedisLedger
from governor.ledger.windows import NO_WINDOW

TEAM = Counter("team-usd|team=a", "team-usd", Limit(usd_nano=10**15, calls=10**6), NO_WINDOW)


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of its own (this test stops it), with the append-only file on."""
    server = RedisServer(tmp_path / "redis", persist=True).start()
    yield server
    server.stop()


def call(ledger: RedisLedger, rid: str, actual: int, pending: dict[str, int]) -> None:
    """One governed call; a settle that failed is kept to retry, as a caller must."""
    now = time.time()
    if ledger.reserve(rid, [TEAM], Amount(actual * 2, 0, 1), now=now, lease_s=60).ok:
        pending[rid] = actual
        ledger.settle(rid, [TEAM], Amount(actual, 0, 1), now=now, reserved_at=now)
        del pending[rid]


def test_stop_and_restart_on_the_same_port(durable_redis: RedisServer) -> None:
    ledger = RedisLedger(durable_redis.url, key_prefix="outage", **SLOW_BOX)  # refused connections fail at once
    pending: dict[str, int] = {}
    for i in range(50):
        call(ledger, f"before-{i}", 1000 + i, pending)
    # a reservation taken before the outage, settled after it
    t = time.time()
    assert ledger.reserve("across", [TEAM], Amount(10**6, 0, 1), now=t, lease_s=60).ok

    durable_redis.stop()
    for op in (
        lambda: ledger.reserve("down", [TEAM], Amount(1), now=time.time(), lease_s=60),
        lambda: ledger.settle("across", [TEAM], Amount(777, 0, 1), now=time.time(), reserved_at=t),
        lambda: ledger.release("across", now=time.time()),
        lambda: ledger.usage(TEAM, now=time.time()),
    ):
        with pytest.raises(LedgerError, match=r"redis ledger redis://127\.0\.0\.1:\d+/0 unavailable"):
            op()

    durable_redis.start()  # same port, same data directory; the script cache is empty now
    for i in range(50):
        call(ledger, f"after-{i}", 2000 + i, pending)
    assert ledger.settle("across", [TEAM], Amount(777, 0, 1), now=time.time(), reserved_at=t)
    # the restarted server had no scripts: each was sent once in full (EVAL), then by SHA
    stats = redis.Redis.from_url(durable_redis.url).info("commandstats")
    assert stats["cmdstat_eval"]["calls"] == 2 and stats["cmdstat_evalsha"]["calls"] > 100
    expected = sum(1000 + i for i in range(50)) + sum(2000 + i for i in range(50)) + 777
    assert ledger.usage(TEAM, now=time.time()) == Amount(expected, 0, 101)
    ledger.close()


def test_calls_running_through_an_outage_keep_exact_totals(durable_redis: RedisServer) -> None:
    ledger = RedisLedger(durable_redis.url, key_prefix="busy", **SLOW_BOX)
    pending: dict[str, int] = {}
    settled_ok: dict[str, int] = {}
    errors: list[str] = []
    stop = threading.Event()

    def run() -> None:
        i = 0
        while not stop.is_set():
            rid = f"c{i}"
            try:
                call(ledger, rid, 100 + i % 50, pending)
                settled_ok[rid] = 100 + i % 50
            except LedgerError as exc:
                errors.append(str(exc))
                time.sleep(0.01)
            i += 1

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(0.3)
    durable_redis.stop()
    time.sleep(0.5)
    durable_redis.start()
    time.sleep(0.3)
    stop.set()
    worker.join(10)
    assert errors and all("unavailable" in e for e in errors)
    # settles that failed during the outage are retried now (idempotent: a settle that
    # did reach Redis before the connection dropped returns False and counts once)
    for rid, actual in list(pending.items()):
        ledger.settle(rid, [TEAM], Amount(actual, 0, 1), now=time.time(), reserved_at=time.time())
        settled_ok[rid] = actual
    # a reserve whose reply was lost as Redis went down holds its reservation until
    # its lease ends; after the lease only settled spend remains, and it is exact
    used = ledger.usage(TEAM, now=time.time() + 61)
    assert used == Amount(sum(settled_ok.values()), 0, len(settled_ok))
    assert len(settled_ok) > 50
    ledger.close()


def test_unresponsive_redis_times_out_and_a_late_settle_counts_once(durable_redis: RedisServer) -> None:
    ledger = RedisLedger(durable_redis.url, key_prefix="paused", socket_timeout_s=0.5)
    t = time.time()
    assert ledger.reserve("r1", [TEAM], Amount(5000, 0, 1), now=t, lease_s=60).ok
    durable_redis.pause()  # SIGSTOP: the port accepts, nothing answers
    try:
        with pytest.raises(LedgerError, match="unavailable: TimeoutError"):
            ledger.settle("r1", [TEAM], Amount(4000, 0, 1), now=t, reserved_at=t)
    finally:
        durable_redis.resume()
    # the timed-out settle may still run once Redis wakes up; the retry must not double count
    ledger.settle("r1", [TEAM], Amount(4000, 0, 1), now=t, reserved_at=t)
    assert ledger.settle("r1", [TEAM], Amount(4000, 0, 1), now=t, reserved_at=t) is False
    assert ledger.usage(TEAM, now=time.time()) == Amount(4000, 0, 1)
    ledger.close()
