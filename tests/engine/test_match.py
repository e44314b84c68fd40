"""The match language compiled to closures: every condition kind, combinators, static/dynamic split."""

from __future__ import annotations

from typing import Any

import pytest

from governor.engine.match import CallContext, compile_rule_match, compile_split, referenced_metadata_keys
from governor.engine.runstate import RunState


def holds(spec: dict[str, Any], exclude: dict[str, Any] | None = None, **ctx: Any) -> bool:
    static, dynamic = compile_rule_match(spec, exclude)
    c = CallContext(ctx.pop("model", "gpt-4o"), ctx.pop("metadata", {}), **ctx)
    return (static is None or static(c)) and (dynamic is None or dynamic(c))


def test_model_globs_and_lists() -> None:
    assert holds({"model": "gpt-4*"}, model="gpt-4o-mini")
    assert not holds({"model": "gpt-4*"}, model="claude-sonnet-4-5")
    assert holds({"model": ["claude-*", "gpt-4o"]}, model="gpt-4o")
    assert not holds({"model": ["claude-*", "gpt-4o"]}, model="gpt-4o-mini")


@pytest.mark.parametrize(
    ("cond", "value", "expected"),
    [
        ("classify", "classify", True),
        ("classify", "reply", False),
        (["classify", "extract"], "extract", True),
        ({"ne": "reply"}, "classify", True),
        ({"ne": "reply"}, None, True),
        ({"in": ["a", "b"]}, "c", False),
        ({"not_in": ["a", "b"]}, "c", True),
        ({"not_in": ["a", "b"]}, None, True),
        ({"glob": "class*"}, "classify", True),
        ({"regex": "^ext"}, "extract", True),
        ({"regex": "^ext"}, None, False),
        ({"exists": True}, None, False),
        ({"exists": False}, None, True),
        ({"eq": "x"}, None, False),
    ],
)
def test_value_conditions(cond: Any, value: Any, expected: bool) -> None:
    md = {} if value is None else {"task": value}
    assert holds({"task": cond}, metadata=md) is expected


def test_run_key_reads_run_id_and_metadata_mapping() -> None:
    assert holds({"run": "r1"}, metadata={"run_id": "r1"})
    assert holds(
        {"metadata": {"tier": "free", "region": {"in": ["eu", "us"]}}}, metadata={"tier": "free", "region": "eu"}
    )
    assert not holds({"metadata": {"tier": "free"}}, metadata={"tier": "paid"})


def test_tags_any_all_none() -> None:
    md = {"tags": ["batch", "nightly"]}
    assert holds({"tags": "batch"}, metadata=md)
    assert holds({"tags": ["x", "nightly"]}, metadata=md)
    assert holds({"tags": {"all": ["batch", "nightly"]}}, metadata=md)
    assert not holds({"tags": {"all": ["batch", "x"]}}, metadata=md)
    assert holds({"tags": {"none": ["x"]}}, metadata=md)
    assert not holds({"tags": {"none": ["batch"]}}, metadata=md)
    assert not holds({"tags": "batch"}, metadata={})


def test_numeric_ranges_and_message_count() -> None:
    assert holds({"input_tokens": {"gt": 100, "lte": 200}}, input_tokens=200)
    assert not holds({"input_tokens": {"gt": 100, "lte": 200}}, input_tokens=100)
    assert not holds({"input_tokens": {"gt": 100, "lte": 200}}, input_tokens=201)
    assert holds({"input_tokens": 5}, input_tokens=5)
    assert holds({"messages": {"gte": 2}}, messages=[{"role": "user", "content": "a"}] * 2)
    assert not holds({"messages": {"gte": 3}}, messages=[{"role": "user", "content": "a"}] * 2)


def test_tools_presence_and_names() -> None:
    tools = [{"type": "function", "function": {"name": "search_web"}}, {"name": "read_file"}]
    assert holds({"tools": True}, tools=tools)
    assert holds({"tools": False}, tools=None)
    assert holds({"tools": ["search_*"]}, tools=tools)
    assert holds({"tools": ["read_file"]}, tools=tools)
    assert not holds({"tools": ["write_*"]}, tools=tools)


def test_last_user_message_contains_regex_case_and_limit() -> None:
    msgs = [
        {"role": "user", "content": "first: refund please"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "Classify this ticket"}]},
    ]
    assert holds({"last_user_message": {"regex": "^Classify"}}, messages=msgs)
    assert not holds({"last_user_message": {"contains": "refund"}}, messages=msgs)  # only the last user message
    assert holds({"last_user_message": {"contains": "CLASSIFY", "case_sensitive": False}}, messages=msgs)
    long = [{"role": "user", "content": "x" * 5000 + "needle"}]
    assert not holds({"last_user_message": {"contains": "needle"}}, messages=long)  # beyond 4096 characters


def test_run_state_conditions() -> None:
    run = RunState("r", 0.0, 60.0)
    run.calls, run.cost_usd, run.consecutive_errors = 20, 1.5, 2
    assert holds({"run_calls": {"gte": 20}}, run=run)
    assert holds({"run_cost_usd": {"gt": 1.0}}, run=run)
    assert not holds({"run_errors": {"gte": 3}}, run=run)
    assert not holds({"run_calls": {"gte": 1}})  # no run: run conditions do not hold


def test_combinators_and_exclude() -> None:
    spec = {"any": [{"task": "a"}, {"agent": "b"}]}
    assert holds(spec, metadata={"agent": "b"})
    assert not holds(spec, metadata={"agent": "c"})
    assert holds({"all": [{"task": "a"}, {"input_tokens": {"lt": 10}}]}, metadata={"task": "a"}, input_tokens=5)
    assert holds({"not": {"task": "a"}}, metadata={"task": "b"})
    assert not holds({"model": "gpt-*"}, {"task": "secret"}, metadata={"task": "secret"})
    assert holds({"model": "gpt-*"}, {"task": "secret"}, metadata={"task": "open"})
    assert not holds({}, {"input_tokens": {"gt": 10}}, input_tokens=11)  # a dynamic exclude


def test_split_keeps_dynamic_conditions_out_of_the_cached_part() -> None:
    static, dynamic = compile_split({"task": "a", "input_tokens": {"lte": 10}})
    assert static is not None and dynamic is not None
    static, dynamic = compile_split({"any": [{"task": "a"}, {"input_tokens": {"lte": 10}}]})
    assert static is None and dynamic is not None  # a mixed combinator is dynamic as a whole
    static, dynamic = compile_split({"model": "x", "tags": ["y"]})
    assert static is not None and dynamic is None
    assert referenced_metadata_keys({"run": "r", "any": [{"metadata": {"tier": "x"}}, {"tags": "a"}]}) == {
        "run_id",
        "tier",
        "tags",
    }


def test_unknown_key_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown match key 'modle'"):
        compile_split({"modle": "x"})


def test_message_count_stands_in_for_messages_only_when_none_are_given() -> None:
    from governor import Governor
    from governor.policy.loader import load_policy_text
    from tests.engine.conftest import HEADER

    gov = Governor(load_policy_text(HEADER + "routes: [{id: long, match: {messages: {gte: 4}}, to: gpt-4o-mini}]\n"))
    two = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    # replay of a trace without prompt text: the recorded count decides
    assert gov.check(model="gpt-4o", messages=(), input_tokens=10, message_count=6).model == "gpt-4o-mini"
    assert gov.check(model="gpt-4o", messages=(), input_tokens=10, message_count=2).model == "gpt-4o"
    # given messages always win over a count
    assert gov.check(model="gpt-4o", messages=two, input_tokens=10, message_count=6).model == "gpt-4o"
    assert gov.check(model="gpt-4o", messages=(), input_tokens=10).model == "gpt-4o"
