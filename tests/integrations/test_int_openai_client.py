"""``wrap(client)``: the real OpenAI client against a real local OpenAI-compatible server (the litellm proxy)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import openai
import pytest
from conftest import GovernedProxy
from litellm_proxy_proc import MASTER_KEY

from governor import BudgetExceeded, Governor
from governor.integrations.openai import wrap

pytestmark = pytest.mark.slow

POLICY = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: openai-wrap-test}
routes:
  - id: classify-cheap
    match: {task: classify}
    to: gpt-4o-mini
calls:
  - id: out-cap
    max_output_tokens: 64
budgets:
  - id: per-run
    scope: run
    limit: {calls: 2}
"""
MSG = [{"role": "user", "content": "Is this spam? 'win a prize now'"}]


@pytest.fixture
def gov(write_policy: Callable[[str], Path], tmp_path: Path) -> Governor:
    return Governor.from_path(write_policy(POLICY), record_to=tmp_path / "decisions.jsonl")


def records(tmp_path: Path) -> list[dict]:
    lines = (tmp_path / "decisions.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("event") == "record"]


def test_sync_create_reroutes_clamps_and_records(gov: Governor, governed_proxy: GovernedProxy, tmp_path: Path) -> None:
    client = wrap(openai.OpenAI(base_url=governed_proxy.base_url, api_key=MASTER_KEY, max_retries=0), gov)
    with gov.run("o1"):
        response = client.chat.completions.create(model="gpt-4o", messages=MSG, governor_metadata={"task": "classify"})
    assert response.model == "gpt-4o-mini"
    assert response.choices[0].message.content == "cheap model answer"
    (rec,) = records(tmp_path)
    assert (rec["verdict"], rec["max_tokens"]) == ("reroute", 64)
    assert (rec["input_tokens"], rec["output_tokens"]) == (
        response.usage.prompt_tokens,
        response.usage.completion_tokens,
    )
    assert client.models.list().data  # everything else is the client's own


def test_sync_stream_records_usage_at_the_end(gov: Governor, governed_proxy: GovernedProxy, tmp_path: Path) -> None:
    client = wrap(openai.OpenAI(base_url=governed_proxy.base_url, api_key=MASTER_KEY, max_retries=0), gov)
    with gov.run("o2"):
        stream = client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "strong model answer"
    (rec,) = records(tmp_path)
    assert rec["output_tokens"] > 0 and rec["error"] is None


def test_block_raises_before_any_request_is_sent(gov: Governor, governed_proxy: GovernedProxy) -> None:
    client = wrap(openai.OpenAI(base_url=governed_proxy.base_url, api_key=MASTER_KEY, max_retries=0), gov)
    with gov.run("o3"):
        for _ in range(2):
            client.chat.completions.create(model="gpt-4o", messages=MSG)
        time.sleep(0.3)
        sent_before = len(governed_proxy.sent())
        with pytest.raises(BudgetExceeded) as info:
            client.chat.completions.create(model="gpt-4o", messages=MSG)
    assert "per-run" in info.value.rule_ids
    time.sleep(0.3)
    assert len(governed_proxy.sent()) == sent_before


async def test_async_create_and_stream(gov: Governor, governed_proxy: GovernedProxy, tmp_path: Path) -> None:
    inner = openai.AsyncOpenAI(base_url=governed_proxy.base_url, api_key=MASTER_KEY, max_retries=0)
    client = wrap(inner, gov)
    with gov.run("o4"):
        response = await client.chat.completions.create(
            model="gpt-4o", messages=MSG, governor_metadata={"task": "classify"}
        )
        stream = await client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    await inner.close()
    assert response.model == "gpt-4o-mini" and text == "strong model answer"
    recs = records(tmp_path)
    assert [r["verdict"] for r in recs] == ["reroute", "allow"]
    assert all(r["output_tokens"] > 0 for r in recs)
