"""``governor suggest`` on the shipped demo trace: options, errors, an audit-mode base, routes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from governor.cli import main
from tests.conftest import REPO_ROOT

DEMO = REPO_ROOT / "examples" / "traces" / "coding-agent-demo.jsonl"


def test_usage_errors_name_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["suggest", str(DEMO), "--match", "agent"]) == 2
    assert "--match 'agent': expected KEY=VALUE" in capsys.readouterr().err
    assert main(["suggest", str(DEMO), "--holdout", "1"]) == 2
    assert "--holdout must be at least 0 and below 1" in capsys.readouterr().err
    assert main(["suggest", str(DEMO), "--state", str(tmp_path / "s.yaml")]) == 2
    assert "--state is not used by suggest" in capsys.readouterr().err
    assert main(["suggest", str(tmp_path / "missing.jsonl")]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: governor/v1\nkind: Policy\nmetadata: {name: x}\nstop: [{id: a, type: nope}]\n")
    assert main(["suggest", str(DEMO), "--base", str(bad)]) == 3


def test_an_audit_base_gets_enforced_suggestions_that_do_what_was_measured(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(
        "apiVersion: governor/v1\nkind: Policy\nmetadata: {name: audit-base}\nmode: audit\n"
        "stop: [{id: many-calls, type: max_calls, max: 100}]\n",
        encoding="utf-8",
    )
    out = tmp_path / "s.yaml"
    report = tmp_path / "r.json"
    argv = ["suggest", str(DEMO), "--base", str(base), "--knob", "run-calls", "-o", str(out)]
    assert main([*argv, "--format", "json", "--report", str(report)]) == 0
    data = json.loads(report.read_text(encoding="utf-8"))
    (pick,) = data["combined"]["picks"]
    from governor.policy.loader import load_policy

    policy = load_policy(out)
    rule = next(s for s in policy.stop if s.id == "suggested-run-calls")
    assert rule.mode == "enforce" and rule.max == pick["value"]
    assert next(s for s in policy.stop if s.id == "many-calls").mode == "audit"  # the base's rules unchanged
    assert "extends: base.yaml" in out.read_text(encoding="utf-8")
    assert data["combined"]["fit"]["saved_usd"] > 0 and data["combined"]["fit"]["accepted_stopped"] == 0
    assert main(["test", str(tmp_path / "s.test.yaml")]) == 0


def test_routes_are_priced_as_an_assumption_never_as_savings(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    argv = ["suggest", str(DEMO), "--knob", "run-calls", "--route-to", "gpt-4.1-mini", "-o", str(tmp_path / "s.yaml")]
    assert main([*argv, "--format", "json", "--report", str(report)]) == 0
    data = json.loads(report.read_text(encoding="utf-8"))
    routes = data["routes"]
    assert "not a measured saving" in routes["assumption"]
    (group,) = routes["candidates"]
    assert group["key"] == "agent" and 0 < group["short_calls"] <= group["calls"]
    assert 0 < group["short_spend_usd"] <= group["spend_usd"]
    (rerouted,) = group["reroutes"]
    assert rerouted["to"] == "gpt-4.1-mini" and rerouted["calls"] == group["short_calls"]
    assert rerouted["cost_usd"] < group["short_spend_usd"]
    # the route is in no rule of the policy and in no saving of it
    text = (tmp_path / "s.yaml").read_text(encoding="utf-8")
    from governor.policy.loader import load_policy

    assert not load_policy(tmp_path / "s.yaml").routes
    assert "an assumption about outcomes, never a measured saving" in text
    (knob,) = data["knobs"]
    assert data["combined"]["fit"]["saved_usd"] == knob["pick"]["fit"]["saved_usd"]


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_text_and_markdown_reports_show_fit_and_held_out(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["suggest", str(DEMO), "--knob", "run-usd", "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "fit part" in out and "held out" in out and "Pareto frontier" in out


def test_without_a_base_runs_on_unpriced_models_keep_what_was_paid_and_the_policy_says_why(tmp_path: Path) -> None:
    from governor.suggest.build import suggest
    from governor.suggest.emit import check_policy, policy_yaml
    from governor.traces.model import TraceCall, TraceRun, TraceSet

    def run(i: int, calls: int, outcome: str) -> TraceRun:
        return TraceRun(
            run_id=f"r{i}",
            outcome=outcome,
            calls=tuple(
                TraceCall(
                    call_id=f"r{i}#{k}",
                    file="gen.jsonl",
                    line=k + 1,
                    run_id=f"r{i}",
                    index=k,
                    timestamp=100.0 * i + k,
                    model="in-house-model-7b",  # no price table knows it; the trace recorded what it cost
                    input_tokens=500,
                    output_tokens=50,
                    cost_usd=0.002,
                    metadata={"run_id": f"r{i}"},
                )
                for k in range(calls)
            ),
        )

    traces = TraceSet((run(0, 3, "accepted"), run(1, 9, "rejected"), run(2, 3, "accepted")), (), {}, ())
    s = suggest(traces, holdout=0.0, knobs=["run-calls"])
    assert s.combined.fit.base_usd == pytest.approx(s.combined.fit.paid_usd) == pytest.approx(15 * 0.002)
    (pick,) = s.combined.picks
    assert pick.candidate.value == 3 and s.combined.fit.saved_usd == pytest.approx(6 * 0.002)
    out = tmp_path / "s.yaml"
    text = policy_yaml(s, output=out, name="suggested", sources=["gen.jsonl"])
    assert check_policy(text, out).allow_unpriced and "price them under models.prices" in text
