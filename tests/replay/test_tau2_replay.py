"""Replay on the real tau2-bench traces, checked against counts computed here by plain JSON parsing.

These checks must hold on any tau2 results file, so nothing below depends on
the particular files in ../shared: every expected number is computed from the
files themselves, independently of the importer and the replay engine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.replay.conftest import tau2_docs

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

OBSERVE = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: observe-only}
defaults: {allow_unpriced: true}
"""

CAP = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: cap-calls}
defaults: {allow_unpriced: true}
stop:
  - {id: per-run-calls, type: max_calls, max: %d}
"""

CAP_BUDGET = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: cap-calls-budget}
defaults: {allow_unpriced: true}   # else a fail_closed budget blocks every unpriced (grok) call
budgets:
  - {id: per-run-calls, scope: run, limit: {calls: %d}}
"""

PRICED_GROK = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: priced-grok}
models:
  prices:
    xai/grok-3: {input_per_mtok: 3.0, output_per_mtok: 15.0}
"""


def _inclusive_input(m: dict[str, Any]) -> int:
    """prompt_tokens, made inclusive of cache when Anthropic's raw usage shows it was exclusive."""
    prompt = m["usage"]["prompt_tokens"]
    raw = (m.get("raw_data") or {}).get("usage") or {}
    cr = raw.get("cache_read_input_tokens") or 0
    cw = raw.get("cache_creation_input_tokens") or 0
    if (cr or cw) and raw.get("input_tokens") == prompt:
        return prompt + cr + cw
    return prompt


def _calls(doc: dict[str, Any], sim: dict[str, Any]) -> list[tuple[str, int, int, float]]:
    """(model, input, output, recorded cost) of every message with usage, in message order."""
    models = {"assistant": doc["info"]["agent_info"]["llm"], "user": doc["info"]["user_info"]["llm"]}
    return [
        (models[m["role"]], _inclusive_input(m), m["usage"]["completion_tokens"], m.get("cost") or 0.0)
        for m in sim["messages"]
        if m.get("usage") is not None
    ]


def _price(model: str) -> tuple[float, float] | None:
    import litellm

    entry = litellm.model_cost.get(model)
    if entry is None or entry.get("input_cost_per_token") is None:
        return None
    return entry["input_cost_per_token"], entry["output_cost_per_token"]


@pytest.fixture(scope="module")
def docs(tau2_dir: Path) -> list[dict[str, Any]]:
    return tau2_docs(tau2_dir)


def test_totals_equal_an_independent_count(docs, tau2_dir, replay_json) -> None:  # type: ignore[no-untyped-def]
    sims = [(d, s) for d in docs for s in d["simulations"]]
    calls = [c for d, s in sims for c in _calls(d, s)]
    rep = replay_json(OBSERVE, tau2_dir)
    t = rep["totals"]
    assert t["runs"] == len(sims)
    assert t["calls"] == len(calls)
    assert t["input_tokens"] == sum(c[1] for c in calls)
    assert t["output_tokens"] == sum(c[2] for c in calls)
    assert t["cost_usd_recorded"] == pytest.approx(sum(c[3] for c in calls), abs=1e-6)
    assert t["calls_blocked"] == 0 and t["runs_stopped"] == 0 and t["skipped_records"] == 0
    # a policy that changes nothing costs exactly what was paid, call by call and run by run
    assert t["cost_usd_governed"] == t["cost_usd_recorded"]
    assert t["savings_usd"] == 0.0
    assert t["cost_basis"]["governed_sources"] == {"recorded": len(calls), "computed": 0, "unknown": 0}
    assert all(r["cost_usd_governed"] == r["cost_usd_recorded"] for r in rep["runs"])
    # per run: calls and recorded cost
    by_id = {r["run_id"]: r for r in rep["runs"]}
    for d, s in sims:
        row = by_id[s["id"]]
        mine = _calls(d, s)
        assert row["calls"] == len(mine)
        assert row["cost_usd_recorded"] == pytest.approx(sum(c[3] for c in mine), abs=1e-6)
    accepted = sum(1 for _, s in sims if (s.get("reward_info") or {}).get("reward", 0) >= 1)
    assert rep["outcomes"]["accepted"] == accepted
    assert rep["outcomes"]["rejected"] == len(sims) - accepted
    assert rep["outcomes"]["cost_per_accepted_usd_recorded"] == pytest.approx(
        sum(c[3] for c in calls) / accepted, abs=1e-6
    )


@pytest.mark.parametrize("cap, form", [(1, CAP), (6, CAP), (20, CAP), (6, CAP_BUDGET), (13, CAP_BUDGET)])
def test_per_run_call_cap_matches_independent_computation(docs, tau2_dir, replay_json, cap, form) -> None:  # type: ignore[no-untyped-def]
    rep = replay_json(form % cap, tau2_dir)
    runs = {r["run_id"]: r for r in rep["runs"]}
    stopped = blocked = 0
    governed = 0.0
    for d, s in ((d, s) for d in docs for s in d["simulations"]):
        mine = _calls(d, s)
        row = runs[s["id"]]
        if len(mine) > cap:
            stopped += 1
            blocked += len(mine) - cap
            assert row["stopped_at_call"] == cap + 1, s["id"]
            assert row["stop_rule"] == "per-run-calls"
        else:
            assert row["stopped_at_call"] is None, s["id"]
        # what was paid for the calls the cap lets through
        run_cost = sum(c[3] for c in mine[:cap])
        assert row["cost_usd_governed"] == pytest.approx(run_cost, abs=1e-9), s["id"]
        governed += run_cost
    t = rep["totals"]
    recorded = sum(c[3] for d in docs for s in d["simulations"] for c in _calls(d, s))
    assert t["runs_stopped"] == stopped
    assert t["calls_blocked"] == blocked
    assert t["cost_usd_governed"] == pytest.approx(governed, abs=1e-6)
    assert t["savings_usd"] == pytest.approx(recorded - governed, abs=1e-6)
    assert t["savings_pct"] == pytest.approx(100 * (recorded - governed) / recorded, abs=0.01)
    assert [r for r in rep["rules"] if r["id"] == "per-run-calls"][0]["fired"] == stopped


def _renamed(tau2_dir: Path, tmp_path: Path, model: str) -> tuple[Path, int]:
    """One shared tau2 file with its agent model renamed to ``model`` (written to tmp_path), and how many
    agent calls it has."""
    import gzip
    import json

    src = sorted(tau2_dir.glob("ironshell_ironforge_grok3_wave2.json.gz"))[0]
    doc = json.loads(gzip.decompress(src.read_bytes()))
    doc["info"]["agent_info"]["llm"] = model
    out = tmp_path / "renamed.json"
    out.write_text(json.dumps(doc))
    n = sum(1 for s in doc["simulations"] for m in s["messages"] if m.get("usage") and m["role"] == "assistant")
    return out, n


def test_a_recorded_call_of_an_unpriced_model_keeps_its_recorded_cost(tau2_dir, tmp_path, replay_json) -> None:  # type: ignore[no-untyped-def]
    path, n = _renamed(tau2_dir, tmp_path, "acme/house-model-7")
    rep = replay_json(OBSERVE, path)
    t = rep["totals"]
    # recorded cost stands (unchanged calls), the list price is unknown: no baseline for those calls, never $0
    assert t["cost_basis"]["compared_calls"] == t["calls"]
    assert t["cost_basis"]["baseline_calls"] == t["calls"] - n
    assert t["cost_usd_governed"] == t["cost_usd_recorded"]
    recon = {r["model"]: r for r in rep["reconciliation"]["by_model"]}
    assert recon["acme/house-model-7"]["calls_without_computed_cost"] == n
    assert recon["acme/house-model-7"]["calls"] == 0
    assert recon["acme/house-model-7"]["cause"] == "no price: the computed cost is unknown"


def test_unpriced_model_is_blocked_by_a_fail_closed_budget(tau2_dir, tmp_path, replay_json) -> None:  # type: ignore[no-untyped-def]
    policy = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: budgeted}
budgets:
  - {id: run-usd, scope: run, limit: {usd: 100}}
"""
    path, _ = _renamed(tau2_dir, tmp_path, "acme/house-model-7")
    rep = replay_json(policy, path)
    rows = {u["model"]: u for u in rep["diagnostics"]["unpriced_models"]}
    assert rows["acme/house-model-7"]["calls_governed"] > 0
    stopped = [r for r in rep["runs"] if r["stop_rule"] is not None]
    assert stopped and all(r["calls_blocked"] > 0 for r in stopped)
