"""Embedded metrics: the real OpenTelemetry SDK and Prometheus exporter, read back with prometheus_client's parser."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from governor import Governor
from governor.ledger.redis import RedisLedger
from governor.metrics import GovernorMetrics
from governor.policy.loader import load_policy_text

POLICY = """
apiVersion: governor/v1
kind: Policy
metadata: {name: metrics-test}
models:
  prices:
    m-cheap: {input_per_mtok: 1, output_per_mtok: 2}
budgets:
  - id: team-daily
    scope: team
    limit: {usd: 1}
    window: {calendar: day}
  - id: runs
    scope: run
    limit: {calls: 3}
"""


def samples(metrics: GovernorMetrics) -> list[Any]:
    out = []
    for fam in text_string_to_metric_families(metrics.exposition().decode()):
        out.extend(fam.samples)
    return out


def total(rows: list[Any], name: str, **labels: str) -> float:
    return sum(s.value for s in rows if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def governed(text: str = POLICY, **kwargs: Any) -> tuple[Governor, GovernorMetrics]:
    gov = Governor(load_policy_text(text), observers=False, **kwargs)
    return gov, GovernorMetrics(registry=CollectorRegistry()).attach(gov)


def call(gov: Governor, team: str, run: str, out: int = 10) -> Any:
    d = gov.check(
        model="m-cheap",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=50,
        metadata={"team": team, "run_id": run},
    )
    if d.allowed:
        gov.record(d, input_tokens=20, output_tokens=out)
    return d


def test_calls_spend_tokens_and_budget_gauges() -> None:
    gov, m = governed()
    for _ in range(4):
        call(gov, "support", "r1")
    call(gov, "sales", "r2", out=1000)
    rows = samples(m)
    assert total(rows, "governor_calls_total", verdict="allow") == 4
    assert total(rows, "governor_calls_total", verdict="block", rule="runs") == 1
    spent = 3 * (20 * 1 + 10 * 2) / 1e6 + (20 + 2000) / 1e6
    assert total(rows, "governor_spend_usd_total") == pytest.approx(spent)
    assert total(rows, "governor_tokens_total", kind="output") == 1030
    assert total(rows, "governor_budget_spend_usd_total", budget="team-daily") == pytest.approx(spent)
    # the budget's gauges show its most-used scope value (sales spent more than support)
    assert total(rows, "governor_budget_used_usd", budget="team-daily") == pytest.approx(2020 / 1e6)
    assert total(rows, "governor_budget_remaining_usd", budget="team-daily") == pytest.approx(1 - 2020 / 1e6)
    assert total(rows, "governor_budget_utilization_ratio", budget="runs") == 1.0
    # sales' call returned 1000 tokens for max_tokens=50: it cost more than its reserved worst case
    assert total(rows, "governor_overruns_total", model="m-cheap") == 1
    assert 0 < total(rows, "governor_overrun_usd_total") < 2020 / 1e6
    assert {k for s in rows for k in s.labels} & {"team", "run_id", "scope", "user"} == set()


def test_opt_in_labels_and_per_scope_gauges() -> None:
    gov = Governor(load_policy_text(POLICY), observers=False)
    m = GovernorMetrics(registry=CollectorRegistry(), labels=("team",), per_scope=True).attach(gov)
    call(gov, "support", "r1")
    call(gov, "sales", "r2")
    rows = samples(m)
    assert total(rows, "governor_calls_total", team="support") == 1
    assert total(rows, "governor_spend_usd_total", team="sales") == pytest.approx(40 / 1e6)
    scopes = {s.labels["scope"] for s in rows if s.name == "governor_budget_used_usd"}
    assert scopes == {"team=support", "team=sales", "run=r1", "run=r2"}


def test_unpriced_calls_are_counted_never_as_zero_spend() -> None:
    gov, m = governed(
        POLICY.replace(
            "metadata: {name: metrics-test}", "metadata: {name: metrics-test}\ndefaults: {allow_unpriced: true}"
        )
    )
    d = gov.check(
        model="no-such-model-xyz", messages=[{"role": "user", "content": "hi"}], max_tokens=5, metadata={"run_id": "r"}
    )
    gov.record(d, input_tokens=10, output_tokens=5)
    rows = samples(m)
    assert total(rows, "governor_unpriced_calls_total", model="no-such-model-xyz") == 1
    assert not [s for s in rows if s.name == "governor_spend_usd_total"]


def test_a_store_outage_counts_a_ledger_error_on_check_and_on_record(redis_server: Any) -> None:
    text = POLICY.replace("budgets:", "on_error: fail_open\nbudgets:")
    ledger = RedisLedger(redis_server.url, key_prefix="metrics-outage")
    gov, m = governed(text, ledger=ledger)
    d = call(gov, "support", "r1")  # reserved while the store is up
    redis_server.stop()
    try:
        gov.record(d, input_tokens=20, output_tokens=10)  # record() was already called by call(): ignored
        d2 = gov.check(
            model="m-cheap",
            messages=[{"role": "user", "content": "x"}],
            max_tokens=5,
            metadata={"team": "support", "run_id": "r1"},
        )
        assert d2.allowed and any("store is down" in w for w in d2.warnings)
        rows = samples(m)  # the gauges cannot read the store: they are left out, the scrape still works
        assert total(rows, "governor_ledger_errors_total", operation="reserve") == 1
        assert not [s for s in rows if s.name == "governor_budget_used_usd"]
    finally:
        redis_server.start()
        ledger.close()


def test_reservations_in_flight_gauge() -> None:
    gov, m = governed()
    held = [
        gov.check(
            model="m-cheap",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=5,
            metadata={"team": "t", "run_id": f"r{i}"},
        )
        for i in range(3)
    ]
    assert total(samples(m), "governor_reservations_in_flight") == 3
    gov.record(held[0], input_tokens=1, output_tokens=1)
    assert total(samples(m), "governor_reservations_in_flight") == 2


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 5000), st.integers(0, 50)), min_size=1, max_size=20
    )
)
def test_spend_total_equals_the_sum_of_recorded_costs(calls: list[tuple[str, int, int]]) -> None:
    gov, m = governed(POLICY.replace("limit: {usd: 1}", "limit: {usd: 1000}").replace("calls: 3", "calls: 1000"))
    paid = 0.0
    for team, tin, tout in calls:
        d = gov.check(
            model="m-cheap",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=50,
            metadata={"team": team, "run_id": "r"},
        )
        paid += gov.record(d, input_tokens=tin, output_tokens=tout) or 0.0
    rows = samples(m)
    assert abs(total(rows, "governor_spend_usd_total") - paid) < 1e-12
    assert total(rows, "governor_calls_total") == len(calls)
    assert total(rows, "governor_tokens_total", kind="input") == sum(c[1] for c in calls)
    m.close()


def test_calls_a_hook_accounts_through_observe_reach_the_metrics(tmp_path: Any) -> None:
    """The Claude Code hook path (``Governor.observe``, no check): calls, spend, tokens and the budgets' spend
    show in the metrics, once per call however often the hook reads the transcript."""
    import json
    import shutil
    from pathlib import Path

    from governor.hooks.claude_code import handle
    from governor.traces import load_traces

    data = Path(__file__).resolve().parent.parent / "data" / "coding_agents" / "claude" / "projects"
    session = "a3e2b169-8489-4446-9bdf-2e9e5e890536"
    src = data / "-tmp-budget-governor-record-proj" / f"{session}.jsonl"
    transcript = tmp_path / f"{session}.jsonl"
    shutil.copy(src, transcript)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: governor/v1\nkind: Policy\nmetadata: {name: hook-metrics}\n"
        f"ledger: {{type: sqlite, path: {tmp_path / 'ledger.db'}}}\n"
        "models:\n  prices:\n    claude-sonnet-4-5: {input_per_mtok: 3, output_per_mtok: 15, cache_read_per_mtok: 0.3, "
        "cache_write_per_mtok: 3.75}\n"
        "budgets:\n  - {id: dev-daily, scope: user, limit: {usd: 100}, window: {calendar: day}}\n"
    )
    from governor.policy.loader import load_policy

    gov = Governor(load_policy(policy), path=policy, stats=False, observers=False)
    metrics = GovernorMetrics(registry=CollectorRegistry()).attach(gov)
    event = json.dumps(
        {"session_id": session, "transcript_path": str(transcript), "cwd": "/tmp/proj", "hook_event_name": "Stop"}
    )
    try:
        for _ in range(2):  # read twice: the second event finds no new call
            assert handle(event, gov, user="dev1", state_dir=tmp_path / "state").exit_code == 0
        handle(event, gov, user="dev1", state_dir=tmp_path / "state2")  # state lost: the ledger still dedupes
        calls = [c for r in load_traces([src]).runs for c in r.calls]
        assert calls
        rows = samples(metrics)
        assert total(rows, "governor_calls_total", verdict="observed") == len(calls)
        assert total(rows, "governor_tokens_total", verdict="observed", kind="output") == sum(
            c.output_tokens for c in calls
        )
        spend = total(rows, "governor_spend_usd_total", verdict="observed")
        used = gov.ledger.usage(
            next(b for b in gov._compiled.budgets if b.id == "dev-daily").counter("dev1"), now=gov._clock()
        )
        assert spend > 0 and spend == pytest.approx(used.usd, abs=1e-9)
        assert total(rows, "governor_budget_spend_usd_total", budget="dev-daily") == pytest.approx(spend)
        assert total(rows, "governor_budget_used_usd", budget="dev-daily") == pytest.approx(used.usd)
    finally:
        metrics.close()
        gov.close()
