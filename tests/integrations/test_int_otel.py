"""Decisions on the caller's OpenTelemetry spans, seen through the real SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from opentelemetry.trace import StatusCode

from governor import Governor

POLICY = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: otel-test}
routes:
  - id: classify-cheap
    match: {task: classify}
    to: gpt-4o-mini
budgets:
  - id: per-run
    scope: run
    limit: {calls: 1}
"""
MSG = [{"role": "user", "content": "classify: great product"}]


def test_decision_attributes_and_block_status_land_on_the_current_span(
    write_policy: Callable[[str], Path], tracer_and_spans: tuple
) -> None:
    tracer, exporter = tracer_and_spans
    gov = Governor.from_path(write_policy(POLICY))  # registers the observer by itself
    with gov.run("t1"):
        with tracer.start_as_current_span("llm-call-1"):
            first = gov.check(model="gpt-4o", messages=MSG, metadata={"task": "classify"})
        gov.record(first, input_tokens=10, output_tokens=2)
        with tracer.start_as_current_span("llm-call-2"):
            blocked = gov.check(model="gpt-4o", messages=MSG)
    spans = {s.name: s for s in exporter.get_finished_spans()}

    routed = spans["llm-call-1"].attributes
    assert routed["governor.verdict"] == "reroute"
    assert tuple(routed["governor.rule_ids"]) == first.rule_ids
    assert routed["governor.policy.revision"] == gov.revision
    assert (routed["governor.model.requested"], routed["governor.model.routed"]) == ("gpt-4o", "gpt-4o-mini")
    assert routed["governor.estimated_cost_usd"] == pytest.approx(first.estimated_cost_usd)
    assert spans["llm-call-1"].status.status_code == StatusCode.UNSET

    stopped = spans["llm-call-2"]
    assert blocked.blocked
    assert stopped.attributes["governor.verdict"] == "block"
    assert "per-run" in stopped.attributes["governor.rule_ids"]
    assert stopped.status.status_code == StatusCode.ERROR
    assert "per-run" in stopped.status.description


def test_no_recording_span_means_no_error(write_policy: Callable[[str], Path]) -> None:
    gov = Governor.from_path(write_policy(POLICY))
    decision = gov.check(model="gpt-4o", messages=MSG)  # no span active: the observer does nothing
    assert decision.verdict == "allow"
