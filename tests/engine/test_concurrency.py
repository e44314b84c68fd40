"""N concurrent callers never push a budget over its limit (every actual cost <= its reservation)."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

from governor.ledger.base import usd_to_nano
from governor.ledger.memory import MemoryLedger
from governor.ledger.sqlite import SqliteLedger
from tests.engine.conftest import MSGS

LIMIT_USD = 0.05
POLICY = f"""
budgets:
  - {{id: shared, scope: global, limit: {{usd: {LIMIT_USD}}}}}
  - {{id: per-team, scope: team, limit: {{usd: 1.0}}}}
"""
# gpt-4o: $2.50/M in, $10/M out: a call reserves 0.0025-0.0125 USD


def _ledger(kind: str, tmp_path):
    return MemoryLedger() if kind == "memory" else SqliteLedger(tmp_path / "ledger.db")


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_64_threads_never_exceed_one_usd_budget(make_gov, tmp_path, kind: str) -> None:
    ledger = _ledger(kind, tmp_path)
    gov = make_gov(POLICY, ledger=ledger)
    settled_nano: list[int] = []
    blocked = [0]
    over: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(64)
    calls_per_thread = 12 if kind == "memory" else 4

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        start.wait()
        for _ in range(calls_per_thread):
            max_tokens = rng.randint(0, 1000)
            d = gov.check(
                model="gpt-4o",
                messages=MSGS,
                input_tokens=1000,
                max_tokens=max_tokens,
                metadata={"team": f"t{seed % 4}"},
            )
            if d.blocked:
                with lock:
                    blocked[0] += 1
                continue
            cost = gov.record(d, input_tokens=1000, output_tokens=rng.randint(0, max_tokens))
            assert cost is not None and cost <= d.estimated_cost_usd + 1e-12
            used = ledger.usage(gov._compiled.budgets[0].counter(""), now=gov._clock())
            with lock:
                settled_nano.append(usd_to_nano(cost))
                if used.usd_nano > usd_to_nano(LIMIT_USD):
                    over.append(f"{used.usd_nano} nano-USD in use")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = ledger.usage(gov._compiled.budgets[0].counter(""), now=gov._clock())
    assert over == []
    assert final.usd_nano == sum(settled_nano) <= usd_to_nano(LIMIT_USD)
    assert final.calls == len(settled_nano)
    assert blocked[0] > 0  # the limit was actually reached
    # nearly all of the budget went to settled calls: less than one worst case is left
    assert usd_to_nano(LIMIT_USD) - final.usd_nano < usd_to_nano(0.0125)
    assert gov.stats()["total"]["spend_usd"] == pytest.approx(sum(settled_nano) / 1e9)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_asyncio_tasks_never_exceed_the_budget(make_gov, tmp_path, kind: str) -> None:
    ledger = _ledger(kind, tmp_path)
    gov = make_gov(POLICY, ledger=ledger)
    settled: list[int] = []

    async def agent(i: int) -> None:
        rng = random.Random(i)
        with gov.run(run_id=f"run-{i}", team=f"t{i % 3}"):
            for _ in range(5):
                max_tokens = rng.randint(100, 1000)
                d = await gov.acheck(model="gpt-4o", messages=MSGS, input_tokens=1000, max_tokens=max_tokens)
                if d.blocked:
                    assert d.block_kind == "budget"
                    return
                assert d.metadata["run_id"] == f"run-{i}"
                await asyncio.sleep(0)  # let other tasks check while this call is "in flight"
                cost = await gov.arecord(d, input_tokens=1000, output_tokens=max_tokens)
                settled.append(usd_to_nano(cost))

    await asyncio.gather(*(agent(i) for i in range(40)))
    final = ledger.usage(gov._compiled.budgets[0].counter(""), now=gov._clock())
    assert final.usd_nano == sum(settled) <= usd_to_nano(LIMIT_USD)
    assert len(settled) >= 4


def test_threads_of_one_run_never_exceed_max_calls(make_gov) -> None:
    gov = make_gov("stop: [{id: cap, type: max_calls, max: 100}]\n")
    allowed: list[int] = []
    start = threading.Barrier(32)

    def worker() -> None:
        start.wait()
        n = 0
        with gov.run(run_id="shared-run"):
            for _ in range(10):
                n += gov.check(model="gpt-4o-mini", messages=MSGS, input_tokens=10).allowed
        allowed.append(n)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 100 and gov._runs.peek("shared-run").calls == 100
