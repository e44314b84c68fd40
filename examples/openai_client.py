"""Govern an OpenAI client: ``wrap(client, gov)``. Offline: the client's HTTP transport answers
locally with a canned chat completion (point ``base_url`` at any OpenAI-compatible server instead).

    python examples/openai_client.py
"""

import json

import httpx
from openai import OpenAI

from governor import Governor, StopConditionHit, load_policy
from governor.integrations.openai import wrap

POLICY = """
apiVersion: governor/v1
kind: Policy
metadata: {name: openai-example}
stop:
  - id: loop
    type: repeated_call
    max: 2
    within: 10m
routes:
  - id: extract-cheap
    match: {task: extract}
    to: gpt-4o-mini
"""


def offline_server(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": f"answered by {body['model']}"},
                }
            ],
            "usage": {"prompt_tokens": 21, "completion_tokens": 4, "total_tokens": 25},
        },
    )


client = wrap(
    OpenAI(api_key="sk-offline", http_client=httpx.Client(transport=httpx.MockTransport(offline_server))),
    Governor(load_policy(POLICY)),
)
messages = [{"role": "user", "content": "Extract the date: 'due 3 May'"}]

with client.governor.run("job-7"):
    reply = client.chat.completions.create(model="gpt-4o", messages=messages, governor_metadata={"task": "extract"})
    print(reply.choices[0].message.content)
    try:  # the same call again: the loop detector stops it before it is sent
        client.chat.completions.create(model="gpt-4o", messages=messages, governor_metadata={"task": "extract"})
    except StopConditionHit as exc:
        print(f"stopped by {exc.rule_ids[0]}: {exc}")
print("spent:", client.governor.stats()["by_run"]["job-7"]["spend_usd"])
