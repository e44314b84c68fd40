"""GovernorCapability in a real pydantic-ai ``Agent`` with its own TestModel / FunctionModel."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.usage import RequestUsage

from governor import BudgetExceeded, Governor
from governor.integrations.pydantic_ai import GovernorCapability

POLICY = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: pydantic-ai-test}
routes:
  - id: classify-cheap
    match: {task: classify}
    to: gpt-4o-mini
context:
  - id: long-history
    match: {task: chat}
    max_input_tokens: 100
    action: trim
    keep_last: 1
calls:
  - id: out-cap
    max_output_tokens: 100
budgets:
  - id: per-run
    scope: run
    match: {task: loop}
    limit: {calls: 1}
"""


@pytest.fixture
def gov(write_policy: Callable[[str], Path], tmp_path: Path) -> Governor:
    return Governor.from_path(write_policy(POLICY), record_to=tmp_path / "decisions.jsonl")


def records(tmp_path: Path) -> list[dict]:
    lines = (tmp_path / "decisions.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("event") == "record"]


def replying(text: str, name: str, seen: list | None = None) -> FunctionModel:
    def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if seen is not None:
            seen.append((len(messages), info.model_settings))
        usage = RequestUsage(input_tokens=40, output_tokens=3, cache_read_tokens=8)
        return ModelResponse(parts=[TextPart(text)], usage=usage)

    return FunctionModel(reply, model_name=name)


async def test_reroute_clamp_usage_and_run_id(gov: Governor, tmp_path: Path) -> None:
    strong, seen = replying("strong", "gpt-4o"), []
    cheap = replying("spam", "gpt-4o-mini", seen)
    capability = GovernorCapability(gov, models={"gpt-4o-mini": cheap}, metadata={"task": "classify"})
    agent = Agent(strong, capabilities=[capability])
    result = await agent.run("win a prize now")
    assert result.output == "spam"
    assert seen[0][1]["max_tokens"] == 100
    (rec,) = records(tmp_path)
    assert (rec["verdict"], rec["model"]) == ("reroute", "gpt-4o-mini")
    assert (rec["input_tokens"], rec["output_tokens"], rec["cache_read_tokens"]) == (40, 3, 8)
    assert rec["run_id"] == result.run_id


async def test_trim_keeps_the_last_message(gov: Governor) -> None:
    seen: list = []
    model = replying("ok", "gpt-4o", seen)
    agent = Agent(model, capabilities=[GovernorCapability(gov, metadata={"task": "chat"})])
    history = (await Agent(TestModel(custom_output_text="lorem ipsum " * 30)).run("first " * 40)).all_messages()
    await agent.run("the question", message_history=history)
    assert seen[0][0] == 1  # only the last request went out


async def test_block_raises_or_ends_the_run(gov: Governor) -> None:
    def call_tool_then_answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:
            return ModelResponse(parts=[ToolCallPart("lookup", {"query": "x"})])
        return ModelResponse(parts=[TextPart("never reached")])

    def build(on_block: Any) -> Agent:
        model = FunctionModel(call_tool_then_answer, model_name="gpt-4o")
        agent = Agent(model, capabilities=[GovernorCapability(gov, metadata={"task": "loop"}, on_block=on_block)])

        @agent.tool_plain
        def lookup(query: str) -> str:
            return f"result for {query}"

        return agent

    with pytest.raises(BudgetExceeded) as info:
        await build("raise").run("go")
    assert "per-run" in info.value.rule_ids

    result = await build("end").run("go")
    assert "per-run" in result.output and "never reached" not in result.output


async def test_test_model_usage_is_recorded(gov: Governor, tmp_path: Path) -> None:
    agent = Agent(TestModel(model_name="gpt-4o"), capabilities=[GovernorCapability(gov)])
    result = await agent.run("hello")
    (rec,) = records(tmp_path)
    usage = result.usage if hasattr(result.usage, "input_tokens") else result.usage()  # a method before 2.x
    assert (rec["input_tokens"], rec["output_tokens"]) == (usage.input_tokens, usage.output_tokens)


async def test_streamed_runs_are_rerouted_and_recorded(gov: Governor, tmp_path: Path) -> None:
    cheap = TestModel(model_name="gpt-4o-mini", custom_output_text="cheap stream")
    capability = GovernorCapability(gov, models={"gpt-4o-mini": cheap}, metadata={"task": "classify"})
    agent = Agent(TestModel(model_name="gpt-4o"), capabilities=[capability])
    async with agent.run_stream("win a prize now") as run:
        output = await run.get_output()
    assert output == "cheap stream"
    (rec,) = records(tmp_path)
    assert (rec["verdict"], rec["model"]) == ("reroute", "gpt-4o-mini") and rec["output_tokens"] > 0
