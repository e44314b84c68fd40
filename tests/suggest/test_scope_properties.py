"""``--match KEY=VALUE`` is an input surface: any scope gives rules the loader accepts, the engine applies a
rule to exactly the calls suggest counts as in scope, and the written policy stays valid YAML whatever it holds."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governor.engine.governor import Governor
from governor.ledger.memory import MemoryLedger
from governor.suggest.knobs import KNOBS, match_item, matches
from governor.suggest.sweep import Frame, build_policy
from governor.traces.model import TraceCall, TraceRun, TraceSet

KEYS = st.one_of(st.sampled_from(["agent", "task", "user", "team", "workflow", "project"]), st.text(min_size=1))
SCOPES = st.dictionaries(KEYS, st.text(), min_size=1, max_size=3)


@settings(max_examples=40, deadline=None)
@given(scope=SCOPES, other=st.text())
def test_the_engine_applies_a_scoped_rule_to_exactly_the_calls_in_scope(scope: dict[str, str], other: str) -> None:
    policy = build_policy([("stop", KNOBS["run-calls"].item(1, scope))], Frame())
    assert policy.stop[0].match == match_item(scope)
    key = next(iter(scope))
    for meta in ({**scope}, {**scope, key: scope[key] + other + "~"}):
        gov = Governor(policy, ledger=MemoryLedger(), stats=False, observers=False)
        metadata = {**meta, "run_id": "r"}
        first = gov.check(model="gpt-4.1", input_tokens=10, max_tokens=5, metadata=metadata)
        gov.record(first, input_tokens=10, output_tokens=5)
        second = gov.check(model="gpt-4.1", input_tokens=10, max_tokens=5, metadata=metadata)
        assert (second.verdict == "block") == matches(meta, scope), (meta, scope)


def _runs(scope: dict[str, str]) -> TraceSet:
    def run(i: int, calls: int, outcome: str) -> TraceRun:
        return TraceRun(
            run_id=f"r{i}",
            calls=tuple(
                TraceCall(
                    call_id=f"r{i}#{k}",
                    file="gen.jsonl",
                    line=k + 1,
                    run_id=f"r{i}",
                    index=k,
                    timestamp=1000.0 * i + k,
                    model="gpt-4.1",
                    input_tokens=1000,
                    output_tokens=100,
                    cost_usd=0.01,
                    metadata={**scope, "run_id": f"r{i}"},
                )
                for k in range(calls)
            ),
            outcome=outcome,
        )

    return TraceSet((run(0, 2, "accepted"), run(1, 6, "rejected"), run(2, 2, "accepted")), (), {}, ())


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scope=SCOPES, source=st.text())
def test_the_written_policy_loads_whatever_the_scope_or_the_source_name(
    scope: dict[str, str], source: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from governor.suggest.build import suggest
    from governor.suggest.emit import check_policy, policy_yaml

    s = suggest(_runs(scope), match=scope, holdout=0.0, knobs=["run-calls"])
    (pick,) = s.combined.picks  # the rejected run makes 6 calls, the accepted ones 2
    out = tmp_path_factory.mktemp("scope") / "suggested.yaml"
    policy = check_policy(policy_yaml(s, output=out, name="suggested", sources=[source]), out)
    (rule,) = policy.stop
    assert rule.match == match_item(scope) and rule.max == pick.candidate.value
