"""Langfuse observations exports (the public API's observations, the UI's JSON/JSONL export, blob-storage exports).

Read as one JSON document (``{"data": [...], "meta": ...}`` pages, or a list)
or JSON Lines (one observation, or one page, a line). Field names are the
API's camelCase (``traceId``, ``usageDetails``) or the blob export's
snake_case (``trace_id``, ``usage_details``).

Counting rules (docs/replay.md):

- A call is an observation of type ``GENERATION`` (or ``EMBEDDING``) with
  usage. Spans, events, agents and tools are not calls, even when they carry
  usage summed from their children.
- Tokens follow Langfuse's own rule for usage types: every ``usageDetails``
  key containing ``input`` adds to the input (``input`` plus
  ``input_cached_tokens``, ``cache_read_input_tokens``,
  ``cache_creation_input_tokens``, ...), every key containing ``output`` to the
  output; the cache read is the keys naming ``cache_read`` or ``cached``, the
  cache writes those naming ``cache_creation`` or ``cache_write``, reasoning
  those naming ``reasoning``. Old exports' ``usage {input, output}`` are read
  the same way.
- Cost: ``costDetails.total`` (else ``totalCost``, else the sum of
  ``costDetails``) is the recorded cost. Langfuse may have inferred it from its
  own price table at ingestion; it is what the export says was paid.
- The run is the ``traceId``; ``sessionId`` is metadata ``session_id`` (so
  ``--run-key session_id`` makes a session one run). Metadata: ``user``
  (``userId``), ``tags``, ``environment``, ``workflow`` (``traceName``),
  ``name``, and the observation's ``metadata`` strings. The model is ``model``
  (else ``providedModelName``). ``level: ERROR`` is an errored call.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from governor.traces import _fields as f
from governor.traces._docs import documents
from governor.traces.model import TraceCall, TraceRun
from governor.traces.registry import ImportContext, group_calls, register

CALL_TYPES = ("GENERATION", "EMBEDDING")
_SNAKE = {
    "traceId": "trace_id",
    "startTime": "start_time",
    "usageDetails": "usage_details",
    "costDetails": "cost_details",
    "totalCost": "total_cost",
    "sessionId": "session_id",
    "userId": "user_id",
    "traceName": "trace_name",
    "providedModelName": "provided_model_name",
    "statusMessage": "status_message",
}


def _get(obs: dict[str, Any], key: str) -> Any:
    value = obs.get(key)
    return obs.get(_SNAKE[key]) if value is None and key in _SNAKE else value


def usage_counts(usage: dict[str, Any], name: str) -> tuple[int, int, int, int, int]:
    """(input, output, cache read, cache write, reasoning) by Langfuse's usage-type rule."""
    inp = out = cr = cw = reasoning = 0
    for key, value in usage.items():
        if key in ("total", "unit") or value is None:
            continue
        n = f.count(value, f"{name}.{key}")
        k = key.lower()
        if "input" in k or k in ("prompt_tokens", "prompttokens"):
            inp += n
        elif "output" in k or k in ("completion_tokens", "completiontokens"):
            out += n
        if "cache_read" in k or "cached" in k:
            cr += n
        elif "cache_creation" in k or "cache_write" in k:
            cw += n
        if "reasoning" in k:
            reasoning += n
    return inp, out, min(cr, inp), min(cw, max(inp - cr, 0)), min(reasoning, out)


class LangfuseImporter:
    name = "langfuse"
    streams = True  # exports are paged and dated: one trace may span files
    description = "Langfuse observations export (API pages, UI JSON/JSONL, blob storage)"

    def sniff(self, head: str) -> bool:
        return ('"usageDetails"' in head or '"usage_details"' in head or '"costDetails"' in head) and (
            '"traceId"' in head or '"trace_id"' in head
        )

    def read(self, file: str, text: str, ctx: ImportContext) -> Iterator[TraceRun]:
        calls = []
        for line, where, obs in self._observations(file, text, ctx):
            kind = obs.get("type")
            if not isinstance(kind, str) or kind.upper() not in CALL_TYPES:
                continue
            try:
                call = self._call(file, line, where, obs, ctx)
            except ValueError as exc:
                ctx.issue(file, line, str(exc), where=where)
                continue
            if call is not None:
                calls.append(call)
        yield from group_calls(calls)

    @staticmethod
    def _observations(file: str, text: str, ctx: ImportContext) -> Iterator[tuple[int, str, dict[str, Any]]]:
        for line, doc, err in documents(file, text):
            if err is not None:
                ctx.issue(file, line, err)
                continue
            page = isinstance(doc, dict) and isinstance(doc.get("data"), list)
            items = doc["data"] if page else (doc if isinstance(doc, list) else [doc])
            for k, obs in enumerate(items):
                where = f"data[{k}]" if page else (f"[{k}]" if isinstance(doc, list) else "")
                if not isinstance(obs, dict):
                    ctx.issue(file, line, "observation is not an object", where=where)
                    continue
                yield line, where, obs

    @staticmethod
    def _call(file: str, line: int, where: str, obs: dict[str, Any], ctx: ImportContext) -> TraceCall | None:
        usage = _get(obs, "usageDetails")
        if usage is None:
            usage = obs.get("usage")
        if usage is None:
            return None
        if not isinstance(usage, dict):
            raise ValueError("usageDetails must be an object")
        inp, out, cr, cw, reasoning = usage_counts(usage, "usageDetails")
        trace_id = f.text(_get(obs, "traceId"))
        if trace_id is None:
            raise ValueError("traceId is missing")
        ts = f.timestamp(_get(obs, "startTime"), "startTime")
        model = f.text(obs.get("model")) or f.text(_get(obs, "providedModelName"))
        if model is None:
            raise ValueError("model is missing")
        costs = _get(obs, "costDetails")
        cost = None
        if isinstance(costs, dict) and costs:
            cost = (
                f.cost(costs["total"], "costDetails.total")
                if "total" in costs
                else sum(f.cost(v, f"costDetails.{k}") or 0.0 for k, v in costs.items())
            )
        elif _get(obs, "totalCost") is not None:
            cost = f.cost(_get(obs, "totalCost"), "totalCost")
        meta: dict[str, Any] = {}
        if isinstance(obs.get("metadata"), dict):
            meta.update({k: v for k, v in obs["metadata"].items() if isinstance(v, str)})
        for key, name in (
            ("sessionId", "session_id"),
            ("userId", "user"),
            ("traceName", "workflow"),
            ("environment", "environment"),
            ("name", "name"),
        ):
            value = f.text(_get(obs, key))
            if value is not None:
                meta[name] = value
        tags = obs.get("tags")
        if isinstance(tags, list) and tags:
            meta["tags"] = ",".join(str(t) for t in tags)
        run_id = trace_id
        if ctx.run_key and meta.get(ctx.run_key) is not None:
            run_id = str(meta[ctx.run_key])
        meta["run_id"] = run_id
        error = None
        if obs.get("level") == "ERROR":
            error = f.text(_get(obs, "statusMessage")) or "error"
        return TraceCall(
            call_id=f.text(obs.get("id")) or f"{run_id}#{line}",
            file=file,
            line=line,
            where=where,
            run_id=run_id,
            index=0,
            timestamp=ts,
            model=model,
            input_tokens=inp,
            output_tokens=out,
            cache_read_tokens=cr,
            cache_write_tokens=cw,
            reasoning_tokens=reasoning,
            cost_usd=cost,
            error=error,
            metadata=meta,
        )


register(LangfuseImporter())
