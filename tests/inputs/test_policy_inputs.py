"""Hostile and careless policies: numbers the engine cannot hold, huge files, floods of findings, bad reloads."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from governor import Governor, PolicyError
from governor.errors import MAX_SHOWN_FINDINGS
from governor.policy.loader import MAX_POLICY_BYTES, load_policy_text, validate_file, validate_text
from tests.engine.conftest import HEADER, MSGS


@pytest.mark.parametrize(
    "body,pointer",
    [
        ("budgets:\n  - {id: b, scope: team, limit: {usd: 1.0e+300}}\n", "/budgets/0/limit/usd"),
        ("budgets:\n  - {id: b, scope: team, limit: {tokens: 1e23}}\n", "/budgets/0/limit/tokens"),
        ("defaults: {output_tokens: 1e23}\n", "/defaults/output_tokens"),
        ("calls:\n  - {id: c, max_output_tokens: 100000000000000000000000}\n", "/calls/0/max_output_tokens"),
        ("calls:\n  - {id: c, max_cost_usd: 1e300}\n", "/calls/0/max_cost_usd"),
        ("context:\n  - {id: c, max_input_tokens: 1e30, action: block}\n", "/context/0/max_input_tokens"),
        ("stop:\n  - {id: s, type: max_calls, max: 1e300}\n", "/stop/0/max"),
        ("models:\n  prices:\n    m: {input_per_mtok: 1e300, output_per_mtok: 1}\n", "/models/prices/m/input_per_mtok"),
    ],
)
def test_numbers_the_engine_cannot_hold_are_refused_at_their_place(body: str, pointer: str) -> None:
    """The finding: they validated, then the governor failed to build (OverflowError)."""
    result = validate_text(HEADER + body, file="p.yaml")
    assert result.policy is None
    (finding,) = result.errors
    assert finding.pointer == pointer and finding.line > 0 and "<=" in finding.message


def test_yaml_1_2_numbers_are_numbers() -> None:
    """The finding: `1e3` was rejected as a string though the docs promise YAML 1.2 numbers."""
    policy = load_policy_text(
        HEADER + "defaults: {output_tokens: 1e3}\nbudgets:\n"
        "  - {id: b, scope: team, limit: {usd: 2.5e1, tokens: 1e6}}\n"
    )
    assert policy.default_output_tokens == 1000 and isinstance(policy.default_output_tokens, int)
    assert (policy.budgets[0].limit_usd, policy.budgets[0].limit_tokens) == (25.0, 1_000_000)
    Governor(policy).check(model="gpt-4o", messages=MSGS, metadata={"team": "a"})


def test_a_10_mb_policy_is_refused_at_once_with_one_finding(tmp_path: Path) -> None:
    """The finding: 59 s, 721 MB and 161,493 spurious errors before the real one."""
    path = tmp_path / "huge.yaml"
    path.write_text(HEADER + "models:\n  aliases:\n" + "".join(f"    a{i}: gpt-4o\n" for i in range(600_000)))
    assert path.stat().st_size > 10 * MAX_POLICY_BYTES
    result = validate_file(path)
    assert [f.code for f in result.errors] == ["too-large"]
    assert "1 MiB" in result.errors[0].message
    assert validate_text(path.read_text(), file="huge.yaml").errors[0].code == "too-large"


def test_a_policy_error_shows_the_first_findings_and_counts_the_rest() -> None:
    body = "budgets:\n" + "".join(f"  - {{id: b{i}, scope: nowhere{i}, limit: {{usd: 1}}}}\n" for i in range(200))
    with pytest.raises(PolicyError) as err:
        load_policy_text(HEADER + body, "many.yaml")
    assert len(err.value.findings) == 200
    text = str(err.value)
    assert text.count("many.yaml:") == MAX_SHOWN_FINDINGS
    assert "... and 180 more" in text
    assert "many.yaml:5:" in text.splitlines()[1]  # the first error first


def test_reload_never_raises_and_a_bad_policy_never_replaces_the_good_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(HEADER + "budgets:\n  - {id: b, scope: team, limit: {usd: 1.0}}\n")
    gov = Governor.from_path(path)
    good = gov.revision
    bad_bodies = [
        "budgets:\n  - {id: b, scope: team, limit: {usd: 1.0e+300}}\n",  # the finding: reload raised
        "budgets: [",  # YAML syntax
        "routes:\n  - {id: r, match: {last_user_message: {regex: '(?=x)'}}, to: gpt-4o-mini}\n",
    ]
    for body in bad_bodies:
        path.write_text(HEADER + body)
        with caplog.at_level(logging.ERROR, logger="governor.engine"):
            assert gov.reload() is False
        assert gov.revision == good
    path.write_bytes(b"\xff\xfe not utf-8")
    assert gov.reload() is False
    path.unlink()
    assert gov.reload() is False
    assert gov.check(model="gpt-4o", messages=MSGS, metadata={"team": "a"}).allowed
    path.write_text(HEADER + "models:\n  aliases:\n" + "".join(f"    a{i}: gpt-4o\n" for i in range(600_000)))
    assert gov.reload() is False and gov.revision == good  # refused by its size, before parsing
    gov.close()
