"""Re-generate the OpenAI Agents SDK trace export in this folder with the real ``openai-agents`` package.

    python tests/data/openai_agents/generate.py

Runs three agent runs offline against tests/support/upstream.py with the turns of ../scripted_agents.py
(a Responses model with a function tool, the same in a conversation
``group_id`` naming its model in the trace metadata, and a Chat Completions
model), with the SDK's own
``BackendSpanExporter`` pointed at that upstream, which keeps what is posted. What the
SDK posted is kept as it was sent, one ``{"data": [...]}`` payload a line, in
traces.jsonl; upstream.jsonl is the upstream's log of the model calls it
served (the independent count), VERSIONS the package version.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from scripted_agents import ScriptedUpstream, scripted, write_log  # noqa: E402


def main() -> None:
    from agents import Agent, OpenAIChatCompletionsModel, RunConfig, Runner, function_tool, set_trace_processors
    from agents.tracing.processors import BackendSpanExporter, BatchTraceProcessor
    from openai import AsyncOpenAI

    log: list[dict[str, Any]] = []
    upstream = ScriptedUpstream().start()
    upstream.responder = scripted(log)
    try:
        base = f"{upstream.base_url}/v1"
        exporter = BackendSpanExporter(api_key="sk-test", endpoint=f"{base}/traces/ingest")
        processor = BatchTraceProcessor(exporter)
        set_trace_processors([processor])
        client = AsyncOpenAI(base_url=base, api_key="sk-test", max_retries=0)

        @function_tool
        def weather(city: str) -> str:
            """The weather in a city."""
            return f"sunny in {city}"

        from agents import set_default_openai_client

        set_default_openai_client(client, use_for_tracing=False)
        responses_agent = Agent(
            name="forecaster", instructions="Answer briefly.", model="gpt-4.1-mini", tools=[weather]
        )
        chat_agent = Agent(
            name="chatty",
            instructions="Answer briefly.",
            tools=[weather],
            model=OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client),
        )
        Runner.run_sync(
            responses_agent,
            "USE_TOOL: weather in Paris?",
            run_config=RunConfig(workflow_name="forecast", trace_metadata={"user": "alice"}),
        )
        Runner.run_sync(
            responses_agent,
            "USE_TOOL: and tomorrow?",
            run_config=RunConfig(
                workflow_name="forecast",
                group_id="thread-42",
                trace_metadata={"user": "alice", "model": "gpt-4.1-mini"},
            ),
        )
        Runner.run_sync(
            chat_agent,
            "USE_TOOL: weather via chat?",
            run_config=RunConfig(workflow_name="chat-forecast", group_id="thread-42", trace_metadata={"user": "bob"}),
        )
        processor.force_flush()
        processor.shutdown()
    finally:
        upstream.stop()
    # the upstream answers the ingest route 404 (it is no tracing backend) but keeps what was posted
    posted = [r.body for r in upstream.requests if r.path.rstrip("/").endswith("/traces/ingest")]
    (HERE / "traces.jsonl").write_text("".join(json.dumps(body) + "\n" for body in posted))
    write_log(log, HERE / "upstream.jsonl")
    (HERE / "VERSIONS").write_text(f"openai-agents {version('openai-agents')}\nopenai {version('openai')}\n")


if __name__ == "__main__":
    main()
