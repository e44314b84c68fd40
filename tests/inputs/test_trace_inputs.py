"""Trace files: whatever bytes a file holds, every record is replayed or reported with its location.

The round trip of every character ``str.splitlines`` takes for a line end, and
hypothesis-built files mixing good records with every kind of bad one (NaN,
1e300 and negative numbers, lone surrogates, lists as scope keys, invalid JSON
and UTF-8, non-objects): the good ones are all replayed, each bad one is an
issue naming its line, and nothing raises.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governor import Governor
from governor.engine.trace_recorder import _json_line, dumps_line
from governor.policy.loader import load_policy_text
from governor.replay.engine import Replayer
from governor.traces import load_traces
from tests.engine.conftest import HEADER, Clock

# every character str.splitlines() splits at, beyond \n
LINE_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
POLICY = HEADER + "budgets:\n  - {id: team, scope: team, limit: {usd: 100}}\n"


def test_every_unicode_line_separator_round_trips_through_record_to(tmp_path: Path) -> None:
    """The finding: 9 calls recorded, 4-6 replayed, wrong line numbers."""
    path = tmp_path / "trace.jsonl"
    gov = Governor(load_policy_text(POLICY, "p.yaml"), clock=Clock(), record_to=path, observers=False)
    for i, ch in enumerate(LINE_BREAKS):
        d = gov.check(
            model="gpt-4o",
            messages=[{"role": "user", "content": f"a{ch}b"}],
            max_tokens=10,
            metadata={"run_id": f"run{ch}{i}", "task": f"t{ch}", "team": f"team{ch}"},
        )
        gov.record(d, input_tokens=5, output_tokens=3, error=f"upstream said{ch}no" if i % 2 else None)
    gov.close()
    raw = path.read_bytes()
    for ch in "\x85\u2028\u2029":
        assert ch.encode() not in raw  # written escaped
    assert all(len(line.splitlines()) == 1 for line in raw.decode().split("\n") if line)
    traces = load_traces([path])
    assert not traces.issues
    calls = sorted((c for r in traces.runs for c in r.calls), key=lambda c: c.line)
    assert [c.run_id for c in calls] == [f"run{ch}{i}" for i, ch in enumerate(LINE_BREAKS)]
    assert [c.metadata["task"] for c in calls] == [f"t{ch}" for ch in LINE_BREAKS]
    lines = raw.decode().split("\n")
    for c in calls:
        assert json.loads(lines[c.line - 1])["decision_id"] == c.call_id  # the line numbers are the file's


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=5), st.text(), max_size=4))
def test_a_written_line_is_one_line_for_any_text_and_reads_back_the_same(record: dict[str, str]) -> None:
    for write in (dumps_line, _json_line):
        line = write(record).decode()
        assert line.endswith("\n") and len(line.splitlines()) == 1
        assert json.loads(line) == record


def good_record(i: int, ts: float, tokens: int) -> dict[str, Any]:
    return {
        "event": "record",
        "decision_id": f"d{i}",
        "requested_model": "gpt-4o",
        "model": "gpt-4o",
        "check_ts": ts,
        "ts": ts,
        "input_tokens": tokens,
        "output_tokens": tokens // 2,
        "cost_usd": 0.001,
        "run_id": f"r{i % 3}",
        "metadata": {"team": "a"},
    }


BAD_FIELDS = [
    ("check_ts", float("nan")),
    ("check_ts", 1e300),
    ("check_ts", -5.0),
    ("input_tokens", -10),
    ("output_tokens", 1e23),
    ("input_tokens", 2**64),
    ("cost_usd", float("nan")),
    ("cost_usd", float("inf")),
    ("cost_usd", -1.0),
    ("requested_model", "\ud800"),
    ("metadata", {"team": ["x"]}),
    ("metadata", {"user": {"a": 1}}),
    ("requested_max_tokens", -10_000_000),
    ("cost_usd", "abc"),
    ("metadata", [1]),
]
bad_line = st.one_of(
    st.builds(
        lambda i, f: (f, json.dumps({**good_record(i, 1.7e9, 10), f[0]: f[1]})),
        st.integers(0, 10**6),
        st.sampled_from(BAD_FIELDS),
    ).map(lambda t: t[1].encode("utf-8", "surrogatepass")),
    st.binary(min_size=1, max_size=20).filter(  # not blank (blank lines are no records), not an object
        lambda b: b.decode("utf-8", "replace").strip() and b"\n" not in b and not b.strip().startswith(b"{")
    ),
    st.sampled_from(
        [
            b"[1, 2]",
            b"42",
            b'"text"',
            b'{"event": "record"',
            b"\xff\xfe{}",
            b"1" * 5000,
            b"[" * 100_000,
            b'{"event": "record", "decision_id": 5}',
        ]
    ),
)
entry = st.one_of(
    st.tuples(
        st.just("good"), st.builds(good_record, st.integers(0, 10**6), st.floats(1e9, 2e9), st.integers(0, 10**6))
    ),
    st.tuples(st.just("bad"), bad_line),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entry, max_size=25))
def test_any_bytes_in_a_trace_file_are_replayed_or_reported_with_their_line(
    tmp_path_factory: Any, entries: list[tuple[str, Any]]
) -> None:
    header = json.dumps({"format": "governor-trace/v1", "event": "header", "policy": "p"}).encode()
    lines = [header]
    good_lines, bad_lines = [], []
    seen_ids: set[str] = set()
    for kind, item in entries:
        if kind == "good":
            if item["decision_id"] in seen_ids:
                continue
            seen_ids.add(item["decision_id"])
            lines.append(json.dumps(item).encode())
            good_lines.append(len(lines))
        else:
            lines.append(item)
            bad_lines.append(len(lines))
    path = tmp_path_factory.mktemp("t") / "trace.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    traces = load_traces([path])
    replayed = sorted(c.line for r in traces.runs for c in r.calls)
    assert replayed == good_lines
    assert sorted(i.line for i in traces.issues) == bad_lines
    assert all(i.file == str(path) and i.message for i in traces.issues)
    result = Replayer(load_policy_text(POLICY, "p.yaml")).replay(traces)
    assert sum(len(r.calls) for r in result.runs) == len(good_lines)


def otel_span(i: int) -> dict[str, Any]:
    def attr(key: str, value: Any) -> dict[str, Any]:
        kind = "intValue" if isinstance(value, int) else "stringValue"
        return {"key": key, "value": {kind: value}}

    return {
        "traceId": f"{i:032x}",
        "spanId": f"{i + 1:016x}",
        "name": "chat gpt-4o",
        "startTimeUnixNano": str(1_700_000_000_000_000_000 + i),
        "attributes": [
            attr("gen_ai.operation.name", "chat"),
            attr("gen_ai.request.model", "gpt-4o"),
            attr("gen_ai.usage.input_tokens", 100),
            attr("gen_ai.usage.output_tokens", 20),
        ],
    }


otel_junk = st.one_of(st.none(), st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=2))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["good", "bad-resource", "bad-scope", "bad-span", "bad-number"]),
            otel_junk.filter(lambda v: v not in (None, [], "", 0)),
        ),
        max_size=12,
    )
)
def test_any_otlp_item_is_replayed_or_reported_where_it_is(tmp_path_factory: Any, items: list[tuple[str, Any]]) -> None:
    """The finding: a non-object OTLP item aborted the whole replay with exit 4 and no location."""
    resource_spans: list[Any] = []
    good = 0
    for n, (kind, junk) in enumerate(items):
        span = otel_span(n * 2)
        if kind == "good":
            good += 1
            resource_spans.append({"scopeSpans": [{"spans": [span]}]})
        elif kind == "bad-resource":
            resource_spans.append(junk)
        elif kind == "bad-scope":
            resource_spans.append({"scopeSpans": [junk]})
        elif kind == "bad-span":
            resource_spans.append({"scopeSpans": [{"spans": [junk]}]})
        else:  # a number the engine cannot hold
            span["attributes"][2] = {"key": "gen_ai.usage.input_tokens", "value": {"intValue": str(10**30)}}
            resource_spans.append({"scopeSpans": [{"spans": [span]}]})
    path = tmp_path_factory.mktemp("o") / "spans.jsonl"
    path.write_text(json.dumps({"resourceSpans": resource_spans}) + "\n")
    traces = load_traces([path], format_in="otel")
    assert traces.calls == good
    assert len(traces.issues) == len(items) - good
    assert all(i.line == 1 and i.where.startswith("resourceSpans[") for i in traces.issues)
