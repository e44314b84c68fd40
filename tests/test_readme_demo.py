"""The README's main job: replay the shipped demo trace against the shipped policy.

The demo trace is recorded by the project itself (examples/record_demo_trace.py,
real litellm with mock responses). These tests run the README command through
the real console script, and re-record the trace to show the recorder still
produces the same traffic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

DEMO_TRACE = REPO_ROOT / "examples" / "traces" / "coding-agent-demo.jsonl"
POLICY = REPO_ROOT / "policies" / "coding-agent.yaml"
GOVERNOR = Path(sys.executable).with_name("governor")


def _replay(trace: Path) -> dict:
    out = subprocess.run(
        [str(GOVERNOR), "replay", str(POLICY), str(trace), "--format", "json", "--no-progress"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _record_lines(trace: Path) -> list[dict]:
    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    return [rec for rec in lines if rec.get("event") == "record"]


def test_readme_demo_replay_shows_what_the_policy_changes() -> None:
    report = _replay(DEMO_TRACE)
    records = _record_lines(DEMO_TRACE)
    totals = report["totals"]
    assert report["policy"]["name"] == "coding-agent"
    assert totals["runs"] == 12
    assert totals["calls"] == len(records)
    assert totals["input_tokens"] == sum(r["input_tokens"] for r in records)
    assert abs(totals["cost_usd_recorded"] - sum(r["cost_usd"] or 0.0 for r in records)) < 1e-6
    # the traffic was recorded with the same policy in audit mode, at the same prices
    assert abs(totals["cost_usd_baseline"] - totals["cost_usd_recorded"]) < 1e-6
    # what the demo is for: the enforced policy changes the agent's traffic and saves money
    fired = {r["id"]: r["fired"] for r in report["rules"]}
    stopped = {r["run_id"]: r["stop_rule"] for r in report["runs"] if r["stopped_at_call"] is not None}
    # the two looping runs are stopped by the repeated-call condition...
    assert stopped.get("demo-run-04") == "edit-loop" and stopped.get("demo-run-09") == "edit-loop"
    # ...and runs with all-distinct prompts are not mistaken for loops
    assert "demo-run-00" not in stopped and "demo-run-07" not in stopped
    # every run that was not stopped sends its closing summary to the cheap model
    assert fired["housekeeping-cheap"] == 12 - len(stopped)
    # the whole-repository dump goes to the long-context model
    assert fired["whole-repo-to-long-context"] >= 1
    assert totals["calls_rerouted"] >= fired["housekeeping-cheap"] and totals["calls_blocked"] > 0
    assert 0 < totals["cost_usd_governed"] < totals["cost_usd_baseline"]


def test_recorder_reproduces_the_shipped_demo_trace(tmp_path: Path) -> None:
    fresh = tmp_path / "demo.jsonl"
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / "record_demo_trace.py"), str(fresh)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    shipped, again = _record_lines(DEMO_TRACE), _record_lines(fresh)
    key = ("run_id", "model", "input_tokens", "output_tokens", "error", "messages_digest")
    assert [tuple(r.get(k) for k in key) for r in again] == [tuple(r.get(k) for k in key) for r in shipped]
