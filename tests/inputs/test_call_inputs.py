"""The validation boundary of check() and record(): any arguments give a decision or InvalidCall.

Properties, not examples: hypothesis throws arbitrary values (negative, huge, NaN,
wrong-typed numbers; lists and mappings as scope keys; strings as messages; lone
surrogates) at every argument, and the governor must answer with a decision or
the documented ``InvalidCall`` naming the field, never another exception, never
a reservation taken for a refused call, and never break a later, valid call.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governor import Governor, GovernorError, InvalidCall
from governor.decision import Decision
from governor.policy.loader import load_policy_text
from tests.engine.conftest import HEADER, MSGS, Clock

POLICY = (
    HEADER
    + """
budgets:
  - {id: per-team, scope: team, limit: {usd: 1.0}, window: 1h}
  - {id: per-user, scope: user, limit: {tokens: 100000}}
  - {id: per-run, scope: run, limit: {calls: 50}}
  - {id: tagged, scope: tag, limit: {calls: 1000}}
stop:
  - {id: calls, type: max_calls, max: 1000}
routes:
  - {id: cheap, match: {task: classify, metadata: {tier: free}}, to: gpt-4o-mini}
  - {id: words, match: {last_user_message: {regex: "(a|b)+c"}}, to: gpt-4o-mini}
"""
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.binary(max_size=4),
    st.just("\ud800"),
    st.just(10**30),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
metadata = st.one_of(
    st.none(),
    values,
    st.dictionaries(
        st.sampled_from(["run_id", "user", "team", "task", "tags", "tier", "agent", 7]), values, max_size=4
    ),
)
messages = st.one_of(
    st.none(),
    values,
    st.lists(
        st.one_of(values, st.fixed_dictionaries({"role": st.sampled_from(["user", "system", 3]), "content": values})),
        max_size=3,
    ),
)
counts = st.one_of(scalars, st.integers(min_value=0, max_value=5000))


def fresh() -> Governor:
    return Governor(load_policy_text(POLICY, "inputs.yaml"), clock=Clock(), observers=False)


def valid_check(gov: Governor) -> Decision:
    return gov.check(model="gpt-4o", messages=MSGS, max_tokens=10, metadata={"team": "t", "user": "u", "run_id": "r"})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.one_of(st.sampled_from(["gpt-4o", "gpt-4o-mini", "unknown-model"]), scalars),
    messages=messages,
    max_tokens=counts,
    tools=st.one_of(st.none(), values),
    metadata=metadata,
    input_tokens=st.one_of(st.none(), counts),
    fingerprint=st.one_of(st.none(), values),
    message_count=st.one_of(st.none(), counts),
)
def test_any_check_arguments_give_a_decision_or_invalid_call(
    model: Any,
    messages: Any,
    max_tokens: Any,
    tools: Any,
    metadata: Any,
    input_tokens: Any,
    fingerprint: Any,
    message_count: Any,
) -> None:
    gov = fresh()
    try:
        d = gov.check(
            model=model,
            messages=messages,
            max_tokens=max_tokens,
            tools=tools,
            metadata=metadata,
            input_tokens=input_tokens,
            fingerprint=fingerprint,
            message_count=message_count,
        )
    except InvalidCall as exc:
        assert exc.field and str(exc).startswith("invalid ")
        # refused before the decision was made: no check counted, nothing reserved
        assert gov.stats()["total"]["checks"] == 0
    else:
        assert isinstance(d, Decision)
        assert d.estimated_cost_usd is None or (math.isfinite(d.estimated_cost_usd) and d.estimated_cost_usd >= 0)
        if d.allowed:
            gov.record(d, input_tokens=1, output_tokens=1)
    # whatever came before, a valid call still works (no poisoned stats, caches or run state)
    later = valid_check(gov)
    assert later.allowed
    gov.record(later, input_tokens=10, output_tokens=5)
    assert gov.stats()["total"]["calls"] >= 1
    gov.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    input_tokens=counts,
    output_tokens=counts,
    cache_read=counts,
    cache_write=counts,
    reasoning=counts,
    error=st.one_of(st.none(), st.text(max_size=5), st.integers(), st.just(ValueError("boom"))),
)
def test_any_record_arguments_settle_or_raise_invalid_call_and_keep_the_reservation(
    input_tokens: Any, output_tokens: Any, cache_read: Any, cache_write: Any, reasoning: Any, error: Any
) -> None:
    gov = fresh()
    d = valid_check(gov)
    try:
        cost = gov.record(
            d,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            reasoning_tokens=reasoning,
            error=error,
        )
    except InvalidCall as exc:
        assert exc.field in (
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "error",
        )
        # the reservation is still there: a corrected record settles it
        assert gov.record(d, input_tokens=10, output_tokens=5) is not None
    else:
        assert cost is None or (math.isfinite(cost) and cost >= 0)
    gov.close()


@pytest.mark.parametrize("bad", [-10_000_000, -1, 2**63, 10**13, 1.5, float("nan"), float("inf"), "abc", [1], True])
def test_a_bad_max_tokens_is_refused_naming_the_field_before_any_reservation(bad: Any) -> None:
    gov = fresh()
    with pytest.raises(InvalidCall) as err:
        gov.check(model="gpt-4o", messages=MSGS, max_tokens=bad, metadata={"team": "t"})
    assert err.value.field == "max_tokens"
    assert isinstance(err.value, GovernorError) and isinstance(err.value, ValueError)
    # the finding: one negative reservation in flight let every other call through; now nothing was reserved
    allowed = 0
    for _ in range(40):
        d = gov.check(model="gpt-4o", messages=MSGS, max_tokens=4000, metadata={"team": "t", "user": "u"})
        allowed += d.allowed
    assert allowed < 40


def test_a_negative_record_cannot_credit_a_budget() -> None:
    gov = fresh()
    d = valid_check(gov)
    with pytest.raises(InvalidCall, match="output_tokens"):
        gov.record(d, input_tokens=10, output_tokens=-2000)


@pytest.mark.parametrize(
    "meta",
    [
        {"run_id": {"a": 1}},
        {"user": ["x", "y"]},
        {"team": {"t"}},
        {"team": 1.5},
        {"tags": [["a"]]},
        {"tags": {"a": 1}},
        {"user": "\udcff"},
    ],
)
def test_an_unhashable_or_non_scalar_scope_key_is_refused_and_later_calls_are_fine(meta: dict[str, Any]) -> None:
    gov = fresh()
    key = next(iter(meta))
    with pytest.raises(InvalidCall) as err:
        gov.check(model="gpt-4o", messages=MSGS, max_tokens=10, metadata=meta)
    assert err.value.field.startswith(f"metadata.{key}")
    later = valid_check(gov)
    assert later.allowed
    gov.record(later, input_tokens=10, output_tokens=5)
    gov.stats()  # the fold that raised TypeError before


def test_an_integer_scope_key_is_its_string() -> None:
    gov = fresh()
    d = gov.check(model="gpt-4o", messages=MSGS, max_tokens=10, metadata={"user": 42, "run_id": 7})
    assert d.metadata["user"] == "42" and d.metadata["run_id"] == "7"


def test_a_run_scope_with_a_list_as_team_is_refused_at_the_with() -> None:
    gov = fresh()
    with pytest.raises(InvalidCall, match="run.team"):
        with gov.run("r1", team=["a", "b"]):
            pass


@pytest.mark.parametrize(
    "messages,field", [("hello", "messages"), ([1, 2], "messages[0]"), ({"role": "user"}, "messages")]
)
def test_messages_that_are_not_a_list_of_mappings_are_refused(messages: Any, field: str) -> None:
    with pytest.raises(InvalidCall) as err:
        fresh().check(model="gpt-4o", messages=messages)
    assert err.value.field == field


def test_message_content_that_no_provider_accepts_is_refused_before_anything_is_reserved() -> None:
    """A number or mapping as content passed the check and then failed at the provider (a proxy 500)."""
    gov = Governor(load_policy_text("apiVersion: governor/v1\nkind: Policy\nmetadata: {name: c}\n"), stats=False)
    for content in (1, 2.5, True, {"text": "hi"}):
        with pytest.raises(InvalidCall) as err:
            gov.check(
                model="gpt-4o", messages=[{"role": "user", "content": "ok"}, {"role": "user", "content": content}]
            )
        assert err.value.field == "messages[1].content"
    for content in ("hi", None, [{"type": "text", "text": "hi"}], ({"type": "text", "text": "hi"},)):
        assert gov.check(model="gpt-4o", messages=[{"role": "user", "content": content}], input_tokens=3).allowed
