"""``governor reconcile`` and the report's reconciliation section: computed vs recorded cost, drift flagged
with its likely cause."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.replay.conftest import run_cli

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def _reconcile(tmp_path: Path, *args: str) -> tuple[int, dict]:
    out = tmp_path / "recon.json"
    code = run_cli("reconcile", *args, "--format", "json", "-o", str(out))
    return code, json.loads(out.read_text())


def test_reconcile_matches_the_report_and_flags_drift(tau2_dir: Path, tmp_path: Path, replay_json) -> None:  # type: ignore[no-untyped-def]
    code, recon = _reconcile(tmp_path, str(tau2_dir))
    assert code == 0
    observe = "apiVersion: governor/v1\nkind: Policy\nmetadata: {name: o}\ndefaults: {allow_unpriced: true}\n"
    report = replay_json(observe, tau2_dir)
    assert recon["by_model"] == report["reconciliation"]["by_model"]
    rows = {r["model"]: r for r in recon["by_model"]}
    assert not rows["claude-sonnet-4-5"]["flagged"]  # raw usage: the table reproduces the bill
    assert rows["gpt-5.4"]["flagged"] and "no cache split" in rows["gpt-5.4"]["cause"]
    code, _ = _reconcile(tmp_path, str(tau2_dir), "--fail-on-drift")
    assert code == 1
    code, _ = _reconcile(
        tmp_path, str(tau2_dir / "claude-sonnet-4-5_airline_default_gpt4.1_1trials.json.gz"), "--fail-on-drift"
    )
    assert code == 1  # its user simulator (gpt-4.1) has no cache split
    text_out = tmp_path / "recon.txt"
    assert run_cli("reconcile", str(tau2_dir), "-o", str(text_out)) == 0
    assert "DRIFT" in text_out.read_text() and "consistent with about" in text_out.read_text()


def test_a_ratio_that_moves_between_days_is_read_as_a_price_change() -> None:
    from governor.policy.loader import load_policy_text
    from governor.pricing import PriceTable
    from governor.replay.engine import Replayer
    from governor.replay.reconcile import reconcile
    from governor.traces.model import TraceCall, TraceRun, TraceSet

    table = PriceTable()
    day = 86_400.0

    def call(i: int, at: float, paid_share: float) -> TraceCall:
        cost = table.cost("gpt-4.1", 10_000, 500, 4_000)
        assert cost is not None
        return TraceCall(
            call_id=f"c{i}",
            file="f",
            line=i + 1,
            run_id="r",
            index=i,
            timestamp=at,
            model="gpt-4.1",
            input_tokens=10_000,
            output_tokens=500,
            cache_read_tokens=4_000,
            cost_usd=cost * paid_share,
            metadata={"run_id": "r"},
        )

    calls = tuple(call(i, 1.75e9 + (i // 3) * day, 1.0 if i < 3 else 0.5) for i in range(6))
    policy = load_policy_text("apiVersion: governor/v1\nkind: Policy\nmetadata: {name: o}\n")
    replayer = Replayer(policy)
    recon = reconcile(replayer.replay(TraceSet((TraceRun("r", calls),))), replayer.prices)
    (row,) = recon["by_model"]
    assert row["flagged"] and row["computed_over_recorded"] == pytest.approx(4 / 3, rel=1e-3)
    assert "price change" in row["cause"]
    days = recon["by_model_day"]
    assert [d["flagged"] for d in days] == [False, True]
