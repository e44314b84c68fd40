"""Govern litellm SDK calls: reroute, clamp, record usage, block. Offline (mock responses).

python examples/litellm_sdk.py
"""

from governor import BudgetExceeded, Governor, load_policy
from governor.integrations.litellm import GovernedLiteLLM

POLICY = """
apiVersion: governor/v1
kind: Policy
metadata: {name: litellm-sdk-example}
routes:
  - id: classify-cheap
    match: {task: classify}
    to: gpt-4o-mini
calls:
  - id: out-cap
    max_output_tokens: 512
budgets:
  - id: per-run
    scope: run
    limit: {calls: 3}
"""

gov = Governor(load_policy(POLICY))
llm = GovernedLiteLLM(gov)
messages = [{"role": "user", "content": "Classify: 'my refund never arrived'"}]

with gov.run("ticket-42"):
    reply = llm.completion(
        model="gpt-4o", messages=messages, mock_response="billing", governor_metadata={"task": "classify"}
    )
    print(f"rerouted: asked gpt-4o, served by {reply.model}: {reply.choices[0].message.content}")

    stream = llm.completion(model="gpt-4o", messages=messages, mock_response="streamed answer", stream=True)
    print("streamed:", "".join(chunk.choices[0].delta.content or "" for chunk in stream))

    llm.completion(model="gpt-4o", messages=messages, mock_response="third call")
    try:
        llm.completion(model="gpt-4o", messages=messages, mock_response="never sent")
    except BudgetExceeded as exc:
        print(f"blocked by {exc.rule_ids[-1]}: {exc}")

run = gov.stats()["by_run"]["ticket-42"]
print(f"run ticket-42: {run['calls']} calls, {run['blocks']} blocked, ${run['spend_usd']:.6f}")
