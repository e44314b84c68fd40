"""Ledger benchmark: reserve+settle latency and throughput, and what a naive
read-check-write costs in overspend at the same concurrency.

    python benchmarks/bench_ledger.py [--quick]
    python benchmarks/bench_ledger.py --latency-only --redis-instructions   # + redis-server under callgrind

Starts its own redis-server on 127.0.0.1 (Debian package) and a fresh SQLite
file in a temp dir. "4" and "8" mean processes (spawn) sharing one store; the
in-memory ledger cannot be shared by processes, so its rows are threads.
Redis is also measured from the server's side, in one run: its time per
reserve, per settle and per small EVAL (INFO commandstats), and with
``--redis-instructions`` the instructions it executes for each (callgrind),
the figure that does not move with the machine's load.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "ledger"))  # the redis-server starter shared with the tests

from redis_proc import RedisServer  # noqa: E402

from governor.ledger.base import Amount, Counter, Ledger, Limit  # noqa: E402
from governor.ledger.windows import NO_WINDOW, Window  # noqa: E402

SPAWN = mp.get_context("spawn")
COST = 10_000_000  # 0.01 USD per call in the overspend test
LIMIT = 1_000_000_000  # 1 USD: room for exactly 100 calls


def open_store(spec: tuple[str, str, str]) -> Ledger:
    kind, target, prefix = spec
    if kind == "memory":
        from governor.ledger.memory import MemoryLedger

        return MemoryLedger()
    if kind == "sqlite":
        from governor.ledger.sqlite import SqliteLedger

        return SqliteLedger(target)
    from governor.ledger.redis import RedisLedger

    return RedisLedger(target, key_prefix=prefix)


def counters(limit: int) -> list[Counter]:
    return [
        Counter("team-usd|team=bench", "team-usd", Limit(usd_nano=limit), NO_WINDOW),
        Counter("calls-hourly|global", "calls-hourly", Limit(calls=10**9), Window("rolling", 3600.0)),
    ]


# -- latency / throughput ------------------------------------------------------------
def timed_calls(ledger: Ledger, worker: int, n: int) -> list[int]:
    cs = counters(10**18)
    lat: list[int] = []
    for i in range(n):
        rid = f"w{worker}-{i}"
        t = time.perf_counter_ns()
        now = time.time()
        ledger.reserve(rid, cs, Amount(3_000_000, 1500, 1), now=now, lease_s=600.0)
        ledger.settle(rid, cs, Amount(1_500_000, 1200, 1), now=now, reserved_at=now)
        lat.append(time.perf_counter_ns() - t)
    return lat


def latency_worker(spec: tuple[str, str, str], worker: int, n: int, barrier: Any, out: Any) -> None:
    ledger = open_store(spec)
    timed_calls(ledger, worker + 1000, 20)  # warm up: connection, scripts, page cache
    barrier.wait()
    out.put(timed_calls(ledger, worker, n))
    ledger.close()


def run_latency(spec: tuple[str, str, str], procs: int, n: int) -> dict[str, float]:
    if spec[0] == "memory" or procs == 1:
        ledger = open_store(spec)
        timed_calls(ledger, 10**6, 20)
        results: list[list[int]] = []
        start = time.perf_counter()
        threads = [threading.Thread(target=lambda w=w: results.append(timed_calls(ledger, w, n))) for w in range(procs)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - start
    else:
        barrier, out = SPAWN.Barrier(procs + 1), SPAWN.Queue()
        ps = [SPAWN.Process(target=latency_worker, args=(spec, w, n, barrier, out)) for w in range(procs)]
        for p in ps:
            p.start()
        barrier.wait()
        start = time.perf_counter()
        results = [out.get(timeout=120) for _ in ps]
        wall = time.perf_counter() - start
        for p in ps:
            p.join()
    lat = sorted(x for r in results for x in r)
    return {
        "ops": len(lat),
        "p50": lat[len(lat) // 2] / 1000,
        "p99": lat[int(len(lat) * 0.99)] / 1000,
        "rate": len(lat) / wall,
    }


# -- Redis: server time per governed call against a small EVAL ----------------------
def _evalsha_usec(client: Any) -> tuple[int, float]:
    """(calls, microseconds) of EVALSHA on the server since the last CONFIG RESETSTAT."""
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)), float(stats.get("usec", 0))


def redis_server_time(url: str, n: int) -> dict[str, float]:
    """What one Redis core spends per reserve, per settle and per small EVAL, from the server's own
    command statistics (INFO commandstats: time inside the command, not the round trip), so the
    client's and the machine's load barely enter: governed calls/s per core = 1e6 / (reserve + settle).
    The small EVAL is ``return 1`` with two keys and two arguments, run the same way by EVALSHA."""
    import redis

    from governor.ledger.redis import RedisLedger

    client = redis.Redis.from_url(url)
    ledger = RedisLedger(url, key_prefix="srv")
    cs = counters(10**18)
    now = time.time()
    rids = [f"srv-{i}" for i in range(n)]
    for i in range(50):  # warm: scripts loaded, keys created
        ledger.reserve(f"warm-{i}", cs, Amount(3_000_000, 1500, 1), now=now, lease_s=600.0)
        ledger.settle(f"warm-{i}", cs, Amount(1_500_000, 1200, 1), now=now, reserved_at=now)
    out: dict[str, float] = {}
    for phase in ("reserve", "settle"):
        client.config_resetstat()
        for rid in rids:
            if phase == "reserve":
                ledger.reserve(rid, cs, Amount(3_000_000, 1500, 1), now=now, lease_s=600.0)
            else:
                ledger.settle(rid, cs, Amount(1_500_000, 1200, 1), now=now, reserved_at=now)
        calls, usec = _evalsha_usec(client)
        out[phase] = usec / max(calls, 1)
    small = client.script_load("return 1")
    client.config_resetstat()
    for i in range(n):
        client.evalsha(small, 2, "srv:a", "srv:b", str(i), "x")
    calls, usec = _evalsha_usec(client)
    out["eval"] = usec / max(calls, 1)
    ledger.close()
    client.close()
    return out


def redis_instructions(n: int = 300) -> dict[str, float]:
    """Instructions redis-server executes per reserve, per settle and per small EVAL: each measured
    in a redis-server of its own under ``valgrind --tool=callgrind``, counting only while the
    calls run (the set-up's calls are not counted). The same from run to run, whatever the load."""
    import os
    import re
    import subprocess

    import redis
    from redis_proc import REDIS_SERVER, free_port

    from governor.ledger.redis import RedisLedger

    cs = counters(10**18)
    now = time.time()

    def measure(prepare: Any, call: Any) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            port, out = free_port(), os.path.join(tmp, "callgrind.out")
            args = ["--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"]
            cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", REDIS_SERVER]
            proc = subprocess.Popen(cmd + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                client = redis.Redis(port=port, socket_timeout=60)
                for _ in range(600):
                    try:
                        client.ping()
                        break
                    except redis.exceptions.ConnectionError:
                        time.sleep(0.1)
                ctx = prepare(port)
                subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], capture_output=True, check=True)
                for i in range(n):
                    call(ctx, i)
                subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], capture_output=True, check=True)
            finally:
                proc.terminate()
                proc.wait()
            m = re.search(r"^totals: (\d+)", Path(out).read_text(), re.M)
            return int(m.group(1)) / n if m else float("nan")

    def ledger(port: int, reserved: bool = False) -> RedisLedger:
        led = RedisLedger(f"redis://127.0.0.1:{port}/0", key_prefix="i", socket_timeout_s=60, connect_timeout_s=60)
        for i in range(20):  # scripts loaded, counters created
            led.reserve(f"w{i}", cs, Amount(3_000_000, 1500, 1), now=now, lease_s=600.0)
            led.settle(f"w{i}", cs, Amount(1_500_000, 1200, 1), now=now, reserved_at=now)
        for i in range(n if reserved else 0):
            led.reserve(f"r{i}", cs, Amount(3_000_000, 1500, 1), now=now, lease_s=600.0)
        return led

    def small(port: int) -> tuple[Any, str]:
        client = redis.Redis(port=port, socket_timeout=60)
        return client, client.script_load("return 1")

    return {
        "reserve": measure(
            ledger, lambda led, i: led.reserve(f"r{i}", cs, Amount(3_000_000, 1500, 1), now=now, lease_s=600.0)
        ),
        "settle": measure(
            lambda port: ledger(port, True),
            lambda led, i: led.settle(f"r{i}", cs, Amount(1_500_000, 1200, 1), now=now, reserved_at=now),
        ),
        "eval": measure(small, lambda ctx, i: ctx[0].evalsha(ctx[1], 2, "i:a", "i:b", str(i), "x")),
    }


# -- overspend: naive read-check-write versus reservations ---------------------------
def naive_sqlite(path: str, call_s: float) -> int:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    made = 0
    while True:
        spent = conn.execute("SELECT v FROM spend WHERE k = 'team'").fetchone()[0]  # read
        if spent + COST > LIMIT:  # check
            return made
        time.sleep(call_s)  # the LLM call
        conn.execute("UPDATE spend SET v = v + ? WHERE k = 'team'", (COST,))  # write
        made += 1


def naive_redis(url: str, call_s: float) -> int:
    import redis

    r = redis.Redis.from_url(url)
    made = 0
    while True:
        if int(r.get("naive:team") or 0) + COST > LIMIT:
            return made
        time.sleep(call_s)
        r.incrby("naive:team", COST)
        made += 1


def governed(spec: tuple[str, str, str], worker: int, call_s: float) -> int:
    ledger = open_store(spec)
    team = counters(LIMIT)[:1]
    made = 0
    for i in range(10**6):
        now = time.time()
        if not ledger.reserve(f"w{worker}-{i}", team, Amount(COST), now=now, lease_s=60.0).ok:
            return made
        time.sleep(call_s)
        ledger.settle(f"w{worker}-{i}", team, Amount(COST), now=time.time(), reserved_at=now)
        made += 1
    return made


def overspend_worker(mode: str, target: Any, worker: int, call_s: float, barrier: Any, out: Any) -> None:
    barrier.wait()
    if mode == "naive-sqlite":
        out.put(naive_sqlite(target, call_s))
    elif mode == "naive-redis":
        out.put(naive_redis(target, call_s))
    else:
        out.put(governed(target, worker, call_s))


def run_overspend(mode: str, target: Any, procs: int, call_s: float) -> int:
    barrier, out = SPAWN.Barrier(procs), SPAWN.Queue()
    ps = [SPAWN.Process(target=overspend_worker, args=(mode, target, w, call_s, barrier, out)) for w in range(procs)]
    for p in ps:
        p.start()
    calls = sum(out.get(timeout=120) for _ in ps)
    for p in ps:
        p.join()
    return calls * COST


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    ap.add_argument(
        "--latency-only", action="store_true", help="the latency rows and Redis server time only (no overspend runs)"
    )
    ap.add_argument("--stores", default="memory,sqlite,redis", help="comma-separated: which ledgers' latency rows")
    ap.add_argument(
        "--redis-instructions",
        action="store_true",
        help="also count redis-server's instructions per reserve, settle and small EVAL (needs valgrind; ~2 min)",
    )
    args = ap.parse_args()
    n1, n8 = (300, 100) if args.quick else (3000, 500)
    tmp = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    server = RedisServer(tmp / "redis").start()
    try:
        stores = {
            "memory": ("memory", "", ""),
            "sqlite": ("sqlite", str(tmp / "lat.db"), ""),
            "redis": ("redis", server.url, "lat"),
        }
        print("reserve+settle (2 counters: team USD, rolling-hour calls), one call = reserve + settle")
        print(f"{'ledger':<8} {'procs':>5} {'calls':>6} {'p50 us':>8} {'p99 us':>8} {'calls/s':>9}")
        for name, spec in stores.items():
            if name not in args.stores.split(","):
                continue
            for procs in (1, 4, 8):
                r = run_latency(spec, procs, n1 if procs == 1 else n8)
                label = f"{procs}{'t' if name == 'memory' and procs > 1 else ''}"
                print(
                    f"{name:<8} {label:>5} {r['ops']:>6} {r['p50']:>8.0f} {r['p99']:>8.0f} {r['rate']:>9.0f}",
                    flush=True,
                )

        srv = redis_server_time(server.url, n1)
        per_call = srv["reserve"] + srv["settle"]
        print(
            f"\nredis server time (INFO commandstats, {n1} calls): reserve {srv['reserve']:.1f} us, "
            f"settle {srv['settle']:.1f} us, a small EVAL {srv['eval']:.1f} us\n"
            f"  per Redis core: {1e6 / per_call:,.0f} governed calls/s (reserve + settle) against "
            f"{1e6 / srv['eval']:,.0f} small EVALs/s ({srv['eval'] * 2 / per_call:.0%} of the rate of two small EVALs)"
        )

        if args.redis_instructions:
            ins = redis_instructions()
            both = ins["reserve"] + ins["settle"]
            print(
                f"redis-server instructions (callgrind): reserve {ins['reserve']:,.0f}, settle {ins['settle']:,.0f}, "
                f"a small EVAL {ins['eval']:,.0f}: reserve + settle = {both / ins['eval']:.1f} small EVALs"
            )
        if args.latency_only:
            return
        print(
            f"\noverspend: 8 processes, budget {LIMIT / 1e9:.2f} USD, {COST / 1e9:.2f} USD per call "
            f"(limit = {LIMIT // COST} calls)"
        )
        print(f"{'store':<8} {'call time':>9} {'naive spend':>12} {'overspend':>10} {'ledger spend':>13}")
        for call_s in (0.0, 0.005):
            db = tmp / f"naive-{call_s}.db"
            conn = sqlite3.connect(db, isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("CREATE TABLE spend (k TEXT PRIMARY KEY, v INTEGER)")
            conn.execute("INSERT INTO spend VALUES ('team', 0)")
            conn.close()
            import redis

            redis.Redis.from_url(server.url).delete("naive:team")
            rows = [
                ("sqlite", "naive-sqlite", str(db), ("sqlite", str(tmp / f"gov-{call_s}.db"), "")),
                ("redis", "naive-redis", server.url, ("redis", server.url, f"gov-{call_s}")),
            ]
            for name, mode, target, spec in rows:
                naive = run_overspend(mode, target, 8, call_s)
                ours = run_overspend("governed", spec, 8, call_s)
                over = (naive - LIMIT) / LIMIT * 100
                print(
                    f"{name:<8} {call_s * 1000:>7.0f}ms {naive / 1e9:>11.2f}$ {over:>9.0f}% {ours / 1e9:>12.2f}$",
                    flush=True,
                )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
