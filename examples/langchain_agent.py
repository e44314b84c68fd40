"""Govern a LangChain v1 agent with ``GovernorMiddleware``. Offline (LangChain's fake chat model).

python examples/langchain_agent.py
"""

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool

from governor import Governor, load_policy
from governor.integrations.langchain import GovernorMiddleware

POLICY = """
apiVersion: governor/v1
kind: Policy
metadata: {name: langchain-example}
routes:
  - id: triage-cheap
    match: {task: triage}
    to: gpt-4o-mini
budgets:
  - id: per-run
    scope: run
    limit: {calls: 2}
"""


class FakeModel(GenericFakeChatModel):  # a stand-in for ChatOpenAI / ChatAnthropic
    def bind_tools(self, tools, **kwargs):
        return self


@tool
def search(query: str) -> str:
    """Search the docs."""
    return f"3 results for {query}"


def call(n: int) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": "search", "args": {"query": f"q{n}"}, "id": f"c{n}"}])


gov = Governor(load_policy(POLICY))
strong = FakeModel(messages=iter([AIMessage(content="unused")]))
cheap = FakeModel(messages=iter([call(1), call(2), AIMessage(content="never reached")]))
agent = create_agent(
    strong,
    tools=[search],
    middleware=[
        GovernorMiddleware(
            gov, models={"gpt-4o": strong, "gpt-4o-mini": cheap}, metadata={"task": "triage"}, on_block="end"
        )
    ],
)
result = agent.invoke({"messages": [HumanMessage("Why is my build failing?")]})
for message in result["messages"]:
    print(f"{message.type:>5}: {message.content or message.tool_calls}")
