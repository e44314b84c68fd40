"""``with_raw_response`` / ``with_streaming_response`` (and ``parse``) of the wrapped clients are governed.

The real openai and anthropic clients against the scripted upstream
(tests/support/upstream.py): each way of reading a raw or streamed response
(``parse()``, ``read()``/``json()``, ``iter_lines()``/``iter_bytes()``, left
unread, read in part) settles once, from the usage the body reports; a
blocked call through either view never reaches the provider.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pydantic
import pytest
from support.upstream import Reply, ScriptedUpstream, Tokens

from governor import BudgetExceeded, Governor
from governor.integrations.anthropic import wrap as wrap_anthropic
from governor.integrations.openai import wrap as wrap_openai

POLICY = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: raw-responses}
models:
  prices:
    claude-sonnet-4-5: {input_per_mtok: 3, output_per_mtok: 15, cache_read_per_mtok: 0.3, cache_write_per_mtok: 3.75}
budgets:
  - id: one-call
    scope: run
    match: {task: budget}
    limit: {calls: 1}
"""
MSGS = [{"role": "user", "content": "hello"}]
CLAUDE_USAGE = Tokens(input=50, output=7, cache_read=400, cache_write_5m=30, cache_write_1h=20)


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as server:
        yield server


@pytest.fixture
def gov(write_policy: Callable[[str], Path], tmp_path: Path, upstream: ScriptedUpstream) -> Governor:
    upstream.reset()
    return Governor.from_path(write_policy(POLICY), record_to=tmp_path / "decisions.jsonl")


def records(tmp_path: Path) -> list[tuple[str, int, int]]:
    path = tmp_path / "decisions.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [
        (r["metadata"]["api"], r["input_tokens"], r["output_tokens"])
        for r in map(json.loads, lines)
        if r.get("event") == "record"
    ]


def oai(upstream: ScriptedUpstream, gov: Governor, cls: Any = openai.OpenAI) -> Any:
    return wrap_openai(cls(base_url=upstream.base_url + "/v1", api_key="sk-test", max_retries=0), gov)


def claude(upstream: ScriptedUpstream, gov: Governor, cls: Any = anthropic.Anthropic) -> Any:
    return wrap_anthropic(cls(base_url=upstream.base_url, api_key="sk-ant", max_retries=0), gov)


def test_openai_with_raw_response_settles_every_shape(
    gov: Governor, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    client = oai(upstream, gov)
    upstream.script(
        Reply(text="chat", usage=Tokens(input=11, output=2)),
        Reply(text="chat stream", usage=Tokens(input=12, output=3)),
        Reply(text="resp", usage=Tokens(input=13, output=4)),
        Reply(text="resp stream", usage=Tokens(input=14, output=5)),
        Reply(text="once", usage=Tokens(input=15, output=6)),
        Reply(usage=Tokens(input=16)),
    )
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSGS)
    assert raw.headers["content-type"].startswith("application/json")
    assert raw.parse().choices[0].message.content == "chat"
    assert records(tmp_path) == [("chat", 11, 2)]  # recorded when the raw response came, before parse()

    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSGS, stream=True)
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "chat stream"
    assert all(c.choices for c in chunks)  # the usage chunk the caller did not ask for stays hidden
    assert upstream.requests[-1].body["stream_options"] == {"include_usage": True}

    raw = client.responses.with_raw_response.create(model="gpt-4o", input="hi")
    assert raw.parse().output_text == "resp"
    raw = client.responses.with_raw_response.create(model="gpt-4o", input="hi", stream=True)
    assert [e.type for e in raw.parse()][-1] == "response.completed"
    client.completions.with_raw_response.create(model="gpt-3.5-turbo-instruct", prompt="tell")
    client.embeddings.with_raw_response.create(model="text-embedding-3-small", input=["a", "b"])
    assert records(tmp_path) == [
        ("chat", 11, 2),
        ("chat", 12, 3),
        ("responses", 13, 4),
        ("responses", 14, 5),
        ("completions", 15, 6),
        ("embeddings", 16, 0),
    ]
    assert client.models.with_raw_response.list().parse() is not None  # not a model call: the client's own


def test_openai_with_streaming_response_settles_however_the_body_is_read(
    gov: Governor, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    client = oai(upstream, gov)
    upstream.script(
        Reply(text="parsed", usage=Tokens(input=21, output=2)),
        Reply(text="lines", usage=Tokens(input=22, output=3)),
        Reply(usage=Tokens(input=23)),
        Reply(text="json", usage=Tokens(input=24, output=4)),
        Reply(text="x" * 600, usage=Tokens(input=25, output=150), event_delay=0.005),
    )
    with client.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MSGS) as response:
        assert response.parse().choices[0].message.content == "parsed"
    with client.responses.with_streaming_response.create(model="gpt-4o", input="hi", stream=True) as response:
        lines = list(response.iter_lines())
    assert any("response.completed" in line for line in lines)
    with client.embeddings.with_streaming_response.create(model="text-embedding-3-small", input="x") as response:
        assert response.http_request.url.path.endswith("/embeddings")  # body left unread: read when the block ends
    with client.completions.with_streaming_response.create(model="gpt-3.5-turbo-instruct", prompt="t") as response:
        assert response.json()["choices"][0]["text"] == "json"
    with client.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MSGS, stream=True) as resp:
        for n, _ in enumerate(resp.iter_bytes(64)):
            if n == 15:
                break  # stopped early: what was streamed is recorded
    recs = records(tmp_path)
    assert recs[:4] == [("chat", 21, 2), ("responses", 22, 3), ("embeddings", 23, 0), ("completions", 24, 4)]
    api, input_tokens, output_tokens = recs[4]
    assert api == "chat" and input_tokens > 0 and 0 < output_tokens < 150  # the streamed part, estimated


def test_a_blocked_call_through_raw_views_never_reaches_the_provider(
    gov: Governor, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    client, ant = oai(upstream, gov), claude(upstream, gov)
    meta = {"task": "budget"}
    with gov.run("raw-budget"):
        client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSGS, governor_metadata=meta)
        sent = len(upstream.model_requests())
        with pytest.raises(BudgetExceeded):
            client.responses.with_raw_response.create(model="gpt-4o", input="hi", governor_metadata=meta)
        with pytest.raises(BudgetExceeded):
            view = client.embeddings.with_streaming_response
            with view.create(model="text-embedding-3-small", input="x", governor_metadata=meta):
                pass
        with pytest.raises(BudgetExceeded):
            ant.messages.with_raw_response.create(
                model="claude-sonnet-4-5", max_tokens=9, messages=MSGS, governor_metadata=meta
            )
        with pytest.raises(BudgetExceeded):
            with ant.messages.with_streaming_response.create(
                model="claude-sonnet-4-5", max_tokens=9, messages=MSGS, stream=True, governor_metadata=meta
            ):
                pass
    assert len(upstream.model_requests()) == sent == 1
    assert len(records(tmp_path)) == 1


def test_anthropic_raw_and_streamed_responses_read_cache_usage(
    gov: Governor, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    client = claude(upstream, gov)
    upstream.script(*[Reply(text=f"r{i}", usage=CLAUDE_USAGE) for i in range(4)])
    raw = client.messages.with_raw_response.create(model="claude-sonnet-4-5", max_tokens=50, messages=MSGS)
    assert raw.parse().content[0].text == "r0"
    raw = client.messages.with_raw_response.create(model="claude-sonnet-4-5", max_tokens=50, messages=MSGS, stream=True)
    assert [e.type for e in raw.parse()][-1] == "message_stop"
    with client.messages.with_streaming_response.create(
        model="claude-sonnet-4-5", max_tokens=50, messages=MSGS, stream=True
    ) as response:
        lines = list(response.iter_lines())
    assert "event: message_delta" in lines
    with client.messages.with_streaming_response.create(
        model="claude-sonnet-4-5", max_tokens=50, messages=MSGS
    ) as response:
        assert response.parse().content[0].text == "r3"
    # Anthropic's input_tokens excludes the cache: each record's input is fresh + read + written
    assert records(tmp_path) == [("messages", 500, 7)] * 4


async def test_async_raw_and_streamed_responses(gov: Governor, upstream: ScriptedUpstream, tmp_path: Path) -> None:
    client = oai(upstream, gov, openai.AsyncOpenAI)
    ant = claude(upstream, gov, anthropic.AsyncAnthropic)
    upstream.script(
        Reply(text="a", usage=Tokens(input=31, output=1)),
        Reply(text="b", usage=Tokens(input=32, output=2)),
        Reply(text="c", usage=Tokens(input=33, output=3)),
        Reply(text="d", usage=CLAUDE_USAGE),
        Reply(text="e", usage=CLAUDE_USAGE),
        Reply(text="f", usage=CLAUDE_USAGE),
    )
    raw = await client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSGS)
    assert raw.parse().choices[0].message.content == "a"
    raw = await client.responses.with_raw_response.create(model="gpt-4o", input="hi", stream=True)
    assert [e.type async for e in raw.parse()][-1] == "response.completed"
    async with client.responses.with_streaming_response.create(model="gpt-4o", input="hi") as response:
        assert (await response.parse()).output_text == "c"
    raw = await ant.messages.with_raw_response.create(model="claude-sonnet-4-5", max_tokens=9, messages=MSGS)
    assert (await raw.parse()).content[0].text == "d"
    raw = await ant.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=9, messages=MSGS, stream=True
    )
    assert [e.type async for e in await raw.parse()][-1] == "message_stop"
    async with ant.messages.with_streaming_response.create(
        model="claude-sonnet-4-5", max_tokens=9, messages=MSGS, stream=True
    ) as response:
        assert [line async for line in response.iter_lines()]
    assert records(tmp_path) == [
        ("chat", 31, 1),
        ("responses", 32, 2),
        ("responses", 33, 3),
        ("messages", 500, 7),
        ("messages", 500, 7),
        ("messages", 500, 7),
    ]
    await client.close()
    await ant.close()


class Answer(pydantic.BaseModel):
    city: str


def test_structured_output_parse_is_governed(gov: Governor, upstream: ScriptedUpstream, tmp_path: Path) -> None:
    client = oai(upstream, gov)
    upstream.script(
        Reply(text='{"city": "Paris"}', usage=Tokens(input=41, output=5)),
        Reply(text='{"city": "Rome"}', usage=Tokens(input=42, output=6)),
    )
    parsed = client.chat.completions.parse(model="gpt-4o", messages=MSGS, response_format=Answer)
    assert parsed.choices[0].message.parsed == Answer(city="Paris")
    assert client.responses.parse(model="gpt-4o", input="hi", text_format=Answer).output_parsed == Answer(city="Rome")
    assert records(tmp_path) == [("chat", 41, 5), ("responses", 42, 6)]
