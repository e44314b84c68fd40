"""open_ledger: the ledger a policy's `ledger:` section names."""

from __future__ import annotations

import pytest

from governor.errors import LedgerError
from governor.ledger.factory import is_blocking, open_ledger
from governor.ledger.memory import MemoryLedger
from governor.ledger.redis import RedisLedger
from governor.ledger.sqlite import SqliteLedger
from governor.policy.model import LedgerSpec
from tests.engine.conftest import MSGS


def test_memory_is_the_default() -> None:
    assert isinstance(open_ledger(None), MemoryLedger) and isinstance(open_ledger(LedgerSpec()), MemoryLedger)
    assert not is_blocking(MemoryLedger())


def test_sqlite_path_is_relative_to_the_policy_file(make_gov, tmp_path) -> None:
    gov = make_gov(
        "ledger: {type: sqlite, path: state/ledger.db}\nbudgets: [{id: cap, scope: global, limit: {calls: 1}}]\n"
    )
    assert isinstance(gov.ledger, SqliteLedger) and is_blocking(gov.ledger)
    assert (tmp_path / "state" / "ledger.db").is_file()
    gov.record(gov.check(model="gpt-4o-mini", messages=MSGS, input_tokens=1), input_tokens=1, output_tokens=1)
    gov.close()
    # a second governor on the same file sees the spend: the budget lives in the file
    again = make_gov(
        "ledger: {type: sqlite, path: state/ledger.db}\nbudgets: [{id: cap, scope: global, limit: {calls: 1}}]\n"
    )
    assert again.check(model="gpt-4o-mini", messages=MSGS, input_tokens=1).block_kind == "budget"


def test_redis_spec_builds_a_redis_ledger() -> None:
    ledger = open_ledger(LedgerSpec(type="redis", url="redis://127.0.0.1:1/0", key_prefix="t"))
    assert isinstance(ledger, RedisLedger) and is_blocking(ledger)


def test_bad_specs_are_clear_errors() -> None:
    with pytest.raises(LedgerError, match="needs a path"):
        open_ledger(LedgerSpec(type="sqlite"))
    with pytest.raises(LedgerError, match="unknown ledger type 'mongo'"):
        open_ledger(LedgerSpec(type="mongo"))
