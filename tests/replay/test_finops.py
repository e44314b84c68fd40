"""The FinOps sections of the report on the real tau2 traces: every call and run counted, bounded at any size."""

from __future__ import annotations

from pathlib import Path

import pytest

from governor.policy.loader import load_policy
from governor.replay import finops as fin
from governor.replay.engine import Replayer
from governor.replay.report import build_report
from governor.traces import load_traces

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def replayed(tau2_dir: Path):  # type: ignore[no-untyped-def]
    policy = load_policy(str(REPO / "policies" / "tau2-airline.yaml"))
    result = Replayer(policy).replay(load_traces([tau2_dir]))
    return result, build_report(result, policy)


def test_spend_over_time_and_by_owner_add_up_to_the_totals(replayed) -> None:  # type: ignore[no-untyped-def]
    result, report = replayed
    t, f = report["totals"], report["finops"]
    periods = f["spend_over_time"]["periods"]
    assert sum(p["calls"] for p in periods) == t["calls"]
    for key in ("cost_usd_recorded", "cost_usd_baseline", "cost_usd_governed"):
        assert sum(p[key] for p in periods) == pytest.approx(t[key], abs=1e-6)
    for d in f["by"].values():
        rows = d["rows"] + ([d["other"]] if d["other"] else [])
        assert sum(r["calls"] for r in rows) == t["calls"]
        assert sum(r["cost_usd_baseline"] for r in rows) == pytest.approx(t["cost_usd_baseline"], abs=1e-6)
    assert sum(r["saved_usd"] for r in f["savings_by_rule"]) == pytest.approx(t["savings_usd"], abs=1e-6)


def test_stopped_runs_accepted_first_and_cost_per_accepted_over_time(replayed) -> None:  # type: ignore[no-untyped-def]
    result, report = replayed
    f = report["finops"]
    stopped = f["stopped_runs"]
    assert stopped["total"] == report["totals"]["runs_stopped"]
    outcomes = [r["outcome"] for r in stopped["runs"]]
    assert outcomes == sorted(outcomes, key=lambda o: o != "accepted") and "accepted" in outcomes
    periods = f["cost_per_accepted_over_time"]["periods"]
    assert sum(p["runs"] for p in periods) == report["totals"]["runs"]
    assert sum(p["accepted"] for p in periods) == report["outcomes"]["accepted"]


def test_bounded_whatever_the_number_of_values(replayed, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    result, _ = replayed
    monkeypatch.setattr(fin, "TOP", 3)
    d = fin.by_dimension(result, "model", top=3)
    assert d is not None and len(d["rows"]) == 3 and d["other"]["value"] == f"other ({d['values'] - 3} values)"
    low = fin.low_acceptance_high_spend(result, top=3)
    assert len(low["rows"]) == 3 and low["groups"] > 3
    assert fin.stopped_runs(result, limit=2)["shown"] == 2
    assert fin.granularity(0, 10 * 86400) == "day" and fin.granularity(0, 200 * 86400) == "week"
    assert fin.granularity(0, 900 * 86400) == "month"
    assert fin.period_of(1764806400.0, "week") == "2025-12-01"  # a Thursday's week starts on Monday
