"""The Governor object: pricing against litellm, reload and the watcher, observers,
outcomes, the decision log, check_or_raise."""

from __future__ import annotations

import json
import logging
import os
import time

import pytest

from governor import CallBlocked, Governor
from governor._litellm import litellm
from governor.engine.governor import BLOCK_ERRORS
from governor.errors import (
    BudgetExceeded,
    ContextTooLarge,
    CostCapExceeded,
    GovernorError,
    StopConditionHit,
    StoreUnavailable,
    UnpricedModel,
)
from tests.engine.conftest import HEADER, MSGS


def test_record_cost_matches_litellm_for_real_models(make_gov) -> None:
    gov = make_gov("routes: []\n")
    for model in ("gpt-4o", "claude-sonnet-4-5", "gemini/gemini-2.5-flash"):
        d = gov.check(model=model, messages=MSGS, input_tokens=12_345)
        cost = gov.record(d, input_tokens=12_345, output_tokens=678)
        p, c = litellm().cost_per_token(model=model, prompt_tokens=12_345, completion_tokens=678)
        assert cost == pytest.approx(p + c, rel=1e-9), model


def test_cache_and_reasoning_rates_are_applied(make_gov) -> None:
    gov = make_gov("routes: []\n")
    d = gov.check(model="claude-sonnet-4-5", messages=MSGS, input_tokens=10_000)
    cost = gov.record(d, input_tokens=10_000, output_tokens=100, cache_read_tokens=8_000)
    # $3/M plain input, $0.30/M cache read, $15/M output
    assert cost == pytest.approx(2_000 * 3e-6 + 8_000 * 0.3e-6 + 100 * 15e-6)


def test_token_counting_when_input_tokens_absent(make_gov) -> None:
    gov = make_gov("routes: []\n")
    d = gov.check(model="gpt-4o", messages=[{"role": "user", "content": "hello world"}])
    assert d.input_tokens > 0 and d.input_tokens_estimated is False
    d = gov.check(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hello world"}])
    assert d.input_tokens > 0 and d.input_tokens_estimated is True  # no public tokenizer: labelled estimate


def test_check_or_raise_maps_every_block_kind() -> None:
    assert BLOCK_ERRORS == {
        "budget": BudgetExceeded,
        "stop": StopConditionHit,
        "context": ContextTooLarge,
        "cost": CostCapExceeded,
        "unpriced": UnpricedModel,
        "store": StoreUnavailable,
    }
    assert all(issubclass(e, CallBlocked) for e in BLOCK_ERRORS.values())


def test_reload_with_a_broken_file_keeps_the_running_policy(make_gov, write_policy, caplog) -> None:
    gov = make_gov("routes: [{id: cheap, to: gpt-4o-mini}]\n")
    old = gov.revision
    path = write_policy("routes: [{id: cheap, to: gpt-4o-mini, colour: blue}]\n")  # unknown key
    with caplog.at_level(logging.ERROR, logger="governor.engine"):
        assert gov.reload() is False
    assert "still serving revision " + old in caplog.text and "colour" in caplog.text
    d = gov.check(model="gpt-4o", messages=MSGS, input_tokens=10)
    assert d.revision == old and d.model == "gpt-4o-mini"
    path.write_text(HEADER + "routes: [{id: nano, to: gpt-4.1-nano}]\n")
    assert gov.reload() is True and gov.revision != old
    d = gov.check(model="gpt-4o", messages=MSGS, input_tokens=10)
    assert d.revision == gov.revision and d.model == "gpt-4.1-nano" and d.rule_ids == ("nano",)


def test_in_flight_calls_settle_against_the_revision_they_were_checked_with(make_gov, write_policy) -> None:
    gov = make_gov(
        """
        models: {prices: {acme/m: {input_per_mtok: 1.0, output_per_mtok: 1.0}}}
        budgets: [{id: cap, scope: global, limit: {usd: 1}}]
        """
    )
    d = gov.check(model="acme/m", messages=MSGS, input_tokens=1_000_000, max_tokens=0)
    write_policy(
        """
        models: {prices: {acme/m: {input_per_mtok: 50.0, output_per_mtok: 50.0}}}
        budgets: [{id: cap, scope: global, limit: {usd: 1}}]
        """
    )
    assert gov.reload()
    assert gov.record(d, input_tokens=1_000_000, output_tokens=0) == pytest.approx(1.0)  # the old price


def test_watcher_reloads_on_change_and_stops(make_gov, write_policy, clock) -> None:
    path = write_policy("routes: [{id: a, to: gpt-4o-mini}]\n")
    gov = Governor.from_path(path, clock=clock, watch=0.05)
    try:
        first = gov.revision
        path.write_text(HEADER + "routes: [{id: b, to: gpt-4.1-nano}]\n")
        os.utime(path, (time.time() + 5, time.time() + 5))
        deadline = time.monotonic() + 10
        while gov.revision == first and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gov.revision != first
        assert gov.check(model="gpt-4o", messages=MSGS, input_tokens=1).rule_ids == ("b",)
        watcher = gov.watcher
    finally:
        gov.close()
    assert watcher is not None and not watcher.alive


def test_observers_see_every_decision_and_their_errors_are_logged(make_gov, caplog) -> None:
    gov = make_gov("budgets: [{id: cap, scope: global, limit: {calls: 1}}]\n")
    seen = []
    gov.add_observer(seen.append)

    def broken(decision):
        raise RuntimeError("observer bug")

    gov.add_observer(broken)
    with caplog.at_level(logging.ERROR, logger="governor.engine"):
        gov.check(model="gpt-4o", messages=MSGS, input_tokens=1)
        gov.check(model="gpt-4o", messages=MSGS, input_tokens=1)
    assert [d.verdict for d in seen] == ["allow", "block"]
    assert "observer bug" in caplog.text


def test_outcomes_and_cost_per_accepted_task(make_gov) -> None:
    gov = make_gov("routes: []\n")
    costs = {}
    for run, outcome in (("r1", "accepted"), ("r2", "rejected"), ("r3", "accepted")):
        with gov.run(run_id=run, team="t"):
            d = gov.check(model="gpt-4o-mini", messages=MSGS, input_tokens=10_000)
            costs[run] = gov.record(d, input_tokens=10_000, output_tokens=500)
        gov.record_outcome(run, outcome)
    gov.record_outcome("r2", "edited")  # the latest outcome wins
    stats = gov.stats()
    total = sum(costs.values())
    assert stats["total"]["spend_usd"] == pytest.approx(total)
    assert stats["total"]["cost_per_accepted_task"] == pytest.approx(total / 2)
    assert stats["by_team"]["t"]["outcomes"] == {"accepted": 2, "edited": 1}
    assert stats["by_run"]["r2"]["outcome"] == "edited"
    with pytest.raises(GovernorError, match="unknown outcome 'great'"):
        gov.record_outcome("r1", "great")


def test_a_metadata_dict_reused_after_the_check_changes_neither_the_decision_nor_the_stats(make_gov) -> None:
    """A caller that reuses one dict for every call and moves it to the next run: the Decision
    keeps what the check saw, and spend stays with the run that made it."""
    gov = make_gov("budgets:\n  - {id: per-run, scope: run, limit: {usd: 100}}\n")
    md = {"run_id": "r1", "user": "ana", "team": "t"}
    d = gov.check(model="gpt-4o-mini", messages=MSGS, max_tokens=10, metadata=md, input_tokens=1000)
    md["run_id"], md["user"] = "r2", "bo"
    cost = gov.record(d, input_tokens=1000, output_tokens=10)
    assert d.metadata["run_id"] == "r1" and d.metadata["user"] == "ana"
    stats = gov.stats()
    assert set(stats["by_run"]) == {"r1"} and stats["by_run"]["r1"]["spend_usd"] == pytest.approx(cost)
    assert set(stats["by_user"]) == {"ana"}


def test_record_to_writes_a_replayable_trace_without_prompt_text(make_gov, tmp_path) -> None:
    trace = tmp_path / "trace.jsonl"
    gov = make_gov("routes: [{id: cheap, to: gpt-4o-mini}]\n", record_to=trace)
    with gov.run(run_id="r1", user="ann"):
        d = gov.check(model="gpt-4o", messages=[{"role": "user", "content": "secret prompt"}], input_tokens=50)
        gov.record(d, input_tokens=50, output_tokens=5)
    gov.record_outcome("r1", "accepted")
    gov.close()
    text = trace.read_text()
    assert "secret prompt" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["event"] for line in lines] == ["header", "check", "record", "outcome"]
    check, rec = lines[1], lines[2]
    assert check["decision_id"] == rec["decision_id"] == d.decision_id
    assert check["revision"] == gov.revision and check["rule_ids"] == ["cheap"] and check["run_id"] == "r1"
    assert rec["model"] == "gpt-4o-mini" and rec["cost_usd"] == pytest.approx(50 * 0.15e-6 + 5 * 0.6e-6)


def test_decision_ids_are_unique_across_governors(make_gov) -> None:
    a = make_gov("routes: []\n")
    b = make_gov("routes: []\n")
    ids = {g.check(model="gpt-4o", messages=MSGS, input_tokens=1).decision_id for g in (a, b, a, b)}
    assert len(ids) == 4


def test_reload_without_a_file_needs_a_policy(write_policy) -> None:
    from governor.policy.loader import load_policy

    policy = load_policy(write_policy("routes: []\n"))
    gov = Governor(policy)
    with pytest.raises(GovernorError, match="not loaded from a file"):
        gov.reload()
    assert gov.reload(load_policy(write_policy("routes: [{id: x, to: gpt-4o-mini}]\n", "p2.yaml")))
    assert gov.check(model="gpt-4o", messages=MSGS, input_tokens=1).model == "gpt-4o-mini"


def test_a_reload_that_lowers_a_budget_applies_to_spend_made_under_the_old_revision(make_gov, write_policy) -> None:
    """The memory ledger's lanes hold allowances between calls: a lower limit after a reload
    must still see every call already made (settled or in flight), and nothing more."""
    gov = make_gov(
        """
        models: {prices: {acme/m: {input_per_mtok: 1.0, output_per_mtok: 1.0}}}
        budgets: [{id: run-cap, scope: run, limit: {usd: 1.0}}]
        """
    )
    md = {"run_id": "r1"}
    for _ in range(3):  # each call reserves $0.02 and costs $0.01
        d = gov.check(model="acme/m", messages=MSGS, input_tokens=10_000, max_tokens=10_000, metadata=md)
        assert d.verdict == "allow"
        gov.record(d, input_tokens=10_000, output_tokens=0)
    in_flight = gov.check(model="acme/m", messages=MSGS, input_tokens=10_000, max_tokens=10_000, metadata=md)
    write_policy(
        """
        models: {prices: {acme/m: {input_per_mtok: 1.0, output_per_mtok: 1.0}}}
        budgets: [{id: run-cap, scope: run, limit: {usd: 0.07}}]
        """
    )
    assert gov.reload()
    # $0.03 settled + $0.02 in flight + $0.02 for this call = $0.07: fits exactly
    d = gov.check(model="acme/m", messages=MSGS, input_tokens=10_000, max_tokens=10_000, metadata=md)
    assert d.verdict == "allow"
    d2 = gov.check(model="acme/m", messages=MSGS, input_tokens=10_000, max_tokens=10_000, metadata=md)
    assert d2.verdict == "block" and d2.rule_ids == ("run-cap",)
    assert "used $0.0700" in d2.reasons[0]  # exact usage, not the old revision's allowance
    gov.record(in_flight, input_tokens=10_000, output_tokens=0)  # settles $0.01 of its $0.02
    assert gov.check(model="acme/m", messages=MSGS, input_tokens=10_000, max_tokens=0, metadata=md).verdict == "allow"
