"""The import fast paths (bulk constructor, UTC timestamps) give the same values as the plain ones."""

from __future__ import annotations

import dataclasses

import pytest

from governor._slots import slots_constructor
from governor.traces.model import TraceCall, TraceIssue


def test_builds_equal_frozen_values_and_requires_every_field() -> None:
    fields = {f.name: f"v-{f.name}" for f in dataclasses.fields(TraceCall)}
    new = slots_constructor(TraceCall)
    made = new(**fields)
    assert type(made) is TraceCall and made == TraceCall(**fields) and hash(made) == hash(TraceCall(**fields))
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.model = "other"  # type: ignore[misc]
    del fields["where"]
    with pytest.raises(TypeError, match="where"):
        new(**fields)


def test_refuses_classes_it_would_build_wrongly() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            raise ValueError("never skipped")

    with pytest.raises(TypeError, match="__post_init__"):
        slots_constructor(Checked)
    assert slots_constructor(TraceIssue)(file="f", line=1, message="m", where="") == TraceIssue("f", 1, "m")


def test_tau2_timestamps_are_the_recorded_times_read_as_utc(tau2_dir) -> None:  # type: ignore[no-untyped-def]
    import gzip
    import json
    from datetime import datetime, timezone

    from governor.traces import load_traces

    path = sorted(tau2_dir.glob("*.json.gz"))[-1]
    with gzip.open(path, "rb") as fh:
        sims = json.load(fh)["simulations"]
    want = [datetime.fromisoformat(m["timestamp"]).replace(tzinfo=timezone.utc).timestamp()
            for s in sims for m in s["messages"] if m.get("usage") is not None]
    got = [c.timestamp for r in load_traces([path]).runs for c in r.calls]
    assert got == want and len(want) > 10
