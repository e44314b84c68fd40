"""Helpers for the policy tests: write a policy, load it, and pick findings apart."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from governor.errors import Finding, PolicyError
from governor.policy.loader import Validation, validate_file

HEADER = "apiVersion: governor/v1\nkind: Policy\nmetadata:\n  name: t\n"


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """write(text, name="p.yaml", header=True) -> path; the text is dedented."""

    def _write(text: str, name: str = "p.yaml", header: bool = True) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((HEADER if header else "") + textwrap.dedent(text), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def check(write: Callable[..., Path]) -> Callable[..., Validation]:
    """check(text, **write_kwargs) -> Validation of the written file."""

    def _check(text: str, **kwargs: object) -> Validation:
        return validate_file(write(text, **kwargs))

    return _check


def only(findings: tuple[Finding, ...], code: str) -> Finding:
    """The single finding with ``code`` (fails listing all findings otherwise)."""
    hits = [f for f in findings if f.code == code]
    assert len(hits) == 1, "\n".join(str(f) for f in findings)
    return hits[0]


def errors_raised(fn: Callable[[], object]) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        fn()
    return info.value
