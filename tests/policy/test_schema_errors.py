"""Every schema error class: message, file:line:col and JSON pointer (the header is lines 1-4)."""

from __future__ import annotations

import pytest
from conftest import only

CASES = [
    # (id, policy body, code, line, col, pointer, message part, hint)
    (
        "misspelled-top-level-key",
        "budget:\n  - id: a\n",
        "unknown-key",
        5,
        1,
        "/budget",
        "unknown key 'budget'",
        "did you mean 'budgets'?",
    ),
    (
        "misspelled-nested-key",
        "stop:\n  - id: s\n    type: max_calls\n    max: 3\n    mxa: 4\n",
        "unknown-key",
        9,
        5,
        "/stop/0/mxa",
        "unknown key 'mxa' (expected one of: exclude, id, match, max, mode, type)",
        "did you mean 'max'?",
    ),
    (
        "misspelled-match-operator",
        "routes:\n  - id: r\n    to: gpt-4o-mini\n    match: {task: {regx: a}}\n",
        "unknown-key",
        8,
        20,
        "/routes/0/match/task/regx",
        "unknown key 'regx'",
        "did you mean 'regex'?",
    ),
    ("missing-required", "routes:\n  - id: r\n", "missing-key", 6, 5, "/routes/0", "missing required key 'to'", ""),
    (
        "wrong-type",
        "defaults:\n  output_tokens: lots\n",
        "type",
        6,
        18,
        "/defaults/output_tokens",
        'expected an integer, got a string "lots"',
        "",
    ),
    (
        "enum-with-suggestion",
        "mode: enfroce\n",
        "enum",
        5,
        7,
        "/mode",
        'expected one of "enforce", "audit", "off", got "enfroce"',
        "did you mean 'enforce'?",
    ),
    (
        "id-pattern",
        "budgets:\n  - id: Per_Run\n    scope: run\n    limit: {usd: 1}\n",
        "pattern",
        6,
        9,
        "/budgets/0/id",
        "expected an id of lowercase letters, digits and '-'",
        "",
    ),
    (
        "scope-with-suggestion",
        "budgets:\n  - id: b\n    scope: teams\n    limit: {usd: 1}\n",
        "pattern",
        7,
        12,
        "/budgets/0/scope",
        'expected call, run, user, team, tag, global or metadata.<key>, got "teams"',
        "did you mean 'team'?",
    ),
    (
        "number-range",
        "budgets:\n  - id: b\n    scope: run\n    limit: {usd: 1}\n    soft: {at: 1.5, action: warn}\n",
        "range",
        9,
        16,
        "/budgets/0/soft/at",
        "expected a number < 1, got 1.5",
        "",
    ),
    (
        "empty-limit",
        "budgets:\n  - id: b\n    scope: run\n    limit: {}\n",
        "too-few",
        8,
        12,
        "/budgets/0/limit",
        "expected at least one of usd, tokens, calls",
        "",
    ),
    (
        "call-cap-needs-a-cap",
        "calls:\n  - id: c\n",
        "one-of",
        6,
        5,
        "/calls/0",
        "expected at least one of max_cost_usd, max_output_tokens",
        "",
    ),
    (
        "text-condition-one-of",
        "routes:\n  - id: r\n    to: gpt-4o-mini\n    match:\n      last_user_message: {contains: a, regex: b}\n",
        "one-of",
        9,
        26,
        "/routes/0/match/last_user_message",
        "expected exactly one of contains, regex, got several",
        "",
    ),
    (
        "repeated-call-needs-within",
        "stop:\n  - id: loop\n    type: repeated_call\n    max: 3\n",
        "missing-key",
        6,
        5,
        "/stop/0",
        "missing required key 'within'",
        "",
    ),
    (
        "reroute-needs-to",
        "context:\n  - id: c\n    max_input_tokens: 1000\n    action: reroute\n",
        "missing-key",
        6,
        5,
        "/context/0",
        "missing required key 'to'",
        "",
    ),
    (
        "trim-takes-no-to",
        "context:\n  - id: c\n    max_input_tokens: 1000\n    action: trim\n    to: gpt-4o-mini\n",
        "unknown-key",
        9,
        5,
        "/context/0/to",
        "unknown key 'to'",
        "",
    ),
    (
        "downgrade-needs-to",
        "budgets:\n  - id: b\n    scope: run\n    limit: {usd: 1}\n    soft: {at: 0.5, action: downgrade}\n",
        "missing-key",
        9,
        11,
        "/budgets/0/soft",
        "missing required key 'to'",
        "",
    ),
    (
        "window-form",
        "budgets:\n  - id: b\n    scope: run\n    limit: {usd: 1}\n    window: 1 day\n",
        "pattern",
        9,
        13,
        "/budgets/0/window",
        'expected none or a rolling duration such as 1h, 24h, 7d, got "1 day"',
        "",
    ),
    (
        "max-input-tokens-form",
        "context:\n  - id: c\n    max_input_tokens: lots\n    action: block\n",
        "enum",
        7,
        23,
        "/context/0/max_input_tokens",
        'expected a positive integer or "window", got "lots"',
        "",
    ),
    (
        "duration-form",
        "stop:\n  - id: w\n    type: max_wall_time\n    max: forever\n",
        "pattern",
        8,
        10,
        "/stop/0/max",
        'expected a duration such as 90s, 10m, 1h, 7d, got "forever"',
        "",
    ),
]


@pytest.mark.parametrize("body,code,line,col,pointer,message,hint", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_schema_error_is_located_and_explained(check, body, code, line, col, pointer, message, hint) -> None:
    result = check(body)
    assert result.policy is None
    finding = only(result.errors, code)
    assert (finding.line, finding.col, finding.pointer) == (line, col, pointer), str(finding)
    assert message in finding.message
    assert finding.hint == hint
    assert finding.file.endswith("p.yaml")
    assert str(finding).startswith(f"{finding.file}:{line}:{col}: error: ")


def test_bad_discriminator_reports_only_the_discriminator(check) -> None:
    """An unknown stop `type` must not also call its `max` and `within` unknown keys."""
    result = check("stop:\n  - id: s\n    type: repeated_calls\n    max: 3\n    within: 1m\n")
    assert len(result.errors) == 1, result.errors
    (finding,) = result.errors
    assert (finding.line, finding.col, finding.pointer, finding.code) == (7, 11, "/stop/0/type", "enum")
    assert finding.hint == "did you mean 'repeated_call'?"


def test_all_schema_errors_are_collected_and_sorted(check) -> None:
    result = check("mode: nope\nstop:\n  - id: s\n    type: max_calls\n    max: 0\nbudget: 1\n")
    assert [(f.line, f.pointer) for f in result.errors] == [(5, "/mode"), (9, "/stop/0/max"), (10, "/budget")]
