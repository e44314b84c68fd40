"""The shared pieces: usage mapping per framework shape, trimmed-message mapping, block errors."""

from __future__ import annotations

import pytest

from governor import BudgetExceeded, CallBlocked, ContextTooLarge, Decision
from governor.integrations._common import block_error, kept_messages, stream_cap_error
from governor.integrations.usage import (
    estimated_usage,
    from_chat_usage,
    from_langchain,
    from_pydantic_ai,
    from_responses_usage,
    from_standard_logging,
)


def decision(**kw: object) -> Decision:
    base = dict(
        verdict="allow",
        model="gpt-4o",
        messages=(),
        max_tokens=100,
        rule_ids=("out-cap",),
        reasons=(),
        revision="abc",
        estimated_cost_usd=0.01,
        decision_id="d1",
        requested_model="gpt-4o",
        input_tokens=50,
    )
    base.update(kw)
    return Decision(**base)  # type: ignore[arg-type]


def test_kept_messages_maps_a_trim_back_to_the_frameworks_objects() -> None:
    originals = ["SYS", "A", "B", "C", "D"]
    sent = [{"role": "system", "content": "s"}] + [{"role": "user", "content": x} for x in "abcd"]
    assert kept_messages(originals, sent, [sent[0], sent[3], sent[4]]) == ["SYS", "C", "D"]  # by identity
    copies = [dict(sent[0]), dict(sent[4])]
    assert kept_messages(originals, sent, copies) == ["SYS", "D"]  # by equality, in order
    assert kept_messages(originals, sent, sent) == originals
    with pytest.raises(ValueError):
        kept_messages(originals, sent, [{"role": "user", "content": "never sent"}])


def test_block_errors_match_the_block_kind_and_name_the_rule() -> None:
    blocked = decision(verdict="block", block_kind="budget", rule_ids=("per-run",), reasons=("over budget",))
    error = block_error(blocked)
    assert type(error) is BudgetExceeded and error.rule_ids == ("per-run",) and "per-run" in str(error)
    assert type(block_error(decision(verdict="block", block_kind="context"))) is ContextTooLarge
    assert type(block_error(decision(verdict="block", block_kind=None))) is CallBlocked
    cap = stream_cap_error(decision(), 100, 130)
    assert cap.decision.blocked and cap.rule_ids == ("out-cap",) and "cap of 100" in str(cap)


def test_usage_shapes_normalise_to_inclusive_input_plus_cache_parts() -> None:
    from langchain_core.messages.ai import UsageMetadata
    from pydantic_ai.usage import RequestUsage

    lc = UsageMetadata(
        input_tokens=120,
        output_tokens=30,
        total_tokens=150,
        input_token_details={"cache_read": 100, "cache_creation": 5},
        output_token_details={"reasoning": 12},
    )
    assert from_langchain(lc).as_kwargs() == {  # type: ignore[union-attr]
        "input_tokens": 120,
        "output_tokens": 30,
        "cache_read_tokens": 100,
        "cache_write_tokens": 5,
        "reasoning_tokens": 12,
    }
    pa = from_pydantic_ai(RequestUsage(input_tokens=80, output_tokens=9, cache_read_tokens=60, cache_write_tokens=4))
    assert (pa.input_tokens, pa.output_tokens, pa.cache_read_tokens, pa.cache_write_tokens) == (80, 9, 60, 4)  # type: ignore[union-attr]
    responses = from_responses_usage(
        {
            "input_tokens": 10,
            "output_tokens": 2,
            "input_tokens_details": {"cached_tokens": 6},
            "output_tokens_details": {"reasoning_tokens": 1},
        }
    )
    assert responses.as_kwargs()["cache_read_tokens"] == 6 and responses.reasoning_tokens == 1  # type: ignore[union-attr]
    payload = {
        "prompt_tokens": 70,
        "completion_tokens": 7,
        "metadata": {
            "usage_object": {
                "prompt_tokens": 70,
                "completion_tokens": 7,
                "prompt_tokens_details": {"cached_tokens": 50},
            }
        },
    }
    assert from_standard_logging(payload).cache_read_tokens == 50  # type: ignore[union-attr]
    assert from_standard_logging({"prompt_tokens": 3, "completion_tokens": 1}).input_tokens == 3  # type: ignore[union-attr]
    assert from_chat_usage(None) is None and from_langchain(None) is None


def test_missing_usage_is_estimated_never_zero() -> None:
    usage = estimated_usage(42, "twelve chars")
    assert usage.estimated and usage.input_tokens == 42 and usage.output_tokens == 3
