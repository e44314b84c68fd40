"""Graded alerts against a real local HTTP receiver, real SQLite and a real redis-server."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from receiver import Receiver

from governor import Governor
from governor.ledger.memory import MemoryLedger
from governor.ledger.redis import RedisLedger
from governor.policy.loader import load_policy_text

HERE = Path(__file__).parent


def policy_text(
    url: str, *, ledger: str = "", extra_rules: str = "", alerts_extra: str = "", budget_extra: str = "", head: str = ""
) -> str:
    return f"""
apiVersion: governor/v1
kind: Policy
metadata: {{name: alerts-test}}
{head}
{ledger}
models:
  prices:
    m-cheap: {{input_per_mtok: 1, output_per_mtok: 2}}
budgets:
  - id: team-daily
    scope: team
    limit: {{usd: 1}}
    window: {{calendar: day}}
{budget_extra}
alerts:
  backoff: 50ms
{alerts_extra}
  sinks:
    hook: {{type: webhook, url: "{url}/hook", headers: {{x-token: abc}}}}
    chat: {{type: slack, url: "{url}/slack"}}
    ops-log: {{type: log}}
  rules:
    - id: grades
      on: budget
      thresholds: [0.5, 0.8, 1.0]
      to: [hook, chat]
{extra_rules}
"""


def spend(gov: Governor, usd: float, team: str = "platform", **md: Any) -> Any:
    n = int(usd * 1_000_000)
    d = gov.check(model="m-cheap", input_tokens=n, max_tokens=1, metadata={"team": team, **md})
    if d.allowed:
        gov.record(d, input_tokens=n, output_tokens=0)
    return d


def by_path(rx: Receiver, path: str) -> list[dict[str, Any]]:
    return [p["json"] for p in rx.posts if p["path"] == path]


def test_thresholds_reach_the_webhook_and_slack_once_each(receiver: Receiver, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text(receiver.url, ledger=f"ledger: {{type: sqlite, path: {tmp_path / 'l.db'}}}"))
    gov = Governor.from_path(path)
    spend(gov, 0.6)
    assert gov.alerts.flush(10)  # (without it, 0.6 and 0.9 may be read together: only 80% would be sent)
    spend(gov, 0.3)
    assert gov.alerts.flush(10)
    assert spend(gov, 0.2).blocked  # 0.9 + 0.2 > 1: the budget blocks, which counts as 100%
    spend(gov, 0.05)  # 0.95: no threshold left to cross
    assert gov.alerts.flush(10)
    hooks = by_path(receiver, "/hook")
    assert [a["threshold"] for a in hooks] == [0.5, 0.8, 1.0]
    first = hooks[0]
    assert first["type"] == "governor.alert" and first["kind"] == "budget_threshold"
    assert (first["budget"], first["scope"], first["limit_usd"]) == ("team-daily", "team=platform", 1.0)
    assert first["spend_usd"] == pytest.approx(0.6)
    assert first["policy"] == "alerts-test" and first["revision"] == gov.revision
    assert first["window_end"].endswith("T00:00:00Z")
    assert "blocked a call" in hooks[2]["message"]
    assert all(p["headers"]["x-token"] == "abc" for p in receiver.posts if p["path"] == "/hook")
    slack = by_path(receiver, "/slack")
    assert len(slack) == 3 and all(set(s) == {"text", "username"} for s in slack)
    assert "team-daily (team=platform) at 60% of its limit" in slack[0]["text"]
    assert gov.alerts.dispatcher.counts()["sent"] == {"hook": 3, "chat": 3}
    gov.close()


def test_a_failed_delivery_is_retried_with_backoff(receiver: Receiver) -> None:
    gov = Governor(load_policy_text(policy_text(receiver.url)))
    receiver.fail_next(2)
    spend(gov, 0.55)
    assert gov.alerts.flush(10)
    assert receiver.attempts == 4  # hook: 500, 500, 200; chat: 200 (order may vary)
    assert len(receiver.posts) == 2
    counts = gov.alerts.dispatcher.counts()
    assert sum(counts["retried"].values()) == 2 and counts["sent"] == {"hook": 1, "chat": 1}


def test_a_delivery_given_up_gives_its_marker_back(receiver: Receiver) -> None:
    gov = Governor(load_policy_text(policy_text(receiver.url, alerts_extra="  retries: 1")))
    receiver.fail_next(4)  # both sinks fail twice: given up
    spend(gov, 0.55)
    assert gov.alerts.flush(10)
    assert receiver.posts == [] and gov.alerts.dispatcher.counts()["failed"] == {"hook": 1, "chat": 1}
    spend(gov, 0.01)  # the receiver is back: the 50% alert is sent now, once
    assert gov.alerts.flush(10)
    assert sorted(p["path"] for p in receiver.posts) == ["/hook", "/slack"]


def test_a_hanging_receiver_never_holds_up_a_check_and_a_full_queue_drops(receiver: Receiver) -> None:
    text = policy_text(receiver.url, alerts_extra="  queue: 2\n  retries: 0").replace(
        "headers: {x-token: abc}", "timeout: 3s"
    )
    gov = Governor(load_policy_text(text))
    receiver.hang()
    decisions = [spend(gov, 0.6, team=f"team-{i}") for i in range(30)]  # 30 teams cross 50%
    # every check and record returned while the first delivery is still held open by the receiver
    assert all(d.allowed for d in decisions)
    assert receiver.attempts == 0 and receiver.posts == []
    assert gov.alerts.dispatcher.dropped > 0
    receiver.release()
    gov.close()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_two_processes_sharing_a_ledger_send_each_threshold_once(
    receiver: Receiver, tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    if kind == "sqlite":
        ledger = f"ledger: {{type: sqlite, path: {tmp_path / 'shared.db'}}}"
    else:
        server = request.getfixturevalue("redis_server")
        ledger = f"ledger: {{type: redis, url: '{server.url}', key_prefix: dedupe-{tmp_path.name}}}"
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text(receiver.url, ledger=ledger).replace("to: [hook, chat]", "to: [hook]"))
    procs = [subprocess.Popen([sys.executable, str(HERE / "alert_worker.py"), str(path), "12"]) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    thresholds = sorted(a["threshold"] for a in by_path(receiver, "/hook"))
    # 24 calls of $0.05 on a $1 budget: 50% and 80% crossed by spend, 100% by the call it blocked
    assert thresholds == [0.5, 0.8, 1.0]


def test_a_stop_condition_alerts_once_per_run(receiver: Receiver) -> None:
    rules = "    - {id: runaway, on: stop, stops: [loop-guard], to: [hook]}"
    head = "stop:\n  - {id: loop-guard, type: max_calls, max: 2}"
    gov = Governor(load_policy_text(policy_text(receiver.url, extra_rules=rules, head=head)))
    for _ in range(4):
        spend(gov, 0.01, run_id="agent-7")
    assert gov.alerts.flush(10)
    stops = [a for a in by_path(receiver, "/hook") if a["kind"] == "stop"]
    assert len(stops) == 1
    assert (stops[0]["stop"], stops[0]["run_id"]) == ("loop-guard", "agent-7")
    assert "already made 2 calls" in stops[0]["message"]


def test_an_overrun_alerts_with_cost_and_worst_case(receiver: Receiver) -> None:
    rules = "    - {id: overruns, on: overrun, min_usd: 0.001, to: [hook]}"
    gov = Governor(load_policy_text(policy_text(receiver.url, extra_rules=rules)))
    d = gov.check(model="m-cheap", input_tokens=1000, max_tokens=10, metadata={"team": "t"})
    gov.record(d, input_tokens=1000, output_tokens=10)  # within its worst case: no alert
    d = gov.check(model="m-cheap", input_tokens=1000, max_tokens=10, metadata={"team": "t"})
    gov.record(d, input_tokens=1000, output_tokens=5000)  # the provider ignored max_tokens
    assert gov.alerts.flush(10)
    overruns = [a for a in by_path(receiver, "/hook") if a["kind"] == "overrun"]
    assert len(overruns) == 1
    assert overruns[0]["spend_usd"] == pytest.approx(0.011) and overruns[0]["limit_usd"] == pytest.approx(0.00102)
    assert overruns[0]["decision_id"] == d.decision_id


def test_a_store_outage_alerts_once_per_interval(
    receiver: Receiver, redis_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    rules = "    - {id: store-down, on: store_outage, every: 10m, to: [hook, ops-log]}"
    text = policy_text(receiver.url, extra_rules=rules, head="on_error: fail_open")
    ledger = RedisLedger(redis_server.url, key_prefix="outage-alerts")
    gov = Governor(load_policy_text(text), ledger=ledger)
    redis_server.stop()
    try:
        with caplog.at_level(logging.WARNING, logger="governor.alerts"):
            for _ in range(3):
                assert spend(gov, 0.01).allowed  # fail_open: allowed, not counted
            assert gov.alerts.flush(10)
    finally:
        redis_server.start()
        ledger.close()
    outages = [a for a in by_path(receiver, "/hook") if a["kind"] == "store_outage"]
    assert len(outages) == 1 and "budget store is down" in outages[0]["message"]
    lines = [r for r in caplog.records if r.getMessage().startswith("governor alert [store-down]")]
    assert len(lines) == 1
    assert "redis://" not in lines[0].getMessage() or "@" not in lines[0].getMessage()


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.alerts: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        alert = getattr(record, "governor_alert", None)
        if alert is not None:
            self.alerts.append(alert)


LOG_POLICY = """
apiVersion: governor/v1
kind: Policy
metadata: {name: alert-props}
models:
  prices:
    m-cheap: {input_per_mtok: 1, output_per_mtok: 2}
budgets:
  - {id: team-daily, scope: team, limit: {usd: 1}}
alerts:
  sinks:
    ops-log: {type: log}
  rules:
    - {id: grades, on: budget, thresholds: [0.25, 0.5, 0.8, 0.95, 1.0], to: [ops-log]}
"""


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(1, 400_000)), min_size=1, max_size=25))
def test_each_threshold_is_sent_at_most_once_and_the_highest_reached_always(spends: list[tuple[str, int]]) -> None:
    handler = _Capture()
    logger = logging.getLogger("governor.alerts")
    logger.addHandler(handler)
    try:
        gov = Governor(load_policy_text(LOG_POLICY), ledger=MemoryLedger(), observers=False)
        reached: dict[str, float] = {}
        for team, n in spends:
            d = gov.check(model="m-cheap", input_tokens=n, max_tokens=1, metadata={"team": team})
            if d.allowed:
                gov.record(d, input_tokens=n, output_tokens=0)
                reached[team] = reached.get(team, 0.0) + n / 1_000_000
            else:
                reached[team] = max(reached.get(team, 0.0), 1.0)
        assert gov.alerts.flush(10)
        gov.close()
    finally:
        logger.removeHandler(handler)
    sent = [(a["scope"], a["threshold"]) for a in handler.alerts]
    assert len(sent) == len(set(sent))  # never twice
    for team, frac in reached.items():
        mine = [t for scope, t in sent if scope == f"team={team}"]
        assert all(t <= frac + 1e-9 for t in mine)  # never before it is reached
        crossed = [t for t in (0.25, 0.5, 0.8, 0.95, 1.0) if frac + 1e-9 >= t]
        if crossed:
            assert max(mine) == max(crossed)  # the highest reached is always sent
