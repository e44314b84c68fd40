"""The call model of every API shape (governor.integrations.shapes) and the trim every provider accepts.

Conversations with tool calls, parallel calls and reasoning items are generated
(hypothesis) and rendered in each API's own format; the real governor checks
them and the decided request is read back in that format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governor import Governor
from governor.errors import UnreadableCall
from governor.integrations.shapes import decided_request, read_call
from governor.policy.loader import load_policy

# a conversation: ("user", text) | ("assistant", text) | ("calls", [(id, name, args)], [result texts], reasoning?)
words = st.text(alphabet="abcdefghij klmnop", min_size=1, max_size=60)


@st.composite
def conversations(draw: Any) -> list[tuple[Any, ...]]:
    turns: list[tuple[Any, ...]] = [("user", draw(words))]
    n = 0
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["calls", "assistant", "user"]))
        if kind == "calls":
            k = draw(st.integers(1, 3))
            ids = [f"call_{n + j}" for j in range(k)]
            n += k
            turns.append(
                (
                    "calls",
                    [(i, "lookup", {"q": draw(words)}) for i in ids],
                    [draw(words) for _ in ids],
                    draw(st.booleans()),
                )
            )
        else:
            turns.append((kind, draw(words)))
    if turns[-1][0] != "user":
        turns.append(("user", draw(words)))
    return turns


def as_chat(turns: list[tuple[Any, ...]], system: str) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for turn in turns:
        if turn[0] in ("user", "assistant"):
            messages.append({"role": turn[0], "content": turn[1]})
        else:
            calls = [
                {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
                for i, n, a in turn[1]
            ]
            messages.append({"role": "assistant", "content": None, "tool_calls": calls})
            messages += [
                {"role": "tool", "tool_call_id": i, "content": r} for (i, _, _), r in zip(turn[1], turn[2], strict=True)
            ]
    return {"model": "gpt-4o", "messages": messages}


def as_responses(turns: list[tuple[Any, ...]], system: str) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for turn in turns:
        if turn[0] == "user":
            items.append({"type": "message", "role": "user", "content": [{"type": "input_text", "text": turn[1]}]})
        elif turn[0] == "assistant":
            items.append(
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": turn[1]}]}
            )
        else:
            for (i, n, a), _ in zip(turn[1], turn[2], strict=True):
                if turn[3]:
                    items.append(
                        {"type": "reasoning", "id": f"rs_{i}", "summary": [{"type": "summary_text", "text": "hm"}]}
                    )
                items.append({"type": "function_call", "call_id": i, "name": n, "arguments": json.dumps(a)})
            items += [
                {"type": "function_call_output", "call_id": i, "output": r}
                for (i, _, _), r in zip(turn[1], turn[2], strict=True)
            ]
    return {"model": "gpt-4o", "instructions": system, "input": items, "max_output_tokens": 50}


def as_messages(turns: list[tuple[Any, ...]], system: str) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for turn in turns:
        if turn[0] in ("user", "assistant"):
            role = turn[0]
            if messages and messages[-1]["role"] == role:  # Anthropic alternates: merge into one turn
                messages[-1]["content"].append({"type": "text", "text": turn[1]})
            else:
                messages.append({"role": role, "content": [{"type": "text", "text": turn[1]}]})
        else:
            blocks: list[dict[str, Any]] = []
            if turn[3]:
                blocks.append({"type": "thinking", "thinking": "hm", "signature": "s"})
            blocks += [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in turn[1]]
            if messages and messages[-1]["role"] == "assistant":
                messages[-1]["content"] += blocks
            else:
                messages.append({"role": "assistant", "content": blocks})
            results = [
                {"type": "tool_result", "tool_use_id": i, "content": r}
                for (i, _, _), r in zip(turn[1], turn[2], strict=True)
            ]
            messages.append({"role": "user", "content": results})
    if not any(b["type"] == "text" for b in messages[-1]["content"]):
        messages.append({"role": "user", "content": [{"type": "text", "text": "go on"}]})
    return {"model": "claude-sonnet-4-5", "system": system, "max_tokens": 50, "messages": messages}


RENDER = {"chat": as_chat, "responses": as_responses, "messages": as_messages}
ITEMS = {"chat": "messages", "responses": "input", "messages": "messages"}


def governor_with_cap(tmp_path: Path, limit: int) -> Governor:
    path = tmp_path / "policy.yaml"
    path.write_text(f"""\
apiVersion: governor/v1
kind: Policy
metadata: {{name: shapes}}
models:
  prices:
    claude-sonnet-4-5: {{input_per_mtok: 3, output_per_mtok: 15}}
context:
  - {{id: cap, max_input_tokens: {limit}, action: trim}}
""")
    return Governor(load_policy(path), stats=False, observers=False)


def _is_user_turn(shape: str, item: Any) -> bool:
    if shape == "chat":
        return item["role"] == "user"
    if shape == "responses":
        return item.get("role") == "user"
    return item["role"] == "user" and any(b["type"] == "text" for b in item["content"])


def _opens_cleanly(shape: str, item: Any) -> bool:
    """A user turn that answers no tool call (Anthropic: no tool_result blocks)."""
    if shape != "messages":
        return _is_user_turn(shape, item)
    return item["role"] == "user" and not any(b["type"] == "tool_result" for b in item["content"])


def _pairs(shape: str, items: list[Any]) -> tuple[list[str], list[str]]:
    """(call ids, result ids) of a request's items."""
    if shape == "chat":
        calls = [c["id"] for m in items for c in m.get("tool_calls") or ()]
        return calls, [m["tool_call_id"] for m in items if m["role"] == "tool"]
    if shape == "responses":
        return (
            [i["call_id"] for i in items if i.get("type") == "function_call"],
            [i["call_id"] for i in items if i.get("type") == "function_call_output"],
        )
    blocks = [b for m in items for b in m["content"]]
    return [b["id"] for b in blocks if b["type"] == "tool_use"], [
        b["tool_use_id"] for b in blocks if b["type"] == "tool_result"
    ]


@pytest.mark.parametrize("shape", ["chat", "responses", "messages"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(turns=conversations(), limit=st.integers(30, 400))
def test_every_trim_is_one_the_provider_accepts_or_the_call_blocks(
    tmp_path: Path, shape: str, turns: list[tuple[Any, ...]], limit: int
) -> None:
    gov = governor_with_cap(tmp_path, limit)
    request = RENDER[shape](turns, "You are terse.")
    call = read_call(shape, request)
    assert len(call.messages) == call.fixed + len(request[ITEMS[shape]])
    decision = gov.check(**call.check_kwargs())
    items = [m for m in request[ITEMS[shape]] if shape != "chat" or m["role"] != "system"]
    if decision.blocked:
        # only when even the system prompt and the last user turn (and what follows it) do not fit
        assert decision.block_kind == "context" and decision.input_tokens > limit
        return
    sent = decided_request(call, decision, request)
    kept = [m for m in sent[ITEMS[shape]] if shape != "chat" or m["role"] != "system"]
    assert kept == items[len(items) - len(kept) :]  # a suffix, in order: the newest turns
    last_user = max(k for k, item in enumerate(items) if _is_user_turn(shape, item))
    assert len(kept) >= len(items) - last_user  # the last user turn survives
    if len(kept) < len(items):
        assert decision.verdict == "trim" and decision.input_tokens <= limit
        assert _opens_cleanly(shape, kept[0])  # opens at a user turn that answers no dropped call
    calls, results = _pairs(shape, kept)
    assert set(calls) == set(results)  # never a call without its result, nor a result without its call
    if shape == "chat":
        assert kept[0] is items[len(items) - len(kept)] and sent["messages"][0]["role"] == "system"
    elif shape == "responses":
        assert sent["instructions"] == "You are terse."
    else:
        assert sent["system"] == "You are terse."


@pytest.mark.parametrize("shape", ["chat", "responses", "messages"])
def test_counting_last_user_message_and_fingerprints_read_every_shape(tmp_path: Path, shape: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("""\
apiVersion: governor/v1
kind: Policy
metadata: {name: shapes}
models:
  prices:
    claude-sonnet-4-5: {input_per_mtok: 3, output_per_mtok: 15}
routes:
  - id: refunds-cheap
    match: {last_user_message: {contains: refund}}
    to: gpt-4o-mini
stop:
  - {id: loop, type: repeated_call, max: 2, within: 10m}
""")
    gov = Governor(load_policy(path), stats=False, observers=False)
    turns = [
        ("user", "hello"),
        ("calls", [("call_1", "lookup", {"q": "order 7"})], ["shipped"], True),
        ("user", "where is my refund"),
    ]
    request = RENDER[shape](turns, "You are terse.")
    call = read_call(shape, request)
    longer = read_call(shape, RENDER[shape](turns + [("assistant", "word " * 50), ("user", "x")], "You are terse."))
    with gov.run(f"r-{shape}"):
        first = gov.check(**call.check_kwargs())
        assert first.verdict == "reroute" and first.model == "gpt-4o-mini"  # last_user_message read
        assert 0 < first.input_tokens < gov.check(**longer.check_kwargs()).input_tokens
        other = RENDER[shape](
            [*turns[:1], ("calls", [("call_1", "lookup", {"q": "order 8"})], ["shipped"], True), turns[2]],
            "You are terse.",
        )
        assert not gov.check(**read_call(shape, other).check_kwargs()).blocked  # other tool arguments: other call
        repeat = gov.check(**read_call(shape, RENDER[shape](turns, "You are terse.")).check_kwargs())
    assert repeat.blocked and repeat.blocked_by == "loop"


def test_completions_and_embeddings_read_prompts_and_token_ids() -> None:
    text = read_call("completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi", "max_tokens": 7})
    assert (text.messages[0]["content"], text.max_tokens, text.input_tokens) == ("Say hi", 7, None)
    ids = read_call("embeddings", {"model": "text-embedding-3-small", "input": [[1, 2, 3], [4, 5]]})
    assert (ids.input_tokens, ids.max_tokens) == (5, 0)
    many = read_call("embeddings", {"model": "text-embedding-3-small", "input": ["a", "b"]})
    assert many.messages[0]["content"] == "a\nb"


@pytest.mark.parametrize(
    ("shape", "request_", "field"),
    [
        ("chat", {"model": "gpt-4o", "messages": []}, "'messages' is empty"),
        ("chat", {"model": "gpt-4o"}, "'messages' is missing"),
        ("chat", {"messages": [{"role": "user", "content": "x"}]}, "'model'"),
        ("chat", {"model": "gpt-4o", "messages": "hi"}, "must be a list"),
        ("responses", {"model": "gpt-4o", "input": []}, "'input' is empty"),
        ("responses", {"model": "gpt-4o", "input": [{"content": "x"}]}, "'input[0]' has no type"),
        ("messages", {"model": "c", "max_tokens": 5, "messages": [{"role": "robot", "content": "x"}]}, "messages[0]"),
        (
            "messages",
            {"model": "c", "max_tokens": "many", "messages": [{"role": "user", "content": "x"}]},
            "max_tokens",
        ),
        ("completions", {"model": "m", "prompt": ""}, "'prompt' is empty"),
        ("embeddings", {"model": "m", "input": [1.5]}, "'input' must be"),
    ],
)
def test_an_unreadable_request_names_its_field(shape: str, request_: dict[str, Any], field: str) -> None:
    with pytest.raises(UnreadableCall, match=field.replace("[", r"\[").replace("]", r"\]")):
        read_call(shape, request_)


def test_responses_previous_response_id_and_text_input() -> None:
    call = read_call("responses", {"model": "gpt-4o", "input": "next", "previous_response_id": "resp_1"})
    assert call.previous_response_id == "resp_1" and call.items_key is None
    follow = read_call("responses", {"model": "gpt-4o", "previous_response_id": "resp_1"})
    assert follow.messages == () and follow.previous_response_id == "resp_1"
