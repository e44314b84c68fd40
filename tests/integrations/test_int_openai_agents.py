"""GovernedModel in the real OpenAI Agents SDK runner, with a minimal scripted ``Model`` (no network)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, RunConfig, Runner, function_tool, set_trace_processors, trace
from agents.items import ModelResponse
from agents.models.interface import Model, ModelProvider
from agents.usage import Usage
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from governor import BudgetExceeded, Governor
from governor.integrations.openai_agents import GovernedModel, GovernedModelProvider

POLICY = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: agents-test}
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
    max_output_tokens: 128
budgets:
  - id: per-run
    scope: run
    match: {task: loop}
    limit: {calls: 1}
"""
NO_TRACING = RunConfig(tracing_disabled=True)


def usage() -> Usage:
    return Usage(
        requests=1,
        input_tokens=50,
        output_tokens=5,
        total_tokens=55,
        input_tokens_details=InputTokensDetails(cached_tokens=20, cache_write_tokens=4),
        output_tokens_details=OutputTokensDetails(reasoning_tokens=2),
    )


def text(value: str) -> ModelResponse:
    message = ResponseOutputMessage(
        id="msg_1",
        content=[ResponseOutputText(text=value, type="output_text", annotations=[])],
        role="assistant",
        status="completed",
        type="message",
    )
    return ModelResponse(output=[message], usage=usage(), response_id=None)


def tool_call() -> ModelResponse:
    call = ResponseFunctionToolCall(
        arguments='{"query": "x"}', call_id="call_1", name="lookup", type="function_call", id="fc_1", status="completed"
    )
    return ModelResponse(output=[call], usage=usage(), response_id=None)


class ScriptedModel(Model):
    """Answers with the given responses in order and remembers what it was sent."""

    def __init__(self, *replies: ModelResponse) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[Any, Any, Any]] = []

    async def get_response(
        self, system_instructions, input, model_settings, tools, output_schema, handoffs, tracing, **kw
    ):  # type: ignore[no-untyped-def]
        self.calls.append((system_instructions, input, model_settings))
        return self.replies.pop(0)

    async def stream_response(self, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        raise NotImplementedError
        yield  # pragma: no cover


@function_tool
def lookup(query: str) -> str:
    """Look something up."""
    return f"result for {query}"


@pytest.fixture
def gov(write_policy: Callable[[str], Path], tmp_path: Path) -> Governor:
    return Governor.from_path(write_policy(POLICY), record_to=tmp_path / "decisions.jsonl")


def records(tmp_path: Path) -> list[dict]:
    lines = (tmp_path / "decisions.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("event") == "record"]


async def test_reroute_clamp_and_usage(gov: Governor, tmp_path: Path) -> None:
    strong, cheap = ScriptedModel(text("strong")), ScriptedModel(text("spam"))
    model = GovernedModel(gov, strong, name="gpt-4o", models={"gpt-4o-mini": cheap}, metadata={"task": "classify"})
    result = await Runner.run(Agent(name="triage", model=model), "win a prize now", run_config=NO_TRACING)
    assert result.final_output == "spam" and not strong.calls
    assert cheap.calls[0][2].max_tokens == 128
    (rec,) = records(tmp_path)
    assert (rec["verdict"], rec["model"]) == ("reroute", "gpt-4o-mini")
    got = [
        rec[k] for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
    ]
    assert got == [50, 5, 20, 4, 2]


async def test_trim_sends_only_the_last_item(gov: Governor) -> None:
    inner = ScriptedModel(text("ok"))
    model = GovernedModel(gov, inner, name="gpt-4o", metadata={"task": "chat"})
    history = [
        {"role": "user", "content": "first " * 60},
        {"role": "assistant", "content": "lorem ipsum " * 40},
        {"role": "user", "content": "the question"},
    ]
    await Runner.run(Agent(name="chat", model=model, instructions="Be terse."), history, run_config=NO_TRACING)
    system, sent, _ = inner.calls[0]
    assert system == "Be terse."
    assert [item["content"] for item in sent] == ["the question"]


async def test_block_raises_or_ends_the_run(gov: Governor) -> None:
    def agent(on_block: Any) -> Agent:
        inner = ScriptedModel(tool_call(), text("never reached"))
        model = GovernedModel(gov, inner, name="gpt-4o", metadata={"task": "loop"}, on_block=on_block)
        return Agent(name="looper", model=model, tools=[lookup])

    with pytest.raises(BudgetExceeded) as info:
        await Runner.run(agent("raise"), "go", run_config=NO_TRACING)
    assert "per-run" in info.value.rule_ids

    result = await Runner.run(agent("end"), "go", run_config=NO_TRACING)
    assert "per-run" in result.final_output and "never reached" not in result.final_output


async def test_run_id_is_one_per_run_and_the_trace_id_when_tracing(gov: Governor, tmp_path: Path) -> None:
    def looping() -> Agent:
        inner = ScriptedModel(tool_call(), text("done"))
        return Agent(name="a", model=GovernedModel(gov, inner, name="gpt-4o"), tools=[lookup])

    await Runner.run(looping(), "one", run_config=NO_TRACING)
    await Runner.run(looping(), "two", run_config=NO_TRACING)
    set_trace_processors([])  # trace ids without exporting anything
    trace_id = "trace_" + "a1" * 16
    with trace("workflow", trace_id=trace_id):
        await Runner.run(looping(), "three")
    runs = [r["run_id"] for r in records(tmp_path)]
    assert len(runs) == 6
    assert runs[0] == runs[1] != runs[2] == runs[3]
    assert runs[4] == runs[5] == trace_id


async def test_model_provider_governs_every_model_and_resolves_reroutes(gov: Governor) -> None:
    models = {"gpt-4o": ScriptedModel(text("strong")), "gpt-4o-mini": ScriptedModel(text("cheap"))}

    class Provider(ModelProvider):
        def get_model(self, model_name: str | None) -> Model:
            return models[model_name or "gpt-4o"]

    config = RunConfig(model_provider=GovernedModelProvider(gov, Provider()), tracing_disabled=True)
    agent = Agent(name="a", model="gpt-4o")
    with gov.run("p1", task="classify"):
        result = await Runner.run(agent, "label this", run_config=config)
    assert result.final_output == "cheap"


class StreamingModel(ScriptedModel):
    """Streams one text answer as the Responses API does: a single ``response.completed`` event."""

    async def stream_response(
        self, system_instructions, input, model_settings, tools, output_schema, handoffs, tracing, **kw
    ):  # type: ignore[no-untyped-def, override]
        from openai.types.responses import Response, ResponseCompletedEvent, ResponseUsage

        self.calls.append((system_instructions, input, model_settings))
        reply = self.replies.pop(0)
        response = Response(
            id="resp_1",
            created_at=0,
            model="gpt-4o",
            object="response",
            output=reply.output,
            parallel_tool_calls=False,
            tool_choice="auto",
            tools=[],
            usage=ResponseUsage(
                input_tokens=70,
                output_tokens=9,
                total_tokens=79,
                input_tokens_details=InputTokensDetails(cached_tokens=30, cache_write_tokens=0),
                output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
            ),
        )
        yield ResponseCompletedEvent(response=response, sequence_number=1, type="response.completed")


async def test_streamed_runs_are_governed_and_record_the_completed_usage(gov: Governor, tmp_path: Path) -> None:
    cheap = StreamingModel(text("streamed spam"))
    model = GovernedModel(
        gov, StreamingModel(), name="gpt-4o", models={"gpt-4o-mini": cheap}, metadata={"task": "classify"}
    )
    result = Runner.run_streamed(Agent(name="s", model=model), "win a prize", run_config=NO_TRACING)
    async for _ in result.stream_events():
        pass
    assert result.final_output == "streamed spam"
    (rec,) = records(tmp_path)
    assert (rec["verdict"], rec["model"]) == ("reroute", "gpt-4o-mini")
    assert (rec["input_tokens"], rec["output_tokens"], rec["cache_read_tokens"]) == (70, 9, 30)


async def test_a_blocked_streamed_run_raises_or_ends_with_the_reason(gov: Governor) -> None:
    async def run(on_block: Any) -> Any:
        model = GovernedModel(gov, StreamingModel(text("one"), text("two")), name="gpt-4o", on_block=on_block)
        agent = Agent(name="s", model=model)
        with gov.run(f"outer-{on_block}", task="loop"):  # per-run budget: one call across both runs
            for prompt in ("first", "second"):
                result = Runner.run_streamed(agent, prompt, run_config=NO_TRACING)
                async for _ in result.stream_events():
                    pass
        return result.final_output

    with pytest.raises(BudgetExceeded):
        await run("raise")
    assert "per-run" in await run("end")
