"""The import fast paths (bulk constructor, UTC timestamps) give the same values as the plain ones."""

from __future__ import annotations

import dataclasses
from pathlib import Path

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
    want = [
        datetime.fromisoformat(m["timestamp"]).replace(tzinfo=timezone.utc).timestamp()
        for s in sims
        for m in s["messages"]
        if m.get("usage") is not None
    ]
    got = [c.timestamp for r in load_traces([path]).runs for c in r.calls]
    assert got == want and len(want) > 10


def _tau2_copy(tau2_dir, tmp_path, edit) -> tuple[Path, dict]:  # type: ignore[no-untyped-def]
    import gzip
    import json

    src = min(tau2_dir.glob("*.json.gz"), key=lambda p: p.stat().st_size)
    doc = json.loads(gzip.decompress(src.read_bytes()))
    edit(doc)
    out = tmp_path / src.name
    out.write_bytes(gzip.compress(json.dumps(doc).encode()))
    return out, doc


def _first_call(doc: dict) -> tuple[int, dict]:
    sim = doc["simulations"][0]
    j = next(j for j, m in enumerate(sim["messages"]) if m.get("usage") is not None)
    return j, sim["messages"][j]


def test_what_json_accepts_and_orjson_refuses_still_imports(tau2_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from governor.traces import load_traces

    def edit(doc: dict) -> None:
        doc["info"]["nan_seen"] = float("nan")  # json writes NaN, which orjson refuses
        _, m = _first_call(doc)
        m["content"] = "half a pair \ud800 of surrogates"  # json writes \\ud800, which orjson refuses

    path, doc = _tau2_copy(tau2_dir, tmp_path, edit)
    ts = load_traces([path])
    assert not ts.issues and ts.calls == sum(
        1 for s in doc["simulations"] for m in s["messages"] if m.get("usage") is not None
    )
    j, _ = _first_call(doc)
    later = next(c for c in ts.runs[0].calls if len(c.messages) > j)
    assert later.messages[j]["content"] == "half a pair \ud800 of surrogates"


def test_a_token_count_beyond_64_bits_is_a_located_malformed_record(tau2_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from governor.traces import load_traces

    def edit(doc: dict) -> None:
        _, m = _first_call(doc)
        m["usage"]["completion_tokens"] = 123456789012345678901234567890

    path, doc = _tau2_copy(tau2_dir, tmp_path, edit)
    ts = load_traces([path])
    j, _ = _first_call(doc)
    (issue,) = ts.issues
    assert issue.where == f"simulations[0].messages[{j}]" and "below 2**63" in issue.message


def test_invalid_json_is_reported_with_jsons_line_and_column(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from governor.errors import TraceError
    from governor.traces import load_traces

    path = tmp_path / "bad.json"
    path.write_text('{"simulations": [\n  {"id": 1,}\n]}\n', encoding="utf-8")
    with pytest.raises(TraceError) as err:
        load_traces([path], format_in="tau2", strict=True)
    assert err.value.line == 2 and "column 12" in str(err.value)
    # without --strict the file is reported where it breaks and skipped
    ts = load_traces([path], format_in="tau2")
    assert ts.skipped_files == (str(path),) and ts.runs == ()
    assert ts.issues[0].line == 2 and "column 12" in ts.issues[0].message and "skipped" in ts.issues[0].message


def test_gzip_members_padding_and_damage_read_as_gzip_does(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import gzip

    from governor.errors import TraceError
    from governor.traces._io import read_bytes

    one, two = b'{"a": 1}\n' * 1000, b'{"b": 2}\n'
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(gzip.compress(one) + b"\x00\x00" + gzip.compress(two))  # two members, NUL padding
    assert read_bytes(path) == gzip.decompress(path.read_bytes()) == one + two
    whole = gzip.compress(one)
    for damaged in (whole[: len(whole) // 2], whole + b"trailing junk", whole[:-8] + b"\x00" * 8):
        path.write_bytes(damaged)
        with pytest.raises(Exception):
            gzip.decompress(damaged)  # the stdlib refuses each of these too
        with pytest.raises(TraceError, match="corrupt gzip data"):
            read_bytes(path)
