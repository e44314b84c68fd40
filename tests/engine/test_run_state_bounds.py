"""More runs than full states are kept: stop conditions keep applying, and forgetting is counted.

Issue 19 measured it: with 60,000 runs each sending the same prompt three times,
``repeated_call`` blocked 0 of the 60,000 third calls once run state lived in a
50,000-run LRU. Here the bounds are lowered so a test reaches them in a few calls.
"""

from __future__ import annotations

import logging
from typing import Any

import governor.engine.runstate as runstate

MSGS = [{"role": "user", "content": "same prompt"}]
POLICY = """
models: {prices: {acme/m: {input_per_mtok: 1.0, output_per_mtok: 1.0}}}
stop:
  - {id: loop, type: repeated_call, max: 3, within: 10m}
  - {id: cap, type: max_calls, max: 4}
  - {id: errors, type: consecutive_errors, max: 2}
"""


def call(gov: Any, run: str, content: str = "same prompt") -> Any:
    return gov.check(
        model="acme/m",
        messages=[{"role": "user", "content": content}],
        input_tokens=10,
        max_tokens=10,
        metadata={"run_id": run},
    )


def test_repeated_calls_still_stop_when_more_runs_are_active_than_full_states_are_kept(
    make_gov, monkeypatch, caplog
) -> None:
    monkeypatch.setattr(runstate, "MAX_RUNS", 5)
    gov = make_gov(POLICY)
    runs = [f"r{i}" for i in range(40)]  # eight times what the LRU holds
    with caplog.at_level(logging.WARNING, logger="governor.engine"):
        for _ in range(2):
            for r in runs:
                d = call(gov, r)
                assert d.allowed
                gov.record(d, input_tokens=10, output_tokens=10)
        third = [call(gov, r) for r in runs]
    assert [d.blocked_by for d in third] == ["loop"] * len(runs)  # 40 of 40, not 5 of 40
    assert gov._runs.compacted > 0 and gov._runs.forgotten == 0
    assert any("compact form" in r.getMessage() for r in caplog.records)  # counted and logged


def test_call_counts_and_error_streaks_survive_the_compact_form(make_gov, monkeypatch) -> None:
    monkeypatch.setattr(runstate, "MAX_RUNS", 2)
    gov = make_gov(POLICY)
    for i in range(4):  # r0 makes four distinct calls, each followed by calls of other runs
        d = call(gov, "r0", f"step {i}")
        assert d.allowed
        gov.record(d, input_tokens=10, output_tokens=10)
        for other in ("a", "b", "c"):
            gov.record(call(gov, f"{other}{i}"), input_tokens=1, output_tokens=1)
    assert call(gov, "r0", "step 4").blocked_by == "cap"
    # an error streak settled while the run's state was pushed out still counts
    d1, d2 = call(gov, "e", "x1"), None
    for other in ("a", "b", "c"):
        call(gov, f"later-{other}")
    gov.record(d1, input_tokens=10, output_tokens=0, error="timeout")
    d2 = call(gov, "e", "x2")
    gov.record(d2, input_tokens=10, output_tokens=0, error="timeout")
    for other in ("a", "b", "c"):
        call(gov, f"later2-{other}")
    assert call(gov, "e", "x3").blocked_by == "errors"


def test_forgetting_for_good_is_counted_and_logged(make_gov, monkeypatch, caplog) -> None:
    monkeypatch.setattr(runstate, "MAX_RUNS", 2)
    monkeypatch.setattr(runstate, "MAX_COMPACT_RUNS", 3)
    gov = make_gov(POLICY)
    with caplog.at_level(logging.ERROR, logger="governor.engine"):
        for i in range(10):
            call(gov, f"r{i}")
    assert gov._runs.forgotten == 10 - 2 - 3
    assert len(gov._runs) == 5
    assert any("forgotten" in r.getMessage() for r in caplog.records)
