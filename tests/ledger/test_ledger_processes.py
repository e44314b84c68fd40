"""Many processes against one store: no overspend, exact totals, crashed workers."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import pytest
from ledger_workers import (
    LedgerSpec,
    charge_at,
    churn,
    hold,
    open_spec,
    run_workers,
    shared_counters,
    spend,
    unique_prefix,
)
from redis_proc import RedisClusterNodes, RedisServer

from governor.ledger.base import ZERO, Amount, Counter, Limit
from governor.ledger.windows import Window

SPAWN = mp.get_context("spawn")
WORKERS, CALLS = 8, 200
USD_LIMIT = 1_200_000_000  # 1.20 USD in nano-USD
CALL_LIMIT = 790
MAX_WORST = 5_000_000  # the largest reservation a worker makes


@pytest.fixture(params=["sqlite", "redis", "redis-cluster"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerSpec:
    if request.param == "sqlite":
        return ("sqlite", str(tmp_path / "ledger.db"), "")
    if request.param == "redis-cluster":
        nodes: RedisClusterNodes = request.getfixturevalue("redis_cluster")
        return ("redis", nodes.url, unique_prefix("procs"))
    server: RedisServer = request.getfixturevalue("redis_server")
    return ("redis", server.url, unique_prefix("procs"))


def test_8_processes_never_overspend_and_totals_are_exact(spec: LedgerSpec) -> None:
    barrier, out = SPAWN.Barrier(WORKERS), SPAWN.Queue()
    procs = [
        SPAWN.Process(target=spend, args=(spec, w, CALLS, USD_LIMIT, CALL_LIMIT, barrier, out)) for w in range(WORKERS)
    ]
    reports = run_workers(procs, out, timeout_s=90)
    settled = [s for r in reports for s in r["settled"]]
    denied: dict[str, int] = {}
    for r in reports:
        assert r["over"] == [], f"worker {r['worker']} saw a counter over its limit"
        for k, v in r["denied"].items():
            denied[k] = denied.get(k, 0) + v
    assert len({rid for rid, _ in settled}) == len(settled)

    ledger = open_spec(spec)
    team, calls = shared_counters(USD_LIMIT, CALL_LIMIT)
    now = time.time()
    spent, made = ledger.usage(team, now=now), ledger.usage(calls, now=now)
    ledger.close()
    # never over the limit, and the final spend is exactly the sum of settled calls
    assert spent.usd_nano == sum(actual for _, actual in settled) <= USD_LIMIT
    assert made.calls == len(settled) <= CALL_LIMIT
    # the budget was contended, and every denial was real (no false blocks):
    # a denial means settled + in flight (at most one reservation per worker) + this call > limit
    assert denied, "the limits were never reached; the test did not exercise contention"
    if "team-usd:usd" in denied:
        assert spent.usd_nano > USD_LIMIT - WORKERS * MAX_WORST
    if "calls-hourly:calls" in denied:
        assert made.calls > CALL_LIMIT - WORKERS


def test_kill_9_of_a_worker_holding_reservations_frees_budget_after_lease(spec: LedgerSpec) -> None:
    limit, lease = 1_000_000_000, 5.0
    out = SPAWN.Queue()
    worker = SPAWN.Process(target=hold, args=(spec, limit, 4, 200_000_000, lease, out))
    worker.start()
    reserved_at = out.get(timeout=30)
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(10)
    assert worker.exitcode == -signal.SIGKILL

    ledger = open_spec(spec)
    team, _ = shared_counters(limit, 10**6)
    during = reserved_at + lease - 0.01
    assert ledger.usage(team, now=during) == Amount(800_000_000)  # held by the dead worker until its lease ends
    assert not ledger.reserve("mine-early", [team], Amount(300_000_000), now=during, lease_s=lease).ok
    after = reserved_at + lease
    assert ledger.usage(team, now=after) == ZERO
    assert ledger.reserve("mine", [team], Amount(limit), now=after, lease_s=lease).ok  # the whole budget
    assert ledger.settle("mine", [team], Amount(limit), now=after, reserved_at=after)
    assert ledger.usage(team, now=after + 1) == Amount(limit)
    ledger.close()


def test_kill_9_mid_write_leaves_the_store_usable(spec: LedgerSpec) -> None:
    out = SPAWN.Queue()
    worker = SPAWN.Process(target=churn, args=(spec, 10**15, out))
    worker.start()
    assert out.get(timeout=30) == "started"
    time.sleep(0.3)  # let it run some hundreds of transactions
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(10)

    ledger = open_spec(spec)
    team, _ = shared_counters(10**15, 10**6)
    now = time.time()
    before = ledger.usage(team, now=now + 3).usd_nano  # after every lease of the dead worker
    assert before > 0 and before % 1000 == 0
    assert ledger.reserve("after-kill", [team], Amount(1000), now=now + 3, lease_s=2.0).ok
    assert ledger.settle("after-kill", [team], Amount(1000), now=now + 3, reserved_at=now + 3)
    assert ledger.usage(team, now=now + 3).usd_nano == before + 1000
    ledger.close()


def test_windows_roll_over_across_processes(spec: LedgerSpec) -> None:
    hourly = Counter("hourly|team=a", "hourly", Limit(usd_nano=1000), Window("rolling", 3600.0))
    t0 = 1_790_000_000.0 - (1_790_000_000.0 % 60)
    out = SPAWN.Queue()
    plan = [("a", 600, t0), ("b", 500, t0 + 1200), ("c", 500, t0 + 3600), ("d", 550, t0 + 3700)]
    seen = []
    for rid, amount, now in plan:  # each charge from a different process, at a simulated time
        p = SPAWN.Process(target=charge_at, args=(spec, hourly, rid, amount, now, out))
        p.start()
        seen.append(out.get(timeout=30))
        p.join(10)
    # b would make 1100 within the hour: denied; at t0+3600 a's slot left the window
    assert seen == [("a", True, 600), ("b", False, 600), ("c", True, 500), ("d", False, 500)]
    ledger = open_spec(spec)
    assert ledger.usage(hourly, now=t0 + 3600 + 3599).usd_nano == 500
    assert ledger.usage(hourly, now=t0 + 7200).usd_nano == 0
    ledger.close()
