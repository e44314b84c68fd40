"""Properties of ``suggest()`` on any run set: never a default pick that stops accepted fit work; figures consistent.

Run sets are generated (runs of calls with or without recorded costs, errors,
repeated prompts, any outcome, with or without times) and swept through the
real replay path with every knob.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governor.errors import GovernorError, NoAcceptedRuns
from governor.suggest.build import Suggestion, suggest
from governor.suggest.figures import ACCEPTED_WORK, Figures
from governor.suggest.split import split_runs
from governor.traces.model import TraceCall, TraceRun, TraceSet

OUTCOMES = st.sampled_from(["accepted", "edited", "rejected", "escalated", None])


@st.composite
def run_sets(draw: st.DrawFn) -> TraceSet:
    timed = draw(st.booleans())
    runs = []
    for i in range(draw(st.integers(1, 7))):
        start = float(draw(st.integers(0, 10**6))) if timed else 0.0
        calls = []
        for k in range(draw(st.integers(1, 6))):
            prompt = draw(st.sampled_from(["hello", "hello", "status?", "retry"]))
            calls.append(
                TraceCall(
                    call_id=f"r{i}#{k}",
                    file="generated.jsonl",
                    line=k + 1,
                    run_id=f"r{i}",
                    index=k,
                    timestamp=start + k,
                    model=draw(st.sampled_from(["gpt-4.1", "gpt-4.1-mini", "no-such-model-x"])),
                    input_tokens=draw(st.integers(1, 30000)),
                    output_tokens=draw(st.integers(0, 3000)),
                    cost_usd=draw(st.one_of(st.none(), st.floats(0, 0.5, allow_nan=False))),
                    error=draw(st.sampled_from([None, None, None, "RateLimitError"])),
                    messages=[{"role": "user", "content": prompt}] if draw(st.booleans()) else None,
                    metadata={"run_id": f"r{i}", "agent": draw(st.sampled_from(["a", "b"]))},
                )
            )
        runs.append(TraceRun(run_id=f"r{i}", calls=tuple(calls), outcome=draw(OUTCOMES), file="generated.jsonl"))
    return TraceSet(tuple(runs), (), {"generated.jsonl": "governor"}, ())


def _consistent(f: Figures, runs: int) -> None:
    assert f.runs == runs
    assert f.saved_usd == pytest.approx(f.base_usd - f.governed_usd, abs=1e-9)
    assert f.saved_usd >= -1e-9  # caps, stops and trims only take calls away or make them smaller
    assert f.base_usd == pytest.approx(f.paid_usd, abs=1e-9)  # no base: the base is what was paid
    assert 0 <= f.accepted_stopped <= f.accepted <= f.runs
    assert f.accepted_stopped + f.rejected_stopped + f.unknown_stopped <= f.runs
    assert 0 <= f.accepted_trimmed <= f.runs_trimmed <= f.runs
    if f.saved_pct is not None:
        assert f.saved_pct == pytest.approx(100 * f.saved_usd / f.base_usd)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traces=run_sets(), holdout=st.sampled_from([0.0, 0.3, 0.5]), match=st.sampled_from([{}, {"agent": "a"}]))
def test_no_default_pick_stops_accepted_fit_work_and_figures_add_up(
    traces: TraceSet, holdout: float, match: dict[str, str]
) -> None:
    sp = split_runs(traces, holdout=holdout)
    if not any(r.outcome in ACCEPTED_WORK for r in sp.fit.runs):
        with pytest.raises(NoAcceptedRuns):
            suggest(traces, holdout=holdout, match=match)
        return
    if match and not any(c.metadata["agent"] == "a" for r in sp.fit.runs for c in r.calls):
        with pytest.raises(GovernorError, match="no call of the fit runs has that metadata"):
            suggest(traces, holdout=holdout, match=match)
        return
    s: Suggestion = suggest(traces, holdout=holdout, match=match)
    n_fit, n_held = len(s.split.fit.runs), len(s.split.held.runs)
    assert n_fit + n_held == len(traces.runs) and n_held == math.floor(len(traces.runs) * holdout)
    assert s.combined.fit.accepted_touched == 0
    for k in s.knobs:
        safe = [e for e in k.evaluated if e.fit.accepted_touched == 0 and e.fit.unpriced_blocks == 0]
        if k.pick is not None:
            assert k.pick.fit.accepted_touched == 0 and k.pick.fit.saved_usd > 0
            assert all(e.fit.saved_usd <= k.pick.fit.saved_usd + 1e-9 for e in safe)
        else:
            assert all(e.fit.saved_usd <= 1e-9 for e in safe)
        for e in k.evaluated:
            _consistent(e.fit, n_fit)
            _consistent(e.held, n_held)
    _consistent(s.combined.fit, n_fit)
    _consistent(s.combined.held, n_held)
    kept = {e.candidate.knob for e in s.combined.picks}
    assert kept | set(s.combined.dropped) == {k.knob for k in s.knobs if k.pick is not None}
    if s.combined.picks:
        assert s.combined.fit.saved_usd >= max(e.fit.saved_usd for e in s.combined.picks) - 1e-9
    front = list(s.frontier)
    for a, b in zip(front, front[1:], strict=False):
        assert a.fit.accepted_touched <= b.fit.accepted_touched and a.fit.saved_usd < b.fit.saved_usd


@given(traces=run_sets(), seed=st.integers(0, 5), holdout=st.sampled_from([0.0, 0.25, 0.5]))
def test_the_split_partitions_the_runs_and_is_reproducible(traces: TraceSet, seed: int, holdout: float) -> None:
    a = split_runs(traces, holdout=holdout, seed=seed)
    b = split_runs(traces, holdout=holdout, seed=seed)
    ids = [r.run_id for r in traces.runs]
    fit, held = [r.run_id for r in a.fit.runs], [r.run_id for r in a.held.runs]
    assert sorted(fit + held) == sorted(ids) and not set(fit) & set(held)
    assert (fit, held) == ([r.run_id for r in b.fit.runs], [r.run_id for r in b.held.runs])
    starts = {r.run_id: min(c.timestamp for c in r.calls) for r in traces.runs}
    if a.by == "time" and held:
        assert max(starts[i] for i in fit) <= min(starts[i] for i in held)
    if len(set(starts.values())) == 1 and len(ids) > 1:
        assert a.by == "seed"
