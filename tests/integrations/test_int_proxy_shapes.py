"""Every API shape through the real litellm proxy with the governor hook, against the scripted upstream.

Chat Completions, Responses, Anthropic Messages, legacy completions and
embeddings, sync and streaming, driven by the real openai and anthropic SDKs.
The proxy's deployments point at ``support.upstream.ScriptedUpstream`` with
``api_base``, so what reached the provider is visible from the outside.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from conftest import read_jsonl
from litellm_proxy_proc import MASTER_KEY, ProxyProcess, start_proxy, write_upstream_config
from support.upstream import Reply, ScriptedUpstream, Tokens

pytestmark = pytest.mark.slow

POLICY = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: proxy-shapes}
models:
  prices:
    claude-sonnet-4-5: {input_per_mtok: 3, output_per_mtok: 15, cache_read_per_mtok: 0.3, cache_write_per_mtok: 3.75}
context:
  - id: small-context
    match: {task: trim}
    max_input_tokens: 120
    action: trim
budgets:
  - id: shared-calls
    scope: global
    match: {task: shared}
    limit: {calls: 5}
  - id: hourly
    scope: global
    match: {task: windowed}
    limit: {calls: 1}
    window: 1h
"""


class Env:
    def __init__(self, upstream: ScriptedUpstream, proxy: ProxyProcess, decisions: Path) -> None:
        self.upstream, self.proxy, self.decisions_path = upstream, proxy, decisions

    def decisions(self) -> list[dict[str, Any]]:
        return read_jsonl(self.decisions_path)

    def oai(self, **kw: Any) -> openai.OpenAI:
        kw.setdefault("max_retries", 0)
        return openai.OpenAI(base_url=self.proxy.base_url + "/v1", api_key=MASTER_KEY, **kw)

    def claude(self, **kw: Any) -> anthropic.Anthropic:
        kw.setdefault("max_retries", 0)
        return anthropic.Anthropic(base_url=self.proxy.base_url, api_key=MASTER_KEY, **kw)

    def records_for(self, task: str, *, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """The record events of ``task`` once ``count`` are there (success callbacks run after the response)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [
                r for r in self.decisions() if r["event"] == "record" and (r.get("metadata") or {}).get("task") == task
            ]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    directory = tmp_path_factory.mktemp("proxy-shapes")
    (directory / "policy.yaml").write_text(POLICY)
    decisions = directory / "decisions.jsonl"
    with ScriptedUpstream() as upstream:
        config = write_upstream_config(directory, upstream.base_url, governed=True)
        proc = start_proxy(
            config,
            {"GOVERNOR_POLICY": str(directory / "policy.yaml"), "GOVERNOR_DECISION_LOG": str(decisions)},
            directory / "proxy.log",
        )
        try:
            yield Env(upstream, proc, decisions)
        finally:
            proc.stop()


def _task() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


# each shape, called the way its SDK calls it; returns the text the client saw
def call_shape(env: Env, shape: str, task: str, *, stream: bool) -> str:
    meta = {"task": task}
    if shape == "chat":
        client = env.oai()
        if stream:
            chunks = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True, extra_body={"metadata": meta}
            )
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        done = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], extra_body={"metadata": meta}
        )
        return done.choices[0].message.content or ""
    if shape == "responses":
        client = env.oai()
        if stream:
            events = client.responses.create(model="gpt-4o", input="hi", stream=True, metadata=meta)
            return "".join(e.delta for e in events if e.type == "response.output_text.delta")
        return client.responses.create(model="gpt-4o", input="hi", metadata=meta).output_text
    if shape == "messages":
        claude = env.claude()
        kwargs: dict[str, Any] = dict(
            model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}], metadata=meta
        )
        if stream:
            events = claude.messages.create(stream=True, **kwargs)
            return "".join(
                e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"
            )
        return claude.messages.create(**kwargs).content[0].text
    if shape == "completions":
        client = env.oai()
        if stream:
            pieces = client.completions.create(
                model="gpt-3.5-turbo-instruct", prompt="hi", stream=True, extra_body={"metadata": meta}
            )
            return "".join(p.choices[0].text or "" for p in pieces if p.choices)
        done = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi", extra_body={"metadata": meta})
        return done.choices[0].text
    if shape == "embeddings":
        vectors = env.oai().embeddings.create(model="text-embedding-3-small", input="hi", extra_body={"metadata": meta})
        return f"{len(vectors.data[0].embedding)} dims"
    raise AssertionError(shape)


CASES = [
    ("chat", False),
    ("chat", True),
    ("responses", False),
    ("responses", True),
    ("messages", False),
    ("messages", True),
    ("completions", False),
    ("completions", True),
    ("embeddings", False),
]


@pytest.mark.parametrize(("shape", "stream"), CASES)
def test_each_shape_is_checked_sent_and_settled_from_its_own_usage(env: Env, shape: str, stream: bool) -> None:
    task = _task()
    usage = Tokens(input=40, output=0 if shape == "embeddings" else 9, cache_read=0)
    if shape == "messages":
        usage = Tokens(input=40, output=9, cache_read=200, cache_write_5m=30)
    env.upstream.script(Reply(text="governed answer", usage=usage))
    seen = call_shape(env, shape, task, stream=stream)
    assert seen == ("8 dims" if shape == "embeddings" else "governed answer")
    [record] = env.records_for(task, count=1)
    assert record["metadata"]["api"] == shape
    checks = [r for r in env.decisions() if r["event"] == "check" and r["decision_id"] == record["decision_id"]]
    assert len(checks) == 1 and checks[0]["input_tokens"] > 0
    if shape == "messages":  # Anthropic's input excludes the cache; the record's input includes it
        assert (record["input_tokens"], record["cache_read_tokens"], record["cache_write_tokens"]) == (270, 200, 30)
    else:
        assert record["input_tokens"] == 40
    assert record["output_tokens"] == usage.output
    assert record["cost_usd"] > 0


def test_one_budget_shared_across_shapes_is_never_exceeded_and_blocked_calls_never_reach_the_provider(
    env: Env,
) -> None:
    before = len(env.upstream.model_requests())
    outcomes: list[tuple[str, Any]] = []
    for shape in ["chat", "responses", "messages", "completions", "embeddings"] * 2:
        try:
            call_shape(env, shape, "shared", stream=shape in ("responses", "messages"))
            outcomes.append((shape, "ok"))
        except (openai.APIStatusError, anthropic.APIStatusError) as exc:
            outcomes.append((shape, exc))
    assert [o for _, o in outcomes[:5]] == ["ok"] * 5
    refused = [(shape, exc) for shape, exc in outcomes[5:]]
    assert all(exc != "ok" and exc.status_code == 429 for _, exc in refused), refused
    assert len(env.upstream.model_requests()) - before == 5
    for shape, exc in refused:
        assert exc.response.headers["x-should-retry"] == "false"
        if shape == "messages":  # Anthropic's own error shape, so Claude clients show the reason
            assert exc.body["type"] == "error"
            assert exc.body["error"]["type"] == "rate_limit_error"
            assert "shared-calls" in exc.body["error"]["message"]
        else:
            assert "shared-calls" in exc.body["message"]
    checks = [r for r in env.decisions() if r["event"] == "check" and (r.get("metadata") or {}).get("task") == "shared"]
    assert sorted(r["metadata"]["api"] for r in checks) == sorted(
        ["chat", "responses", "messages", "completions", "embeddings"] * 2
    )
    assert [r["verdict"] for r in checks].count("block") == 5


def test_a_refusal_is_not_retried_by_the_sdks_and_says_when_the_window_frees(env: Env) -> None:
    call_shape(env, "chat", "windowed", stream=False)
    client = env.oai(max_retries=3)  # the SDK default retries 429; the proxy says not to
    with pytest.raises(openai.RateLimitError) as err:
        client.responses.create(model="gpt-4o", input="hi", metadata={"task": "windowed"})
    assert err.value.response.headers["x-should-retry"] == "false"
    assert 3500 <= int(err.value.response.headers["retry-after"]) <= 3600
    claude = env.claude(max_retries=3)
    with pytest.raises(anthropic.RateLimitError) as ant:
        claude.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=5,
            messages=[{"role": "user", "content": "x"}],
            metadata={"task": "windowed"},  # type: ignore[typeddict-unknown-key]
        )
    assert ant.value.response.headers["retry-after"]
    checks = [
        r for r in env.decisions() if r["event"] == "check" and (r.get("metadata") or {}).get("task") == "windowed"
    ]
    assert [r["verdict"] for r in checks] == ["allow", "block", "block"]  # one request per call: no retries


def _long(i: int) -> str:
    return f"turn {i}: " + "lorem ipsum dolor sit amet " * 4


def test_trim_on_chat_keeps_system_tool_pairs_and_the_last_user_turn(env: Env) -> None:
    history: list[dict[str, Any]] = [{"role": "system", "content": "You are terse."}]
    for i in range(3):
        history.append({"role": "user", "content": _long(i)})
        call = {"id": f"call_{i}", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}
        history.append({"role": "assistant", "content": None, "tool_calls": [call]})
        history.append({"role": "tool", "tool_call_id": f"call_{i}", "content": _long(i)})
    history.append({"role": "user", "content": "and now?"})
    env.upstream.script(Reply(text="trimmed"))
    raw = env.oai().chat.completions.with_raw_response.create(
        model="gpt-4o", messages=history, extra_body={"metadata": {"task": "trim"}}
    )
    assert raw.headers["x-governor-verdict"] == "trim"
    sent = env.upstream.requests_to("chat")[-1].body["messages"]
    assert sent[0] == history[0] and sent[-1] == history[-1] and len(sent) < len(history)
    assert_tool_pairs(
        [m.get("tool_call_id") for m in sent if m["role"] == "tool"],
        [c["id"] for m in sent for c in m.get("tool_calls") or ()],
    )


def test_trim_on_responses_keeps_instructions_function_call_pairs_and_reasoning(env: Env) -> None:
    items: list[dict[str, Any]] = []
    for i in range(3):
        items.append({"type": "message", "role": "user", "content": [{"type": "input_text", "text": _long(i)}]})
        items.append({"type": "reasoning", "id": f"rs_{i}", "summary": [{"type": "summary_text", "text": "think"}]})
        items.append({"type": "function_call", "call_id": f"call_{i}", "name": "lookup", "arguments": '{"q": 1}'})
        items.append({"type": "function_call_output", "call_id": f"call_{i}", "output": _long(i)})
    items.append({"type": "message", "role": "user", "content": "and now?"})
    env.upstream.script(Reply(text="trimmed"))
    raw = env.oai().responses.with_raw_response.create(
        model="gpt-4o",
        instructions="Be terse.",
        input=items,
        metadata={"task": "trim"},  # type: ignore[arg-type]
    )
    assert raw.headers["x-governor-verdict"] == "trim"
    body = env.upstream.requests_to("responses")[-1].body
    sent = body["input"]
    assert body["instructions"] == "Be terse."
    assert sent[-1]["content"] == "and now?" and len(sent) < len(items)
    kinds = [i.get("type") for i in sent]
    assert kinds[0] in ("message", "reasoning")  # never starts at an orphaned call or result
    for k, kind in enumerate(kinds):
        if kind == "function_call":
            assert k > 0 and kinds[k - 1] == "reasoning"  # its reasoning item was kept with it
    assert_tool_pairs(
        [i["call_id"] for i in sent if i.get("type") == "function_call_output"],
        [i["call_id"] for i in sent if i.get("type") == "function_call"],
    )


def test_trim_on_anthropic_messages_keeps_system_tool_use_pairs(env: Env) -> None:
    messages: list[dict[str, Any]] = []
    for i in range(3):
        messages.append({"role": "user", "content": [{"type": "text", "text": _long(i)}]})
        use = {"type": "tool_use", "id": f"toolu_{i}", "name": "lookup", "input": {"q": i}}
        messages.append({"role": "assistant", "content": [{"type": "text", "text": "looking"}, use]})
        result = {"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": _long(i)}
        messages.append({"role": "user", "content": [result]})
    messages.append({"role": "user", "content": "and now?"})
    env.upstream.script(Reply(text="trimmed"))
    raw = env.claude().messages.with_raw_response.create(
        model="claude-sonnet-4-5",
        max_tokens=50,
        system="Be terse.",
        messages=messages,  # type: ignore[arg-type]
        metadata={"task": "trim"},  # type: ignore[typeddict-unknown-key]
    )
    assert raw.headers["x-governor-verdict"] == "trim"
    body = env.upstream.requests_to("messages")[-1].body
    sent = body["messages"]
    assert "Be terse." in json.dumps(body["system"])
    assert sent[-1]["content"] in ("and now?", [{"type": "text", "text": "and now?"}]) and len(sent) < len(messages)
    assert sent[0]["role"] == "user"
    blocks = [b for m in sent if isinstance(m["content"], list) for b in m["content"]]
    assert_tool_pairs(
        [b["tool_use_id"] for b in blocks if b["type"] == "tool_result"],
        [b["id"] for b in blocks if b["type"] == "tool_use"],
    )


def assert_tool_pairs(result_ids: list[Any], call_ids: list[Any]) -> None:
    assert result_ids and set(result_ids) == set(call_ids), (result_ids, call_ids)


@pytest.mark.parametrize("shape", ["chat", "messages", "responses"])
def test_a_single_oversized_user_turn_blocks_instead_of_sending_nothing(env: Env, shape: str) -> None:
    huge = "word " * 400
    before = len(env.upstream.model_requests())
    with pytest.raises((openai.BadRequestError, anthropic.BadRequestError)) as err:
        if shape == "chat":
            env.oai().chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": huge}], extra_body={"metadata": {"task": "trim"}}
            )
        elif shape == "responses":
            env.oai().responses.create(model="gpt-4o", input=huge, metadata={"task": "trim"})
        else:
            env.claude().messages.create(
                model="claude-sonnet-4-5",
                max_tokens=10,
                messages=[{"role": "user", "content": huge}],
                metadata={"task": "trim"},  # type: ignore[typeddict-unknown-key]
            )
    assert "small-context" in str(err.value)
    assert len(env.upstream.model_requests()) == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": "gpt-4o", "messages": []}),
        ("/v1/responses", {"model": "gpt-4o", "input": []}),
        ("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": []}),
    ],
)
def test_an_unreadable_request_is_refused_naming_the_route_and_how_to_allow_it(
    env: Env, path: str, body: dict[str, Any]
) -> None:
    before = len(env.upstream.model_requests())
    answer = httpx.post(env.proxy.base_url + path, json=body, headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert answer.status_code == 400
    assert answer.headers["x-should-retry"] == "false"
    text = answer.text
    assert path in text and "ungoverned: allow" in text and "empty" in text
    if path == "/v1/messages":
        assert answer.json()["type"] == "error"
    assert len(env.upstream.model_requests()) == before


def test_a_call_type_the_governor_does_not_check_is_refused(env: Env) -> None:
    with pytest.raises(openai.PermissionDeniedError) as err:
        env.oai().images.generate(model="gpt-4o", prompt="a cat")
    assert "/v1/images/generations" in str(err.value) and "ungoverned: allow" in str(err.value)
    # (litellm's images route re-raises the refusal without its headers: x-should-retry is lost there)


def test_a_stream_the_client_stops_early_still_settles(env: Env) -> None:
    task = _task()
    env.upstream.script(Reply(text="a long streamed answer " * 30, event_delay=0.02, usage=Tokens(input=30, output=90)))
    with env.oai().responses.create(model="gpt-4o", input="hi", stream=True, metadata={"task": task}) as events:
        for n, _ in enumerate(events):
            if n == 3:
                break
    records = env.records_for(task, count=1, timeout=20)
    assert len(records) == 1
    assert records[0]["metadata"]["api"] == "responses"
    assert records[0]["input_tokens"] > 0  # settled (released or charged), never left reserved


def eventually(fetch: Callable[[], Any], ok: Callable[[Any], bool], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    value = fetch()
    while not ok(value) and time.monotonic() < deadline:
        time.sleep(0.05)
        value = fetch()
    return value
