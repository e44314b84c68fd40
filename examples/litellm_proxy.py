"""Run a litellm proxy governed by a policy file, and call it with the OpenAI client. Offline.

The same as running, in a shell:

    GOVERNOR_POLICY=examples/litellm_proxy/policy.yaml LITELLM_MASTER_KEY=sk-local \\
        litellm --config examples/litellm_proxy/config.yaml --host 127.0.0.1 --port 4000

    python examples/litellm_proxy.py
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai

HERE = Path(__file__).parent / "litellm_proxy"
KEY = "sk-local"

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
env = dict(
    os.environ, GOVERNOR_POLICY=str(HERE / "policy.yaml"), LITELLM_MASTER_KEY=KEY, LITELLM_LOCAL_MODEL_COST_MAP="True"
)
cli = Path(sys.executable).parent / "litellm"
proxy = subprocess.Popen(
    [str(cli), "--config", str(HERE / "config.yaml"), "--host", "127.0.0.1", "--port", str(port)],
    env=env,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.STDOUT,
)
try:
    base = f"http://127.0.0.1:{port}"
    for _ in range(360):
        try:
            if httpx.get(base + "/health/liveliness", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.25)
    client = openai.OpenAI(base_url=base, api_key=KEY, max_retries=0)
    ask = [{"role": "user", "content": "Classify: 'card declined'"}]

    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=ask, extra_body={"metadata": {"task": "classify"}}
    )
    print(
        f"{raw.headers['x-governor-verdict']} by {raw.headers['x-governor-rule-ids']}: "
        f"served by {raw.parse().model}: {raw.parse().choices[0].message.content}"
    )

    for step in range(1, 8):
        try:
            client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": f"step {step}"}],
                extra_headers={"x-litellm-trace-id": "agent-run-1"},
            )
            print(f"step {step}: ok")
        except openai.RateLimitError as exc:
            governor = exc.body["provider_specific_fields"]["governor"]
            print(f"step {step}: HTTP {exc.status_code}, rules {governor['rule_ids']}: {governor['reasons'][-1]}")
finally:
    proxy.terminate()
    proxy.wait(timeout=15)
