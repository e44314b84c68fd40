"""``adjust`` / ``adjustments``: operators' records, stored once by id and read back by every handle on one store."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governor.ledger.base import Adjustment, Amount, Ledger


def _adj(i: str, kind: str = "raise", at: float = 100.0, until: float | None = 200.0, **kw: object) -> Adjustment:
    fields: dict[str, object] = {"budget": "team-daily", "scope": "team=platform", "amount": Amount(10, 2, 1)}
    if kind == "resume":
        fields = {"run_id": "r-1"}
    fields = {"by": "alice", "reason": "launch day", **fields, **kw}
    return Adjustment(id=i, kind=kind, at=at, until=until, **fields)  # type: ignore[arg-type]


def test_an_adjustment_is_stored_once_and_read_back_whole(ledger: Ledger) -> None:
    a = _adj("adj-1", reason='launch day: ünïcode, "quotes" and a\nnewline')
    assert ledger.adjust(a) is True
    assert ledger.adjust(a) is False  # a retried write changes nothing
    assert ledger.adjust(_adj("adj-1", amount=Amount(999))) is False  # the id is the record
    assert ledger.adjustments(now=150.0) == [a]


def test_only_adjustments_in_force_are_read_unless_the_audit_trail_is_asked_for(ledger: Ledger) -> None:
    old = _adj("adj-old", at=10.0, until=50.0)
    forever = _adj("adj-forever", at=20.0, until=None)
    resume = _adj("adj-resume", kind="resume", at=30.0, until=130.0)
    for a in (resume, old, forever):
        ledger.adjust(a)
    assert ledger.adjustments(now=100.0) == [forever, resume]  # oldest first
    assert ledger.adjustments(now=140.0) == [forever]
    assert ledger.adjustments(now=140.0, include_expired=True) == [old, forever, resume]


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_second_handle_reads_what_the_first_wrote(make_ledger: Callable[[str], Ledger], kind: str) -> None:
    first, second = make_ledger(kind), make_ledger(kind)
    a = _adj("adj-x")
    assert first.adjust(a)
    assert second.adjustments(now=150.0) == [a]
    assert second.adjust(a) is False


def test_an_amount_a_ledger_cannot_store_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="usd_nano"):
        ledger.adjust(_adj("adj-big", amount=Amount(2**60)))
    assert ledger.adjustments(now=0.0) == []


def test_a_record_that_does_not_read_is_skipped_and_named(make_ledger: Callable[[str], Ledger], caplog) -> None:
    ledger = make_ledger("sqlite")
    ledger.adjust(_adj("adj-good"))
    conn = ledger._connection()  # type: ignore[attr-defined]  # a record written by something else, broken
    conn.execute('INSERT INTO adjustments VALUES (\'adj-bad\', 1, NULL, \'{"id": "adj-bad", "kind": "grow"}\')')
    assert [a.id for a in ledger.adjustments(now=150.0)] == ["adj-good"]
    assert "adj-bad" in caplog.text and "'kind'" in caplog.text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    writes=st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 10**12), st.integers(0, 1000), st.sampled_from(["raise", "reset"])),
        max_size=20,
    )
)
def test_any_writes_read_back_as_the_distinct_ids_first_written(ledger: Ledger, writes: list) -> None:
    """However often an id is written (retries, two operators), it is read back once, as first written."""
    start = len(ledger.adjustments(now=0.0, include_expired=True))
    example = uuid.uuid4().hex  # the store outlives one example: ids of their own
    first: dict[str, Adjustment] = {}
    for n, usd, tokens, kind in writes:
        a = _adj(f"adj-{example}-{n}", kind=kind, amount=Amount(usd, tokens, 0), until=None)
        fresh = ledger.adjust(a)
        assert fresh == (a.id not in first)
        first.setdefault(a.id, a)
    got = ledger.adjustments(now=0.0, include_expired=True)
    assert len(got) == start + len(first)
    assert {a.id: a for a in got if a.id in first} == first
