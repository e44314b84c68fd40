"""OTLP JSON GenAI spans produced by the real OpenTelemetry SDK (and a real GenAI instrumentation)."""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from governor.errors import TraceError
from governor.traces import load_traces
from tests.traces.otel_fixtures import agent_session, hex_json, protobuf_json, provider, write


def test_protobuf_json_lines_count_only_leaf_calls(tmp_path: Path) -> None:
    lines = []
    for conv in ("conv-a", "conv-b"):
        tp, exp = provider()
        agent_session(tp, conv, calls=3)
        lines.append(protobuf_json(exp.get_finished_spans()))  # one TracesData per line
    path = write(tmp_path / "spans.jsonl", "\n".join(lines) + "\n")
    ts = load_traces([path])
    assert ts.formats[str(path)] == "otel"
    assert sorted(r.run_id for r in ts.runs) == ["conv-a", "conv-b"]
    for run in ts.runs:
        assert [c.input_tokens for c in run.calls] == [1000, 1001, 1002]  # the agent span's 3000 is not counted
        assert [c.output_tokens for c in run.calls] == [50, 51, 52]
        assert all(c.cache_read_tokens == 200 and c.max_tokens == 256 for c in run.calls)
        assert all(c.metadata["agent"] == "planner" and c.metadata["service"] == "agent-svc" for c in run.calls)
        assert [c.index for c in run.calls] == [0, 1, 2]
        assert run.calls[0].timestamp == pytest.approx(1_760_000_001.0)
        assert all(len(c.call_id) == 16 for c in run.calls)  # base64 span ids normalised to hex
    assert ts.issues == ()


def test_single_pretty_object_with_hex_ids_deprecated_names_and_trace_grouping(tmp_path: Path) -> None:
    tp, exp = provider()
    agent_session(tp, None, deprecated=True, calls=2, fail_last=True)
    spans = exp.get_finished_spans()
    doc = json.loads(hex_json(spans))
    path = write(tmp_path / "one.json", json.dumps(doc, indent=2))
    ts = load_traces([path])
    (run,) = ts.runs
    assert run.run_id == format(spans[0].get_span_context().trace_id, "032x")
    assert [c.input_tokens for c in run.calls] == [1000, 1001]  # gen_ai.usage.prompt_tokens
    assert [c.output_tokens for c in run.calls] == [50, 51]
    assert run.calls[0].error is None and run.calls[1].error == "rate limited"
    assert run.calls[0].metadata["provider"] == "openai"  # gen_ai.system


def test_gzip_and_int64_strings_are_read(tmp_path: Path) -> None:
    tp, exp = provider()
    agent_session(tp, "conv-z", calls=1)
    text = protobuf_json(exp.get_finished_spans())
    assert '"intValue": "1000"' in text  # protobuf JSON writes int64 as strings
    path = tmp_path / "spans.json.gz"
    path.write_bytes(gzip.compress(text.encode()))
    (run,) = load_traces([path]).runs
    assert run.calls[0].input_tokens == 1000


def test_malformed_lines_are_reported_with_line_numbers(tmp_path: Path) -> None:
    tp, exp = provider()
    agent_session(tp, "conv-m", calls=2)
    good = protobuf_json(exp.get_finished_spans())
    bad_span = json.loads(good)
    for span in bad_span["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        span["attributes"] = [a for a in span["attributes"] if a["key"] != "gen_ai.request.model"]
    path = write(tmp_path / "mixed.jsonl", "\n".join([good, "{not json", json.dumps(bad_span), good]) + "\n")
    ts = load_traces([path])
    lines = sorted(i.line for i in ts.issues)
    assert lines == [2, 3, 3]
    assert any("invalid JSON" in i.message for i in ts.issues)
    assert any("gen_ai.request.model" in i.message and i.where.startswith("resourceSpans[0]") for i in ts.issues)
    assert sum(len(r.calls) for r in ts.runs) == 4  # lines 1 and 4 (the same conversation, twice)
    with pytest.raises(TraceError) as err:
        load_traces([path], strict=True)
    assert f"{path}:2:" in str(err.value)


class _FakeOpenAI(BaseHTTPRequestHandler):
    """A local OpenAI-compatible endpoint, so the real client and instrumentation run offline."""

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
            "usage": {"prompt_tokens": 11 + len(body["messages"]), "completion_tokens": 3, "total_tokens": 0},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_spans_from_the_real_openai_v2_instrumentation(tmp_path: Path) -> None:
    openai = pytest.importorskip("openai")
    inst = pytest.importorskip("opentelemetry.instrumentation.openai_v2")
    server = HTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    tp, exp = provider()
    instrumentor = inst.OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tp)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.server_port}/v1", api_key="test", max_retries=0)
        tracer = tp.get_tracer("app")
        with tracer.start_as_current_span(
            "invoke_agent", attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 999}
        ):
            for n in (1, 2):
                client.chat.completions.create(
                    model="gpt-4o-mini", max_tokens=20, messages=[{"role": "user", "content": "hi"}] * n
                )
    finally:
        instrumentor.uninstrument()
        server.shutdown()
    spans = exp.get_finished_spans()
    path = write(tmp_path / "instrumented.jsonl", protobuf_json(spans) + "\n")
    (run,) = load_traces([path]).runs
    assert [c.model for c in run.calls] == ["gpt-4o-mini", "gpt-4o-mini"]
    assert [c.input_tokens for c in run.calls] == [12, 13]
    assert [c.output_tokens for c in run.calls] == [3, 3]
    assert [c.max_tokens for c in run.calls] == [20, 20]
