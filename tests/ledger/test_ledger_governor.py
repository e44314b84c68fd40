"""End to end through Governor.check/record: a shared SQLite budget across
processes, and a Redis outage under fail_closed and fail_open budgets."""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger_workers import governed_calls, run_workers
from redis_proc import RedisServer

from governor import Governor
from governor.ledger.base import Amount, Counter, Limit, usd_to_nano
from governor.ledger.redis import RedisLedger
from governor.ledger.sqlite import SqliteLedger
from governor.ledger.windows import NO_WINDOW

SPAWN = mp.get_context("spawn")
PRICES = """
models:
  prices:
    gpt-4o-mini: {input_per_mtok: 1.0, output_per_mtok: 4.0}
"""


def policy(path: Path, ledger: str, budgets: str) -> Path:
    path.write_text(
        "apiVersion: governor/v1\nkind: Policy\nmetadata: {name: shared-team}\n"
        "defaults: {lease: 1m}\n" + ledger + PRICES + budgets,
        encoding="utf-8",
    )
    return path


def test_governor_processes_share_one_sqlite_budget(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    path = policy(
        tmp_path / "policy.yaml",
        f"ledger: {{type: sqlite, path: '{db}'}}\n",
        """
budgets:
  - id: team-usd
    scope: team
    limit: {usd: 0.30}
  - id: team-calls
    scope: team
    limit: {calls: 300}
    window: 1h
""",
    )
    workers, calls = 8, 50
    barrier, out = SPAWN.Barrier(workers), SPAWN.Queue()
    procs = [SPAWN.Process(target=governed_calls, args=(str(path), w, calls, barrier, out)) for w in range(workers)]
    reports = run_workers(procs, out, timeout_s=120)
    costs = [c for r in reports for c in r["costs"]]
    blocked = [b for r in reports for b in r["blocked"]]

    team = Counter("team-usd|team=search", "team-usd", Limit(usd_nano=usd_to_nano(0.30)), NO_WINDOW)
    ledger = SqliteLedger(db)
    spent = ledger.usage(team, now=time.time())
    ledger.close()
    assert spent.usd_nano == sum(costs) <= usd_to_nano(0.30)  # exact, and never over
    assert spent.calls == len(costs) and len(costs) + len(blocked) == workers * calls
    assert blocked, "the budget was never reached"
    # every block names the budget, the rule and the policy revision
    for kind, rule_ids, revision, reason in blocked:
        assert kind == "budget" and rule_ids == ("team-usd",) and revision
        assert "team-usd" in reason
    # no false blocks: a block means the worst case (0.0022 USD) no longer fit beside the others in flight
    assert spent.usd_nano > usd_to_nano(0.30) - workers * usd_to_nano(0.0022)


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", persist=True).start()
    yield server
    server.stop()


def test_redis_outage_fail_closed_blocks_and_fail_open_allows(tmp_path: Path, durable_redis: RedisServer) -> None:
    path = policy(
        tmp_path / "policy.yaml",
        f"ledger: {{type: redis, url: '{durable_redis.url}', key_prefix: e2e}}\n",
        """
budgets:
  - id: strict
    scope: team
    match: {team: payments}
    limit: {usd: 1.00}
    on_error: fail_closed
  - id: lenient
    scope: team
    match: {team: research}
    limit: {usd: 1.00}
    on_error: fail_open
""",
    )
    gov = Governor.from_path(path)

    def call(team: str, output_tokens: int = 100) -> tuple[object, float | None]:
        d = gov.check(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=200,
            input_tokens=50,
            metadata={"team": team},
        )
        return d, (None if d.blocked else gov.record(d, input_tokens=50, output_tokens=output_tokens))

    spent = [call("payments")[1] for _ in range(5)]
    durable_redis.stop()
    d, _ = call("payments")
    assert d.blocked and d.block_kind == "store" and d.rule_ids == ("strict",)
    assert "budget store is down" in d.reasons[0] and f"redis ledger {durable_redis.url} unavailable" in d.reasons[0]
    assert "fail_closed" in d.reasons[0]
    d, cost = call("research")
    assert d.allowed and cost is not None
    assert any("fail open" in w for w in d.warnings)

    durable_redis.start()  # same port and data: the governor recovers without a restart
    more = [call("payments")[1] for _ in range(5)]
    assert all(c is not None for c in spent + more)
    strict = Counter("strict|team=payments", "strict", Limit(usd_nano=usd_to_nano(1.0)), NO_WINDOW)
    ledger = RedisLedger(durable_redis.url, key_prefix="e2e")
    assert ledger.usage(strict, now=time.time()) == Amount(sum(usd_to_nano(c) for c in spent + more), 1500, 10)
    ledger.close()
    gov.close()


def test_settlements_refused_during_an_outage_are_retried_and_totals_stay_exact(
    tmp_path: Path, durable_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    path = policy(
        tmp_path / "policy.yaml",
        f"ledger: {{type: redis, url: '{durable_redis.url}', key_prefix: retry}}\n",
        """
budgets:
  - {id: team-usd, scope: team, limit: {usd: 1.00}}
""",
    )
    offset = [0.0]
    gov = Governor.from_path(path, clock=lambda: time.time() + offset[0])

    def check() -> object:
        d = gov.check(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=200,
            input_tokens=50,
            metadata={"team": "a"},
        )
        assert d.allowed
        return d

    costs = [gov.record(check(), input_tokens=50, output_tokens=100) for _ in range(3)]
    in_flight = [check() for _ in range(4)]  # checked while the store is up, recorded while it is down
    durable_redis.stop()
    with caplog.at_level("WARNING", logger="governor.engine"):
        costs += [gov.record(d, input_tokens=50, output_tokens=10 * i) for i, d in enumerate(in_flight)]
    assert "settlement of decision" in caplog.text and "queued" in caplog.text
    assert len(gov._unsettled.items) == 4
    offset[0] += 5  # a retry while the store is still down keeps the queue
    gov._unsettled.flush(gov.ledger, time.time() + offset[0])
    assert len(gov._unsettled.items) == 4

    durable_redis.start()  # same port and data
    offset[0] += 5
    costs.append(gov.record(check(), input_tokens=50, output_tokens=100))  # the next call flushes the queue
    assert not gov._unsettled.items
    team = Counter("team-usd|team=a", "team-usd", Limit(usd_nano=usd_to_nano(1.0)), NO_WINDOW)
    ledger = RedisLedger(durable_redis.url, key_prefix="retry")
    used = ledger.usage(team, now=time.time() + offset[0])
    ledger.close()
    gov.close()
    # exact: every recorded cost once (settle is idempotent by decision id), nothing left in flight
    assert used == Amount(sum(usd_to_nano(c) for c in costs), 8 * 50 + 100 * 4 + sum(10 * i for i in range(4)), 8)
