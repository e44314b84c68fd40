"""OTLP JSON trace files written from spans the real OpenTelemetry SDK recorded.

Two encoders: the OTLP protobuf encoder (``opentelemetry-exporter-otlp-proto-common``)
rendered with ``google.protobuf.json_format`` (ids in base64, int64 as strings),
and a small exporter over the SDK's ``ReadableSpan`` objects writing the OTLP/JSON
spec form (ids in hex, ints as numbers), as collectors' file exporters do.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode


def provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "agent-svc"}))
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp, exporter


def protobuf_json(spans: Sequence[ReadableSpan], indent: int | None = None) -> str:
    from google.protobuf.json_format import MessageToJson
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return MessageToJson(encode_spans(spans), indent=indent)


def _value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": v}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, (list, tuple)):
        return {"arrayValue": {"values": [_value(x) for x in v]}}
    return {"stringValue": str(v)}


def hex_json(spans: Sequence[ReadableSpan]) -> str:
    """OTLP/JSON as the spec writes it: hex ids, ints as JSON numbers."""
    out = []
    for s in spans:
        ctx = s.get_span_context()
        item = {
            "traceId": format(ctx.trace_id, "032x"),
            "spanId": format(ctx.span_id, "016x"),
            "name": s.name,
            "kind": int(s.kind.value) + 1,
            "startTimeUnixNano": s.start_time,
            "endTimeUnixNano": s.end_time,
            "attributes": [{"key": k, "value": _value(v)} for k, v in (s.attributes or {}).items()],
            "status": {
                "code": {StatusCode.UNSET: 0, StatusCode.OK: 1, StatusCode.ERROR: 2}[s.status.status_code],
                **({"message": s.status.description} if s.status.description else {}),
            },
        }
        if s.parent is not None:
            item["parentSpanId"] = format(s.parent.span_id, "016x")
        out.append(item)
    resource = [{"key": k, "value": _value(v)} for k, v in spans[0].resource.attributes.items()] if spans else []
    return json.dumps(
        {
            "resourceSpans": [
                {"resource": {"attributes": resource}, "scopeSpans": [{"scope": {"name": "test"}, "spans": out}]}
            ]
        }
    )


def agent_session(
    tp: TracerProvider,
    conversation: str | None,
    *,
    deprecated: bool = False,
    calls: int = 3,
    fail_last: bool = False,
    t0: int = 1_760_000_000_000_000_000,
) -> None:
    """An agent span (repeating its children's totals) with ``calls`` chat spans below it."""
    tracer = tp.get_tracer("agent-app")
    inp, out = (
        ("gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens")
        if deprecated
        else ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")
    )
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "planner",
        inp: 1000 * calls,
        out: 50 * calls,
    }
    if conversation:
        attrs["gen_ai.conversation.id"] = conversation
    with tracer.start_as_current_span("invoke_agent planner", attributes=attrs, start_time=t0):
        for i in range(calls):
            a: dict[str, Any] = {
                "gen_ai.request.model": "gpt-4o-mini",
                inp: 1000 + i,
                out: 50 + i,
                "gen_ai.request.max_tokens": 256,
            }
            if deprecated:
                a["gen_ai.system"] = "openai"  # old spans: no operation name
            else:
                a.update(
                    {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.provider.name": "openai",
                        "gen_ai.usage.cache_read.input_tokens": 200,
                    }
                )
            with tracer.start_as_current_span(
                "chat gpt-4o-mini", attributes=a, start_time=t0 + (i + 1) * 1_000_000_000
            ) as span:
                if fail_last and i == calls - 1:
                    span.set_status(Status(StatusCode.ERROR, "rate limited"))
                    span.set_attribute("error.type", "RateLimitError")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


Encoder = Callable[[Sequence[ReadableSpan]], str]
