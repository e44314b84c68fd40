"""The replay's Governor keeps no stats and registers no span observer, and decides exactly as a default one."""

from __future__ import annotations

from pathlib import Path

import pytest

from governor.errors import GovernorError
from governor.policy.loader import load_policy
from governor.replay.engine import Replayer
from governor.traces import load_traces

POLICY = Path(__file__).resolve().parents[2] / "policies" / "tau2-airline.yaml"


def test_replay_leaves_the_callers_span_alone_and_keeps_no_stats(tau2_dir: Path, tracer_and_spans: tuple) -> None:
    tracer, exporter = tracer_and_spans
    traces = load_traces([sorted(tau2_dir.glob("*.json.gz"))[-1]])
    policy = load_policy(POLICY)
    replayer = Replayer(policy)
    with tracer.start_as_current_span("replay"):
        result = replayer.replay(traces)
    (span,) = exporter.get_finished_spans()
    assert not [k for k in (span.attributes or {}) if k.startswith("governor.")]
    with pytest.raises(GovernorError, match="stats=False"):
        replayer.gov.stats()
    # the same replay through a Governor with stats and observers decides every call the same way
    from governor.engine.governor import Governor

    full = Replayer(policy)
    full.gov = Governor(policy, ledger=full.ledger, clock=full.clock)
    with tracer.start_as_current_span("default-governor"):
        again = full.replay(traces)
    annotated = exporter.get_finished_spans()[-1].attributes or {}
    assert "governor.verdict" in annotated  # a default Governor would have annotated the caller's span
    settled = sum(1 for r in again.runs for c in r.calls if c.verdict != "block")
    assert full.gov.stats()["total"]["calls"] == settled
    key = [(c.verdict, c.model, c.rule_ids, c.cost_governed) for r in result.runs for c in r.calls]
    assert key == [(c.verdict, c.model, c.rule_ids, c.cost_governed) for r in again.runs for c in r.calls]
    assert any(v != "allow" for v, *_ in key)  # the policy acts on these calls: the comparison is not vacuous
