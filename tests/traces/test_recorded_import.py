"""The governor's own governor-trace/v1 files, written by a real Governor with record_to=, read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from governor.engine.governor import Governor
from governor.ledger.memory import MemoryLedger
from governor.policy.loader import load_policy_text
from governor.traces import load_traces

POLICY = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: rec}
stop:
  - {id: two-calls, type: max_calls, max: 2}
routes:
  - {id: cheap, match: {task: classify}, to: gpt-4o-mini}
"""


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    path = tmp_path / "calls.jsonl"
    now = [1_760_000_000.0]
    gov = Governor(load_policy_text(POLICY), ledger=MemoryLedger(), clock=lambda: now[0], record_to=path)
    for i in range(3):  # the third call of r1 is blocked: a check line without a record
        now[0] += 1
        d = gov.check(
            model="gpt-4o",
            input_tokens=100 + i,
            max_tokens=50,
            metadata={"run_id": "r1", "task": "classify", "user": "u1"},
        )
        if not d.blocked:
            now[0] += 0.5
            gov.record(
                d,
                input_tokens=100 + i,
                output_tokens=10,
                cache_read_tokens=20,
                error="Timeout: slow" if i == 1 else None,
            )
    d = gov.check(model="gpt-4o", input_tokens=500, max_tokens=50, metadata={"run_id": "r2"})
    gov.record(d, input_tokens=500, output_tokens=40)
    gov.record_outcome("r1", "accepted")
    gov.close()
    return path


def test_records_read_back_as_calls_runs_and_outcomes(recorded: Path) -> None:
    ts = load_traces([recorded])
    assert ts.formats[str(recorded)] == "governor"
    runs = {r.run_id: r for r in ts.runs}
    assert sorted(runs) == ["r1", "r2"]
    r1 = runs["r1"]
    assert r1.outcome == "accepted" and runs["r2"].outcome is None
    assert [c.model for c in r1.calls] == ["gpt-4o", "gpt-4o"]  # the requested model, not the routed one
    assert [c.input_tokens for c in r1.calls] == [100, 101]
    assert [c.cache_read_tokens for c in r1.calls] == [20, 20]
    assert r1.calls[1].error == "Timeout: slow"
    assert r1.calls[0].timestamp == pytest.approx(1_760_000_001.0)  # check time, not settle time
    assert r1.calls[0].metadata["task"] == "classify" and r1.calls[0].max_tokens == 50
    assert all(c.cost_usd is not None and c.cost_usd > 0 for c in r1.calls)
    assert any("no record line" in n for n in ts.notes)  # the blocked check is reported, not dropped


def test_replaying_a_recording_under_its_own_policy_reproduces_it(recorded: Path, tmp_path: Path) -> None:
    from governor.cli import main

    policy = tmp_path / "rec.yaml"
    policy.write_text(POLICY)
    out = tmp_path / "r.json"
    assert main(["replay", str(policy), str(recorded), "--format", "json", "-o", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["totals"]["calls"] == 3
    assert rep["totals"]["calls_rerouted"] == 2  # classify -> gpt-4o-mini again
    recorded_cost = sum(
        json.loads(l)["cost_usd"] for l in recorded.read_text().splitlines() if json.loads(l).get("event") == "record"
    )
    assert rep["totals"]["cost_usd_recorded"] == pytest.approx(recorded_cost, abs=1e-12)
    assert rep["totals"]["cost_usd_governed"] == pytest.approx(recorded_cost, abs=1e-12)
    assert rep["notes"]


def test_a_malformed_record_line_is_reported(recorded: Path, tmp_path: Path) -> None:
    lines = recorded.read_text().splitlines()
    idx = next(i for i, l in enumerate(lines) if json.loads(l).get("event") == "record")
    rec = json.loads(lines[idx])
    rec["output_tokens"] = -3
    lines[idx] = json.dumps(rec)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    ts = load_traces([bad])
    (issue,) = ts.issues
    assert issue.line == idx + 1 and "output_tokens" in issue.message
