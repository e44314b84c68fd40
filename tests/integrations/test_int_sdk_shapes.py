"""Every API shape through the SDK adapters: the real openai and anthropic clients and litellm's SDK,
sync, async and streaming, against the scripted upstream (tests/support/upstream.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from support.upstream import Reply, ScriptedUpstream, Tokens, ToolCall

from governor import BudgetExceeded, ContextTooLarge, Governor
from governor.integrations.anthropic import wrap as wrap_anthropic
from governor.integrations.litellm import GovernedLiteLLM
from governor.integrations.openai import wrap as wrap_openai

POLICY = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: sdk-shapes}
models:
  prices:
    claude-sonnet-4-5: {input_per_mtok: 3, output_per_mtok: 15, cache_read_per_mtok: 0.3, cache_write_per_mtok: 3.75}
context:
  - id: small-context
    match: {task: trim}
    max_input_tokens: 120
    action: trim
budgets:
  - id: two-calls
    scope: run
    match: {task: budget}
    limit: {calls: 2}
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as server:
        yield server


@pytest.fixture
def gov(write_policy: Callable[[str], Path], tmp_path: Path, upstream: ScriptedUpstream) -> Governor:
    upstream.reset()
    return Governor.from_path(write_policy(POLICY), record_to=tmp_path / "decisions.jsonl")


def records(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "decisions.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [r for r in map(json.loads, lines) if r.get("event") == "record"]


def oai(upstream: ScriptedUpstream, gov: Governor) -> Any:
    return wrap_openai(openai.OpenAI(base_url=upstream.base_url + "/v1", api_key="sk-test", max_retries=0), gov)


def aoai(upstream: ScriptedUpstream, gov: Governor) -> Any:
    return wrap_openai(openai.AsyncOpenAI(base_url=upstream.base_url + "/v1", api_key="sk-test", max_retries=0), gov)


def claude(upstream: ScriptedUpstream, gov: Governor) -> Any:
    return wrap_anthropic(anthropic.Anthropic(base_url=upstream.base_url, api_key="sk-ant", max_retries=0), gov)


def aclaude(upstream: ScriptedUpstream, gov: Governor) -> Any:
    client = anthropic.AsyncAnthropic(base_url=upstream.base_url, api_key="sk-ant", max_retries=0)
    return wrap_anthropic(client, gov)


USAGE = Tokens(input=50, output=7)
CLAUDE_USAGE = Tokens(input=50, output=7, cache_read=400, cache_write_5m=30, cache_write_1h=20)
MSGS = [{"role": "user", "content": "hello"}]


def the_record(tmp_path: Path, api: str) -> dict[str, Any]:
    (rec,) = records(tmp_path)
    assert rec["metadata"]["api"] == api
    return rec


# --- OpenAI: responses, completions, embeddings --------------------------------------------------


def test_openai_responses_create_json_and_stream_settle_from_usage(
    gov: Governor, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    client = oai(upstream, gov)
    upstream.script(Reply(text="json", usage=USAGE))
    assert client.responses.create(model="gpt-4o", input="hi", max_output_tokens=30).output_text == "json"
    rec = the_record(tmp_path, "responses")
    assert (rec["input_tokens"], rec["output_tokens"]) == (50, 7)
    assert upstream.requests_to("responses")[-1].body["max_output_tokens"] == 30

    upstream.script(Reply(text="streamed text", usage=Tokens(input=60, output=9)))
    events = client.responses.create(model="gpt-4o", input=[{"role": "user", "content": "hi"}], stream=True)
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "streamed text"
    rec = records(tmp_path)[-1]
    assert (rec["input_tokens"], rec["output_tokens"]) == (60, 9)


def test_openai_responses_stream_helper_settles_and_a_closed_stream_settles_what_was_used(
    gov: Governor, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    client = oai(upstream, gov)
    upstream.script(Reply(text="helper", usage=Tokens(input=70, output=11)))
    with client.responses.stream(model="gpt-4o", input="hi") as stream:
        for _ in stream:
            pass
        assert stream.get_final_response().output_text == "helper"
    assert (records(tmp_path)[-1]["input_tokens"], records(tmp_path)[-1]["output_tokens"]) == (70, 11)

    upstream.script(Reply(text="x" * 600, usage=Tokens(input=80, output=150), event_delay=0.005))
    events = client.responses.create(model="gpt-4o", input="hi", stream=True)
    for n, _ in enumerate(events):
        if n == 6:
            break
    events.close()
    rec = records(tmp_path)[-1]
    assert rec["input_tokens"] > 0 and 0 < rec["output_tokens"] < 150  # the streamed part, estimated


def test_openai_completions_and_embeddings(gov: Governor, upstream: ScriptedUpstream, tmp_path: Path) -> None:
    client = oai(upstream, gov)
    upstream.script(
        Reply(text="once", usage=Tokens(input=5, output=2)), Reply(text="twice", usage=Tokens(input=6, output=3))
    )
    assert client.completions.create(model="gpt-3.5-turbo-instruct", prompt="tell").choices[0].text == "once"
    pieces = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="tell", stream=True)
    assert "".join(p.choices[0].text for p in pieces if p.choices) == "twice"
    assert upstream.requests_to("completions")[-1].body["stream_options"] == {"include_usage": True}
    upstream.script(Reply(usage=Tokens(input=12)))
    client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    recs = records(tmp_path)
    assert [(r["metadata"]["api"], r["input_tokens"], r["output_tokens"]) for r in recs] == [
        ("completions", 5, 2),
        ("completions", 6, 3),
        ("embeddings", 12, 0),
    ]
    assert recs[-1]["cost_usd"] > 0


def test_a_blocked_call_of_any_shape_never_reaches_the_provider(
    gov: Governor, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    client, ant = oai(upstream, gov), claude(upstream, gov)
    meta = {"task": "budget"}
    with gov.run("budget-run"):
        client.responses.create(model="gpt-4o", input="hi", governor_metadata=meta)
        ant.messages.create(model="claude-sonnet-4-5", max_tokens=9, messages=MSGS, governor_metadata=meta)
        sent = len(upstream.model_requests())
        with pytest.raises(BudgetExceeded):
            client.embeddings.create(model="text-embedding-3-small", input="x", governor_metadata=meta)
        with pytest.raises(BudgetExceeded):
            ant.messages.stream(model="claude-sonnet-4-5", max_tokens=9, messages=MSGS, governor_metadata=meta)
        with pytest.raises(BudgetExceeded):
            client.completions.create(model="gpt-3.5-turbo-instruct", prompt="x", governor_metadata=meta)
    assert len(upstream.model_requests()) == sent == 2


async def test_async_openai_shapes(gov: Governor, upstream: ScriptedUpstream, tmp_path: Path) -> None:
    client = aoai(upstream, gov)
    upstream.script(Reply(text="a", usage=USAGE), Reply(text="b", usage=USAGE), Reply(text="c", usage=USAGE))
    assert (await client.responses.create(model="gpt-4o", input="hi")).output_text == "a"
    stream = await client.responses.create(model="gpt-4o", input="hi", stream=True)
    assert [e.type async for e in stream][-1] == "response.completed"
    async with client.responses.stream(model="gpt-4o", input="hi") as helper:
        async for _ in helper:
            pass
    upstream.script(Reply(usage=Tokens(input=4)))
    await client.embeddings.create(model="text-embedding-3-small", input="x")
    recs = records(tmp_path)
    assert [(r["metadata"]["api"], r["input_tokens"]) for r in recs] == [("responses", 50)] * 3 + [("embeddings", 4)]
    await client.close()


# --- Anthropic --------------------------------------------------------------------------------------


def test_anthropic_messages_create_reads_cache_usage(gov: Governor, upstream: ScriptedUpstream, tmp_path: Path) -> None:
    client = claude(upstream, gov)
    upstream.script(Reply(text="hi there", usage=CLAUDE_USAGE))
    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=100, system="terse", messages=MSGS)
    assert message.content[0].text == "hi there"
    rec = the_record(tmp_path, "messages")
    # Anthropic's input_tokens excludes the cache; the record's input is fresh + read + written
    assert (rec["input_tokens"], rec["cache_read_tokens"], rec["cache_write_tokens"]) == (500, 400, 50)
    assert rec["output_tokens"] == 7 and rec["cost_usd"] > 0
    assert client.messages.count_tokens(model="claude-sonnet-4-5", messages=MSGS).input_tokens  # the client's own


def test_anthropic_streams_settle_from_message_start_and_message_delta(
    gov: Governor, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    client = claude(upstream, gov)
    upstream.script(Reply(text="streamed", usage=CLAUDE_USAGE), Reply(text="helper", usage=CLAUDE_USAGE))
    events = client.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=MSGS, stream=True)
    assert [e.type for e in events][-1] == "message_stop"
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=100, messages=MSGS) as stream:
        assert "".join(stream.text_stream) == "helper"
    for rec in records(tmp_path):
        assert (rec["input_tokens"], rec["output_tokens"], rec["cache_read_tokens"]) == (500, 7, 400)


def test_anthropic_stream_closed_early_settles_what_was_streamed(
    gov: Governor, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    client = claude(upstream, gov)
    upstream.script(Reply(text="y" * 600, usage=Tokens(input=90, output=150), event_delay=0.005))
    events = client.messages.create(model="claude-sonnet-4-5", max_tokens=200, messages=MSGS, stream=True)
    for n, _ in enumerate(events):
        if n == 5:
            break
    events.close()
    (rec,) = records(tmp_path)
    assert rec["input_tokens"] == 90  # message_start's report
    assert 0 < rec["output_tokens"] < 150


async def test_async_anthropic(gov: Governor, upstream: ScriptedUpstream, tmp_path: Path) -> None:
    client = aclaude(upstream, gov)
    upstream.script(Reply(text="a", usage=USAGE), Reply(text="b", usage=USAGE), Reply(text="c", usage=USAGE))
    message = await client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=MSGS)
    stream = await client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=MSGS, stream=True)
    kinds = [e.type async for e in stream]
    async with client.messages.stream(model="claude-sonnet-4-5", max_tokens=10, messages=MSGS) as helper:
        final = await helper.get_final_message()
    assert (message.content[0].text, kinds[-1], final.content[0].text) == ("a", "message_stop", "c")
    assert [(r["input_tokens"], r["output_tokens"]) for r in records(tmp_path)] == [(50, 7)] * 3
    await client.close()


# --- trimming through the SDKs ----------------------------------------------------------------------


def _long(i: int) -> str:
    return f"turn {i}: " + "lorem ipsum dolor sit amet " * 4


def test_trim_through_the_anthropic_sdk_keeps_tool_use_with_its_result(
    gov: Governor, upstream: ScriptedUpstream
) -> None:
    messages: list[dict[str, Any]] = []
    for i in range(3):
        messages.append({"role": "user", "content": _long(i)})
        use = {"type": "tool_use", "id": f"toolu_{i}", "name": "lookup", "input": {"q": i}}
        messages.append({"role": "assistant", "content": [use]})
        messages.append(
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": _long(i)}]}
        )
    messages.append({"role": "user", "content": "and now?"})
    upstream.script(Reply(text="ok"))
    claude(upstream, gov).messages.create(
        model="claude-sonnet-4-5",
        max_tokens=20,
        system="Be terse.",
        messages=messages,
        governor_metadata={"task": "trim"},
    )
    body = upstream.requests_to("messages")[-1].body
    assert body["system"] == "Be terse." and body["messages"][-1]["content"] == "and now?"
    sent = body["messages"]
    assert 1 < len(sent) < len(messages) and sent[0]["role"] == "user" and isinstance(sent[0]["content"], str)


def test_trim_through_the_openai_responses_sdk_keeps_function_call_pairs(
    gov: Governor, upstream: ScriptedUpstream
) -> None:
    items: list[dict[str, Any]] = []
    for i in range(3):
        items.append({"role": "user", "content": _long(i)})
        items.append({"type": "function_call", "call_id": f"c{i}", "name": "lookup", "arguments": "{}"})
        items.append({"type": "function_call_output", "call_id": f"c{i}", "output": _long(i)})
    items.append({"role": "user", "content": "and now?"})
    upstream.script(Reply(text="ok"))
    oai(upstream, gov).responses.create(
        model="gpt-4o", instructions="Be terse.", input=items, governor_metadata={"task": "trim"}
    )
    body = upstream.requests_to("responses")[-1].body
    sent = body["input"]
    assert body["instructions"] == "Be terse." and sent[-1]["content"] == "and now?" and len(sent) < len(items)
    calls = {i["call_id"] for i in sent if i.get("type") == "function_call"}
    outputs = {i["call_id"] for i in sent if i.get("type") == "function_call_output"}
    assert calls == outputs and sent[0].get("role") == "user"


def test_a_trim_that_cannot_fit_blocks_in_the_sdk(gov: Governor, upstream: ScriptedUpstream) -> None:
    with pytest.raises(ContextTooLarge):
        claude(upstream, gov).messages.create(
            model="claude-sonnet-4-5",
            max_tokens=5,
            messages=[{"role": "user", "content": "word " * 400}],
            governor_metadata={"task": "trim"},
        )
    assert upstream.model_requests() == []


def test_tool_use_turns_are_fingerprinted_for_repeated_call(
    write_policy: Callable[[str], Path], upstream: ScriptedUpstream
) -> None:
    gov = Governor.from_path(
        write_policy(
            POLICY
            + """\
stop:
  - id: loop
    type: repeated_call
    max: 2
    within: 10m
"""
        )
    )
    upstream.reset()
    client = claude(upstream, gov)
    turn = [
        *MSGS,
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "ls", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "a.txt"}]},
    ]
    upstream.script(Reply(tool_calls=[ToolCall("ls", {})]))
    with gov.run("loop-run"):
        client.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=turn)
        with pytest.raises(Exception, match="loop"):
            client.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=turn)
    assert len(upstream.model_requests()) == 1


# --- litellm SDK ------------------------------------------------------------------------------------


def test_governed_litellm_responses_anthropic_messages_text_completion_and_embedding(
    gov: Governor, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    governed = GovernedLiteLLM(gov)
    base = upstream.base_url + "/v1"
    upstream.script(
        Reply(text="resp", usage=Tokens(input=21, output=3)),
        Reply(text="claude", usage=Tokens(input=22, output=4)),
        Reply(text="text", usage=Tokens(input=23, output=5)),
        Reply(usage=Tokens(input=24)),
    )
    response = governed.responses(model="openai/gpt-4o", input="hi", api_base=base, api_key="sk-test")
    assert "resp" in str(response.output)
    # litellm's sync Messages handler speaks to non-Anthropic providers only (its Anthropic one is async)
    message = governed.anthropic_messages(
        model="openai/gpt-4o", max_tokens=10, messages=MSGS, api_base=base, api_key="sk"
    )
    assert message["content"][0]["text"] == "claude"
    done = governed.text_completion(
        model="text-completion-openai/gpt-3.5-turbo-instruct", prompt="hi", api_base=base, api_key="sk-test"
    )
    assert done.choices[0].text == "text"
    governed.embedding(model="openai/text-embedding-3-small", input=["hi"], api_base=base, api_key="sk-test")
    got = [(r["metadata"]["api"], r["input_tokens"], r["output_tokens"]) for r in records(tmp_path)]
    assert got == [("responses", 21, 3), ("messages", 22, 4), ("completions", 23, 5), ("embeddings", 24, 0)]


async def test_governed_litellm_async_and_streams(gov: Governor, upstream: ScriptedUpstream, tmp_path: Path) -> None:
    governed = GovernedLiteLLM(gov)
    base = upstream.base_url + "/v1"
    upstream.script(
        Reply(text="a", usage=Tokens(input=31, output=2)),
        Reply(text="streamed", usage=Tokens(input=32, output=3)),
        Reply(text="c", usage=Tokens(input=33, output=4)),
        Reply(usage=Tokens(input=34)),
    )
    await governed.aresponses(model="openai/gpt-4o", input="hi", api_base=base, api_key="sk-test")
    stream = await governed.aresponses(model="openai/gpt-4o", input="hi", stream=True, api_base=base, api_key="sk-t")
    async for _ in stream:
        pass
    stream = await governed.aanthropic_messages(
        model="anthropic/claude-sonnet-4-5",
        max_tokens=10,
        messages=MSGS,
        stream=True,
        api_base=upstream.base_url,
        api_key="sk-ant",
    )
    async for _ in stream:
        pass
    await governed.aembedding(model="openai/text-embedding-3-small", input="hi", api_base=base, api_key="sk-test")
    got = [(r["metadata"]["api"], r["input_tokens"], r["output_tokens"]) for r in records(tmp_path)]
    assert got == [("responses", 31, 2), ("responses", 32, 3), ("messages", 33, 4), ("embeddings", 34, 0)]
