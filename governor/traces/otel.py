"""OpenTelemetry GenAI spans as OTLP JSON (one TracesData object, or JSON Lines of them).

Only leaf model-call spans count (``gen_ai.operation.name`` chat,
text_completion, generate_content, embeddings): agent and workflow spans repeat
their children's totals and would double the bill. Spans written before the
operation name existed count when they carry a model and token usage and no
model-call span below them. Current and deprecated attribute names are read;
ids may be hex or base64; 64-bit ints may be strings or numbers. Runs group by
``gen_ai.conversation.id`` (inherited from an ancestor span), else the trace id.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from governor.traces._io import json_lines, load_document
from governor.traces.model import TraceCall, TraceRun
from governor.traces.registry import ImportContext, group_calls, register

CALL_OPS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
INPUT = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OUTPUT = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
CACHE_READ = ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens")
CACHE_WRITE = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_write.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
)
REASONING = ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens")
COST = ("gen_ai.usage.cost", "llm.usage.cost", "gen_ai.usage.cost_usd")
USER = ("user.id", "enduser.id")


def any_value(v: Any) -> Any:
    """An OTLP AnyValue (camelCase or snake_case keys) as a plain Python value."""
    if not isinstance(v, dict):
        return v
    for key in ("stringValue", "string_value"):
        if key in v:
            return v[key]
    for key in ("intValue", "int_value"):
        if key in v:
            return int(v[key])  # int64 arrives as a JSON string or number
    for key in ("doubleValue", "double_value"):
        if key in v:
            return float(v[key])
    for key in ("boolValue", "bool_value"):
        if key in v:
            return bool(v[key])
    for key in ("arrayValue", "array_value"):
        if key in v:
            return [any_value(x) for x in (v[key] or {}).get("values", [])]
    for key in ("kvlistValue", "kvlist_value"):
        if key in v:
            return {kv.get("key"): any_value(kv.get("value")) for kv in (v[key] or {}).get("values", [])}
    return None


def attributes(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in items or ():
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            out[kv["key"]] = any_value(kv.get("value"))
    return out


def hex_id(value: Any, size: int) -> str:
    """A trace or span id as lower-case hex, whether written as hex or base64."""
    if not value:
        return ""
    text = str(value)
    if len(text) == size * 2:
        try:
            bytes.fromhex(text)
            return text.lower()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"id {text!r} is neither hex nor base64") from None
    return raw.hex()


@dataclass
class _Span:
    line: int
    where: str
    trace: str
    span: str
    parent: str
    name: str
    start: float
    attrs: dict[str, Any]
    resource: dict[str, Any]
    status: Mapping[str, Any]


def _first(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        if k in attrs and attrs[k] is not None:
            return attrs[k]
    return None


def _int(value: Any, name: str) -> int:
    if value is None:
        return 0
    n = int(value)
    if n < 0:
        raise ValueError(f"{name} is negative ({n})")
    return n


def _messages(attrs: Mapping[str, Any]) -> tuple[dict[str, Any], ...] | None:
    raw = attrs.get("gen_ai.input.messages") or attrs.get("gen_ai.prompt")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            return None
    if not isinstance(raw, list):
        return None
    out = []
    for m in raw:
        if not isinstance(m, dict):
            return None
        content = m.get("content")
        if content is None and isinstance(m.get("parts"), list):
            content = "".join(str(p.get("content", "")) for p in m["parts"] if isinstance(p, dict))
        out.append({"role": m.get("role"), "content": content if content is not None else ""})
    return tuple(out)


class OtelImporter:
    name = "otel"
    streams = True  # one run may continue in the next file
    description = "OpenTelemetry GenAI spans, OTLP JSON (one object or JSON Lines)"

    def sniff(self, head: str) -> bool:
        return '"resourceSpans"' in head or '"resource_spans"' in head

    def read(self, file: str, text: str, ctx: ImportContext) -> Iterator[TraceRun]:
        spans: list[_Span] = []
        for line, doc in self._documents(file, text, ctx):
            self._collect(file, line, doc, spans, ctx)
        by_id = {(s.trace, s.span): s for s in spans}
        definite = [s for s in spans if s.attrs.get("gen_ai.operation.name") in CALL_OPS]
        above: set[tuple[str, str]] = set()
        for s in definite:
            self._ancestors(s, by_id, above)
        calls: list[TraceCall] = []
        for s in spans:
            op = s.attrs.get("gen_ai.operation.name")
            if op in CALL_OPS or (
                op is None
                and (s.trace, s.span) not in above
                and _first(s.attrs, ("gen_ai.request.model", "gen_ai.response.model")) is not None
                and _first(s.attrs, INPUT) is not None
            ):
                call = self._call(file, s, by_id, ctx)
                if call is not None:
                    calls.append(call)
        yield from group_calls(calls)

    def _documents(self, file: str, text: str, ctx: ImportContext) -> Iterator[tuple[int, Any]]:
        stripped = text.lstrip()
        first_line = stripped.split("\n", 1)[0]
        try:
            json.loads(first_line)
            single = False
        except json.JSONDecodeError:
            single = True  # a pretty-printed single object
        if single:
            yield 1, load_document(text, file)
            return
        for line, doc, err in json_lines(text):
            if err is not None:
                ctx.issue(file, line, err)
            else:
                yield line, doc

    def _collect(self, file: str, line: int, doc: Any, spans: list[_Span], ctx: ImportContext) -> None:
        rs_list = doc.get("resourceSpans", doc.get("resource_spans")) if isinstance(doc, dict) else None
        if not isinstance(rs_list, list):
            ctx.issue(file, line, "not an OTLP TracesData object: no 'resourceSpans' list")
            return
        for a, rs in enumerate(rs_list):
            if not isinstance(rs, dict):
                ctx.issue(file, line, f"not an object: {type(rs).__name__}", where=f"resourceSpans[{a}]")
                continue
            try:
                resource = attributes((rs.get("resource") or {}).get("attributes"))
            except (ValueError, TypeError, AttributeError, RecursionError) as exc:
                ctx.issue(file, line, f"malformed resource: {exc}", where=f"resourceSpans[{a}].resource")
                continue
            scope_spans = rs.get("scopeSpans", rs.get("scope_spans")) or ()
            if not isinstance(scope_spans, list):
                ctx.issue(file, line, "'scopeSpans' is not a list", where=f"resourceSpans[{a}]")
                continue
            for b, ss in enumerate(scope_spans):
                span_list = ss.get("spans") if isinstance(ss, dict) else None
                if not isinstance(span_list, list):
                    if ss:  # an empty scope is no record
                        ctx.issue(
                            file, line, "not an object with a 'spans' list", where=f"resourceSpans[{a}].scopeSpans[{b}]"
                        )
                    continue
                for c, sp in enumerate(span_list):
                    where = f"resourceSpans[{a}].scopeSpans[{b}].spans[{c}]"
                    try:
                        if not isinstance(sp, dict):
                            raise TypeError(f"not an object: {type(sp).__name__}")
                        status = sp.get("status") or {}
                        if not isinstance(status, dict):
                            raise TypeError("'status' is not an object")
                        spans.append(
                            _Span(
                                line,
                                where,
                                hex_id(sp.get("traceId", sp.get("trace_id")), 16),
                                hex_id(sp.get("spanId", sp.get("span_id")), 8),
                                hex_id(sp.get("parentSpanId", sp.get("parent_span_id")), 8),
                                str(sp.get("name", "")),
                                int(sp.get("startTimeUnixNano", sp.get("start_time_unix_nano")) or 0) / 1e9,
                                attributes(sp.get("attributes")),
                                resource,
                                status,
                            )
                        )
                    except (ValueError, TypeError, AttributeError, OverflowError, RecursionError) as exc:
                        ctx.issue(file, line, f"malformed span: {exc}", where=where)

    @staticmethod
    def _ancestors(s: _Span, by_id: Mapping[tuple[str, str], _Span], acc: set[tuple[str, str]]) -> None:
        parent = by_id.get((s.trace, s.parent)) if s.parent else None
        while parent is not None and (parent.trace, parent.span) not in acc:
            acc.add((parent.trace, parent.span))
            parent = by_id.get((parent.trace, parent.parent)) if parent.parent else None

    @staticmethod
    def _inherited(s: _Span, by_id: Mapping[tuple[str, str], _Span], key: str) -> Any:
        node: _Span | None = s
        depth = 0
        while node is not None and depth < 64:
            if node.attrs.get(key) is not None:
                return node.attrs[key]
            node = by_id.get((node.trace, node.parent)) if node.parent else None
            depth += 1
        return None

    def _call(
        self, file: str, s: _Span, by_id: Mapping[tuple[str, str], _Span], ctx: ImportContext
    ) -> TraceCall | None:
        a = s.attrs
        try:
            model = _first(a, ("gen_ai.request.model", "gen_ai.response.model"))
            if not model:
                raise ValueError("model-call span has no gen_ai.request.model")
            code = s.status.get("code")
            error = None
            if code in (2, "2", "STATUS_CODE_ERROR") or a.get("error.type"):
                error = str(s.status.get("message") or a.get("error.type") or "error")
            if _first(a, INPUT) is None and error is None:
                raise ValueError("model-call span has no gen_ai.usage.input_tokens (nor gen_ai.usage.prompt_tokens)")
            inp = _int(_first(a, INPUT), "gen_ai.usage.input_tokens")
            out = _int(_first(a, OUTPUT), "gen_ai.usage.output_tokens")
            cr = _int(_first(a, CACHE_READ), "gen_ai.usage.cache_read.input_tokens")
            cw = _int(_first(a, CACHE_WRITE), "gen_ai.usage.cache_creation.input_tokens")
            reasoning = _int(_first(a, REASONING), "gen_ai.usage.reasoning.output_tokens")
            cost = _first(a, COST)
            cost = None if cost is None else float(cost)
            max_tokens = a.get("gen_ai.request.max_tokens")
            max_tokens = None if max_tokens is None else int(max_tokens)
        except (ValueError, TypeError, OverflowError) as exc:
            ctx.issue(file, s.line, str(exc), where=s.where)
            return None
        conversation = self._inherited(s, by_id, "gen_ai.conversation.id")
        run_id = str(conversation) if conversation else s.trace
        meta: dict[str, Any] = {"run_id": run_id, "operation": a.get("gen_ai.operation.name") or s.name}
        agent = self._inherited(s, by_id, "gen_ai.agent.name")
        if agent:
            meta["agent"] = str(agent)
        user = _first(a, USER) or _first(s.resource, USER)
        if user:
            meta["user"] = str(user)
        provider = _first(a, ("gen_ai.provider.name", "gen_ai.system"))
        if provider:
            meta["provider"] = str(provider)
        service = s.resource.get("service.name")
        if service:
            meta["service"] = str(service)
        return TraceCall(
            call_id=s.span or f"{run_id}@{s.line}",
            file=file,
            line=s.line,
            run_id=run_id,
            index=0,
            timestamp=s.start,
            model=str(model),
            input_tokens=inp,
            output_tokens=out,
            cache_read_tokens=cr,
            cache_write_tokens=cw,
            reasoning_tokens=reasoning,
            cost_usd=cost,
            error=error,
            max_tokens=max_tokens,
            metadata=meta,
            messages=_messages(a),
            where=s.where,
        )


register(OtelImporter())
