"""Govern a pydantic-ai agent with ``GovernorCapability``. Offline (pydantic-ai's TestModel).

python examples/pydantic_ai_agent.py
"""

import asyncio

from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel

from governor import BudgetExceeded, Governor, load_policy
from governor.integrations.pydantic_ai import GovernorCapability

POLICY = """
apiVersion: governor/v1
kind: Policy
metadata: {name: pydantic-ai-example}
routes:
  - id: summarize-cheap
    match: {task: summarize}
    to: gpt-4o-mini
budgets:
  - id: per-user-daily
    scope: user
    limit: {calls: 2}
    window: {calendar: day}
"""

gov = Governor(load_policy(POLICY))
agent = Agent(
    TestModel(model_name="gpt-4o", custom_output_text="strong summary"),
    capabilities=[
        GovernorCapability(
            gov,
            models={"gpt-4o-mini": TestModel(model_name="gpt-4o-mini", custom_output_text="cheap summary")},
            metadata={"task": "summarize"},
        )
    ],
)


async def main() -> None:
    with gov.run(user="ada"):
        for i in range(3):
            try:
                result = await agent.run(f"Summarize ticket {i}")
                print(f"run {result.run_id[-8:]}: {result.output}")
            except BudgetExceeded as exc:
                print(f"blocked by {exc.rule_ids[-1]}: {exc}")


asyncio.run(main())
