"""Ledger settings expand ${VAR} and ${VAR:-default} from the environment, with a located error when unset."""

from __future__ import annotations

from pathlib import Path

import pytest

from governor import Governor, LedgerError
from governor.ledger.factory import open_ledger
from governor.ledger.sqlite import SqliteLedger
from governor.policy.envvars import expand
from governor.policy.loader import load_policy, validate_text
from tests.engine.conftest import HEADER, MSGS


def test_expand_forms() -> None:
    env = {"A": "x", "EMPTY": ""}
    assert expand("a${A}b", env) == "axb"
    assert expand("${B:-dflt}/${A:-no}", env) == "dflt/x"
    assert expand("${EMPTY:-d}", env) == "d" and expand("${EMPTY}", env) == ""
    assert expand("$${A} and $A", env) == "${A} and $A"


def test_an_unset_variable_is_an_error_at_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The finding: ${VAR} was documented and not expanded, so every call blocked as 'store down'."""
    monkeypatch.delenv("GOV_TEST_REDIS_PASSWORD", raising=False)
    text = HEADER + "ledger:\n  type: redis\n  url: redis://:${GOV_TEST_REDIS_PASSWORD}@127.0.0.1:1/0\n"
    (finding,) = validate_text(text, file="p.yaml").errors
    assert (finding.file, finding.line, finding.pointer, finding.code) == ("p.yaml", 6, "/ledger/url", "unset-env")
    assert "GOV_TEST_REDIS_PASSWORD is not set" in finding.message
    assert validate_text(text.replace("PASSWORD}", "PASSWORD:-}"), file="p.yaml").policy is not None
    for bad in ("${", "${1X}"):
        assert validate_text(HEADER + f"ledger:\n  type: sqlite\n  path: 'a{bad}'\n").errors[0].code == "unset-env"


def test_the_sqlite_path_is_expanded_when_the_ledger_opens_and_the_policy_keeps_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOV_TEST_LEDGER_DIR", str(tmp_path / "state"))
    path = tmp_path / "p.yaml"
    path.write_text(
        HEADER + "ledger:\n  type: sqlite\n  path: ${GOV_TEST_LEDGER_DIR}/ledger-${GOV_TEST_ENV:-dev}.db\n"
        "budgets:\n  - {id: b, scope: global, limit: {calls: 5}}\n"
    )
    policy = load_policy(path)
    assert policy.ledger.path == "${GOV_TEST_LEDGER_DIR}/ledger-${GOV_TEST_ENV:-dev}.db"  # no secret in the value
    gov = Governor.from_path(path)
    assert isinstance(gov.ledger, SqliteLedger)
    gov.record(gov.check(model="gpt-4o", messages=MSGS), input_tokens=1, output_tokens=1)
    gov.close()
    assert (tmp_path / "state" / "ledger-dev.db").exists()
    monkeypatch.delenv("GOV_TEST_LEDGER_DIR")
    with pytest.raises(LedgerError, match="GOV_TEST_LEDGER_DIR is not set"):
        open_ledger(policy.ledger)
