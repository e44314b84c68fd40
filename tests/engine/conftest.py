"""Helpers for engine tests: policies written as YAML files, and a settable clock."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from governor import Governor

HEADER = "apiVersion: governor/v1\nkind: Policy\nmetadata: {name: test-policy}\n"


class Clock:
    """An injectable clock: epoch seconds that only move when the test says so."""

    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def write_policy(tmp_path: Path) -> Callable[..., Path]:
    """write_policy(body, name="policy.yaml") -> path of a policy file with the standard header."""

    def write(body: str, name: str = "policy.yaml") -> Path:
        path = tmp_path / name
        path.write_text(HEADER + textwrap.dedent(body), encoding="utf-8")
        return path

    return write


@pytest.fixture
def make_gov(write_policy: Callable[..., Path], clock: Clock) -> Callable[..., Governor]:
    """make_gov(body, **kwargs) -> Governor loaded from a YAML policy, on the test clock."""
    govs: list[Governor] = []

    def make(body: str, **kwargs: Any) -> Governor:
        kwargs.setdefault("clock", clock)
        gov = Governor.from_path(write_policy(body), **kwargs)
        govs.append(gov)
        return gov

    yield make
    for gov in govs:
        gov.close()


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


MSGS = [user("hello")]
