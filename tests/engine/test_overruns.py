"""Overruns are events: a call that used more than its check reserved is logged, counted, written and
visible in replay, and a policy can stop the run after one (``run_overruns``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from governor import Governor
from governor.policy.loader import load_policy_text
from governor.replay.engine import Replayer
from governor.replay.report import build_report
from governor.traces import load_traces
from tests.engine.conftest import HEADER, MSGS, Clock

POLICY = (
    HEADER
    + """
budgets:
  - {id: tiny, scope: team, limit: {usd: 0.02}}
"""
)


def test_an_actual_above_its_reservation_is_logged_counted_and_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The finding: one call settled $0.50 on a $0.02 budget with no warning."""
    trace = tmp_path / "t.jsonl"
    gov = Governor(load_policy_text(POLICY, "p.yaml"), clock=Clock(), record_to=trace, observers=False)
    d = gov.check(model="gpt-4o", messages=MSGS, max_tokens=10, metadata={"team": "a"})
    assert d.allowed and d.estimated_cost_usd < 0.02
    with caplog.at_level(logging.WARNING, logger="governor.engine"):
        cost = gov.record(d, input_tokens=d.input_tokens, output_tokens=50_000)
    assert cost is not None and cost > 0.4
    (message,) = [r.getMessage() for r in caplog.records if "overran its reservation" in r.getMessage()]
    assert d.decision_id in message and f"+${cost - d.estimated_cost_usd:.6f}" in message
    total = gov.stats()["total"]
    assert total["overruns"] == 1
    assert total["overrun_usd"] == pytest.approx(cost - d.estimated_cost_usd)
    within = gov.check(model="gpt-4o", messages=MSGS, max_tokens=10, metadata={"team": "b"})
    gov.record(within, input_tokens=within.input_tokens, output_tokens=10)  # at the reservation: no overrun
    assert gov.stats()["total"]["overruns"] == 1
    gov.close()
    records = [json.loads(line) for line in trace.read_text().splitlines() if '"record"' in line]
    assert records[0]["overrun"] == {"usd": pytest.approx(cost - d.estimated_cost_usd), "tokens": 50_000 - 10}
    assert "overrun" not in records[1]


def test_a_policy_can_stop_the_run_after_an_overrun() -> None:
    gov = Governor(
        load_policy_text(
            HEADER
            + """
budgets:
  - {id: no-more-after-overrun, scope: run, match: {run_overruns: {gte: 1}}, limit: {calls: 0}}
  - {id: team, scope: team, limit: {usd: 10}}
""",
            "p.yaml",
        ),
        clock=Clock(),
        observers=False,
    )
    d = gov.check(model="gpt-4o", messages=MSGS, max_tokens=10, metadata={"run_id": "r1", "team": "a"})
    gov.record(d, input_tokens=d.input_tokens, output_tokens=5_000)
    after = gov.check(model="gpt-4o", messages=MSGS, max_tokens=10, metadata={"run_id": "r1", "team": "a"})
    assert after.blocked and after.blocked_by == "no-more-after-overrun"
    other = gov.check(model="gpt-4o", messages=MSGS, max_tokens=10, metadata={"run_id": "r2", "team": "a"})
    assert other.allowed


def test_replay_shows_the_overruns_of_recorded_calls(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    gov = Governor(
        load_policy_text(HEADER + "budgets:\n  - {id: team, scope: team, limit: {usd: 100}}\n", "p.yaml"),
        clock=Clock(),
        record_to=trace,
        observers=False,
    )
    for out in (100, 5_000):  # no max_tokens: the check reserves defaults.output_tokens (1024)
        d = gov.check(model="gpt-4o", messages=MSGS, metadata={"team": "a", "run_id": "r"})
        gov.record(d, input_tokens=d.input_tokens, output_tokens=out)
    gov.close()
    policy = load_policy_text(HEADER + "budgets:\n  - {id: team, scope: team, limit: {usd: 100}}\n", "p.yaml")
    result = Replayer(policy).replay(load_traces([trace]))
    overran = [c for r in result.runs for c in r.calls if c.overrun is not None]
    assert [c.call.output_tokens for c in overran] == [5_000]
    assert overran[0].overrun.tokens == 5_000 - 1024
    totals = build_report(result, policy)["totals"]
    assert totals["calls_overran"] == 1 and totals["overrun_usd"] > 0
