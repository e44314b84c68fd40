"""``GET /metrics`` on a real litellm proxy, read with prometheus_client's own text parser."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from conftest import read_jsonl
from litellm_proxy_proc import MASTER_KEY, ProxyProcess, start_proxy, write_config
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow

POLICY = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: metrics-proxy}
ledger: {type: sqlite, path: ledger.db}
budgets:
  - id: per-developer
    scope: metadata.developer
    match: {metadata: {developer: [dev-alice, dev-bob]}}
    limit: {calls: 2}
    window: {calendar: day}
  - id: per-run
    scope: run
    match: {run: run-metrics-1}
    limit: {calls: 2}
  - id: all-spend
    scope: global
    limit: {usd: 5}
"""


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ProxyProcess, Path]]:
    directory = tmp_path_factory.mktemp("metrics-proxy")
    (directory / "policy.yaml").write_text(POLICY)
    decisions = directory / "decisions.jsonl"
    env = {"GOVERNOR_POLICY": str(directory / "policy.yaml"), "GOVERNOR_DECISION_LOG": str(decisions)}
    proc = start_proxy(write_config(directory, governed=True, probe=False), env, directory / "proxy.log", timeout=300)
    try:
        yield proc, decisions
    finally:
        proc.stop()


def scrape(base_url: str) -> tuple[httpx.Response, dict[str, list]]:
    resp = httpx.get(base_url + "/metrics", headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=10)
    families: dict[str, list] = {}
    for fam in text_string_to_metric_families(resp.text):
        families.setdefault(fam.name, []).extend(fam.samples)
    return resp, families


def value(samples: list, name: str, **labels: str) -> float:
    hits = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return sum(hits)


def test_metrics_endpoint_counts_calls_spend_and_budgets(proxy: tuple[ProxyProcess, Path]) -> None:
    proc, decisions = proxy
    client = openai.OpenAI(base_url=proc.base_url, api_key=MASTER_KEY, max_retries=0)
    for _ in range(2):
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hello"}],
            extra_body={"metadata": {"run_id": "run-metrics-1"}},
        )
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hello"}],
            extra_body={"metadata": {"run_id": "run-metrics-1"}},
        )
    deadline = time.monotonic() + 15
    while sum(r["event"] == "record" for r in read_jsonl(decisions)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    records = [r for r in read_jsonl(decisions) if r["event"] == "record"]
    assert len(records) == 2
    paid = sum(r["cost_usd"] for r in records)
    assert paid > 0

    assert httpx.get(proc.base_url + "/metrics", timeout=10).status_code == 401  # litellm guards /metrics by default
    resp, fams = scrape(proc.base_url)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    calls = fams["governor_calls"]
    assert value(calls, "governor_calls_total", verdict="allow", model="gpt-4o") == 2
    assert value(calls, "governor_calls_total", verdict="block", rule="per-run") == 1
    assert value(fams["governor_spend_usd"], "governor_spend_usd_total") == pytest.approx(paid, rel=1e-9)
    assert value(fams["governor_budget_spend_usd"], "governor_budget_spend_usd_total", budget="all-spend") == (
        pytest.approx(paid, rel=1e-9)
    )
    tokens_in = sum(r["input_tokens"] for r in records)
    assert value(fams["governor_tokens"], "governor_tokens_total", kind="input") == tokens_in
    assert value(fams["governor_budget_used_usd"], "governor_budget_used_usd", budget="all-spend") == (
        pytest.approx(paid, rel=1e-6)
    )
    assert value(fams["governor_budget_remaining_usd"], "governor_budget_remaining_usd", budget="all-spend") == (
        pytest.approx(5 - paid, rel=1e-6)
    )
    ratio = fams["governor_budget_utilization_ratio"]
    assert value(ratio, "governor_budget_utilization_ratio", budget="per-run") == 1.0
    assert value(fams["governor_reservations_in_flight"], "governor_reservations_in_flight") == 0
    usage = fams["gen_ai_client_token_usage"]
    assert value(usage, "gen_ai_client_token_usage_count", gen_ai_token_type="output") == 2
    # no per-run, per-user or per-team label unless asked for
    every_label = {k for samples in fams.values() for s in samples for k in s.labels}
    assert not every_label & {"run_id", "user", "team", "scope", "end_user"}


def test_per_developer_budgets_behind_the_master_key_and_governor_status(proxy: tuple[ProxyProcess, Path]) -> None:
    """docs/operations.md's recipe without litellm's database: one master key (litellm names every caller
    ``default_user_id``), a ``scope: metadata.developer`` budget on a key the caller or its gateway sets;
    ``governor status`` shows each developer's scope from the shared ledger."""
    proc, _ = proxy
    client = openai.OpenAI(base_url=proc.base_url, api_key=MASTER_KEY, max_retries=0)
    ask = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}
    for _ in range(2):
        client.chat.completions.create(**ask, extra_body={"metadata": {"developer": "dev-alice"}})
    with pytest.raises(openai.RateLimitError) as blocked:
        client.chat.completions.create(**ask, extra_body={"metadata": {"developer": "dev-alice"}})
    assert "per-developer" in str(blocked.value)
    bob = {"metadata": {"developer": "dev-bob"}}
    client.chat.completions.create(**ask, extra_body=bob)  # bob's own budget is untouched
    policy = proc.log_path.parent / "policy.yaml"
    deadline = time.monotonic() + 15
    while True:
        out = subprocess.run(
            [str(Path(sys.executable).parent / "governor"), "status", str(policy), "--format", "json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        rows = {s["scope"]: s for s in json.loads(out.stdout)["scopes"] if s["budget"] == "per-developer"}
        if rows.get("metadata.developer=dev-bob", {}).get("in_flight", 1) == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert set(rows) == {"metadata.developer=dev-alice", "metadata.developer=dev-bob"}
    alice, bob_row = rows["metadata.developer=dev-alice"], rows["metadata.developer=dev-bob"]
    assert (alice["spend_calls"], bob_row["spend_calls"]) == (2, 1)
    assert alice["utilization"] == 1.0
