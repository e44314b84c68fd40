"""The governor inside a real litellm proxy process, driven by the real OpenAI client."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from conftest import GovernedProxy
from litellm_proxy_proc import MASTER_KEY, wait_exit, write_config

pytestmark = pytest.mark.slow


def eventually(fetch: Callable[[], Any], ok: Callable[[Any], bool], timeout: float = 10.0) -> Any:
    """Success callbacks run after the response is sent: poll (bounded) until ``ok``."""
    deadline = time.monotonic() + timeout
    value = fetch()
    while not ok(value) and time.monotonic() < deadline:
        time.sleep(0.05)
        value = fetch()
    return value


@pytest.fixture
def client(governed_proxy: GovernedProxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=governed_proxy.base_url, api_key=MASTER_KEY, max_retries=0)


def test_reroute_shows_in_the_response_model_headers_and_decision_log(
    client: openai.OpenAI, governed_proxy: GovernedProxy
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Label this ticket: 'refund not received'"}],
        extra_body={"metadata": {"task": "classify"}},
    )
    response = raw.parse()
    assert "gpt-4o-mini" in response.model
    assert response.choices[0].message.content == "cheap model answer"
    assert raw.headers["x-governor-verdict"] == "reroute"
    assert "classify-cheap" in raw.headers["x-governor-rule-ids"].split(",")
    decision_id = raw.headers["x-governor-decision-id"]

    records = eventually(
        governed_proxy.decisions,
        lambda rs: any(r.get("decision_id") == decision_id and r["event"] == "record" for r in rs),
    )
    mine = [r for r in records if r.get("decision_id") == decision_id]
    check = next(r for r in mine if r["event"] == "check")
    record = next(r for r in mine if r["event"] == "record")
    assert (check["requested_model"], check["model"], check["verdict"]) == ("gpt-4o", "gpt-4o-mini", "reroute")
    assert "classify-cheap" in check["rule_ids"]
    assert record["input_tokens"] > 0 and record["output_tokens"] > 0
    assert record["cost_usd"] > 0
    assert any(s["model"].endswith("gpt-4o-mini") for s in governed_proxy.sent())


def test_trim_sends_only_system_and_last_messages(client: openai.OpenAI, governed_proxy: GovernedProxy) -> None:
    before = len(governed_proxy.sent())
    history = [{"role": "system", "content": "You are terse."}]
    for i in range(8):
        role = "user" if i % 2 == 0 else "assistant"
        history.append({"role": role, "content": f"message number {i}: " + "lorem ipsum dolor sit amet " * 3})
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=history, extra_body={"metadata": {"task": "chat"}}
    )
    assert raw.headers["x-governor-verdict"] == "trim"
    assert raw.headers["x-governor-rule-ids"].startswith("long-history")
    sent = eventually(governed_proxy.sent, lambda s: len(s) > before)[before:]
    assert sent[-1]["messages"] == 3  # the system message and the last two
    assert sent[-1]["max_tokens"] == 256  # clamped by out-cap


def test_per_run_budget_blocks_the_13th_of_20_requests_with_429_naming_the_rule(
    client: openai.OpenAI, governed_proxy: GovernedProxy
) -> None:
    run = f"run-{uuid.uuid4().hex[:8]}"
    outcomes: list[Any] = []
    for i in range(20):
        try:
            client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": f"step {i}"}],
                extra_headers={"x-litellm-trace-id": run},
                extra_body={"metadata": {"task": "agent-loop"}},
            )
            outcomes.append("ok")
        except openai.APIStatusError as exc:
            outcomes.append(exc)
    assert outcomes[:12] == ["ok"] * 12
    blocked = outcomes[12:]
    assert all(isinstance(e, openai.RateLimitError) and e.status_code == 429 for e in blocked), blocked
    body = blocked[0].body
    assert body["type"] == "governor_limit_exceeded"
    assert "per-run" in body["message"]
    governor = body["provider_specific_fields"]["governor"]
    assert "per-run" in governor["rule_ids"] and governor["block_kind"] == "budget"
    assert governor["revision"]
    assert blocked[0].response.headers["x-governor-rule-ids"].split(",")[-1] == "per-run"
    checks = [r for r in governed_proxy.decisions() if r.get("run_id") == run and r["event"] == "check"]
    assert [r["verdict"] for r in checks].count("block") == 8


def test_a_bad_policy_path_fails_the_proxy_start_with_a_clear_message(tmp_path: Path) -> None:
    config = write_config(tmp_path, governed=True, probe=False)
    missing = tmp_path / "no-such-policy.yaml"
    code, output = wait_exit(config, {"GOVERNOR_POLICY": str(missing)}, tmp_path / "proxy.log")
    assert code is not None and code != 0, output[-2000:]
    assert f"GOVERNOR_POLICY={missing}: no such policy file" in output


def test_streamed_requests_are_recorded_with_their_usage(client: openai.OpenAI, governed_proxy: GovernedProxy) -> None:
    run = f"stream-{uuid.uuid4().hex[:8]}"
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "stream please"}],
        stream=True,
        extra_headers={"x-litellm-trace-id": run},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "strong model answer"
    records = eventually(
        governed_proxy.decisions, lambda rs: any(r.get("run_id") == run and r["event"] == "record" for r in rs)
    )
    (record,) = [r for r in records if r.get("run_id") == run and r["event"] == "record"]
    assert record["output_tokens"] > 0 and record["error"] is None and record["cost_usd"] > 0


def test_an_upstream_failure_is_passed_through_and_recorded_as_an_error(
    client: openai.OpenAI, governed_proxy: GovernedProxy
) -> None:
    run = f"fail-{uuid.uuid4().hex[:8]}"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-4.1", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-litellm-trace-id": run}
        )
    assert "governor" not in str(info.value.body)  # the provider's error, not a block
    records = eventually(
        governed_proxy.decisions, lambda rs: any(r.get("run_id") == run and r["event"] == "record" for r in rs)
    )
    (record,) = [r for r in records if r.get("run_id") == run and r["event"] == "record"]
    assert record["error"] and "ContextWindowExceeded" in record["error"]
    assert (record["input_tokens"], record["output_tokens"]) == (0, 0)


def test_an_invalid_policy_fails_the_proxy_start_naming_file_line_and_field(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: governor/v1\nkind: Policy\nmetadata: {name: bad}\n"
        "budgets:\n  - id: per-run\n    scope: run\n    limitt: {calls: 3}\n"
    )
    config = write_config(tmp_path, governed=True, probe=False)
    code, output = wait_exit(config, {"GOVERNOR_POLICY": str(policy)}, tmp_path / "proxy.log")
    assert code is not None and code != 0, output[-2000:]
    assert f"{policy}:7:5: error: unknown key 'limitt'" in output
    assert "did you mean 'limit'?" in output
