"""OpenAI Agents SDK trace export, as the real SDK's BackendSpanExporter posted it (tests/data/openai_agents)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from governor.traces import load_traces

DATA = Path(__file__).resolve().parent.parent / "data" / "openai_agents"
EXPORT = DATA / "traces.jsonl"


def served() -> list[dict[str, Any]]:
    return [json.loads(x) for x in (DATA / "upstream.jsonl").read_text().splitlines() if x.strip()]


def items() -> list[dict[str, Any]]:
    return [it for line in EXPORT.read_text().splitlines() if line.strip() for it in json.loads(line)["data"]]


def test_calls_are_the_response_and_generation_spans_once() -> None:
    ts = load_traces([EXPORT])
    assert not ts.issues and ts.formats == {str(EXPORT): "openai-agents"}
    calls = sorted((c for r in ts.runs for c in r.calls), key=lambda c: c.timestamp)
    want = served()
    assert len(calls) == len(want)  # the turn and task spans repeat these sums and are not calls
    for c, s in zip(calls, want, strict=True):
        u = s["usage"]
        if s["api"] == "responses":
            assert (c.input_tokens, c.output_tokens) == (u["input_tokens"], u["output_tokens"])
            assert c.cache_read_tokens == u["input_tokens_details"]["cached_tokens"]
            assert c.reasoning_tokens == u["output_tokens_details"]["reasoning_tokens"]
            assert c.call_id.startswith("resp_")  # the response id the span names
        else:
            assert (c.input_tokens, c.output_tokens) == (u["prompt_tokens"], u["completion_tokens"])
            assert c.cache_read_tokens == u["prompt_tokens_details"]["cached_tokens"]
            assert c.model == s["model"]
    usage_spans = [
        it
        for it in items()
        if it.get("object") == "trace.span"
        and (it["span_data"].get("usage") or (it["span_data"].get("data") or {}).get("usage"))
    ]
    assert len(usage_spans) > len(calls)


def test_runs_are_traces_with_workflow_agent_user_and_group() -> None:
    ts = load_traces([EXPORT])
    traces = {it["id"]: it for it in items() if it.get("object") == "trace"}
    assert {r.run_id for r in ts.runs} == set(traces)
    for r in ts.runs:
        t = traces[r.run_id]
        for c in r.calls:
            assert c.metadata["workflow"] == t["workflow_name"] and c.metadata["user"] == t["metadata"]["user"]
            assert c.metadata.get("group_id") == t["group_id"]
            assert c.metadata["agent"] in ("forecaster", "chatty")
    grouped = load_traces([EXPORT], run_key="group_id")
    conversation = next(r for r in grouped.runs if r.run_id == "thread-42")
    assert len(conversation.calls) == sum(1 for s in served()) - 2  # the first run has no group


def test_model_from_the_span_or_the_trace_metadata_else_unknown_and_said() -> None:
    ts = load_traces([EXPORT])
    models = {r.run_id: {c.model for c in r.calls} for r in ts.runs}
    traces = {it["id"]: it for it in items() if it.get("object") == "trace"}
    for run_id, found in models.items():
        meta_model = traces[run_id]["metadata"].get("model")
        if traces[run_id]["workflow_name"] == "chat-forecast":
            assert found == {"gpt-4o-mini"}
        else:
            assert found == {meta_model or "unknown"}
    assert any("name no model" in n for n in ts.notes)


def test_items_one_a_line_and_bad_spans_located(tmp_path: Path) -> None:
    lines = [json.dumps(it) for it in items()]
    at = next(i for i, it in enumerate(items()) if it.get("span_data", {}).get("type") == "response")
    lines[at] = lines[at].replace('"input_tokens": ', '"input_tokens": -', 1)
    lines.insert(0, "{not json")
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(lines) + "\n")
    ts = load_traces([path])
    assert [(i.line, "invalid JSON" in i.message or "input_tokens" in i.message) for i in ts.issues] == [
        (1, True),
        (at + 2, True),
    ]
    assert ts.calls == len(served()) - 1
