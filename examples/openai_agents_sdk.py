"""Govern the OpenAI Agents SDK with ``GovernedModel``. Offline (a scripted Model, no network).

python examples/openai_agents_sdk.py
"""

import asyncio

from agents import Agent, RunConfig, Runner, function_tool
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import ResponseFunctionToolCall

from governor import Governor, load_policy
from governor.integrations.openai_agents import GovernedModel

POLICY = """
apiVersion: governor/v1
kind: Policy
metadata: {name: agents-example}
stop:
  - id: max-calls
    type: max_calls
    max: 2
"""


class ScriptedModel(Model):  # stands in for OpenAIResponsesModel / OpenAIChatCompletionsModel
    def __init__(self):
        self.turn = 0

    async def get_response(
        self, system_instructions, input, model_settings, tools, output_schema, handoffs, tracing, **kwargs
    ):
        self.turn += 1
        usage = Usage(requests=1, input_tokens=40 * self.turn, output_tokens=6, total_tokens=40 * self.turn + 6)
        call = ResponseFunctionToolCall(
            arguments='{"path": "src/app.py"}',
            call_id=f"c{self.turn}",
            name="read_file",
            type="function_call",
            id=f"fc{self.turn}",
        )
        return ModelResponse(output=[call], usage=usage, response_id=None)  # an agent that never stops

    async def stream_response(self, *args, **kwargs):
        raise NotImplementedError
        yield


@function_tool
def read_file(path: str) -> str:
    """Read a file."""
    return f"contents of {path}"


gov = Governor(load_policy(POLICY))
agent = Agent(
    name="coder",
    tools=[read_file],
    model=GovernedModel(gov, ScriptedModel(), name="gpt-4o", metadata={"agent": "coder"}, on_block="end"),
)
result = asyncio.run(Runner.run(agent, "Fix the bug", run_config=RunConfig(tracing_disabled=True)))
print("final output:", result.final_output)
print("calls made:", gov.stats()["total"]["calls"], "blocked:", gov.stats()["total"]["blocks"])
