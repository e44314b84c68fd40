"""GovernorMiddleware in a real LangChain v1 ``create_agent`` with LangChain's own fake chat model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from governor import BudgetExceeded, Governor
from governor.integrations.langchain import GovernorMiddleware

POLICY = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: langchain-test}
routes:
  - id: classify-cheap
    match: {task: classify}
    to: gpt-4o-mini
context:
  - id: long-history
    match: {task: chat}
    max_input_tokens: 120
    action: trim
    keep_last: 2
budgets:
  - id: per-run
    scope: run
    match: {task: loop}
    limit: {calls: 1}
"""


class ToolFake(GenericFakeChatModel):
    """LangChain's fake chat model, accepting tools (create_agent binds them)."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ToolFake:
        return self


class SentMessages(BaseCallbackHandler):
    """Sees what each chat model call really received."""

    def __init__(self) -> None:
        self.calls: list[list[Any]] = []

    def on_chat_model_start(self, serialized: Any, messages: list[list[Any]], **kwargs: Any) -> None:
        self.calls.append(messages[0])


@tool
def lookup(query: str) -> str:
    """Look something up."""
    return f"result for {query}"


def fake(*replies: Any) -> ToolFake:
    return ToolFake(messages=iter(list(replies)))


def tool_call() -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": "lookup", "args": {"query": "x"}, "id": "call-1"}])


@pytest.fixture
def gov(write_policy: Callable[[str], Path], tmp_path: Path) -> Governor:
    return Governor.from_path(write_policy(POLICY), record_to=tmp_path / "decisions.jsonl")


def records(tmp_path: Path) -> list[dict]:
    lines = (tmp_path / "decisions.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("event") == "record"]


def test_reroute_uses_the_registered_model_and_records_its_usage(gov: Governor, tmp_path: Path) -> None:
    strong = fake(AIMessage(content="strong"))
    usage = {"input_tokens": 30, "output_tokens": 4, "total_tokens": 34, "input_token_details": {"cache_read": 10}}
    cheap = fake(AIMessage(content="spam", usage_metadata=usage))
    middleware = GovernorMiddleware(gov, models={"gpt-4o": strong, "gpt-4o-mini": cheap}, metadata={"task": "classify"})
    agent = create_agent(strong, tools=[], middleware=[middleware])
    result = agent.invoke({"messages": [HumanMessage("win a prize now")]})
    assert result["messages"][-1].content == "spam"
    (rec,) = records(tmp_path)
    assert (rec["verdict"], rec["model"]) == ("reroute", "gpt-4o-mini")
    assert (rec["input_tokens"], rec["output_tokens"], rec["cache_read_tokens"]) == (30, 4, 10)
    assert rec["run_id"]  # minted per agent invocation


def test_trim_sends_system_and_last_messages(gov: Governor) -> None:
    model = fake(AIMessage(content="ok"))
    seen = SentMessages()
    agent = create_agent(
        model,
        tools=[],
        system_prompt="You are terse.",
        middleware=[GovernorMiddleware(gov, models={"gpt-4o": model}, metadata={"task": "chat"})],
    )
    history = [HumanMessage(f"message {i}: " + "lorem ipsum dolor sit amet " * 4) for i in range(6)]
    agent.invoke({"messages": history}, config={"callbacks": [seen]})
    (sent,) = seen.calls
    assert isinstance(sent[0], SystemMessage)
    assert [m.content for m in sent[1:]] == [history[-2].content, history[-1].content]


def test_block_ends_the_run_with_a_message_naming_the_rule(gov: Governor) -> None:
    model = fake(tool_call(), AIMessage(content="never reached"))
    middleware = GovernorMiddleware(gov, models={"gpt-4o": model}, metadata={"task": "loop"}, on_block="end")
    agent = create_agent(model, tools=[lookup], middleware=[middleware])
    result = agent.invoke({"messages": [HumanMessage("go")]})
    last = result["messages"][-1]
    assert isinstance(last, AIMessage) and not last.tool_calls
    assert "per-run" in last.content and last.response_metadata["governor_rule_ids"][-1] == "per-run"
    assert any(m.type == "tool" for m in result["messages"])  # the first call and its tool ran


def test_block_raises_when_configured_to(gov: Governor) -> None:
    model = fake(tool_call(), AIMessage(content="never reached"))
    agent = create_agent(
        model, tools=[lookup], middleware=[GovernorMiddleware(gov, models={"gpt-4o": model}, metadata={"task": "loop"})]
    )
    with pytest.raises(BudgetExceeded) as info:
        agent.invoke({"messages": [HumanMessage("go")]})
    assert "per-run" in info.value.rule_ids


def test_thread_id_is_the_run_id_and_async_works(gov: Governor, tmp_path: Path) -> None:
    import asyncio

    model = fake(AIMessage(content="one"), AIMessage(content="two"))
    agent = create_agent(
        model, tools=[], middleware=[GovernorMiddleware(gov, models={"gpt-4o": model})], checkpointer=InMemorySaver()
    )
    config = {"configurable": {"thread_id": "thread-7"}}
    agent.invoke({"messages": [HumanMessage("hi")]}, config=config)
    asyncio.run(agent.ainvoke({"messages": [HumanMessage("again")]}, config=config))
    assert [r["run_id"] for r in records(tmp_path)] == ["thread-7", "thread-7"]
    assert gov.stats()["by_run"]["thread-7"]["calls"] == 2


def test_streamed_agent_runs_are_governed(gov: Governor, tmp_path: Path) -> None:
    strong, cheap = fake(AIMessage(content="strong")), fake(AIMessage(content="cheap stream"))
    middleware = GovernorMiddleware(gov, models={"gpt-4o": strong, "gpt-4o-mini": cheap}, metadata={"task": "classify"})
    agent = create_agent(strong, tools=[], middleware=[middleware])
    states = list(agent.stream({"messages": [HumanMessage("label this")]}, stream_mode="values"))
    assert states[-1]["messages"][-1].content == "cheap stream"
    (rec,) = records(tmp_path)
    assert (rec["verdict"], rec["model"]) == ("reroute", "gpt-4o-mini")
