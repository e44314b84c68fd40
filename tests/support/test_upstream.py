"""The scripted upstream speaks each API as the real SDKs read it (openai, anthropic), streams included."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from support.upstream import Reply, ScriptedUpstream, Tokens, ToolCall


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as server:
        yield server


@pytest.fixture
def oai(upstream: ScriptedUpstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=upstream.base_url + "/v1", api_key="sk-test", max_retries=0)


@pytest.fixture
def claude(upstream: ScriptedUpstream) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=upstream.base_url, api_key="sk-ant-test", max_retries=0)


def test_chat_json_and_stream_with_usage_and_tool_calls(upstream: ScriptedUpstream, oai: openai.OpenAI) -> None:
    call = ToolCall("get_weather", {"city": "Paris"}, id="call_1")
    upstream.script(Reply(text="", tool_calls=[call], usage=Tokens(input=30, output=7, cache_read=10)))
    first = oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "weather?"}])
    assert first.choices[0].finish_reason == "tool_calls"
    assert first.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert json.loads(first.choices[0].message.tool_calls[0].function.arguments) == {"city": "Paris"}
    assert (first.usage.prompt_tokens, first.usage.completion_tokens) == (40, 7)
    assert first.usage.prompt_tokens_details.cached_tokens == 10

    upstream.script(Reply(text="It is sunny in Paris today.", usage=Tokens(input=50, output=8)))
    stream = oai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "weather?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "It is sunny in Paris today."
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 8
    assert [r.route for r in upstream.requests] == ["chat", "chat"]
    assert upstream.requests[-1].stream


def test_responses_json_and_stream_event_sequence(upstream: ScriptedUpstream, oai: openai.OpenAI) -> None:
    upstream.script(Reply(text="Hello there.", usage=Tokens(input=12, output=3, reasoning=1)))
    response = oai.responses.create(model="gpt-4.1", input="hi", instructions="be brief", max_output_tokens=20)
    assert response.output_text == "Hello there."
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 3)
    assert response.usage.output_tokens_details.reasoning_tokens == 1

    call = ToolCall("lookup", {"q": "x"}, id="call_9")
    upstream.script(Reply(text="", reasoning="thinking it over", tool_calls=[call], usage=Tokens(input=20, output=9)))
    events = list(oai.responses.create(model="gpt-4.1", input=[{"role": "user", "content": "go"}], stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "response.function_call_arguments.delta" in kinds
    assert "response.reasoning_summary_text.delta" in kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert final.usage.output_tokens == 9
    fc = [item for item in final.output if item.type == "function_call"][0]
    assert (fc.call_id, fc.name, json.loads(fc.arguments)) == ("call_9", "lookup", {"q": "x"})

    upstream.script(Reply(text="streamed via helper"))
    with oai.responses.stream(model="gpt-4.1", input="hi") as helper:
        for _ in helper:
            pass
        assert helper.get_final_response().output_text == "streamed via helper"


def test_completions_and_embeddings(upstream: ScriptedUpstream, oai: openai.OpenAI) -> None:
    upstream.script(Reply(text="once upon a time", usage=Tokens(input=4, output=5)))
    done = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="Tell a story")
    assert done.choices[0].text == "once upon a time" and done.usage.total_tokens == 9
    pieces = list(oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="x", stream=True))
    assert "".join(p.choices[0].text for p in pieces if p.choices) == "scripted answer"

    upstream.script(Reply(usage=Tokens(input=6)))
    vectors = oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"])  # the SDK asks for base64
    assert [len(d.embedding) for d in vectors.data] == [8, 8]
    assert vectors.usage.prompt_tokens == 6
    assert upstream.requests[-1].body["encoding_format"] == "base64"
    plain = oai.embeddings.create(model="text-embedding-3-small", input="a", encoding_format="float", dimensions=3)
    assert len(plain.data[0].embedding) == 3


def test_anthropic_messages_json_stream_tools_thinking_and_cache_usage(
    upstream: ScriptedUpstream, claude: anthropic.Anthropic
) -> None:
    usage = Tokens(input=100, output=20, cache_read=300, cache_write_5m=40, cache_write_1h=60)
    upstream.script(Reply(text="Let me check.", tool_calls=[ToolCall("get_weather", {"city": "Oslo"})], usage=usage))
    message = claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=100,
        system="You are terse.",
        messages=[{"role": "user", "content": "weather in Oslo?"}],
    )
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.content[1].input == {"city": "Oslo"}
    u = message.usage
    assert (u.input_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens) == (100, 300, 100)
    assert (u.cache_creation.ephemeral_5m_input_tokens, u.cache_creation.ephemeral_1h_input_tokens) == (40, 60)

    upstream.script(Reply(text="Cold and clear.", reasoning="Oslo in winter", usage=Tokens(input=120, output=11)))
    events = list(
        claude.messages.create(
            model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "?"}], stream=True
        )
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert events[0].message.usage.input_tokens == 120
    assert events[-2].usage.output_tokens == 11

    upstream.script(Reply(text="via the helper", tool_calls=[ToolCall("t", {"a": 1})]))
    with claude.messages.stream(
        model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "?"}]
    ) as s:
        final = s.get_final_message()
    assert final.content[0].text == "via the helper" and final.content[1].input == {"a": 1}
    assert claude.messages.count_tokens(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "abcd"}])
    assert [r.route for r in upstream.requests][-1] == "count_tokens"
    assert len(upstream.model_requests()) == 3


def test_errors_in_each_apis_shape_reach_the_sdks(
    upstream: ScriptedUpstream, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    upstream.script(Reply(status=429, error_message="slow down", headers={"retry-after": "7"}))
    with pytest.raises(openai.RateLimitError) as oai_err:
        oai.responses.create(model="gpt-4.1", input="hi")
    assert oai_err.value.body["message"] == "slow down"
    upstream.script(Reply(status=429, error_message="slow down too"))
    with pytest.raises(anthropic.RateLimitError) as ant_err:
        claude.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "?"}])
    assert ant_err.value.body == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down too"}}


def test_a_stream_cut_by_the_provider_fails_in_the_client(upstream: ScriptedUpstream, oai: openai.OpenAI) -> None:
    upstream.script(Reply(text="a long answer " * 20, cut_after_events=4))
    with pytest.raises((httpx.HTTPError, openai.APIError)):
        list(oai.responses.create(model="gpt-4.1", input="hi", stream=True))


async def test_async_clients(upstream: ScriptedUpstream) -> None:
    aoai = openai.AsyncOpenAI(base_url=upstream.base_url + "/v1", api_key="sk-test", max_retries=0)
    aclaude = anthropic.AsyncAnthropic(base_url=upstream.base_url, api_key="sk-ant-test", max_retries=0)
    upstream.script(Reply(text="one"), Reply(text="two"))
    response = await aoai.responses.create(model="gpt-4.1", input="hi")
    stream = await aclaude.messages.create(
        model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "?"}], stream=True
    )
    texts = [e.delta.text async for e in stream if e.type == "content_block_delta"]
    assert (response.output_text, "".join(texts)) == ("one", "two")
    await aoai.close()
    await aclaude.close()


def test_paths_with_and_without_v1_and_unknown_routes(upstream: ScriptedUpstream) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(upstream.base_url + "/chat/completions", json=body).status_code == 200
    assert httpx.post(upstream.base_url + "/v1/chat/completions", json=body).status_code == 200
    missing = httpx.post(upstream.base_url + "/v1/images/generations", json={})
    assert missing.status_code == 404 and "error" in missing.json()
    assert [r.route for r in upstream.requests] == ["chat", "chat", "unknown"]
    assert len(upstream.model_requests()) == 2
