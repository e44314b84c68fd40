"""A governor built before fork(), a SQLite file that goes away, and amounts no store can hold.

* Fork after build (a pre-fork server: gunicorn, celery, multiprocessing "fork"): every
  child gets new decision ids, fresh locks and its own store connection, so 8 children
  sharing one $1.00 budget never spend more than $1.00, and the store's total is the
  sum of the calls they settled.
* A SQLite file deleted or replaced under a running ledger: the ledger says so, and the
  budgets follow their on_error, instead of counting into a file no other process sees.
* Money and tokens stay within what every store holds exactly (2**53 - 1).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from ledger_workers import SLOW_BOX, run_workers, unique_prefix

from governor import Governor, InvalidCall
from governor.errors import LedgerError
from governor.ledger.base import MAX_QUANTITY, Amount, Counter, Ledger, Limit, usd_to_nano
from governor.ledger.memory import MemoryLedger
from governor.ledger.redis import RedisLedger
from governor.ledger.sqlite import SqliteLedger
from governor.ledger.windows import NO_WINDOW
from governor.policy.loader import load_policy

FORK = mp.get_context("fork")
CHILDREN, CALLS = 8, 30
POLICY = """\
apiVersion: governor/v1
kind: Policy
metadata: {{name: forked}}
defaults: {{lease: 1m}}
models:
  prices:
    acme/m: {{input_per_mtok: 10.0, output_per_mtok: 40.0}}
budgets:
  - {{id: team, scope: global, limit: {{usd: 1.00}}, on_error: {on_error}}}
"""


def _policy(tmp_path: Path, on_error: str = "fail_closed") -> Any:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(on_error=on_error), encoding="utf-8")
    return load_policy(path)


def _child(gov: Governor, out: Any) -> None:
    """30 calls of $0.0055 reserved ($0.0015 in, up to $0.004 out), each costing all of it."""
    ids, spent, allowed = [], 0, 0
    for _ in range(CALLS):
        d = gov.check(model="acme/m", messages=[{"role": "user", "content": "go"}], input_tokens=150, max_tokens=100)
        ids.append(d.decision_id)
        if d.allowed:
            allowed += 1
            spent += usd_to_nano(gov.record(d, input_tokens=150, output_tokens=100) or 0.0)
    out.put((os.getpid(), ids, spent, allowed))


def _fork_children(gov: Governor) -> list[Any]:
    out = FORK.Queue()
    procs = [FORK.Process(target=_child, args=(gov, out)) for _ in range(CHILDREN)]
    return run_workers(procs, out, timeout_s=120)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_children_forked_after_build_share_one_budget_exactly(kind: str, tmp_path: Path, request: Any) -> None:
    if kind == "sqlite":
        ledger: Ledger = SqliteLedger(tmp_path / "ledger.db")
    else:
        server = request.getfixturevalue("redis_server")
        ledger = RedisLedger(server.url, key_prefix=unique_prefix("forked"), **SLOW_BOX)
    gov = Governor(_policy(tmp_path), ledger=ledger, stats=False, observers=False)
    first = gov.check(model="acme/m", messages=[{"role": "user", "content": "go"}], input_tokens=150, max_tokens=100)
    first_cost = gov.record(first, input_tokens=150, output_tokens=100)  # the parent used its connection and ids
    reports = _fork_children(gov)

    ids = [i for _, child_ids, _, _ in reports for i in child_ids] + [first.decision_id]
    assert len(set(ids)) == len(ids) == CHILDREN * CALLS + 1  # no two processes hand out one id
    settled = sum(spent for _, _, spent, _ in reports) + usd_to_nano(first_cost or 0.0)
    allowed = sum(n for *_, n in reports)
    assert 0 < allowed < CHILDREN * CALLS  # the budget ran out: the limit was what decided
    used = ledger.usage(gov._compiled.budgets[0].counter(""), now=gov._clock())
    assert used.usd_nano <= 1_000_000_000  # never more than $1.00
    assert used.usd_nano == settled  # the total is the sum of the settled calls
    assert used.calls == allowed + 1
    gov.close()
    ledger.close()


def _check_while_parent_holds_the_lock(gov: Governor, out: Any) -> None:
    d = gov.check(model="acme/m", messages=[{"role": "user", "content": "go"}], input_tokens=10, max_tokens=10)
    out.put(d.verdict)


def test_a_child_does_not_inherit_a_lock_held_by_a_parent_thread(tmp_path: Path) -> None:
    """A thread of the parent is inside the memory ledger (its lock held) at the moment of the
    fork: without fresh locks the child's first check waits forever."""
    ledger = MemoryLedger()
    gov = Governor(_policy(tmp_path), ledger=ledger, stats=False, observers=False)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with ledger._lock, gov._runs.lock:
            held.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(10)
    try:
        out = FORK.Queue()
        assert run_workers([FORK.Process(target=_check_while_parent_holds_the_lock, args=(gov, out))], out, 60) == [
            "allow"
        ]
    finally:
        release.set()
        t.join()


def _check(gov: Governor) -> Any:
    return gov.check(model="acme/m", messages=[{"role": "user", "content": "go"}], input_tokens=10, max_tokens=10)


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_sqlite_file_deleted_or_replaced_under_a_running_ledger_follows_on_error(
    how: str, tmp_path: Path, caplog: Any
) -> None:
    db = tmp_path / "ledger.db"
    closed = Governor(_policy(tmp_path, "fail_closed"), ledger=SqliteLedger(db), stats=False, observers=False)
    (tmp_path / "open").mkdir()
    opened = Governor(_policy(tmp_path / "open", "fail_open"), ledger=SqliteLedger(db), stats=False, observers=False)
    assert _check(closed).allowed and _check(opened).allowed
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    if how == "replaced":
        sqlite3.connect(db).close()  # another file at the same path
    with caplog.at_level("ERROR", logger="governor.ledger"):
        d = _check(closed)
        assert d.blocked and d.block_kind == "store" and d.blocked_by == "team"
        assert f"the file was {'deleted' if how == 'deleted' else 'replaced by another file'}" in d.reasons[0]
        d2 = _check(opened)
        assert d2.allowed and "fail open: call not counted" in d2.warnings[0]
        assert _check(closed).blocked  # and it stays so: nothing is counted into a file nobody else sees
    assert sum("while in use" in r.getMessage() for r in caplog.records) == 2  # logged once per ledger
    with pytest.raises(LedgerError, match="while in use"):
        closed.ledger.usage(closed._compiled.budgets[0].counter(""), now=0.0)


COUNTER = Counter("big|global", "big", Limit(), NO_WINDOW)


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_amounts_outside_what_a_store_holds_are_refused_before_reserving(kind: str, make_ledger: Any) -> None:
    ledger = make_ledger(kind)
    for bad in (Amount(MAX_QUANTITY + 1), Amount(0, -1), Amount(0, 0, MAX_QUANTITY + 1), Amount(1.5, 0, 1)):  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="ledger amount"):
            ledger.reserve("r-bad", [COUNTER], bad, now=1.0, lease_s=60)
        with pytest.raises(ValueError, match="ledger amount"):
            ledger.settle("r-bad", [COUNTER], bad, now=1.0, reserved_at=1.0)
    assert ledger.usage(COUNTER, now=1.0) == Amount()  # nothing was reserved or settled
    # an unlimited counter fills up to the bound and no further: nothing ever overflows
    assert ledger.reserve("r1", [COUNTER], Amount(MAX_QUANTITY - 10, 1, 1), now=1.0, lease_s=60).ok
    r = ledger.reserve("r2", [COUNTER], Amount(11, 1, 1), now=1.0, lease_s=60)
    assert not r.ok and r.denied_metric == "usd"
    assert ledger.usage(COUNTER, now=1.0) == Amount(MAX_QUANTITY - 10, 1, 1)


def test_a_call_whose_worst_case_no_store_holds_is_blocked_before_reserving(tmp_path: Path) -> None:
    gov = Governor(_policy(tmp_path), stats=False, observers=False)
    # a max_tokens beyond any count the governor accounts for is refused at the input boundary (issue 14)
    with pytest.raises(InvalidCall, match="max_tokens"):
        gov.check(model="acme/m", messages=[{"role": "user", "content": "go"}], input_tokens=10, max_tokens=10**17)
    assert gov.ledger.usage(gov._compiled.budgets[0].counter(""), now=gov._clock()) == Amount()
