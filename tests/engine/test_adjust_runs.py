"""A resume clears a run's stop state once per governor: kept through a compacted run state and through the
state a hook process exports and restores (``export_run`` / ``restore_run``)."""

from __future__ import annotations

from typing import Any

from governor import Governor
from governor.engine import runstate
from governor.ledger.base import Adjustment
from governor.ledger.memory import MemoryLedger
from governor.policy.loader import load_policy_text

POLICY = load_policy_text("""
apiVersion: governor/v1
kind: Policy
metadata: {name: resume}
models:
  prices:
    m: {input_per_mtok: 1, output_per_mtok: 1}
stop:
  - {id: three, type: max_calls, max: 3}
""")


def _check(gov: Governor, run: str = "r") -> Any:
    return gov.check(model="m", input_tokens=10, max_tokens=1, metadata={"run_id": run})


def _resume(ledger: MemoryLedger, at: float, i: str = "adj-1") -> Adjustment:
    a = Adjustment(id=i, kind="resume", run_id="r", at=at, until=at + 3600, by="op", reason="go on")
    ledger.adjust(a)
    return a


def test_a_resume_is_taken_once_and_the_stop_counts_again_from_zero() -> None:
    clock = [1000.0]
    ledger = MemoryLedger()
    gov = Governor(POLICY, ledger=ledger, clock=lambda: clock[0], observers=False)
    assert [_check(gov).verdict for _ in range(4)] == ["allow"] * 3 + ["block"]
    a = _resume(ledger, at=clock[0] + 1)
    clock[0] += 2
    d = _check(gov)
    assert d.allowed and d.adjustments == (a.id,) and "resume run r" in d.warnings[0]
    assert [_check(gov).verdict for _ in range(3)] == ["allow", "allow", "block"]  # three calls again, then stop
    b = _resume(ledger, at=clock[0] + 1, i="adj-2")  # a second resume lifts the second stop
    clock[0] += 2
    assert _check(gov).adjustments == (b.id,)


def test_a_resume_taken_survives_compaction(monkeypatch: Any) -> None:
    monkeypatch.setattr(runstate, "MAX_RUNS", 2)
    clock = [1000.0]
    ledger = MemoryLedger()
    gov = Governor(POLICY, ledger=ledger, clock=lambda: clock[0], observers=False)
    for _ in range(4):
        _check(gov)
    _resume(ledger, at=clock[0] + 100)  # the operator's clock ahead of this one: only the taken ids stop a retake
    clock[0] += 2
    assert _check(gov).allowed
    for other in ("x", "y", "z"):  # push run r out to its compact form
        _check(gov, other)
    assert [_check(gov).verdict for _ in range(3)] == ["allow", "allow", "block"]  # the resume is not taken twice


def test_a_hook_process_keeps_the_resumes_it_took_in_the_exported_state() -> None:
    clock = [1000.0]
    ledger = MemoryLedger()  # shared, as a SQLite file is between hook processes
    first = Governor(POLICY, ledger=ledger, clock=lambda: clock[0], observers=False)
    for _ in range(4):
        _check(first)
    _resume(ledger, at=clock[0] + 100)  # the operator's clock ahead: only the exported ids stop a retake
    clock[0] += 2
    assert _check(first).allowed
    state = first.export_run("r")
    assert state is not None and state["resumed"] == ["adj-1"]
    second = Governor(POLICY, ledger=ledger, clock=lambda: clock[0], observers=False)
    second.restore_run("r", state)
    assert [_check(second).verdict for _ in range(3)] == ["allow", "allow", "block"]
