"""A valid policy compiles into the frozen values of governor.policy.model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from governor.ledger.windows import NO_WINDOW, Window
from governor.policy.loader import load_policy, load_policy_text, validate_policy
from governor.policy.model import Policy

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = sorted(p for p in (ROOT / "policies").glob("*.yaml") if not p.name.endswith(".test.yaml"))


@pytest.mark.parametrize("path", LIBRARY, ids=[p.name for p in LIBRARY])
def test_library_policy_is_valid_without_warnings(path: Path) -> None:
    result = validate_policy(path)
    assert result.errors == () and result.warnings == (), [str(f) for f in result.errors + result.warnings]
    assert path.read_text().startswith("# yaml-language-server: $schema=../governor/schema/policy-v1.json\n")


def test_coding_agent_compiles() -> None:
    p = load_policy(ROOT / "policies" / "coding-agent.yaml")
    assert (p.name, p.api_version, p.mode, p.on_error) == ("coding-agent", "governor/v1", "enforce", "fail_closed")
    assert (p.default_output_tokens, p.lease_s, p.allow_unpriced, p.log_content) == (4096, 600.0, False, False)
    assert [(s.id, s.type, s.max, s.within_s) for s in p.stop] == [
        ("max-calls", "max_calls", 150.0, None),
        ("retry-storm", "consecutive_errors", 4.0, None),
        ("edit-loop", "repeated_call", 3.0, 600.0),
        ("wall-time", "max_wall_time", 2700.0, None),
    ]
    route = p.routes[0]
    assert (route.to, route.to_alias, route.fallbacks) == ("claude-haiku-4-5", "cheap", ("claude-sonnet-4-5",))
    assert route.match == {"task": ["summarize", "commit-message", "classify-file"]}
    assert p.routes[1].exclude == {"tags": ["experiment"]}
    reroute, trim, window = p.context
    assert (reroute.action, reroute.to, reroute.max_input_tokens) == ("reroute", "gpt-4.1", 150000)
    assert (trim.action, trim.keep_last, trim.to) == ("trim", 12, None)
    assert (window.action, window.max_input_tokens) == ("block", None)  # "window": the model's context window
    assert (p.calls[0].max_cost_usd, p.calls[0].max_output_tokens) == (1.5, 8192)
    per_run, per_user, org = p.budgets
    assert (per_run.scope, per_run.limit_usd, per_run.limit_calls, per_run.window) == ("run", 5.0, 200, NO_WINDOW)
    assert (per_run.soft.at, per_run.soft.action, per_run.soft.to) == (0.8, "downgrade", "claude-haiku-4-5")
    assert per_user.window == Window(kind="calendar", unit="day", tz="Europe/Berlin")
    assert (per_run.on_error, org.on_error) == ("fail_closed", "fail_open")
    assert p.rule("edit-loop") is p.stop[2]
    assert (p.stop[2].source.line, p.stop[2].source.col, p.stop[2].source.pointer) == (36, 5, "/stop/2")


def test_defaults_and_mode_inheritance() -> None:
    p = load_policy_text(
        "apiVersion: governor/v1\nkind: Policy\nmetadata: {name: m}\nmode: audit\non_error: fail_open\n"
        "stop:\n  - {id: a, type: max_calls, max: 1}\n  - {id: b, type: max_calls, max: 1, mode: enforce}\n"
        "budgets:\n  - {id: c, scope: metadata.tenant, limit: {tokens: 100}, window: 90s}\n"
        "  - {id: d, scope: user, limit: {calls: 3}, window: {calendar: month}, on_error: fail_closed}\n"
    )
    assert [s.mode for s in p.stop] == ["audit", "enforce"]
    c, d = p.budgets
    assert (c.mode, c.on_error, c.scope, c.limit_tokens, c.window) == (
        "audit",
        "fail_open",
        "metadata.tenant",
        100,
        Window(kind="rolling", seconds=90.0),
    )
    assert (d.on_error, d.window) == ("fail_closed", Window(kind="calendar", unit="month", tz="UTC"))
    assert (p.ledger.type, p.default_output_tokens, p.lease_s) == ("memory", 1024, 600.0)


def test_tau2_policy_prices_grok_by_contract() -> None:
    p = load_policy(ROOT / "policies" / "tau2-airline.yaml")
    grok = p.prices["xai/grok-3"]
    assert (grok.input, grok.output, grok.source) == (3e-6, 15e-6, "policy")
    assert all(r.match == {"agent": "agent"} for r in (*p.stop, *p.context, *p.calls, *p.budgets))


def test_policy_values_are_frozen_and_private() -> None:
    text = "apiVersion: governor/v1\nkind: Policy\nmetadata: {name: f}\nroutes:\n  - {id: r, to: gpt-4o, match: {task: [a]}}\n"
    p = load_policy_text(text)
    assert isinstance(p, Policy)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        p.aliases["x"] = "y"  # type: ignore[index]
    p.document["routes"][0]["match"]["task"].append("b")
    assert p.routes[0].match == {"task": ["a"]}  # the compiled rule does not share the document's lists


def test_path_or_text_detection(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    text = "apiVersion: governor/v1\nkind: Policy\nmetadata: {name: d}\n"
    path.write_text(text)
    assert load_policy(str(path)).source_file == str(path)
    assert load_policy(path).name == load_policy(text).name == "d"
    assert load_policy(text, source="mine.yaml").source_file == "mine.yaml"
