"""Worker processes for the multi-process ledger tests (started with ``spawn``).

They live in a module of their own so a spawned child can import them.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from typing import Any

from governor.ledger.base import Amount, Counter, Ledger, Limit
from governor.ledger.windows import NO_WINDOW, Window

LedgerSpec = tuple[str, str, str]  # (kind, path-or-url, key prefix)
_prefixes = itertools.count()
# Tests that are not about timeouts allow a loaded CI box a slow answer; the
# outage tests use the short production timeouts.
SLOW_BOX = {"socket_timeout_s": 2.0, "connect_timeout_s": 2.0}


def run_workers(procs: list[Any], out: Any, timeout_s: float) -> list[Any]:
    """Start ``procs``, collect one report from each, and wait for them to exit 0.

    Whatever happens, no worker outlives the test: a worker that died before the
    barrier leaves the others waiting on it for good, and a live child process keeps
    pytest from exiting, so CI would hang instead of failing.
    """
    try:
        for p in procs:
            p.start()
        reports = [out.get(timeout=timeout_s) for _ in procs]
        for p in procs:
            p.join(10)
        assert [p.exitcode for p in procs] == [0] * len(procs)
        return reports
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)


def unique_prefix(name: str) -> str:
    """A key prefix no other test uses, so tests share one Redis without flushing it."""
    return f"t{os.getpid()}-{next(_prefixes)}-{name}"


def open_spec(spec: LedgerSpec) -> Ledger:
    kind, target, prefix = spec
    if kind == "sqlite":
        from governor.ledger.sqlite import SqliteLedger

        return SqliteLedger(target)
    from governor.ledger.redis import RedisLedger

    return RedisLedger(target, key_prefix=prefix, **SLOW_BOX)


def shared_counters(usd_limit_nano: int, call_limit: int) -> tuple[Counter, Counter]:
    """One USD budget (no window) and one call budget (rolling hour), as a team would have."""
    team = Counter("team-usd|team=search", "team-usd", Limit(usd_nano=usd_limit_nano), NO_WINDOW)
    calls = Counter("calls-hourly|global", "calls-hourly", Limit(calls=call_limit), Window("rolling", 3600.0))
    return team, calls


def spend(
    spec: LedgerSpec, worker: int, calls: int, usd_limit_nano: int, call_limit: int, barrier: Any, out: Any
) -> None:
    """Make ``calls`` calls: reserve the worst case, then settle a lower actual (or
    release, as a failed call would). Reports what it settled and any over-limit view."""
    ledger = open_spec(spec)
    team, call_budget = shared_counters(usd_limit_nano, call_limit)
    rng = random.Random(worker)
    settled: list[tuple[str, int]] = []
    over: list[str] = []
    denied: dict[str, int] = {}
    released = 0
    barrier.wait()
    for i in range(calls):
        rid = f"w{worker}-c{i}"
        worst = rng.randint(1_000_000, 5_000_000)  # 0.001 .. 0.005 USD
        now = time.time()
        r = ledger.reserve(rid, [team, call_budget], Amount(worst, 0, 1), now=now, lease_s=60.0)
        if not r.ok:
            assert r.denied is not None and r.denied_metric is not None
            name = f"{r.denied.budget_id}:{r.denied_metric}"
            denied[name] = denied.get(name, 0) + 1
            continue
        if r.used_after[0].usd_nano > usd_limit_nano or r.used_after[1].calls > call_limit:
            over.append(f"{rid}: {r.used_after}")
        if rng.random() < 0.1:
            ledger.release(rid, now=time.time())
            released += 1
            continue
        actual = rng.randint(0, worst)
        if ledger.settle(rid, [team, call_budget], Amount(actual, 0, 1), now=time.time(), reserved_at=now):
            settled.append((rid, actual))
    ledger.close()
    out.put({"worker": worker, "settled": settled, "denied": denied, "released": released, "over": over})


def hold(spec: LedgerSpec, usd_limit_nano: int, count: int, amount_nano: int, lease_s: float, out: Any) -> None:
    """Reserve ``count`` reservations and never settle them (the parent kills us with -9)."""
    ledger = open_spec(spec)
    team, _ = shared_counters(usd_limit_nano, 10**6)
    now = time.time()
    for i in range(count):
        assert ledger.reserve(f"held-{i}", [team], Amount(amount_nano), now=now, lease_s=lease_s).ok
    out.put(now)
    time.sleep(600)


def churn(spec: LedgerSpec, usd_limit_nano: int, out: Any) -> None:
    """Reserve and settle in a tight loop until killed (to kill a worker mid-write)."""
    ledger = open_spec(spec)
    team, _ = shared_counters(usd_limit_nano, 10**6)
    out.put("started")
    i = 0
    while True:
        now = time.time()
        if ledger.reserve(f"churn-{i}", [team], Amount(1000), now=now, lease_s=2.0).ok:
            ledger.settle(f"churn-{i}", [team], Amount(1000), now=now, reserved_at=now)
        i += 1


def charge_at(spec: LedgerSpec, counter: Counter, rid: str, usd_nano: int, now: float, out: Any) -> None:
    """Settle one charge at a simulated time (windows across processes)."""
    ledger = open_spec(spec)
    ok = ledger.reserve(rid, [counter], Amount(usd_nano), now=now, lease_s=30.0).ok
    if ok:
        ledger.settle(rid, [counter], Amount(usd_nano), now=now + 1, reserved_at=now)
    out.put((rid, ok, ledger.usage(counter, now=now + 1).usd_nano))
    ledger.close()


def governed_calls(policy_path: str, worker: int, calls: int, barrier: Any, out: Any) -> None:
    """Calls through Governor.check/record, as an agent worker process would make them."""
    from governor import Governor
    from governor.ledger.base import usd_to_nano

    gov = Governor.from_path(policy_path)
    rng = random.Random(worker)
    costs: list[int] = []
    blocked: list[tuple[str, tuple[str, ...], str, str]] = []
    barrier.wait()
    for i in range(calls):
        d = gov.check(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"task {worker}-{i}"}],
            max_tokens=500,
            input_tokens=200,
            metadata={"team": "search", "run_id": f"w{worker}"},
        )
        if d.blocked:
            blocked.append((d.block_kind or "", d.rule_ids, d.revision, d.reasons[0]))
            continue
        cost = gov.record(d, input_tokens=200, output_tokens=rng.randint(0, 500))
        assert cost is not None
        costs.append(usd_to_nano(cost))
    gov.close()
    out.put({"costs": costs, "blocked": blocked})
