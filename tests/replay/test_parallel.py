"""replay --jobs N: the same report from N processes when no budget couples runs; one process, and why, otherwise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from governor.cli import main
from governor.policy.loader import load_policy_text
from governor.replay.parallel import coupling_budgets, partitions
from governor.traces import load_traces

RUN_SCOPED = """apiVersion: governor/v1
kind: Policy
metadata: {name: par}
defaults: {allow_unpriced: true}
stop:
  - {id: cap, type: max_calls, max: 9}
budgets:
  - {id: per-run, scope: run, limit: {usd: 0.2}, window: none}
"""
COUPLED = RUN_SCOPED + "  - {id: org, scope: global, limit: {usd: 5.0}, window: none}\n"


def _replay(tmp_path: Path, policy: str, tau2_dir: Path, *extra: str) -> dict[str, Any]:
    path, out = tmp_path / "p.yaml", tmp_path / f"r{len(extra)}.json"
    path.write_text(policy)
    assert main(["replay", str(path), str(tau2_dir), "--no-progress", "--format", "json", "-o", str(out), *extra]) == 0
    return json.loads(out.read_text())


def test_run_scoped_policy_gives_the_same_report_in_parallel(tmp_path: Path, tau2_dir: Path) -> None:
    one = _replay(tmp_path, RUN_SCOPED, tau2_dir)
    two = _replay(tmp_path, RUN_SCOPED, tau2_dir, "--jobs", "2")
    assert one["totals"]["runs_stopped"] > 0
    for key in ("totals", "runs", "rules", "outcomes", "finops"):
        assert two[key] == one[key], key
    assert not any("--jobs" in n for n in two["notes"])


def test_a_coupling_budget_keeps_one_process_and_says_why(tmp_path: Path, tau2_dir: Path) -> None:
    assert coupling_budgets(load_policy_text(COUPLED)) == ["org"]
    assert coupling_budgets(load_policy_text(RUN_SCOPED)) == []
    rep = _replay(tmp_path, COUPLED, tau2_dir, "--jobs", "2")
    assert any("--jobs 2: replayed in one process: budget(s) org add up calls across runs" in n for n in rep["notes"])
    assert rep["totals"] == _replay(tmp_path, COUPLED, tau2_dir)["totals"]


def test_partitions_cover_every_run_once_and_balance_calls(tau2_dir: Path) -> None:
    runs = load_traces([tau2_dir]).runs
    parts = partitions(runs, 3)
    assert sorted(i for p in parts for i in p) == list(range(len(runs)))
    loads = [sum(len(runs[i].calls) for i in p) for p in parts]
    assert max(loads) - min(loads) <= max(len(r.calls) for r in runs)
