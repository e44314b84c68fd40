"""Pricing from real provider usage objects, checked against the tables' own entries and genai-prices.

Every expected figure is computed here from litellm's table entry (``litellm.model_cost``) or from
``genai_prices.calc_price``, independently of ``governor.pricing``.
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from governor.integrations.usage import (
    from_anthropic_usage,
    from_chat_usage,
    from_gemini_usage,
    from_responses_usage,
)
from governor.policy.loader import load_policy_text
from governor.pricing import CallUsage, PriceTable

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def _entry(model: str) -> dict:
    import litellm

    return litellm.model_cost[model]


def _cu(u) -> CallUsage:  # type: ignore[no-untyped-def]
    return CallUsage(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cache_read_tokens=u.cache_read_tokens,
        cache_write_tokens=u.cache_write_tokens,
        cache_write_1h_tokens=u.cache_write_1h_tokens,
        reasoning_tokens=u.reasoning_tokens,
        service_tier=u.service_tier,
        speed=u.speed,
        inference_geo=u.inference_geo,
    )


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable()


# -- Anthropic: input excludes the cache; 5-minute and 1-hour writes ---------------------------------------------

ANTHROPIC_USAGE = {  # the Messages API's usage object, as Claude Code's transcripts carry it
    "input_tokens": 12,
    "cache_creation_input_tokens": 30_000,
    "cache_read_input_tokens": 150_000,
    "cache_creation": {"ephemeral_5m_input_tokens": 4_000, "ephemeral_1h_input_tokens": 26_000},
    "output_tokens": 900,
    "service_tier": "standard",
}


def test_anthropic_usage_is_normalised_to_inclusive_input_with_1h_writes() -> None:
    u = from_anthropic_usage(ANTHROPIC_USAGE)
    assert u is not None
    assert u.input_tokens == 12 + 30_000 + 150_000
    assert (u.cache_read_tokens, u.cache_write_tokens, u.cache_write_1h_tokens) == (150_000, 30_000, 26_000)
    assert u.service_tier is None and u.output_tokens == 900


def test_anthropic_1h_writes_are_priced_at_the_1h_rate(table: PriceTable) -> None:
    import genai_prices

    u = from_anthropic_usage(ANTHROPIC_USAGE)
    e = _entry("claude-sonnet-4-5")
    expected = (
        12 * e["input_cost_per_token"]
        + 150_000 * e["cache_read_input_token_cost"]
        + 4_000 * e["cache_creation_input_token_cost"]
        + 26_000 * e["cache_creation_input_token_cost_above_1hr"]
        + 900 * e["output_cost_per_token"]
    )
    q = table.quote("claude-sonnet-4-5", _cu(u))
    assert q is not None and q.source == "litellm" and q.entry == "claude-sonnet-4-5"
    assert q.usd == pytest.approx(expected, rel=1e-12)
    # genai-prices, from the same raw usage by its own Anthropic extractor, agrees
    ext = genai_prices.extract_usage({"model": "claude-sonnet-4-5", "usage": ANTHROPIC_USAGE}, provider_id="anthropic")
    assert float(ext.calc_price().total_price) == pytest.approx(q.usd, rel=1e-9)
    # and the 1-hour writes are what the 5-minute rate would miss (Claude Code's case)
    at_5m = table.quote(
        "claude-sonnet-4-5",
        CallUsage(input_tokens=u.input_tokens, output_tokens=900, cache_read_tokens=150_000, cache_write_tokens=30_000),
    )
    assert at_5m is not None and q.usd - at_5m.usd == pytest.approx(
        26_000 * (e["cache_creation_input_token_cost_above_1hr"] - e["cache_creation_input_token_cost"]), rel=1e-9
    )


def test_litellms_anthropic_usage_keeps_the_1h_split_speed_and_geo(table: PriceTable) -> None:
    from litellm.llms.anthropic.chat.transformation import AnthropicConfig

    raw = {**ANTHROPIC_USAGE, "inference_geo": "us"}
    lu = AnthropicConfig().calculate_usage(raw, reasoning_content=None, speed="fast")
    u = from_chat_usage(lu)
    direct = from_anthropic_usage({**raw, "speed": "fast"})
    assert u is not None and direct is not None
    assert (u.input_tokens, u.cache_read_tokens, u.cache_write_tokens, u.cache_write_1h_tokens) == (
        direct.input_tokens,
        direct.cache_read_tokens,
        direct.cache_write_tokens,
        direct.cache_write_1h_tokens,
    )
    assert u.inference_geo == "us" == direct.inference_geo
    assert u.speed == direct.speed == "fast"


def test_anthropic_geo_and_fast_mode(table: PriceTable) -> None:
    e = _entry("claude-opus-4-6")
    geo = from_anthropic_usage({"input_tokens": 1000, "output_tokens": 100, "inference_geo": "us"})
    q = table.quote("claude-opus-4-6", _cu(geo))
    assert q is not None and "inference geo us" in q.notes[0]
    base = 1000 * e["input_cost_per_token"] + 100 * e["output_cost_per_token"]
    assert q.usd == pytest.approx(base * e["provider_specific_entry"]["us"], rel=1e-12)
    # fast mode: litellm has no rate, genai-prices has one for the models that offer it
    import genai_prices

    fast = CallUsage(input_tokens=1000, output_tokens=100, speed="fast")
    q = table.quote("claude-opus-4-8", fast)
    ref = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1000, output_tokens=100),
        "claude-opus-4-8",
        provider_id="anthropic",
        price_context={"speed": "fast"},
    )
    assert q is not None and q.source == "genai-prices"
    assert q.usd == pytest.approx(float(ref.total_price), rel=1e-12)
    standard = table.quote("claude-opus-4-8", CallUsage(input_tokens=1000, output_tokens=100))
    assert standard is not None and q.usd > standard.usd


# -- OpenAI: prompt_tokens includes cached; reasoning inside completion; service tier on the response ---------


def test_openai_chat_cached_reasoning_and_flex_tier(table: PriceTable) -> None:
    from openai.types.chat import ChatCompletion

    resp = ChatCompletion.model_validate(
        {
            "id": "c1",
            "object": "chat.completion",
            "created": 1,
            "model": "o3-2025-04-16",
            "service_tier": "flex",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
            "usage": {
                "prompt_tokens": 10_000,
                "completion_tokens": 3_000,
                "total_tokens": 13_000,
                "prompt_tokens_details": {"cached_tokens": 6_000},
                "completion_tokens_details": {"reasoning_tokens": 2_500},
            },
        }
    )
    u = from_chat_usage(resp.usage, service_tier=resp.service_tier)
    assert u is not None
    assert (u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens) == (10_000, 6_000, 3_000, 2_500)
    assert u.service_tier == "flex"
    e = _entry("o3")
    q = table.quote("o3-2025-04-16", _cu(u))
    expected = (
        4_000 * e["input_cost_per_token_flex"]
        + 6_000 * e["cache_read_input_token_cost_flex"]
        + 3_000 * e["output_cost_per_token_flex"]
    )
    assert q is not None and q.notes == ("service tier flex",)
    assert q.usd == pytest.approx(expected, rel=1e-12)


def test_openai_responses_usage_priority_tier(table: PriceTable) -> None:
    from openai.types.responses import ResponseUsage

    usage = ResponseUsage.model_validate(
        {
            "input_tokens": 5_000,
            "input_tokens_details": {"cached_tokens": 1_000, "cache_write_tokens": 0},
            "output_tokens": 800,
            "output_tokens_details": {"reasoning_tokens": 300},
            "total_tokens": 5_800,
        }
    )
    u = from_responses_usage(usage, service_tier="priority")
    assert u is not None and u.service_tier == "priority"
    e = _entry("gpt-5.4")
    q = table.quote("gpt-5.4", _cu(u))
    expected = (
        4_000 * e["input_cost_per_token_priority"]
        + 1_000 * e["cache_read_input_token_cost_priority"]
        + 800 * e["output_cost_per_token_priority"]
    )
    assert q is not None and q.usd == pytest.approx(expected, rel=1e-12)


def test_a_service_tier_without_a_rate_is_priced_standard_and_says_so(table: PriceTable) -> None:
    q = table.quote("gpt-4.1", CallUsage(input_tokens=100, output_tokens=10, service_tier="flex"))
    assert q is not None and "no rate" in q.notes[0]
    e = _entry("gpt-4.1")
    assert q.usd == pytest.approx(100 * e["input_cost_per_token"] + 10 * e["output_cost_per_token"], rel=1e-12)


def test_gemini_thoughts_count_as_output() -> None:
    u = from_gemini_usage(
        {
            "promptTokenCount": 2_000,
            "cachedContentTokenCount": 500,
            "candidatesTokenCount": 100,
            "thoughtsTokenCount": 400,
            "totalTokenCount": 2_500,
        }
    )
    assert u is not None
    assert (u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens) == (2_000, 500, 500, 400)


# -- context tiers, names ------------------------------------------------------------------------------------


def test_context_tier_applies_to_every_token_above_the_threshold(table: PriceTable) -> None:
    e = _entry("gpt-5.4")
    below = table.quote("gpt-5.4", CallUsage(input_tokens=272_000, output_tokens=1_000))
    above = table.quote("gpt-5.4", CallUsage(input_tokens=300_000, output_tokens=1_000, cache_read_tokens=100_000))
    assert below is not None and below.notes == ()
    assert below.usd == pytest.approx(272_000 * e["input_cost_per_token"] + 1_000 * e["output_cost_per_token"])
    assert above is not None and above.notes == ("context tier above 272,000 input tokens",)
    assert above.usd == pytest.approx(
        200_000 * e["input_cost_per_token_above_272k_tokens"]
        + 100_000 * e["cache_read_input_token_cost_above_272k_tokens"]
        + 1_000 * e["output_cost_per_token_above_272k_tokens"],
        rel=1e-12,
    )


@pytest.mark.parametrize(
    "name, key",
    [
        ("openai/gpt-4.1", "gpt-4.1"),
        ("anthropic/claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929"),
        ("ft:gpt-4.1-2025-04-14:acme:support-bot:AbC123", "ft:gpt-4.1-2025-04-14"),
        ("ft:gpt-4o-mini-2024-07-18:acme::xyz", "ft:gpt-4o-mini-2024-07-18"),
        ("claude-sonnet-4-5-20991231", "claude-sonnet-4-5"),  # a dated snapshot the table does not list yet
    ],
)
def test_names_are_found_as_litellm_finds_them(table: PriceTable, name: str, key: str) -> None:
    price = table.lookup(name)
    assert price is not None and price.entry == key and price.source == "litellm"
    assert price.input == _entry(key)["input_cost_per_token"]


def test_fine_tuned_names_take_fine_tune_rates_not_the_base_models(table: PriceTable) -> None:
    ft = table.lookup("ft:gpt-4.1-2025-04-14:acme:support-bot:AbC123")
    base = table.lookup("gpt-4.1-2025-04-14")
    assert ft is not None and base is not None and ft.input > base.input


def test_a_name_no_source_knows_is_unpriced(table: PriceTable) -> None:
    assert table.lookup("acme/house-model-7") is None
    assert table.quote("acme/house-model-7", CallUsage(input_tokens=1, output_tokens=1)) is None
    assert table.cost("acme/house-model-7", 1, 1) is None


# -- policy overrides and dated prices -------------------------------------------------------------------------

POLICY = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: prices}
models:
  prices:
    claude-sonnet-5:
      - {from: "2026-07-01", input_per_mtok: 3, output_per_mtok: 15, cache_read_per_mtok: 0.3,
         cache_write_per_mtok: 3.75, cache_write_1h_per_mtok: 6}
      - {from: "2026-10-01", input_per_mtok: 2, output_per_mtok: 10}
    house-model:
      input_per_mtok: 1
      output_per_mtok: 4
      cache_read_per_mtok: 0.1
      cache_write_per_mtok: 1.25
      cache_write_1h_per_mtok: 2
      reasoning_per_mtok: 8
      above: {"100000": {input_per_mtok: 2, output_per_mtok: 8}}
      service_tiers: {batch: {input_per_mtok: 0.5, output_per_mtok: 2}}
      speed: {fast: {input_per_mtok: 6, output_per_mtok: 24}}
      geo: {us: 1.1}
"""


def _ts(day: str) -> float:
    return datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp()


def test_dated_policy_prices_apply_from_their_date() -> None:
    policy = load_policy_text(POLICY)
    t = PriceTable(policy.prices)
    u = CallUsage(input_tokens=1_000_000, output_tokens=100_000)
    june = t.quote("claude-sonnet-5", u, _ts("2026-06-15"))
    july = t.quote("claude-sonnet-5", u, _ts("2026-07-15"))
    nov = t.quote("claude-sonnet-5", u, _ts("2026-11-15"))
    e = _entry("claude-sonnet-5")
    assert june is not None and june.source == "litellm"  # before the first dated entry: the table
    assert june.usd == pytest.approx(1_000_000 * e["input_cost_per_token"] + 100_000 * e["output_cost_per_token"])
    assert july is not None and july.source == "policy" and july.entry == "models.prices.claude-sonnet-5[0]"
    assert july.usd == pytest.approx(3.0 + 1.5)
    assert nov is not None and nov.entry == "models.prices.claude-sonnet-5[1]" and nov.usd == pytest.approx(2.0 + 1.0)
    assert july.version == f"policy {policy.revision}"


def test_the_governor_settles_a_call_at_the_price_of_its_date() -> None:
    from governor import Governor

    now = [_ts("2026-07-20")]
    gov = Governor(load_policy_text(POLICY), clock=lambda: now[0], stats=False, observers=False)
    d = gov.check(model="claude-sonnet-5", messages=[{"role": "user", "content": "hi"}])
    cost = gov.record(
        d,
        input_tokens=10_000,
        output_tokens=1_000,
        cache_read_tokens=5_000,
        cache_write_tokens=4_000,
        cache_write_1h_tokens=4_000,
    )
    assert cost == pytest.approx((1_000 * 3 + 5_000 * 0.3 + 4_000 * 6 + 1_000 * 15) / 1e6)


def test_every_rate_can_be_overridden() -> None:
    t = PriceTable(load_policy_text(POLICY).prices)
    q = t.quote(
        "house-model",
        CallUsage(
            input_tokens=10_000,
            output_tokens=1_000,
            cache_read_tokens=2_000,
            cache_write_tokens=3_000,
            cache_write_1h_tokens=1_000,
            reasoning_tokens=400,
        ),
    )
    assert q is not None and q.source == "policy"
    assert q.usd == pytest.approx((5_000 * 1 + 2_000 * 0.1 + 2_000 * 1.25 + 1_000 * 2 + 600 * 4 + 400 * 8) / 1e6)
    big = t.quote("house-model", CallUsage(input_tokens=200_000, output_tokens=1_000))
    assert big is not None and big.usd == pytest.approx((200_000 * 2 + 1_000 * 8) / 1e6)
    batch = t.quote("house-model", CallUsage(input_tokens=1_000, output_tokens=100, service_tier="batch"))
    assert batch is not None and batch.usd == pytest.approx((1_000 * 0.5 + 100 * 2) / 1e6)
    fast = t.quote("house-model", CallUsage(input_tokens=1_000, output_tokens=100, speed="fast", inference_geo="us"))
    assert fast is not None and fast.usd == pytest.approx((1_000 * 6 + 100 * 24) / 1e6 * 1.1)


def test_a_bad_price_entry_is_a_policy_error_naming_it() -> None:
    from governor.errors import PolicyError

    bad = POLICY.replace('from: "2026-10-01"', 'from: "next tuesday"')
    with pytest.raises(PolicyError) as err:
        load_policy_text(bad)
    assert "claude-sonnet-5" in str(err.value)


# -- properties ----------------------------------------------------------------------------------------------

MODELS = [
    "gpt-4.1",
    "gpt-5.4",
    "o3",
    "claude-sonnet-4-5",
    "claude-opus-4-6",
    "deepseek/deepseek-chat",
    "ft:gpt-4.1-2025-04-14:a:b:c",
    "house-model",
]


@settings(max_examples=300, deadline=None)
@given(
    model=st.sampled_from(MODELS),
    inp=st.integers(0, 2_000_000),
    out=st.integers(0, 200_000),
    cr=st.integers(0, 2_000_000),
    cw=st.integers(0, 2_000_000),
    w1=st.integers(0, 2_000_000),
    rs=st.integers(0, 200_000),
    tier=st.sampled_from([None, "flex", "priority", "batch", "scale", "default"]),
)
def test_cost_is_finite_non_negative_and_the_fast_path_equals_the_full_quote(  # type: ignore[no-untyped-def]
    model, inp, out, cr, cw, w1, rs, tier
) -> None:
    t = _PROPERTY_TABLE
    cr = min(cr, inp)
    cw = min(cw, inp - cr)
    w1 = min(w1, cw)
    rs = min(rs, out)
    q = t.quote(
        model,
        CallUsage(
            input_tokens=inp,
            output_tokens=out,
            cache_read_tokens=cr,
            cache_write_tokens=cw,
            cache_write_1h_tokens=w1,
            reasoning_tokens=rs,
            service_tier=tier,
        ),
    )
    assert q is not None and math.isfinite(q.usd) and q.usd >= 0
    fast = t.cost(model, inp, out, cr, cw, rs, w1, tier)
    assert fast == pytest.approx(q.usd, rel=1e-12, abs=1e-15)


_PROPERTY_TABLE = PriceTable(load_policy_text(POLICY).prices)


@settings(max_examples=300, deadline=None)
@given(
    inp=st.integers(0, 10**7),
    cr=st.integers(0, 10**7),
    w5=st.integers(0, 10**7),
    w1=st.integers(0, 10**7),
    out=st.integers(0, 10**6),
    total_given=st.booleans(),
)
def test_anthropic_normal_form_invariants(inp, cr, w5, w1, out, total_given) -> None:  # type: ignore[no-untyped-def]
    raw = {
        "input_tokens": inp,
        "cache_read_input_tokens": cr,
        "output_tokens": out,
        "cache_creation": {"ephemeral_5m_input_tokens": w5, "ephemeral_1h_input_tokens": w1},
    }
    if total_given:
        raw["cache_creation_input_tokens"] = w5 + w1
    u = from_anthropic_usage(raw)
    assert u is not None
    assert u.input_tokens == inp + cr + w5 + w1
    assert u.cache_read_tokens == cr and u.cache_write_tokens == w5 + w1 and u.cache_write_1h_tokens == w1
    assert u.cache_read_tokens + u.cache_write_tokens <= u.input_tokens


def test_langchain_usage_metadata_keeps_the_1h_writes() -> None:
    from langchain_core.messages import AIMessage

    from governor.integrations.usage import from_langchain

    msg = AIMessage(
        content="ok",
        usage_metadata={
            "input_tokens": 180_012,
            "output_tokens": 900,
            "total_tokens": 180_912,
            "input_token_details": {
                "cache_read": 150_000,
                "cache_creation": 30_000,
                "ephemeral_5m_input_tokens": 4_000,
                "ephemeral_1h_input_tokens": 26_000,
            },
        },
    )
    u = from_langchain(msg.usage_metadata)
    direct = from_anthropic_usage(ANTHROPIC_USAGE)
    assert u is not None and direct is not None
    assert (u.input_tokens, u.cache_read_tokens, u.cache_write_tokens, u.cache_write_1h_tokens) == (
        direct.input_tokens,
        direct.cache_read_tokens,
        direct.cache_write_tokens,
        direct.cache_write_1h_tokens,
    )
