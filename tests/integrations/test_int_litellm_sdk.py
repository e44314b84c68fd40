"""GovernedLiteLLM: the real litellm SDK with ``mock_response`` standing in for the provider."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from governor import BudgetExceeded, CostCapExceeded, Governor, StopConditionHit
from governor._litellm import litellm
from governor.integrations.litellm import GovernedLiteLLM
from governor.integrations.usage import from_chat_usage

POLICY = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: sdk-test}
stop:
  - id: retry-storm
    type: consecutive_errors
    max: 2
routes:
  - id: classify-cheap
    match: {task: classify}
    to: gpt-4o-mini
calls:
  - id: out-cap
    max_output_tokens: 8
budgets:
  - id: per-run
    scope: run
    limit: {calls: 3}
"""

LONG_ANSWER = "This answer runs on well past the eight tokens its call was allowed to produce. " * 3
MSG = [{"role": "user", "content": "hello"}]


@pytest.fixture
def gov(write_policy: Callable[[str], Path], tmp_path: Path) -> Governor:
    return Governor.from_path(write_policy(POLICY), record_to=tmp_path / "decisions.jsonl")


def records(tmp_path: Path) -> list[dict]:
    lines = (tmp_path / "decisions.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("event") == "record"]


def test_reroute_clamp_and_usage_are_applied_and_recorded(gov: Governor, tmp_path: Path) -> None:
    governed = GovernedLiteLLM(gov)
    with gov.run("r1"):
        response = governed.completion(
            model="gpt-4o", messages=MSG, mock_response="positive", governor_metadata={"task": "classify"}
        )
    assert response.model.endswith("gpt-4o-mini")
    (rec,) = records(tmp_path)
    assert (rec["verdict"], rec["model"], rec["max_tokens"]) == ("reroute", "gpt-4o-mini", 8)
    assert rec["input_tokens"] == response.usage.prompt_tokens
    assert rec["output_tokens"] == response.usage.completion_tokens
    assert rec["cost_usd"] > 0


def test_block_raises_the_matching_exception_with_the_rule_id(gov: Governor) -> None:
    governed = GovernedLiteLLM(gov)
    with gov.run("r2"):
        for _ in range(3):
            governed.completion(model="gpt-4o", messages=MSG, mock_response="ok")
        with pytest.raises(BudgetExceeded) as info:
            governed.completion(model="gpt-4o", messages=MSG, mock_response="ok")
    assert "per-run" in info.value.rule_ids
    assert "per-run" in str(info.value)


def test_errors_are_recorded_and_feed_the_stop_condition(gov: Governor) -> None:
    governed = GovernedLiteLLM(gov)
    failure = litellm().RateLimitError(message="slow down", llm_provider="openai", model="gpt-4o")
    with gov.run("r3"):
        for _ in range(2):
            with pytest.raises(litellm().RateLimitError):
                governed.completion(model="gpt-4o", messages=MSG, mock_response=failure)
        with pytest.raises(StopConditionHit) as info:
            governed.completion(model="gpt-4o", messages=MSG, mock_response="ok")
    assert info.value.rule_ids[0] == "retry-storm"
    assert gov.stats()["by_run"]["r3"]["errors"] == 2


def test_stream_records_the_final_usage_chunk(gov: Governor, tmp_path: Path) -> None:
    governed = GovernedLiteLLM(gov)
    with gov.run("r4"):
        # the caller asks for the usage chunk: they see it, and it is what is recorded
        chunks = list(
            governed.completion(
                model="gpt-4o", messages=MSG, mock_response="short", stream=True, stream_options={"include_usage": True}
            )
        )
        # the caller does not ask: the governor still asks the provider, records it, and every chunk
        # the caller sees has choices (a loop over chunk.choices[0] keeps working)
        plain = list(governed.completion(model="gpt-4o", messages=MSG, mock_response="short", stream=True))
    usage = [c.usage for c in chunks if getattr(c, "usage", None)]
    assert usage, "include_usage was not requested"
    assert all(c.choices for c in plain)
    first, second = records(tmp_path)
    assert first["output_tokens"] == usage[-1].completion_tokens > 0
    assert second["output_tokens"] == first["output_tokens"] and second["input_tokens"] == first["input_tokens"]
    assert first["error"] is None and second["error"] is None


def test_stream_passing_the_cap_is_stopped_mid_way_when_asked(gov: Governor, tmp_path: Path) -> None:
    governed = GovernedLiteLLM(gov, stop_streams_at_cap=True)
    received = []
    with gov.run("r5"), pytest.raises(CostCapExceeded) as info:
        for chunk in governed.completion(model="gpt-4o", messages=MSG, mock_response=LONG_ANSWER, stream=True):
            received.append(chunk.choices[0].delta.content or "")
    assert "out-cap" in info.value.rule_ids
    assert "cap of 8" in str(info.value)
    assert len("".join(received)) < len(LONG_ANSWER)
    (rec,) = records(tmp_path)
    assert rec["output_tokens"] > 8 and rec["error"]


def test_stream_is_not_stopped_without_the_flag(gov: Governor) -> None:
    governed = GovernedLiteLLM(gov)
    with gov.run("r6"):
        text = "".join(
            c.choices[0].delta.content or ""
            for c in governed.completion(model="gpt-4o", messages=MSG, mock_response=LONG_ANSWER, stream=True)
        )
    assert text == LONG_ANSWER


async def test_acompletion_and_async_stream(gov: Governor, tmp_path: Path) -> None:
    governed = GovernedLiteLLM(gov)
    with gov.run("r7"):
        response = await governed.acompletion(
            model="gpt-4o", messages=MSG, mock_response="fine", governor_metadata={"task": "classify"}
        )
        stream = await governed.acompletion(model="gpt-4o", messages=MSG, mock_response="streamed", stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert response.model.endswith("gpt-4o-mini") and text == "streamed"
    recs = records(tmp_path)
    assert [r["verdict"] for r in recs] == ["reroute", "allow"]
    assert all(r["output_tokens"] > 0 for r in recs)


def test_usage_mapping_reads_cache_and_reasoning_details() -> None:
    from litellm.types.utils import Usage

    usage = Usage(
        prompt_tokens=100,
        completion_tokens=20,
        prompt_tokens_details={"cached_tokens": 40},
        completion_tokens_details={"reasoning_tokens": 5},
        cache_creation_input_tokens=7,
    )
    mapped = from_chat_usage(usage)
    assert mapped is not None
    assert mapped.as_kwargs() == {
        "input_tokens": 100,
        "output_tokens": 20,
        "cache_read_tokens": 40,
        "cache_write_tokens": 7,
        "reasoning_tokens": 5,
    }
