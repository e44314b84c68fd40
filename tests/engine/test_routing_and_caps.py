"""Stages 2-4: routing, context caps (block / trim / reroute / window), per-call caps; audit and off modes."""

from __future__ import annotations

import pytest

from governor import ContextTooLarge, CostCapExceeded
from governor.engine.tokens import TokenCounter
from tests.engine.conftest import MSGS, user


def test_allow_names_revision_and_no_rules(make_gov) -> None:
    gov = make_gov("routes:\n  - {id: cheap, match: {task: classify}, to: gpt-4o-mini}\n")
    d = gov.check(model="gpt-4o", messages=MSGS, input_tokens=100, metadata={"task": "reply"})
    assert d.verdict == "allow" and d.model == "gpt-4o" and d.rule_ids == ()
    assert d.revision == gov.revision and d.policy_name == "test-policy"
    assert d.decision_id and d.requested_model == "gpt-4o"


def test_first_matching_route_wins_with_aliases_and_fallbacks(make_gov) -> None:
    gov = make_gov(
        """
        models: {aliases: {cheap: gpt-4o-mini, strong: claude-sonnet-4-5}}
        routes:
          - {id: big, match: {input_tokens: {gt: 5000}}, to: strong}
          - {id: classify, match: {task: classify}, to: cheap, fallbacks: [strong]}
          - {id: never, match: {task: classify}, to: strong}
        """
    )
    d = gov.check(model="gpt-4o", messages=MSGS, input_tokens=100, metadata={"task": "classify"})
    assert (d.verdict, d.model, d.rule_ids, d.fallbacks) == (
        "reroute",
        "gpt-4o-mini",
        ("classify",),
        ("claude-sonnet-4-5",),
    )
    assert "classify" in d.reasons[0] and "gpt-4o -> gpt-4o-mini" in d.reasons[0]
    d = gov.check(model="cheap", messages=MSGS, input_tokens=9000, metadata={"task": "classify"})
    assert (d.model, d.rule_ids, d.requested_model) == ("claude-sonnet-4-5", ("big",), "gpt-4o-mini")


def test_audit_route_reports_but_never_changes_and_off_is_skipped(make_gov) -> None:
    gov = make_gov(
        """
        routes:
          - {id: shadow, mode: audit, match: {task: classify}, to: gpt-4o-mini}
          - {id: disabled, mode: "off", match: {task: classify}, to: gpt-4.1-nano}
        """
    )
    d = gov.check(model="gpt-4o", messages=MSGS, input_tokens=100, metadata={"task": "classify"})
    assert d.verdict == "allow" and d.model == "gpt-4o" and d.rule_ids == ()
    assert [(a.rule_id, a.would, a.model) for a in d.audit] == [("shadow", "reroute", "gpt-4o-mini")]


def test_policy_wide_audit_mode_changes_nothing(make_gov) -> None:
    gov = make_gov(
        """
        mode: audit
        routes: [{id: cheap, to: gpt-4o-mini}]
        context: [{id: small, max_input_tokens: 10, action: block}]
        budgets: [{id: tiny, scope: global, limit: {usd: 0.000001}}]
        """
    )
    d = gov.check(model="gpt-4o", messages=MSGS, input_tokens=1000)
    assert d.verdict == "allow" and d.model == "gpt-4o"
    assert {a.rule_id: a.would for a in d.audit} == {"cheap": "reroute", "small": "block", "tiny": "block"}


def test_context_block_raises_context_too_large(make_gov) -> None:
    gov = make_gov("context:\n  - {id: cap, match: {model: 'gpt-4o*'}, max_input_tokens: 1000, action: block}\n")
    assert gov.check(model="claude-sonnet-4-5", messages=MSGS, input_tokens=5000).verdict == "allow"
    with pytest.raises(ContextTooLarge) as err:
        gov.check_or_raise(model="gpt-4o", messages=MSGS, input_tokens=5000)
    d = err.value.decision
    assert d.block_kind == "context" and err.value.rule_ids == ("cap",)
    assert "5000 input tokens > 1000" in d.reasons[0] and "cap" in str(err.value)


def test_context_caps_check_the_routed_model(make_gov) -> None:
    gov = make_gov(
        """
        routes: [{id: to-claude, to: claude-sonnet-4-5}]
        context: [{id: claude-cap, match: {model: 'claude-*'}, max_input_tokens: 100, action: block}]
        """
    )
    d = gov.check(model="gpt-4o", messages=MSGS, input_tokens=500)
    assert d.verdict == "block" and d.rule_ids == ("to-claude", "claude-cap") and d.model == "claude-sonnet-4-5"


def test_window_cap_uses_the_models_context_window(make_gov) -> None:
    gov = make_gov("context:\n  - {id: fits, max_input_tokens: window, action: reroute, to: gpt-4.1}\n")
    # gpt-4o's window is 128k in litellm's table; gpt-4.1 has about a million
    assert gov.check(model="gpt-4o", messages=MSGS, input_tokens=100_000).verdict == "allow"
    d = gov.check(model="gpt-4o", messages=MSGS, input_tokens=200_000)
    assert (d.verdict, d.model, d.rule_ids) == ("reroute", "gpt-4.1", ("fits",))


def _history() -> list[dict]:
    return [
        {"role": "system", "content": "You are a careful coding agent."},
        user("Read the repository and fix the failing test. " * 20),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "a.py"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "def f():\n    return 1\n" * 50},
        {"role": "assistant", "content": "The bug is in f. " * 10},
        user("Now fix it please."),
    ]


def test_trim_keeps_system_and_last_n_and_never_orphans_a_tool_result(make_gov) -> None:
    gov = make_gov("context:\n  - {id: trim, max_input_tokens: 200, action: trim, keep_last: 3}\n")
    msgs = _history()
    d = gov.check(model="gpt-4o", messages=msgs)
    assert d.verdict == "trim" and d.rule_ids == ("trim",)
    # the last 3 non-system messages start with the tool result, whose call was dropped: the kept turns
    # start at the next user turn instead (never at an orphaned result, nor at an assistant turn)
    assert [m["role"] for m in d.messages] == ["system", "user"]
    assert d.messages[0] is msgs[0] and d.messages[-1] is msgs[-1]
    full = gov.check(model="gpt-4o", messages=d.messages)
    assert d.input_tokens == full.input_tokens < 200


def test_trim_without_keep_last_keeps_as_many_newest_as_fit(make_gov) -> None:
    gov = make_gov("context:\n  - {id: trim, max_input_tokens: 400, action: trim}\n")
    msgs = _history()
    before, _ = TokenCounter().count("gpt-4o", msgs)
    assert before > 400
    d = gov.check(model="gpt-4o", messages=msgs)
    assert d.verdict == "trim" and d.input_tokens <= 400 and d.messages[0]["role"] == "system"
    assert d.messages[-1] is msgs[-1]


def test_trim_keeps_the_longest_newest_suffix_that_fits_and_counts_only_what_it_drops(make_gov) -> None:
    """With the call's input tokens given (a replay), the result is those tokens minus the dropped
    messages' counts: the largest run of newest turns that fits, found without tokenizing the system
    prompt or the turns that stay."""
    gov = make_gov("context:\n  - {id: trim, max_input_tokens: 400, action: trim}\n")
    msgs = _history()
    each = TokenCounter().count_each("gpt-4o", msgs)
    given = sum(each) + 3 + 250  # the caller's count: messages, reply priming and (say) tool schemas
    d = gov.check(model="gpt-4o", messages=msgs, input_tokens=given)
    fits = next(k for k in range(1, len(msgs) + 1) if given - sum(each[1:k]) <= 400)  # oldest turns dropped first
    kept_from = next(k for k in range(fits, len(msgs)) if msgs[k]["role"] == "user")  # kept turns open with a user
    assert [m for m in d.messages] == [msgs[0]] + msgs[kept_from:]
    assert d.input_tokens == given - sum(each[1:kept_from]) <= 400
    counter = gov._tokens
    assert counter.misses == kept_from - 1  # the dropped turns only: not the system prompt, not the kept turns


def test_trim_that_cannot_fit_blocks(make_gov) -> None:
    gov = make_gov("context:\n  - {id: trim, max_input_tokens: 20, action: trim, keep_last: 1}\n")
    d = gov.check(model="gpt-4o", messages=[{"role": "system", "content": "rules " * 100}, user("hi")])
    assert d.verdict == "block" and d.block_kind == "context" and "after trimming" in d.reasons[0]


def test_call_cap_clamps_and_sets_max_tokens(make_gov) -> None:
    gov = make_gov("calls:\n  - {id: out, max_output_tokens: 256}\n")
    d = gov.check(model="gpt-4o", messages=MSGS, input_tokens=10, max_tokens=4000)
    assert (d.verdict, d.max_tokens, d.rule_ids) == ("allow", 256, ("out",))
    d = gov.check(model="gpt-4o", messages=MSGS, input_tokens=10)
    assert d.max_tokens == 256
    d = gov.check(model="gpt-4o", messages=MSGS, input_tokens=10, max_tokens=100)
    assert d.max_tokens == 100 and d.rule_ids == ()


def test_call_cost_cap_uses_worst_case_at_the_routed_model(make_gov) -> None:
    gov = make_gov(
        """
        defaults: {output_tokens: 1000}
        calls: [{id: pricey, max_cost_usd: 0.05}]
        """
    )
    # gpt-4o: $2.5/M in, $10/M out. 10k in + 1000 default out = 0.025 + 0.01 = 0.035
    d = gov.check(model="gpt-4o", messages=MSGS, input_tokens=10_000)
    assert d.verdict == "allow" and d.estimated_cost_usd == pytest.approx(0.035)
    with pytest.raises(CostCapExceeded) as err:
        gov.check_or_raise(model="gpt-4o", messages=MSGS, input_tokens=10_000, max_tokens=3000)
    assert err.value.rule_ids == ("pricey",) and "$0.0550" in err.value.decision.reasons[0]


def test_route_to_the_requested_model_changes_nothing(make_gov) -> None:
    gov = make_gov(
        """
        models: {aliases: {cheap: gpt-4o-mini}}
        routes:
          - {id: same-audit, mode: audit, match: {task: classify}, to: cheap}
          - {id: same, match: {task: classify}, to: cheap}
          - {id: later, match: {task: classify}, to: gpt-4o}
        """
    )
    d = gov.check(model="gpt-4o-mini", messages=MSGS, input_tokens=100, metadata={"task": "classify"})
    # the audit route would send the call where it already goes: no "would reroute" note
    assert d.audit == ()
    # the enforced route wins (first match) and keeps the model: allow, naming the rule, no reason to change
    assert d.verdict == "allow" and d.model == "gpt-4o-mini" and d.rule_ids == ("same",) and d.reasons == ()
    # the same audit route on another model still says what it would do
    d = gov.check(model="gpt-4o", messages=MSGS, input_tokens=100, metadata={"task": "classify"})
    assert [(a.rule_id, a.would, a.model) for a in d.audit] == [("same-audit", "reroute", "gpt-4o-mini")]
    assert d.verdict == "reroute" and d.model == "gpt-4o-mini"


def test_a_block_names_the_one_rule_that_blocked_it_first(make_gov) -> None:
    """A route picks the premium model and a cap clamps the output; then the cost cap blocks:
    ``blocked_by`` is the cap, its reason comes first, and ``rule_ids`` keeps every rule that acted."""
    gov = make_gov(
        """
        routes: [{id: planning-premium, match: {task: plan}, to: gpt-4.1}]
        calls: [{id: call-cost, max_output_tokens: 2000, max_cost_usd: 0.01}]
        """
    )
    d = gov.check(model="gpt-4o-mini", messages=MSGS, input_tokens=20_000, max_tokens=4000, metadata={"task": "plan"})
    assert d.verdict == "block" and d.block_kind == "cost"
    assert d.blocked_by == "call-cost"
    assert d.rule_ids == ("planning-premium", "call-cost")  # once each, in the order they acted
    assert d.reasons[0].startswith("call cap call-cost")
    assert len(d.reasons) == 3  # then the route's and the clamp's reasons
    with pytest.raises(CostCapExceeded) as err:
        gov.check_or_raise(model="gpt-4o-mini", messages=MSGS, input_tokens=20_000, metadata={"task": "plan"})
    assert err.value.blocked_by == "call-cost"
    assert str(err.value).startswith("call cap call-cost")  # the blocking rule's reason first
    assert "[blocked by call-cost; rules: planning-premium, call-cost; policy revision " in str(err.value)


def test_an_allowed_or_shaped_call_is_blocked_by_nothing(make_gov) -> None:
    gov = make_gov("routes: [{id: cheap, match: {task: classify}, to: gpt-4o-mini}]\n")
    d = gov.check(model="gpt-4o", messages=MSGS, input_tokens=10, metadata={"task": "classify"})
    assert (d.verdict, d.blocked_by, d.rule_ids) == ("reroute", None, ("cheap",))
