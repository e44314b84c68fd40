"""Langfuse observations export, built from the real langfuse SDK's spans and API models (tests/data/langfuse)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from governor.traces import load_traces
from governor.traces.langfuse import usage_counts

DATA = Path(__file__).resolve().parent.parent / "data" / "langfuse"
EXPORT = DATA / "observations.json"


def served() -> list[dict[str, Any]]:
    return [json.loads(x) for x in (DATA / "upstream.jsonl").read_text().splitlines() if x.strip()]


def test_generations_are_the_calls_with_langfuse_usage_types() -> None:
    ts = load_traces([EXPORT])
    assert not ts.issues and ts.formats == {str(EXPORT): "langfuse"}
    calls = sorted((c for r in ts.runs for c in r.calls), key=lambda c: c.timestamp)
    want = served()
    assert len(calls) == len(want)
    for c, s in zip(calls, want, strict=True):
        u = s["usage"]
        assert c.input_tokens == u["prompt_tokens"]  # input + input_cached_tokens: the cached part is inside
        assert c.cache_read_tokens == u["prompt_tokens_details"]["cached_tokens"]
        assert c.output_tokens == u["completion_tokens"]
        assert c.model == s["model"]
        assert c.cost_usd is not None and c.cost_usd > 0


def test_runs_users_sessions_and_tags() -> None:
    doc = json.loads(EXPORT.read_text())
    ts = load_traces([EXPORT])
    assert {r.run_id for r in ts.runs} == {o["traceId"] for o in doc["data"]}
    for o in doc["data"]:
        c = next(c for r in ts.runs for c in r.calls if c.call_id == o["id"])
        assert c.metadata["user"] == o["userId"] and c.metadata["session_id"] == o["sessionId"]
        assert c.metadata["tags"] == ",".join(o["tags"]) and c.metadata["team"] == "support"
        assert c.cost_usd == o["costDetails"]["total"]
    sessions = load_traces([EXPORT], run_key="session_id")
    assert sorted(len(r.calls) for r in sessions.runs) == [1, 2]


def test_jsonl_snake_case_and_bad_observations_located(tmp_path: Path) -> None:
    doc = json.loads(EXPORT.read_text())
    rows = []
    for o in doc["data"]:
        rows.append(
            {
                "id": o["id"],
                "trace_id": o["traceId"],
                "start_time": o["startTime"],
                "type": "GENERATION",
                "provided_model_name": o["model"],
                "usage_details": o["usageDetails"],
                "cost_details": o["costDetails"],
                "session_id": o["sessionId"],
                "user_id": o["userId"],
            }
        )
    rows[1]["usage_details"] = {**rows[1]["usage_details"], "output": -3}
    path = tmp_path / "observations.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ts = load_traces([path])
    assert [(i.line, "usageDetails.output" in i.message) for i in ts.issues] == [(2, True)]
    assert ts.calls == len(rows) - 1


@settings(max_examples=80, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "input",
                "output",
                "input_cached_tokens",
                "cache_read_input_tokens",
                "cache_creation_input_tokens",
                "output_reasoning_tokens",
                "total",
                "input_audio_tokens",
            ]
        ),
        st.integers(0, 10**6),
    )
)
def test_usage_types_partition_as_langfuse_sums_them(usage: dict[str, int]) -> None:
    inp, out, cr, cw, reasoning = usage_counts(usage, "usageDetails")
    assert inp == sum(v for k, v in usage.items() if "input" in k)
    assert out == sum(v for k, v in usage.items() if "output" in k)
    assert cr + cw <= inp and reasoning <= out
