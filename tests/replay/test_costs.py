"""Replay costs stand on what was paid, on the shared tau2 traces; every expected figure is computed here
from the files and litellm's table entries, independently of the importer and the replay engine."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.replay.conftest import run_cli, tau2_docs

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

OBSERVE = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: observe-only}
defaults: {allow_unpriced: true}
"""

REROUTE = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: reroute}
defaults: {allow_unpriced: true}
routes:
  - {id: agent-to-mini, match: {model: gpt-5.4}, to: gpt-4.1-mini}
"""

TO_UNPRICED = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: to-unpriced}
defaults: {allow_unpriced: true}
routes:
  - {id: to-house, match: {model: deepseek/deepseek-chat}, to: acme/house-model-7}
"""


def _entry(model: str) -> dict[str, Any]:
    import litellm

    return litellm.model_cost[model]


def test_repriced_within_1pct_of_recorded_where_raw_usage_exists(tau2_dir: Path, replay_json) -> None:  # type: ignore[no-untyped-def]
    # calls whose raw provider usage the trace kept: the price table must reproduce what they cost
    raw_calls: dict[str, list[float]] = {}
    for doc in tau2_docs(tau2_dir):
        for sim in doc["simulations"]:
            for m in sim["messages"]:
                raw = (m.get("raw_data") or {}).get("usage") if isinstance(m.get("raw_data"), dict) else None
                if m.get("usage") and raw and m.get("cost") is not None:
                    raw_calls.setdefault(doc["info"]["agent_info"]["llm"], []).append(m["cost"])
    assert raw_calls, "the shared traces are expected to carry raw provider usage for some calls"
    rep = replay_json(OBSERVE, tau2_dir)
    recon = {r["model"]: r for r in rep["reconciliation"]["by_model"]}
    for model, costs in raw_calls.items():
        row = recon[model]
        assert row["calls"] == len(costs)
        assert row["cost_usd_recorded"] == pytest.approx(sum(costs), abs=1e-6)
        assert abs(row["cost_usd_computed"] / row["cost_usd_recorded"] - 1) <= 0.01, row
        assert not row["flagged"]
    for d in rep["reconciliation"]["by_model_day"]:
        if d["model"] in raw_calls:
            assert not d["flagged"], d


def test_a_rerouted_call_costs_its_recorded_cost_scaled_by_the_computed_ratio(tau2_dir: Path, replay_json) -> None:  # type: ignore[no-untyped-def]
    old, new = _entry("gpt-5.4"), _entry("gpt-4.1-mini")
    expected_gov = 0.0
    recorded = 0.0
    n = 0
    for doc in tau2_docs(tau2_dir):
        models = {"assistant": doc["info"]["agent_info"]["llm"], "user": doc["info"]["user_info"]["llm"]}
        for sim in doc["simulations"]:
            for m in sim["messages"]:
                if m.get("usage") is None:
                    continue
                cost = m.get("cost") or 0.0
                recorded += cost
                if models[m["role"]] == "gpt-5.4":
                    inp, out = m["usage"]["prompt_tokens"], m["usage"]["completion_tokens"]
                    ratio = (inp * new["input_cost_per_token"] + out * new["output_cost_per_token"]) / (
                        inp * old["input_cost_per_token"] + out * old["output_cost_per_token"]
                    )
                    expected_gov += cost * ratio
                    n += 1
                else:
                    expected_gov += cost
    assert n
    rep = replay_json(REROUTE, tau2_dir)
    t = rep["totals"]
    assert t["calls_rerouted"] == n
    assert t["cost_usd_recorded"] == pytest.approx(recorded, abs=1e-6)
    assert t["cost_usd_governed"] == pytest.approx(expected_gov, abs=1e-6)
    assert t["savings_usd"] == pytest.approx(recorded - expected_gov, abs=1e-6)
    assert t["cost_basis"]["governed_sources"]["recorded"] == t["calls"]  # scaled from what was paid


def _report(tmp_path: Path, policy: str, traces: list[str], fmt: str, *extra: str) -> tuple[int, str]:
    pol = tmp_path / "p.yaml"
    pol.write_text(policy)
    out = tmp_path / f"r.{fmt}"
    code = run_cli("replay", str(pol), "--traces", *traces, "--format", fmt, "-o", str(out), "--no-progress", *extra)
    return code, out.read_text() if out.exists() else ""


def test_an_unpriced_model_is_unpriced_in_every_output_format(tau2_dir: Path, tmp_path: Path) -> None:
    files = [str(tau2_dir / "ironshell_ironforge_v3_deepseek.json.gz")]
    code, text = _report(tmp_path, TO_UNPRICED, files, "json", "--html", str(tmp_path / "r.html"))
    assert code == 0
    rep = json.loads(text)
    n = rep["totals"]["calls_rerouted"]
    assert n > 0
    unpriced = {u["model"]: u for u in rep["unpriced"]}
    assert unpriced["acme/house-model-7"]["calls"] == n and unpriced["acme/house-model-7"]["governed_side"] == n
    t = rep["totals"]
    assert t["unpriced_calls"] == n and t["cost_basis"]["excluded_calls"] == n
    assert t["cost_basis"]["governed_sources"]["unknown"] == n
    # the compared totals cover the same calls: the priced ones, unchanged, so governed == recorded
    assert t["cost_usd_governed"] == t["cost_usd_recorded"]
    runs = [r for r in rep["runs"] if r["calls_rerouted"]]
    assert runs and all(r["cost_usd_governed"] is None and r["unpriced_calls"] for r in runs)
    html = (tmp_path / "r.html").read_text()
    for fmt in ("text", "markdown"):
        _, out = _report(tmp_path, TO_UNPRICED, files, fmt)
        assert "unpriced" in out and "acme/house-model-7" in out and "n/a" not in out
        # no cost of the rerouted calls, their runs or their model reads as $0 (savings of $0 are real)
        for line in out.splitlines():
            names = ("acme/house-model-7", "deepseek/deepseek-chat", *(r["run_id"] for r in runs))
            if any(name in line for name in names):
                assert "$0.0000" not in line, line
    assert "unpriced" in html and "acme/house-model-7" in html


def test_a_tau2_file_without_info_takes_the_model_from_raw_data(tau2_dir: Path, tmp_path: Path) -> None:
    from governor.traces import load_traces

    doc = json.loads(
        gzip.decompress((tau2_dir / "claude-sonnet-4-5_airline_default_gpt4.1_1trials.json.gz").read_bytes())
    )
    doc.pop("info")
    path = tmp_path / "noinfo.json"
    path.write_text(json.dumps(doc))
    with_usage = [
        (m["role"], (m.get("raw_data") or {}).get("model"))
        for s in doc["simulations"]
        for m in s["messages"]
        if m.get("usage") is not None
    ]
    ts = load_traces([path])
    models = [c.model for r in ts.runs for c in r.calls]
    assert models == [model for _, model in with_usage if model]
    assert set(models) == {"claude-sonnet-4-5-20250929"}
    # the calls whose raw response names no model are reported, one issue each: none is dropped silently
    assert len(ts.issues) == sum(1 for _, model in with_usage if not model)
    assert all("names no model" in i.message for i in ts.issues)
    assert len(models) + len(ts.issues) == len(with_usage)


def test_a_file_that_cannot_be_parsed_is_reported_and_skipped(tau2_dir: Path, tmp_path: Path) -> None:
    good = tau2_dir / "ironshell_ironforge_v3_deepseek.json.gz"
    whole = gzip.decompress((tau2_dir / "ironshell_ironforge_grok3_wave2.json.gz").read_bytes())
    cut = tmp_path / "truncated.json"
    cut.write_bytes(whole[: len(whole) // 2])  # a file cut off mid-way, as an interrupted copy leaves it
    code, text = _report(tmp_path, OBSERVE, [str(cut), str(good)], "json")
    assert code == 1  # a report, and a non-zero exit
    rep = json.loads(text)
    good_runs = len(json.loads(gzip.decompress(good.read_bytes()))["simulations"])
    assert rep["totals"]["runs"] == good_runs
    assert [s["file"] for s in rep["skipped"]] == [str(cut)] and "skipped" in rep["skipped"][0]["message"]
    (tmp_path / "r.json").unlink()
    code, text = _report(tmp_path, OBSERVE, [str(cut), str(good)], "json", "--strict")
    assert code == 1 and text == ""  # --strict fails without a report


def test_costs_recorded_per_run_are_kept_for_unchanged_runs_and_shared_by_computed_cost() -> None:
    from governor.policy.loader import load_policy_text
    from governor.pricing import PriceTable
    from governor.replay.engine import Replayer
    from governor.traces.model import TraceCall, TraceRun, TraceSet

    def call(run: str, i: int, inp: int) -> TraceCall:
        return TraceCall(
            call_id=f"{run}#{i}",
            file="f",
            line=i + 1,
            run_id=run,
            index=i,
            timestamp=1.8e9 + i,
            model="gpt-4.1",
            input_tokens=inp,
            output_tokens=100,
            metadata={"run_id": run},
        )

    runs = (
        TraceRun("a", tuple(call("a", i, 1_000 * (i + 1)) for i in range(3)), cost_usd=0.0123),
        TraceRun("b", tuple(call("b", i, 2_000) for i in range(5)), cost_usd=0.05),
    )
    policy = load_policy_text(
        OBSERVE.replace("defaults: {allow_unpriced: true}", "stop:\n  - {id: four, type: max_calls, max: 4}")
    )
    result = Replayer(policy).replay(TraceSet(runs))
    a, b = result.runs
    assert a.cost_governed == 0.0123 and a.cost_recorded == 0.0123  # unchanged: exactly what was recorded
    assert b.cost_recorded == 0.05
    assert b.cost_governed == pytest.approx(0.05 * 4 / 5, rel=1e-12)  # four equal calls of five let through
    table = PriceTable()
    weights = [table.cost("gpt-4.1", c.input_tokens, 100) for c in runs[0].calls]
    shares = [c.cost_original for c in a.calls]
    assert shares == pytest.approx([0.0123 * w / sum(weights) for w in weights], rel=1e-12)  # type: ignore[operator]
    assert all(c.cost_original_source == "recorded" for c in (*a.calls, *b.calls))
