"""Stats: spend, calls, blocks, errors and cost per accepted task by run, user, team, model."""

from __future__ import annotations

import threading

import pytest

from governor.decision import Decision
from governor.engine.stats import Stats
from governor.errors import GovernorError


def _d(
    run: str | None, user: str | None, team: str | None, model: str = "gpt-4o-mini", verdict: str = "allow"
) -> Decision:
    meta = {k: v for k, v in (("run_id", run), ("user", user), ("team", team)) if v is not None}
    return Decision(
        verdict=verdict,
        model=model,
        messages=(),
        max_tokens=None,
        rule_ids=(),
        reasons=(),
        revision="r1",
        estimated_cost_usd=0.01,
        decision_id="x",
        metadata=meta,
    )


def _call(stats: Stats, d: Decision, cost: float | None, *, error: bool = False, tokens=(100, 10)) -> None:
    stats.add_check(d)
    if d.verdict != "block":
        stats.add_record(d, cost_usd=cost, input_tokens=tokens[0], output_tokens=tokens[1], error=error)


def test_spend_calls_blocks_errors_by_every_dimension():
    s = Stats()
    _call(s, _d("r1", "ana", "billing"), 0.25)
    _call(s, _d("r1", "ana", "billing", model="gpt-4o"), 1.00, error=True)
    _call(s, _d("r1", "ana", "billing", verdict="block"), None)
    _call(s, _d("r2", "bo", "billing", verdict="reroute"), 0.50)
    _call(s, _d("r3", "bo", "search", verdict="trim"), None)  # unpriced
    snap = s.snapshot()
    total = snap["total"]
    assert (total["checks"], total["calls"], total["blocks"], total["errors"]) == (5, 4, 1, 1)
    assert (total["reroutes"], total["trims"], total["unpriced_calls"]) == (1, 1, 1)
    assert total["spend_usd"] == pytest.approx(1.75)
    assert (total["input_tokens"], total["output_tokens"]) == (400, 40)
    assert snap["by_run"]["r1"]["spend_usd"] == pytest.approx(1.25)
    assert (snap["by_run"]["r1"]["calls"], snap["by_run"]["r1"]["blocks"], snap["by_run"]["r1"]["errors"]) == (2, 1, 1)
    assert snap["by_user"]["bo"]["spend_usd"] == pytest.approx(0.5) and snap["by_user"]["bo"]["unpriced_calls"] == 1
    assert snap["by_team"]["billing"]["spend_usd"] == pytest.approx(1.75)
    assert snap["by_team"]["search"]["calls"] == 1
    assert snap["by_model"]["gpt-4o"]["spend_usd"] == pytest.approx(1.0)
    assert snap["by_model"]["gpt-4o-mini"]["calls"] == 3
    assert "cost_per_accepted_task" not in snap["by_model"]["gpt-4o"]


def test_cost_per_accepted_task_counts_all_spend_over_accepted_runs():
    s = Stats()
    _call(s, _d("r1", "ana", "t"), 1.0)
    _call(s, _d("r2", "ana", "t"), 2.0)
    _call(s, _d("r3", "bo", "t"), 3.0)
    _call(s, _d("r4", "bo", "t"), 4.0)
    s.add_outcome("r1", "accepted")
    s.add_outcome("r2", "rejected")
    s.add_outcome("r3", "accepted")
    s.add_outcome("r4", "escalated")
    snap = s.snapshot()
    assert snap["total"]["outcomes"] == {"accepted": 2, "rejected": 1, "escalated": 1}
    assert snap["total"]["cost_per_accepted_task"] == pytest.approx(10.0 / 2)
    assert snap["by_user"]["ana"]["cost_per_accepted_task"] == pytest.approx(3.0 / 1)
    assert snap["by_user"]["bo"]["cost_per_accepted_task"] == pytest.approx(7.0 / 1)
    assert snap["by_team"]["t"]["cost_per_accepted_task"] == pytest.approx(5.0)
    assert snap["by_run"]["r2"]["outcome"] == "rejected"
    assert snap["by_run"]["r2"]["cost_per_accepted_task"] is None
    assert snap["by_run"]["r1"]["cost_per_accepted_task"] == pytest.approx(1.0)


def test_a_later_outcome_replaces_the_earlier_one():
    s = Stats()
    _call(s, _d("r1", "ana", None), 2.0)
    s.add_outcome("r1", "rejected")
    assert s.snapshot()["total"]["cost_per_accepted_task"] is None
    s.add_outcome("r1", "accepted")
    snap = s.snapshot()
    assert snap["total"]["outcomes"] == {"accepted": 1}
    assert snap["by_user"]["ana"]["outcomes"] == {"accepted": 1}
    assert snap["total"]["cost_per_accepted_task"] == pytest.approx(2.0)


def test_unknown_outcome_is_an_error():
    with pytest.raises(GovernorError, match="unknown outcome"):
        Stats().add_outcome("r1", "great")


def test_snapshot_is_a_detached_copy():
    s = Stats()
    _call(s, _d("r1", None, None), 1.0)
    snap = s.snapshot()
    _call(s, _d("r1", None, None), 1.0)
    assert snap["total"]["calls"] == 1 and s.snapshot()["total"]["calls"] == 2


def test_runs_are_bounded_but_totals_stay_exact():
    s = Stats(max_cells=10, max_runs=10)
    for i in range(50):
        _call(s, _d(f"r{i}", "ana", "t"), 0.5)
        s.add_outcome(f"r{i}", "accepted" if i % 2 else "rejected")
    snap = s.snapshot()
    assert len(snap["by_run"]) <= 10
    assert snap["total"]["calls"] == 50 and snap["by_user"]["ana"]["spend_usd"] == pytest.approx(25.0)
    assert snap["by_model"]["gpt-4o-mini"]["calls"] == 50
    # outcomes of evicted runs still count for their user and team
    assert snap["by_user"]["ana"]["outcomes"] == {"accepted": 25, "rejected": 25}
    assert snap["by_team"]["t"]["cost_per_accepted_task"] == pytest.approx(25.0 / 25)


def test_a_record_after_its_cell_was_evicted_still_counts():
    """A record goes to its check's cell; if the cell was folded away in between, the record goes
    where the cell went, so totals by user, team and model stay exact."""
    s = Stats(max_cells=3)
    first = _d("r0", "ana", "t")
    s.add_check(first)
    for i in range(1, 6):  # five more runs: r0's cell is folded into (model, no run, ana, t)
        _call(s, _d(f"r{i}", "ana", "t"), 1.0)
    s.snapshot()  # folds the buffered events: r0's cell is gone before its record arrives
    s.add_record(first, cost_usd=2.5, input_tokens=100, output_tokens=10)
    snap = s.snapshot()
    assert snap["total"]["calls"] == 6 and snap["total"]["spend_usd"] == pytest.approx(7.5)
    assert snap["by_user"]["ana"]["spend_usd"] == pytest.approx(7.5) and snap["by_team"]["t"]["checks"] == 6


def test_concurrent_adds_lose_nothing():
    s = Stats()

    def worker(t: int) -> None:
        for _ in range(500):
            _call(s, _d(f"r{t}", f"u{t % 4}", "team"), 0.001)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = s.snapshot()
    assert snap["total"]["calls"] == 32 * 500 and snap["total"]["checks"] == 32 * 500
    assert snap["by_team"]["team"]["spend_usd"] == pytest.approx(32 * 500 * 0.001)
    assert sum(u["calls"] for u in snap["by_user"].values()) == 32 * 500
