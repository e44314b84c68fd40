"""Reservations that outlive their lease, late and failed records, skipped downgrades."""

from __future__ import annotations

import logging

import pytest

from tests.engine.conftest import MSGS


def call(gov, model: str = "gpt-4o-mini", **md):
    return gov.check(model=model, messages=MSGS, input_tokens=1000, max_tokens=100, metadata=md or None)


def test_an_unsettled_reservation_is_released_after_its_lease(make_gov, clock) -> None:
    gov = make_gov("defaults: {lease: 5m}\nbudgets: [{id: one, scope: global, limit: {calls: 1}}]\n")
    d = call(gov)
    assert call(gov).blocked  # the first call's reservation holds the only slot
    clock.advance(301)
    assert call(gov).allowed  # the lease ran out: the slot came back
    # a record arriving late (within a second lease) still counts the money spent
    assert gov.record(d, input_tokens=1000, output_tokens=100) == pytest.approx(1000 * 0.15e-6 + 100 * 0.6e-6)
    budget = gov._compiled.budgets[0]
    assert gov.ledger.usage(budget.counter(""), now=clock()).calls == 2  # 1 settled late + 1 in flight


def test_a_record_after_two_leases_is_ignored_with_a_warning(make_gov, clock, caplog) -> None:
    gov = make_gov("defaults: {lease: 1m}\nbudgets: [{id: cap, scope: global, limit: {usd: 1}}]\n")
    d = call(gov)
    for _ in range(70):  # the pending map is swept every 64 checks
        clock.advance(2)
        gov.record(call(gov), input_tokens=1, output_tokens=1)
    assert d.decision_id not in gov._pending
    with caplog.at_level(logging.WARNING, logger="governor.engine"):
        gov.record(d, input_tokens=1000, output_tokens=100)
    assert "unknown or already settled" in caplog.text
    assert gov.stats()["total"]["calls"] == 70


def test_failed_call_that_used_tokens_is_charged_and_counts_as_an_error(make_gov) -> None:
    gov = make_gov(
        """
        stop: [{id: storm, type: consecutive_errors, max: 2}]
        budgets: [{id: cap, scope: run, limit: {usd: 1}}]
        """
    )
    d = call(gov, run_id="r")
    cost = gov.record(d, input_tokens=1000, output_tokens=10, error=TimeoutError("stream cut"))
    assert cost == pytest.approx(1000 * 0.15e-6 + 10 * 0.6e-6)
    budget = gov._compiled.budgets[0]
    used = gov.ledger.usage(budget.counter("r"), now=gov._clock())
    assert used.usd_nano == round(cost * 1e9) and used.calls == 1
    assert gov._runs.peek("r").consecutive_errors == 1
    assert gov.stats()["total"]["errors"] == 1


def test_downgrade_is_skipped_when_a_cap_would_block_the_cheaper_model(make_gov) -> None:
    gov = make_gov(
        """
        context: [{id: mini-small, match: {model: gpt-4o-mini}, max_input_tokens: 500, action: block}]
        budgets:
          - {id: spend, scope: global, limit: {calls: 10}, soft: {at: 0.1, action: downgrade, to: gpt-4o-mini}}
        """
    )
    d = call(gov, model="gpt-4o")
    assert d.verdict == "allow" and d.model == "gpt-4o" and d.rule_ids == ("spend",)
    assert "downgrade to gpt-4o-mini skipped" in d.warnings[0] and "mini-small" in d.warnings[0]


def test_downgrade_to_a_dearer_model_is_skipped(make_gov) -> None:
    gov = make_gov(
        """
        budgets:
          - {id: spend, scope: global, limit: {calls: 10}, soft: {at: 0.1, action: downgrade, to: gpt-4o}}
        """
    )
    d = call(gov, model="gpt-4o-mini")  # the reservation for gpt-4o-mini cannot cover gpt-4o
    assert d.model == "gpt-4o-mini" and "above the reserved" in d.warnings[0]


def test_audit_soft_threshold_is_a_note(make_gov) -> None:
    gov = make_gov(
        "budgets: [{id: spend, mode: audit, scope: global, limit: {calls: 10},"
        " soft: {at: 0.1, action: downgrade, to: gpt-4o-mini}}]\n"
    )
    d = call(gov, model="gpt-4o")
    assert d.model == "gpt-4o" and [(a.rule_id, a.would, a.model) for a in d.audit] == [
        ("spend", "downgrade", "gpt-4o-mini")
    ]


def test_unpriced_model_with_a_cost_cap_is_blocked_not_costed_zero(make_gov) -> None:
    gov = make_gov("calls: [{id: cost, max_cost_usd: 0.01}]\n")
    d = call(gov, model="acme/no-price")
    assert d.blocked and d.block_kind == "unpriced" and d.estimated_cost_usd is None
