"""OpenAI Agents SDK trace exports: the ``trace`` and ``trace.span`` objects its exporters write.

Read as JSON Lines of either the SDK's ingest payloads (``{"data": [...]}``,
what ``BackendSpanExporter`` posts) or single exported items (``{"object":
"trace.span", ...}``, what a file exporter calling ``item.export()`` writes),
or one JSON document of either shape.

Counting rules (docs/replay.md):

- A call is a span whose ``span_data.type`` is ``response`` (Responses API)
  or ``generation`` (Chat Completions and other models) with ``usage``. The
  SDK's ``custom`` ``turn`` and ``task`` spans repeat the sums of those calls
  and are never counted; agent, function and handoff spans are not calls.
- Tokens: ``input_tokens`` includes ``input_tokens_details.cached_tokens``;
  ``output_tokens_details.reasoning_tokens`` is part of ``output_tokens``;
  ``input_tokens_details.cache_write_tokens`` are cache writes. A span with
  an ``error`` is an errored call.
- The run is the trace (``trace_id``); ``group_id`` (the conversation) is
  metadata ``group_id``, so ``--run-key group_id`` makes a conversation one
  run. Metadata: ``workflow`` (the trace's ``workflow_name``), ``agent`` (the
  enclosing agent span's name), and the trace's ``metadata`` strings (e.g.
  ``user``).
- The model is ``span_data.model`` (generation spans). The SDK's response
  spans export no model: it is taken from the trace metadata key ``model``
  when the run set one (``RunConfig(trace_metadata={"model": ...})``), else
  it is ``unknown`` (unpriced, never free) and a note says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from governor.traces import _fields as f
from governor.traces._docs import documents
from governor.traces.model import TraceCall, TraceRun
from governor.traces.registry import ImportContext, group_calls, register

CALL_TYPES = ("response", "generation")


class OpenAIAgentsImporter:
    name = "openai-agents"
    streams = True  # an exporter writes batches as they fill: one trace may span files
    description = 'OpenAI Agents SDK trace export (trace / trace.span objects, or {"data": [...]} payloads)'

    def sniff(self, head: str) -> bool:
        return '"object": "trace' in head or '"object":"trace' in head

    def read(self, file: str, text: str, ctx: ImportContext) -> Iterator[TraceRun]:
        traces: dict[str, dict[str, Any]] = {}
        spans: list[tuple[int, str, dict[str, Any]]] = []
        for line, where, item in self._items(file, text, ctx):
            kind = item.get("object")
            if kind == "trace" and f.text(item.get("id")):
                traces[item["id"]] = item
            elif kind == "trace.span":
                spans.append((line, where, item))
        by_id = {str(s[2]["id"]): s[2] for s in spans if isinstance(s[2].get("id"), str)}
        calls: list[TraceCall] = []
        unknown = 0
        for line, where, span in spans:
            data = span.get("span_data")
            if not isinstance(data, dict) or data.get("type") not in CALL_TYPES:
                continue
            try:
                call = self._call(file, line, where, span, data, traces, by_id, ctx)
            except ValueError as exc:
                ctx.issue(file, line, str(exc), where=where)
                continue
            if call is not None:
                unknown += call.model == "unknown"
                calls.append(call)
        if unknown:
            ctx.note(
                f"{file}: {unknown} response span(s) name no model (the SDK does not export it): model "
                "'unknown', unpriced; set trace_metadata={'model': ...} in the run to name it"
            )
        yield from group_calls(calls)

    @staticmethod
    def _items(file: str, text: str, ctx: ImportContext) -> Iterator[tuple[int, str, dict[str, Any]]]:
        for line, doc, err in documents(file, text):
            if err is not None:
                ctx.issue(file, line, err)
                continue
            payload = isinstance(doc, dict) and "object" not in doc  # {"data": [...]}, as the SDK posts it
            items = doc.get("data") if payload else doc
            if isinstance(items, dict):
                items = [items]
            if not isinstance(items, list):
                ctx.issue(file, line, "not a trace item or a {'data': [...]} payload")
                continue
            for k, item in enumerate(items):
                where = f"data[{k}]" if payload else (f"[{k}]" if isinstance(doc, list) else "")
                if not isinstance(item, dict):
                    ctx.issue(file, line, "trace item is not an object", where=where)
                    continue
                yield line, where, item

    @staticmethod
    def _call(
        file: str,
        line: int,
        where: str,
        span: dict[str, Any],
        data: dict[str, Any],
        traces: dict[str, dict[str, Any]],
        by_id: dict[str, dict[str, Any]],
        ctx: ImportContext,
    ) -> TraceCall | None:
        usage = data.get("usage")
        if usage is None:
            return None
        if not isinstance(usage, dict):
            raise ValueError("span_data.usage must be an object")
        inp, out = f.counts(usage, "span_data.usage", "input_tokens", "output_tokens")
        in_details, out_details = _obj(usage.get("input_tokens_details")), _obj(usage.get("output_tokens_details"))
        cached = f.count(in_details.get("cached_tokens"), "span_data.usage.input_tokens_details.cached_tokens")
        written = f.count(
            in_details.get("cache_write_tokens"), "span_data.usage.input_tokens_details.cache_write_tokens"
        )
        reasoning = f.count(
            out_details.get("reasoning_tokens"), "span_data.usage.output_tokens_details.reasoning_tokens"
        )
        if cached + written > inp:
            raise ValueError(f"cached ({cached}) plus cache writes ({written}) exceed input_tokens ({inp})")
        trace_id = f.text(span.get("trace_id"))
        if trace_id is None:
            raise ValueError("span has no trace_id")
        ts = f.timestamp(span.get("started_at"), "started_at")
        trace = traces.get(trace_id, {})
        meta: dict[str, Any] = {}
        if isinstance(trace.get("metadata"), dict):
            meta.update({k: v for k, v in trace["metadata"].items() if isinstance(v, str)})
        if f.text(trace.get("workflow_name")):
            meta["workflow"] = trace["workflow_name"]
        if f.text(trace.get("group_id")):
            meta["group_id"] = trace["group_id"]
        agent = _agent_of(span, by_id)
        if agent is not None:
            meta["agent"] = agent
        run_id = trace_id
        if ctx.run_key and meta.get(ctx.run_key) is not None:
            run_id = str(meta[ctx.run_key])
        meta["run_id"] = run_id
        model = f.text(data.get("model")) or f.text(meta.get("model")) or "unknown"
        error = span.get("error")
        message = None
        if error:
            message = f.text(error.get("message")) if isinstance(error, dict) else str(error)
            message = message or "error"
        return TraceCall(
            call_id=f.text(data.get("response_id")) or f.text(span.get("id")) or f"{run_id}#{line}",
            file=file,
            line=line,
            where=where,
            run_id=run_id,
            index=0,
            timestamp=ts,
            model=model,
            input_tokens=inp,
            output_tokens=out,
            cache_read_tokens=cached,
            cache_write_tokens=written,
            reasoning_tokens=min(reasoning, out),
            error=message,
            metadata=meta,
        )


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _agent_of(span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> str | None:
    seen = 0
    parent = by_id.get(span.get("parent_id") or "")
    while parent is not None and seen < 64:
        data = parent.get("span_data")
        if isinstance(data, dict) and data.get("type") == "agent" and f.text(data.get("name")):
            return str(data["name"])
        parent = by_id.get(parent.get("parent_id") or "")
        seen += 1
    return None


register(OpenAIAgentsImporter())
