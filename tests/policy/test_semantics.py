"""Stage 3: errors and warnings a schema cannot express (header is lines 1-4)."""

from __future__ import annotations

import pytest
from conftest import only

from governor.policy.loader import load_policy


def test_duplicate_id_across_sections(check) -> None:
    result = check("stop:\n  - {id: cap, type: max_calls, max: 3}\ncalls:\n  - {id: cap, max_output_tokens: 100}\n")
    finding = only(result.errors, "duplicate-id")
    assert finding.message == f"duplicate id 'cap' (first used at {finding.file}:6:10)"
    assert (finding.line, finding.col, finding.pointer) == (8, 10, "/calls/0/id")


def test_alias_pointing_at_an_alias(check) -> None:
    result = check(
        "models:\n  aliases:\n    cheap: gpt-4o-mini\n    cheaper: cheap\n"
        "routes:\n  - {id: r, to: cheaper}\n  - {id: s, to: cheap, match: {task: x}}\n"
    )
    finding = only(result.errors, "alias-chain")
    assert (
        finding.message
        == "alias 'cheaper' points at alias 'cheap': an alias maps to a concrete model (write 'gpt-4o-mini')"
    )
    assert (finding.line, finding.col, finding.pointer) == (8, 14, "/models/aliases/cheaper")


def test_price_keyed_by_an_alias(check) -> None:
    result = check(
        "models:\n  aliases: {cheap: gpt-4o-mini}\n  prices:\n    cheap: {input_per_mtok: 1, output_per_mtok: 2}\n"
        "routes:\n  - {id: r, to: cheap}\n"
    )
    finding = only(result.errors, "price-alias")
    assert finding.message == "'cheap' is an alias: price its model 'gpt-4o-mini' instead"
    assert (finding.line, finding.col, finding.pointer) == (8, 5, "/models/prices/cheap")


def test_misspelled_alias_is_an_unpriced_model_with_a_suggestion(check) -> None:
    result = check("models:\n  aliases: {cheap: gpt-4o-mini}\nroutes:\n  - id: r\n    to: chepa\n")
    finding = only(result.errors, "unpriced-model")
    assert finding.message.startswith("model 'chepa' has no known price (not in models.prices nor litellm's table)")
    assert "defaults.allow_unpriced: true" in finding.message
    assert finding.hint == "did you mean 'cheap'?"
    assert (finding.line, finding.col, finding.pointer) == (9, 9, "/routes/0/to")


def test_misspelled_model_suggests_the_litellm_name(check) -> None:
    result = check("routes:\n  - id: r\n    to: gpt-4o-mni\n")
    finding = only(result.errors, "unpriced-model")
    assert finding.hint == "did you mean 'gpt-4o-mini'?"
    assert (finding.line, finding.col, finding.pointer) == (7, 9, "/routes/0/to")


def test_unpriced_alias_target_fallback_and_downgrade_are_all_checked(check) -> None:
    result = check(
        "models:\n  aliases: {house: acme/house-model}\n"
        "routes:\n  - {id: r, to: house, fallbacks: [acme/other]}\n"
        "budgets:\n  - id: b\n    scope: run\n    limit: {usd: 1}\n    soft: {at: 0.5, action: downgrade, to: acme/third}\n"
    )
    pointers = [f.pointer for f in result.errors if f.code == "unpriced-model"]
    assert pointers == ["/models/aliases/house", "/routes/0/fallbacks/0", "/budgets/0/soft/to"]


def test_a_price_in_the_policy_makes_a_model_known(check) -> None:
    result = check(
        "models:\n  prices:\n    acme/house: {input_per_mtok: 1.5, output_per_mtok: 6, cache_read_per_mtok: 0.15}\n"
        "routes:\n  - {id: r, to: acme/house}\n"
    )
    assert result.errors == ()
    price = result.policy.prices["acme/house"]
    assert (price.input, price.output, price.cache_read, price.source) == (1.5e-6, 6e-6, 1.5e-7, "policy")


def test_allow_unpriced_is_an_explicit_choice_but_near_aliases_still_warn(check) -> None:
    result = check(
        "defaults: {allow_unpriced: true}\nmodels:\n  aliases: {cheap: gpt-4o-mini}\n"
        "routes:\n  - {id: r, to: chepa}\n  - {id: s, to: cheap, match: {task: a}}\n  - {id: t, to: acme/x, match: {task: b}}\n"
    )
    assert result.errors == ()
    warning = only(result.warnings, "unknown-alias")
    assert warning.message == "'chepa' is not an alias and has no price"
    assert (warning.hint, warning.pointer, warning.line) == ("did you mean 'cheap'?", "/routes/0/to", 9)
    assert result.policy.allow_unpriced is True


def test_invalid_regex(check) -> None:
    result = check("routes:\n  - id: r\n    to: gpt-4o-mini\n    match:\n      last_user_message: {regex: 'a(('}\n")
    finding = only(result.errors, "bad-regex")
    assert finding.message.startswith("invalid regular expression: missing ): a((")  # RE2's wording
    assert (finding.line, finding.col, finding.pointer) == (9, 34, "/routes/0/match/last_user_message/regex")


def test_invalid_regex_inside_combinators_and_metadata(check) -> None:
    result = check(
        "routes:\n  - id: r\n    to: gpt-4o-mini\n    match:\n      any:\n        - not: {metadata: {tier: {regex: '['}}}\n"
    )
    finding = only(result.errors, "bad-regex")
    assert finding.pointer == "/routes/0/match/any/0/not/metadata/tier/regex"


def test_zero_duration(check) -> None:
    result = check("budgets:\n  - id: b\n    scope: user\n    limit: {usd: 1}\n    window: 0h\n")
    finding = only(result.errors, "zero-duration")
    assert finding.message == "expected a duration > 0, got '0h'"
    assert (finding.line, finding.col, finding.pointer) == (9, 13, "/budgets/0/window")


def test_unknown_time_zone(check) -> None:
    result = check(
        "budgets:\n  - id: b\n    scope: team\n    limit: {usd: 1}\n    window: {calendar: day, timezone: Europe/Berln}\n"
    )
    finding = only(result.errors, "timezone")
    assert finding.message == "unknown time zone 'Europe/Berln' (expected an IANA name such as Europe/Berlin)"
    assert finding.hint == "did you mean 'Europe/Berlin'?"
    assert (finding.line, finding.col, finding.pointer) == (9, 39, "/budgets/0/window/timezone")


def test_route_after_a_catch_all_is_unreachable(check) -> None:
    result = check("routes:\n  - {id: everything, to: gpt-4o-mini}\n  - {id: later, to: gpt-4o, match: {task: a}}\n")
    assert result.errors == ()
    warning = only(result.warnings, "unreachable-route")
    assert warning.message == "route 'later' is unreachable: route 'everything' matches every call and comes first"
    assert (warning.line, warning.col, warning.pointer) == (7, 5, "/routes/1")
    assert result.policy is not None and result.policy.warnings == result.warnings


def test_route_with_the_same_match_is_shadowed(check) -> None:
    result = check(
        "routes:\n  - {id: a, to: gpt-4o-mini, match: {task: x}}\n  - {id: b, to: gpt-4o, match: {task: x}}\n"
    )
    warning = only(result.warnings, "shadowed-route")
    assert warning.message == "route 'b' is shadowed by route 'a', which has the same match and comes first"
    assert warning.pointer == "/routes/1"


def test_a_route_that_is_off_shadows_nothing(check) -> None:
    result = check("routes:\n  - {id: a, to: gpt-4o-mini, mode: 'off'}\n  - {id: b, to: gpt-4o}\n")
    assert result.warnings == ()


def test_unused_alias_warning(check) -> None:
    result = check("models:\n  aliases: {cheap: gpt-4o-mini, spare: gpt-4o}\nroutes:\n  - {id: r, to: cheap}\n")
    warning = only(result.warnings, "unused-alias")
    assert warning.message == "alias 'spare' is never used"
    assert (warning.line, warning.col, warning.pointer) == (6, 33, "/models/aliases/spare")


def test_an_alias_named_in_a_model_match_counts_as_used(check) -> None:
    result = check(
        "models:\n  aliases: {cheap: gpt-4o-mini}\ncontext:\n  - {id: c, match: {model: [cheap]}, max_input_tokens: 10, action: block}\n"
    )
    assert result.warnings == ()


def test_call_scoped_budget_with_a_window_and_a_budget_switched_off(check) -> None:
    result = check(
        "budgets:\n  - {id: a, scope: call, limit: {usd: 1}, window: 1h}\n  - {id: b, scope: run, limit: {usd: 1}, mode: 'off'}\n"
    )
    assert result.errors == ()
    window = only(result.warnings, "call-window")
    assert window.message == "budget 'a' has scope call: each call has its own counter, so its window has no effect"
    assert (window.line, window.col, window.pointer) == (6, 51, "/budgets/0/window")
    off = only(result.warnings, "unused-budget")
    assert off.message == "budget 'b' is off: it counts nothing"
    assert (off.line, off.pointer) == (7, "/budgets/1")


def test_load_policy_raises_every_error_sorted(write) -> None:
    path = write("routes:\n  - {id: a, to: nope-model}\n  - {id: a, to: gpt-4o, match: {task: x}}\n")
    with pytest.raises(Exception) as info:
        load_policy(path)
    exc = info.value
    from governor.errors import GovernorError, PolicyError

    assert isinstance(exc, PolicyError) and isinstance(exc, GovernorError)
    assert [f.code for f in exc.findings] == ["unpriced-model", "duplicate-id"]
    assert [f.line for f in exc.findings] == [6, 7]
    assert "2 error(s) in policy" in str(exc)
