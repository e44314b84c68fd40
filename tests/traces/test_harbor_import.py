"""Harbor trial directories and ATIF, on trials laid out by Harbor's own code (tests/data/harbor/generate.py).

The agent in them is the real Claude Code CLI; agent/trajectory.json is
Harbor's own conversion; upstream.jsonl is the scripted upstream's log of the
calls it served, the independent count compared with here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from governor.traces import load_traces

DATA = Path(__file__).resolve().parent.parent / "data" / "harbor"
TRIALS = DATA / "trials"


def served() -> list[dict[str, Any]]:
    return [json.loads(x) for x in (DATA / "upstream.jsonl").read_text().splitlines() if x.strip()]


def sessions() -> dict[str, str]:
    """trial name -> Claude Code session id (from the stream-json stdout Harbor keeps)."""
    out = {}
    for trial in TRIALS.iterdir():
        first = json.loads((trial / "agent" / "claude-code.txt").read_text().splitlines()[0])
        out[trial.name] = first["session_id"]
    return out


def test_each_trial_is_one_run_with_each_call_once() -> None:
    ts = load_traces([TRIALS])
    assert not ts.issues and set(ts.formats.values()) == {"harbor"}
    assert sorted(r.run_id for r in ts.runs) == sorted(p.name for p in TRIALS.iterdir())
    by_session: dict[str, list[dict[str, Any]]] = {}
    for s in served():
        by_session.setdefault(s["session"], []).append(s)
    for run in ts.runs:
        want = by_session[sessions()[run.run_id]]
        assert len(run.calls) == len(want)  # not 2x or 3x: session log, trajectory and stdout hold them all
        for c, s in zip(run.calls, want, strict=True):
            u = s["usage"]
            assert c.input_tokens == u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
            assert c.cache_read_tokens == u["cache_read_input_tokens"]
            assert c.cache_write_tokens == u["cache_creation_input_tokens"]
            assert c.cache_write_1h_tokens == u["cache_creation"]["ephemeral_1h_input_tokens"]
            assert c.output_tokens == u["output_tokens"]
            assert c.model == s["model"]
            assert c.cost_usd is None  # Harbor's per-step cost is its litellm estimate, not a recorded cost


def test_outcome_recorded_cost_agent_and_model_from_the_trial() -> None:
    ts = load_traces([TRIALS])
    for run in ts.runs:
        result = json.loads((TRIALS / run.run_id / "result.json").read_text())
        reward = result["verifier_result"]["rewards"]["reward"]
        assert run.outcome == ("accepted" if reward >= 1 else "rejected")
        stdout = [json.loads(x) for x in (TRIALS / run.run_id / "agent" / "claude-code.txt").read_text().splitlines()]
        total = next(e["total_cost_usd"] for e in stdout if e.get("type") == "result")
        assert run.metadata["cost_usd_recorded"] == result["agent_result"]["cost_usd"] == total
        assert run.metadata["agent"] == "claude-code" and run.metadata["task"] == "hello-world"
        assert all(c.metadata["trial"] == run.run_id for c in run.calls)
    assert {r.outcome for r in ts.runs} == {"accepted", "rejected"}


def test_subagent_calls_belong_to_the_trial() -> None:
    ts = load_traces([TRIALS])
    rejected = next(r for r in ts.runs if r.outcome == "rejected")
    subs = [c for c in rejected.calls if c.metadata.get("subagent")]
    assert len(subs) == 1


def test_without_a_trajectory_the_agent_logs_give_the_same_calls(tmp_path: Path) -> None:
    shutil.copytree(TRIALS, tmp_path / "trials")
    for trial in (tmp_path / "trials").iterdir():
        (trial / "agent" / "trajectory.json").unlink()
    key = lambda ts: sorted(
        (r.run_id, r.outcome, c.input_tokens, c.output_tokens)
        for r in ts.runs  # noqa: E731
        for c in r.calls
    )
    assert key(load_traces([tmp_path / "trials"])) == key(load_traces([TRIALS]))


def test_a_trajectory_on_its_own_is_atif(tmp_path: Path) -> None:
    src = TRIALS / "hello-world__rejected" / "agent" / "trajectory.json"
    ts = load_traces([src])  # inside its trial directory: read as the trial
    assert set(ts.formats.values()) == {"atif"}
    alone = tmp_path / "trajectory.json"
    shutil.copy(src, alone)
    doc = json.loads(alone.read_text())
    ts = load_traces([alone])
    assert ts.formats == {str(alone): "atif"}
    assert ts.runs[0].run_id == doc["session_id"] and ts.runs[0].outcome is None
    agent_steps = [s for s in doc["steps"] if s["source"] == "agent" and s.get("metrics")]
    assert ts.calls == len(agent_steps)


def test_copied_context_dispatch_steps_and_bad_metrics(tmp_path: Path) -> None:
    doc = json.loads((TRIALS / "hello-world__rejected" / "agent" / "trajectory.json").read_text())
    agent_at = [i for i, s in enumerate(doc["steps"]) if s["source"] == "agent" and s.get("metrics")]
    doc["steps"][agent_at[0]]["is_copied_context"] = True  # copied from an earlier trajectory: not a new call
    doc["steps"][agent_at[1]]["metrics"]["completion_tokens"] = "lots"
    dispatch = dict(doc["steps"][agent_at[2]], llm_call_count=0)
    dispatch.pop("metrics")
    doc["steps"].append(dispatch)
    path = tmp_path / "trajectory.json"
    path.write_text(json.dumps(doc))
    ts = load_traces([path])
    assert ts.calls == len(agent_at) - 2
    assert [(i.where, "completion_tokens" in i.message) for i in ts.issues] == [(f"steps[{agent_at[1]}]", True)]


def test_a_trials_reported_cost_is_the_reports_recorded_cost(tmp_path: Path) -> None:
    from governor.cli import main

    policy = tmp_path / "p.yaml"
    policy.write_text("apiVersion: governor/v1\nkind: Policy\nmetadata:\n  name: observe\n")
    out = tmp_path / "r.json"
    assert main(["replay", str(policy), str(TRIALS), "--format", "json", "-o", str(out), "--no-progress"]) == 0
    report = json.loads(out.read_text())
    reported = {
        p.name: json.loads((p / "result.json").read_text())["agent_result"]["cost_usd"] for p in TRIALS.iterdir()
    }
    assert {r["run_id"]: r["cost_usd_recorded"] for r in report["runs"]} == pytest.approx(reported)
    assert report["totals"]["cost_usd_recorded"] == pytest.approx(sum(reported.values()))
    periods = report["finops"]["spend_over_time"]["periods"]
    assert sum(p["cost_usd_recorded"] for p in periods) == pytest.approx(sum(reported.values()))
