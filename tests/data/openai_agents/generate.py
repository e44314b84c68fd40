"""Re-generate the OpenAI Agents SDK trace export in this folder with the real ``openai-agents`` package.

    python tests/data/openai_agents/generate.py

Runs three agent runs offline against the scripted upstream of ../coding_agents
(a Responses model with a function tool, the same in a conversation
``group_id`` naming its model in the trace metadata, and a Chat Completions
model), with the SDK's own
``BackendSpanExporter`` pointed at that upstream's ingest endpoint. What the
SDK posted is kept as it was sent, one ``{"data": [...]}`` payload a line, in
traces.jsonl; upstream.jsonl is the upstream's log of the model calls it
served (the independent count), VERSIONS the package version.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
UPSTREAM = HERE.parent / "coding_agents" / "scripted_upstream.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    from agents import Agent, OpenAIChatCompletionsModel, RunConfig, Runner, function_tool, set_trace_processors
    from agents.tracing.processors import BackendSpanExporter, BatchTraceProcessor
    from openai import AsyncOpenAI

    scratch = Path(tempfile.mkdtemp(prefix="agents-export-"))
    log, ingest = scratch / "upstream.jsonl", scratch / "traces.jsonl"
    port = free_port()
    server = subprocess.Popen([sys.executable, str(UPSTREAM), str(port), str(log), str(ingest)])
    try:
        time.sleep(1.0)
        base = f"http://127.0.0.1:{port}/v1"
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
        responses_agent = Agent(name="forecaster", instructions="Answer briefly.", model="gpt-4.1-mini",
                                tools=[weather])
        chat_agent = Agent(name="chatty", instructions="Answer briefly.", tools=[weather],
                           model=OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client))
        Runner.run_sync(responses_agent, "USE_TOOL: weather in Paris?",
                        run_config=RunConfig(workflow_name="forecast", trace_metadata={"user": "alice"}))
        Runner.run_sync(responses_agent, "USE_TOOL: and tomorrow?",
                        run_config=RunConfig(workflow_name="forecast", group_id="thread-42",
                                             trace_metadata={"user": "alice", "model": "gpt-4.1-mini"}))
        Runner.run_sync(chat_agent, "USE_TOOL: weather via chat?",
                        run_config=RunConfig(workflow_name="chat-forecast", group_id="thread-42",
                                             trace_metadata={"user": "bob"}))
        processor.force_flush()
        processor.shutdown()
    finally:
        server.terminate()
        server.wait(10)
    shutil.copy(ingest, HERE / "traces.jsonl")
    shutil.copy(log, HERE / "upstream.jsonl")
    (HERE / "VERSIONS").write_text(f"openai-agents {version('openai-agents')}\nopenai {version('openai')}\n")
    shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
