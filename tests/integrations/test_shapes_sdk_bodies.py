"""The request reader never refuses a body the real SDKs call valid (governor.integrations.shapes).

Bodies are drawn from the installed ``anthropic`` and ``openai`` packages' own
request types (tests/support/sdk_bodies.py): every message role, content block,
input item and tool type those types allow, ``cache_control``, system prompts as
text or blocks, thinking blocks, server tool results. Each is read, checked by
the real governor, and sent back unchanged when nothing is trimmed. Claude Code
once was refused here for a ``system`` message between turns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from anthropic.types import MessageParam
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletionMessageParam
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming
from openai.types.responses import ResponseInputItemParam
from openai.types.responses.response_create_params import ResponseCreateParamsNonStreaming

from governor import Governor
from governor.integrations.shapes import decided_request, read_call
from governor.policy.loader import load_policy
from tests.support.sdk_bodies import body, strategy

model = st.text(min_size=1, max_size=12)
# the API's own rules that the types do not carry: a model, at least one message or input item
BODIES: dict[str, Any] = {
    "messages": body(
        MessageCreateParamsNonStreaming, model=model, messages=st.lists(strategy(MessageParam), min_size=1, max_size=4)
    ),
    "responses": body(
        ResponseCreateParamsNonStreaming,
        model=model,
        input=st.text(min_size=1) | st.lists(strategy(ResponseInputItemParam), min_size=1, max_size=4),
    ),
    "chat": body(
        CompletionCreateParamsNonStreaming,
        model=model,
        messages=st.lists(strategy(ChatCompletionMessageParam), min_size=1, max_size=4),
    ),
}
ITEMS = {"messages": "messages", "responses": "input", "chat": "messages"}


@pytest.fixture(scope="module")
def gov(tmp_path_factory: pytest.TempPathFactory) -> Governor:
    path = tmp_path_factory.mktemp("sdk-bodies") / "policy.yaml"
    path.write_text(
        "apiVersion: governor/v1\nkind: Policy\nmetadata: {name: any-body}\ndefaults: {allow_unpriced: true}\n"
    )
    return Governor(load_policy(path), stats=False, observers=False)


@pytest.mark.parametrize("shape", sorted(BODIES))
def test_every_body_the_sdk_types_allow_is_read_and_checked(gov: Governor, shape: str) -> None:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(request=BODIES[shape])
    def check(request: dict[str, Any]) -> None:
        call = read_call(shape, request)  # never UnreadableCall
        items = request[ITEMS[shape]]
        assert len(call.messages) == call.fixed + (1 if isinstance(items, str) else len(items))
        decision = gov.check(**call.check_kwargs())  # nor InvalidCall, nor a crash counting it
        assert decision.verdict in ("allow", "reroute", "clamp")
        sent = decided_request(call, decision, request)
        assert sent[ITEMS[shape]] == items  # nothing trimmed: the request's own items go out as they came

    check()


def claude_code_body(turns: list[dict[str, Any]]) -> dict[str, Any]:
    """A request as Claude Code 2.1.197 sends it for an Opus model (captured from the pinned CLI)."""
    return {
        "model": "claude-opus-4-8",
        "max_tokens": 64000,
        "stream": True,
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197.123; cc_entrypoint=sdk-cli;"},
            {"type": "text", "text": "You are a Claude agent.", "cache_control": {"type": "ephemeral"}},
        ],
        "tools": [{"name": "Bash", "description": "Run a command", "input_schema": {"type": "object"}}],
        "messages": turns,
    }


def test_claude_codes_system_message_between_turns_is_counted_and_survives_a_trim(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("""\
apiVersion: governor/v1
kind: Policy
metadata: {name: cc}
defaults: {allow_unpriced: true}
context:
  - {id: ctx, match: {model: claude-opus-4-8}, max_input_tokens: 300, action: trim}
""")
    gov = Governor(load_policy(path), stats=False, observers=False)
    agents = {"role": "system", "content": "Available agent types for the Agent tool: " + "claude explore plan " * 30}
    first = {"role": "user", "content": [{"type": "text", "text": "say hi", "cache_control": {"type": "ephemeral"}}]}
    turns = [
        first,
        agents,
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "run it " * 150, "signature": "sig"},
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "echo hi"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "It said hi."}]},
        {"role": "user", "content": "now say bye"},
    ]
    request = claude_code_body(turns)
    call = read_call("messages", request)
    assert call.messages[call.fixed + 1]["role"] == "system"
    without = read_call("messages", claude_code_body([t for t in turns if t is not agents]))
    decision = gov.check(**call.check_kwargs())
    assert decision.input_tokens > gov.check(**without.check_kwargs()).input_tokens  # the system message counts
    assert decision.verdict == "trim", (decision.input_tokens, decision.reasons)
    sent = decided_request(call, decision, request)
    assert sent["messages"] == [agents, turns[-1]]  # system kept; tool_use and its tool_result went together
    assert sent["system"] == request["system"]
