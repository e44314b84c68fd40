"""``freeze_gc=True``: the objects alive once the policy is compiled leave the collector's scans."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from governor import Governor

POLICY = """
budgets:
  - {id: per-run, scope: run, limit: {usd: 5.0}}
"""


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the suite runs with an ordinary collector


def test_freeze_gc_moves_the_compiled_policy_out_of_the_collectors_scans(make_gov: Callable[..., Governor]) -> None:
    gov = make_gov(POLICY, freeze_gc=True)
    frozen = gc.get_freeze_count()
    assert frozen > 0
    compiled = gov._compiled
    assert all(compiled is not o for o in gc.get_objects())  # frozen objects are not in any generation
    d = gov.check(model="gpt-4o", input_tokens=100, max_tokens=10, metadata={"run_id": "r1"})
    assert d.allowed  # the governor works as ever
    assert gov.record(d, input_tokens=100, output_tokens=10) is not None


def test_freeze_gc_freezes_again_after_a_reload(make_gov: Callable[..., Governor]) -> None:
    gov = make_gov(POLICY, freeze_gc=True)
    gc.unfreeze()
    assert gov.reload(gov.policy)
    assert gc.get_freeze_count() > 0


def test_without_freeze_gc_the_collector_is_left_alone(make_gov: Callable[..., Any]) -> None:
    make_gov(POLICY)
    assert gc.get_freeze_count() == 0
