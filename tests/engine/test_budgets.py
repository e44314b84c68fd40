"""Stage 5-6: budget reservations by scope, windows on an injectable clock, soft thresholds,
unknown prices and store outages."""

from __future__ import annotations

import socket
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from governor import BudgetExceeded, StoreUnavailable, UnpricedModel
from governor.ledger.redis import RedisLedger
from tests.engine.conftest import MSGS

# gpt-4o-mini: $0.15/M input, $0.60/M output (litellm's bundled table)
MINI_1K_100 = 1000 * 0.15e-6 + 100 * 0.6e-6  # one call: 1000 in, max_tokens 100


def call(gov, max_tokens: int = 100, input_tokens: int = 1000, model: str = "gpt-4o-mini", **md):
    return gov.check(model=model, messages=MSGS, input_tokens=input_tokens, max_tokens=max_tokens, metadata=md or None)


def spend(gov, d, output_tokens: int = 100, input_tokens: int = 1000):
    return gov.record(d, input_tokens=input_tokens, output_tokens=output_tokens)


def test_budget_blocks_when_the_worst_case_would_exceed_it(make_gov) -> None:
    gov = make_gov("budgets: [{id: team-cap, scope: team, limit: {usd: 0.001}}]\n")
    allowed = 0
    while (d := call(gov, team="support")).allowed:
        assert spend(gov, d) == pytest.approx(MINI_1K_100)
        allowed += 1
    assert allowed == int(0.001 // MINI_1K_100) == 4
    assert d.block_kind == "budget" and d.rule_ids == ("team-cap",)
    assert "team=support" in d.reasons[0] and "usd limit $0.0010" in d.reasons[0]
    with pytest.raises(BudgetExceeded) as err:
        gov.check_or_raise(
            model="gpt-4o-mini", messages=MSGS, input_tokens=1000, max_tokens=100, metadata={"team": "support"}
        )
    assert err.value.rule_ids == ("team-cap",)
    # another team has its own counter
    assert call(gov, team="sales").allowed


def test_settle_replaces_the_reservation_with_the_actual_cost(make_gov) -> None:
    gov = make_gov("budgets: [{id: cap, scope: global, limit: {usd: 0.001}}]\n")
    # reserve 1000 in + 2000 out = 0.00135 > limit: blocked on worst case
    assert call(gov, max_tokens=2000).blocked
    # worst case 1000 in + 1000 out = 0.00075; the actual (no output) is 0.00015, so after one
    # settled call 0.00015 + 0.00075 still fits, after two 0.0003 + 0.00075 does not
    allowed = 0
    while (d := call(gov, max_tokens=1000)).allowed:
        spend(gov, d, output_tokens=0)
        allowed += 1
    assert allowed == 2
    used = gov.ledger.usage(gov._compiled.budgets[0].counter(""), now=gov._clock())
    assert used.usd_nano == 2 * 150_000 and used.calls == 2 and used.tokens == 2000


@pytest.mark.parametrize(
    ("scope", "md_a", "md_b", "shared"),
    [
        ("user", {"user": "ann"}, {"user": "bob"}, False),
        ("team", {"team": "a"}, {"team": "a", "user": "x"}, True),
        ("metadata.tenant", {"tenant": "t1"}, {"tenant": "t2"}, False),
        ("global", {"user": "ann"}, {"user": "bob"}, True),
        ("run", {"run_id": "r1"}, {"run_id": "r2"}, False),
        ("user", {}, {"team": "x"}, True),  # no user: both count under "(none)"
    ],
)
def test_scopes_pick_the_counter(make_gov, scope: str, md_a: dict, md_b: dict, shared: bool) -> None:
    gov = make_gov(f"budgets: [{{id: b, scope: {scope}, limit: {{calls: 1}}}}]\n")
    assert call(gov, **md_a).allowed
    assert call(gov, **md_b).allowed is not shared


def test_missing_scope_value_counts_under_none(make_gov) -> None:
    gov = make_gov("budgets: [{id: per-user, scope: user, limit: {calls: 1}}]\n")
    call(gov)
    d = call(gov)
    assert d.blocked and "user=(none)" in d.reasons[0]


def test_tag_scope_charges_every_tag(make_gov) -> None:
    gov = make_gov("budgets: [{id: per-tag, scope: tag, limit: {calls: 1}}]\n")
    assert call(gov, tags=["a", "b"]).allowed
    d = call(gov, tags=["b", "c"])
    assert d.blocked and "tag=b" in d.reasons[0]
    assert call(gov, tags=["c"]).allowed


def test_call_scope_limits_each_call_without_a_counter(make_gov) -> None:
    gov = make_gov("budgets: [{id: per-call, scope: call, limit: {tokens: 1500}}]\n")
    for _ in range(3):
        assert call(gov, max_tokens=500).allowed
    d = call(gov, max_tokens=501)
    assert d.blocked and d.block_kind == "budget" and "per call" in d.reasons[0]


def test_match_selects_which_calls_count(make_gov) -> None:
    gov = make_gov("budgets: [{id: coder, scope: global, limit: {calls: 1}, match: {agent: coder}}]\n")
    assert call(gov, agent="coder").allowed
    assert call(gov, agent="coder").blocked
    assert call(gov, agent="reviewer").allowed


def test_rolling_window_frees_spend_as_it_ages(make_gov, clock) -> None:
    gov = make_gov("budgets: [{id: hourly, scope: global, limit: {calls: 2}, window: 1h}]\n")
    spend(gov, call(gov))
    clock.advance(1800)
    spend(gov, call(gov))
    assert call(gov).blocked
    clock.advance(1800 + 61)  # the first call left the window (1-minute buckets)
    assert call(gov).allowed
    assert call(gov).blocked


def test_calendar_day_resets_at_local_midnight(make_gov, clock) -> None:
    gov = make_gov(
        "budgets: [{id: daily, scope: global, limit: {calls: 1}, window: {calendar: day, timezone: Asia/Tokyo}}]\n"
    )
    tokyo = ZoneInfo("Asia/Tokyo")
    clock.t = datetime(2026, 3, 1, 23, 58, tzinfo=tokyo).timestamp()
    spend(gov, call(gov))
    assert call(gov).blocked
    clock.t = datetime(2026, 3, 2, 0, 1, tzinfo=tokyo).timestamp()  # 15:01 UTC: a new day in Tokyo
    assert datetime.fromtimestamp(clock.t, tz=timezone.utc).day == 1
    assert call(gov).allowed


def test_soft_threshold_warns_and_names_the_budget(make_gov) -> None:
    gov = make_gov("budgets: [{id: run-cap, scope: run, limit: {calls: 10}, soft: {at: 0.5, action: warn}}]\n")
    for _ in range(4):
        assert call(gov, run_id="r").warnings == ()
    d = call(gov, run_id="r")  # 5 of 10 with this one
    assert d.verdict == "allow" and d.rule_ids == ("run-cap",) and "run-cap at 50%" in d.warnings[0]


def test_soft_downgrade_switches_model_and_rechecks_caps(make_gov) -> None:
    gov = make_gov(
        """
        calls: [{id: mini-out, match: {model: gpt-4o-mini}, max_output_tokens: 50}]
        budgets:
          - {id: spend, scope: global, limit: {usd: 0.05}, soft: {at: 0.4, action: downgrade, to: gpt-4o-mini}}
        """
    )
    d = call(gov, model="gpt-4o", max_tokens=1000)  # 0.0025 + 0.01 = 0.0125 reserved
    assert d.model == "gpt-4o"
    spend(gov, d, output_tokens=1000)
    d = call(gov, model="gpt-4o", max_tokens=1000)  # 0.025 of 0.05 with this one: downgrade
    assert (d.verdict, d.model, d.max_tokens) == ("reroute", "gpt-4o-mini", 50)
    assert d.rule_ids == ("spend", "mini-out")
    assert d.estimated_cost_usd == pytest.approx(1000 * 0.15e-6 + 50 * 0.6e-6)


def test_unknown_price_blocks_with_a_reason_that_says_how_to_fix_it(make_gov) -> None:
    gov = make_gov("budgets: [{id: cap, scope: global, limit: {usd: 10}}]\n")
    with pytest.raises(UnpricedModel) as err:
        gov.check_or_raise(model="acme/unknown-model-7", messages=MSGS, input_tokens=10)
    reason = err.value.decision.reasons[0]
    assert "acme/unknown-model-7" in reason and "models.prices" in reason
    assert err.value.rule_ids == ("cap",)
    # no budget at all: the policy's on_error (fail_closed by default) still refuses $0
    gov2 = make_gov("routes: []\n")
    d = gov2.check(model="acme/unknown-model-7", messages=MSGS, input_tokens=10)
    assert d.block_kind == "unpriced" and d.rule_ids == ("on_error",)


@pytest.mark.parametrize("setting", ["on_error: fail_open", "defaults: {allow_unpriced: true}"])
def test_unknown_price_allowed_by_explicit_choice_is_unknown_not_zero(make_gov, setting: str) -> None:
    gov = make_gov(setting + "\nbudgets: [{id: cap, scope: global, limit: {usd: 10, calls: 2}}]\n")
    d = call(gov, model="acme/unknown-model-7")
    assert d.allowed and d.estimated_cost_usd is None and "no price" in d.warnings[0]
    assert gov.record(d, input_tokens=10, output_tokens=10) is None
    call(gov, model="acme/unknown-model-7")
    assert call(gov, model="acme/unknown-model-7").blocked  # calls are still counted
    assert gov.stats()["total"]["unpriced_calls"] == 1


def test_policy_price_override_wins(make_gov) -> None:
    gov = make_gov(
        """
        models: {prices: {acme/m1: {input_per_mtok: 1.0, output_per_mtok: 2.0},
                          gpt-4o: {input_per_mtok: 100, output_per_mtok: 100}}}
        """
    )
    d = call(gov, model="acme/m1", input_tokens=1_000_000, max_tokens=1_000_000)
    assert d.estimated_cost_usd == pytest.approx(3.0)
    assert gov.record(d, input_tokens=1_000_000, output_tokens=500_000) == pytest.approx(2.0)
    assert call(gov, model="gpt-4o", input_tokens=1_000_000, max_tokens=0).estimated_cost_usd == pytest.approx(100.0)


def _dead_redis() -> RedisLedger:
    with socket.socket() as s:  # a free port where nothing listens: a real store that is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return RedisLedger(f"redis://127.0.0.1:{port}/0")


def test_store_down_fail_closed_blocks(make_gov) -> None:
    gov = make_gov("budgets: [{id: cap, scope: global, limit: {usd: 10}}]\n", ledger=_dead_redis())
    with pytest.raises(StoreUnavailable) as err:
        gov.check_or_raise(model="gpt-4o-mini", messages=MSGS, input_tokens=10)
    assert err.value.rule_ids == ("cap",) and "store is down" in err.value.decision.reasons[0]


def test_store_down_fail_open_allows_with_a_warning(make_gov) -> None:
    gov = make_gov("budgets: [{id: cap, scope: global, limit: {usd: 10}, on_error: fail_open}]\n", ledger=_dead_redis())
    d = call(gov)
    assert d.allowed and "store is down" in d.warnings[0]
    assert gov.record(d, input_tokens=1000, output_tokens=100) == pytest.approx(MINI_1K_100)  # settle fails, logged


def test_audit_budget_counts_real_spend_and_reports_what_it_would_block(make_gov) -> None:
    gov = make_gov("budgets: [{id: shadow, mode: audit, scope: global, limit: {calls: 2}}]\n")
    for _ in range(2):
        d = call(gov)
        assert d.audit == ()
        spend(gov, d)
    d = call(gov)
    assert d.allowed and [(a.rule_id, a.would) for a in d.audit] == [("shadow", "block")]


def test_blocked_decision_records_nothing(make_gov) -> None:
    gov = make_gov("budgets: [{id: cap, scope: global, limit: {calls: 1}}]\n")
    spend(gov, call(gov))
    d = call(gov)
    assert d.blocked and gov.record(d, input_tokens=1000, output_tokens=100) == 0.0
    assert gov.stats()["total"]["calls"] == 1


def test_error_releases_the_reservation(make_gov) -> None:
    gov = make_gov("budgets: [{id: cap, scope: global, limit: {calls: 1}}]\n")
    d = call(gov)
    assert call(gov).blocked  # reserved
    assert gov.record(d, input_tokens=0, output_tokens=0, error="timeout") == 0.0
    assert call(gov).allowed  # released


def test_record_is_idempotent(make_gov) -> None:
    gov = make_gov("budgets: [{id: cap, scope: global, limit: {usd: 1}}]\n")
    d = call(gov)
    first = spend(gov, d)
    assert spend(gov, d) == first
    assert gov.stats()["total"]["calls"] == 1
    assert gov.stats()["total"]["spend_usd"] == pytest.approx(first)


def test_unknown_price_does_not_block_under_budgets_without_a_usd_limit(make_gov) -> None:
    gov = make_gov(
        "budgets: [{id: calls, scope: global, limit: {calls: 2}}, {id: toks, scope: run, limit: {tokens: 100000}}]\n"
    )
    d = call(gov, model="acme/unknown-model-7")
    assert d.allowed and d.estimated_cost_usd is None
    assert "no price" in d.warnings[0] and "calls, toks limit only calls/tokens" in d.warnings[0]
    assert gov.record(d, input_tokens=10, output_tokens=10) is None
    call(gov, model="acme/unknown-model-7")
    assert call(gov, model="acme/unknown-model-7").block_kind == "budget"  # the calls are still counted
    # a USD budget next to them still refuses an unknown price (fail_closed)
    gov2 = make_gov(
        "budgets: [{id: calls, scope: global, limit: {calls: 2}}, {id: usd, scope: global, limit: {usd: 5}}]\n"
    )
    d = call(gov2, model="acme/unknown-model-7")
    assert d.block_kind == "unpriced" and d.rule_ids == ("usd",)


def test_active_runs_keep_their_budget_plans_when_the_plan_cache_turns_over(make_gov, monkeypatch) -> None:
    # more runs than the cache holds per generation: a run that keeps calling keeps its plan
    # (and the lane with its allowance); runs gone for two generations lose theirs
    import governor.engine.compiled as compiled

    monkeypatch.setattr(compiled, "PLAN_CACHE_MAX", 4)
    gov = make_gov("budgets: [{id: per-run, scope: run, limit: {usd: 10}}]\n")

    def call(run: str) -> None:
        d = gov.check(model="gpt-4o-mini", messages=MSGS, input_tokens=100, max_tokens=10, metadata={"run_id": run})
        assert d.allowed
        gov.record(d, input_tokens=100, output_tokens=10)

    cp = gov._compiled
    call("active")
    (((view, key), active_plan),) = cp.plans.items()
    assert key == ("active",)  # no scope keys: the run chain is the key
    for i in range(40):  # ten generations of four new runs, the active run calling in each
        call(f"short-{i}")
        if i % 3 == 0:
            call("active")
    plans = dict(cp.plans.items())
    assert plans[(view, ("active",))] is active_plan  # never rebuilt
    assert len(plans) <= 2 * 4 and (view, ("short-0",)) not in plans  # bounded: ended runs go
    budget = gov._compiled.budgets[0]
    assert gov.ledger.usage(budget.counter("active"), now=gov._clock()).calls == 15


def test_a_view_in_use_keeps_its_plans_when_the_view_cache_turns_over(make_gov, monkeypatch) -> None:
    # a route on the user makes a view per user: more users than the cache holds must not
    # take the active user's view (and its runs' plans and lanes) with them
    import governor.engine.compiled as compiled

    monkeypatch.setattr(compiled, "VIEW_CACHE_MAX", 4)
    gov = make_gov("""
        routes: [{id: vip, match: {user: vip}, to: gpt-4o}]
        budgets: [{id: per-run, scope: run, limit: {usd: 10}}]
        """)

    def call(user: str) -> None:
        d = gov.check(
            model="gpt-4o-mini",
            messages=MSGS,
            input_tokens=100,
            max_tokens=10,
            metadata={"run_id": f"run-{user}", "user": user},
        )
        assert d.allowed
        gov.record(d, input_tokens=100, output_tokens=10)

    cp = gov._compiled
    call("active")
    ((_, view),) = cp.views.items()
    ((_, plan),) = cp.plans.items()
    for i in range(40):
        call(f"user-{i}")
        if i % 3 == 0:
            call("active")
    views = dict(cp.views.items())
    assert len(views) <= 2 * 4
    assert view in views.values()  # the same view object: its plan (keyed by it) is still found
    assert dict(cp.plans.items())[(view, ("run-active",))] is plan
