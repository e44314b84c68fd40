"""Policy regexes run in linear time (RE2): a client's text can no longer freeze the governor."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from governor import Governor, PolicyError
from governor.policy.loader import load_policy_text, validate_text
from governor.policy.regex import PolicyRegex, regex_error
from tests.engine.conftest import HEADER, Clock


def route_policy(pattern: str, where: str = "last_user_message") -> str:
    cond = f"{{{where}: {{regex: '{pattern}'}}}}"  # single-quoted YAML: backslashes are the pattern's
    return HEADER + f"routes:\n  - id: bomb\n    match: {cond}\n    to: gpt-4o-mini\n"


@pytest.mark.parametrize("where", ["last_user_message", "task"])
def test_the_exponential_backtracking_pattern_matches_a_long_client_text_at_once(where: str) -> None:
    """The finding: `^(a+)+$` validated, then 28 characters froze every client for 12.9 s, doubling per
    character. With backtracking, 4,000 characters would take longer than the universe has existed; the
    test finishing at all is the property (no timed assertion)."""
    gov = Governor(load_policy_text(route_policy("^(a+)+$", where), "bomb.yaml"), clock=Clock(), observers=False)
    text = "a" * 4000 + "b"
    if where == "task":
        d = gov.check(model="gpt-4o", input_tokens=10, metadata={"task": text})
    else:
        d = gov.check(model="gpt-4o", messages=[{"role": "user", "content": text}])
    assert d.model == "gpt-4o"  # no match: the trailing b
    if where == "task":
        assert gov.check(model="gpt-4o", input_tokens=10, metadata={"task": "a" * 4000}).model == "gpt-4o-mini"
    else:
        assert gov.check(model="gpt-4o", messages=[{"role": "user", "content": "a" * 4000}]).model == "gpt-4o-mini"


@pytest.mark.parametrize(
    "pattern,says",
    [
        (r"(a)\1", "backreference"),
        ("(?=a)b", "lookahead"),
        ("(?<!a)b", "lookbehind"),
        ("(?!x)", "lookahead"),
        ("a{1000}{1000}", "bad repetition"),
        ("(", "missing )"),
    ],
)
def test_validate_rejects_what_the_linear_time_engine_will_not_run_with_its_location(pattern: str, says: str) -> None:
    result = validate_text(route_policy(pattern), file="p.yaml")
    assert result.policy is None
    (finding,) = [f for f in result.errors if f.code == "bad-regex"]
    assert finding.pointer == "/routes/0/match/last_user_message/regex"
    assert finding.line == 6 and finding.file == "p.yaml"
    assert says in finding.message
    with pytest.raises(PolicyError):
        load_policy_text(route_policy(pattern), "p.yaml")


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["abc", "^a.c$", "(x|y)+z", "[0-9]{2,4}", r"\bword\b", r"end\Z", "^$", "(?i)ABC", r"\d+\.\d*"]),
    st.text(max_size=30),
)
def test_re2_agrees_with_python_re_on_the_syntax_both_accept(pattern: str, text: str) -> None:
    assert regex_error(pattern) is None
    assert PolicyRegex(pattern).search(text) == (re.search(pattern, text) is not None)
    assert PolicyRegex(pattern, ignore_case=True).search(text) == (re.search(pattern, text, re.I) is not None)


def test_a_lone_surrogate_in_client_text_is_matched_not_raised() -> None:
    assert PolicyRegex("refund").search("\ud800 refund please")
    assert not PolicyRegex("refund").search("\ud800")
