"""LiteLLM ``StandardLoggingPayload`` JSON Lines (one payload per line).

This is what a litellm ``CustomLogger`` receives as
``kwargs["standard_logging_object"]``. Runs group by the metadata key the
user names (``--run-key``; looked up in ``metadata``, its
``requester_metadata`` and ``spend_logs_metadata``, then top-level fields), by
default the session id, else the ``trace_id``. Retries and fallbacks of one
request share ``trace_id``, which becomes the retry group.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from governor.traces._io import json_lines
from governor.traces.model import TraceCall, TraceRun
from governor.traces.registry import ImportContext, group_calls, register

USER_META = ("requester_metadata", "spend_logs_metadata")


def _n(value: Any, name: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or int(value) != value:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _user_metadata(payload: Mapping[str, Any]) -> dict[str, Any]:
    meta = payload.get("metadata")
    out: dict[str, Any] = {}
    if isinstance(meta, dict):
        for key in USER_META:
            extra = meta.get(key)
            if isinstance(extra, dict):
                for k, v in extra.items():
                    out.setdefault(k, v)
    return out


def _lookup(payload: Mapping[str, Any], user_meta: Mapping[str, Any], key: str) -> Any:
    if key in user_meta and user_meta[key] not in (None, ""):
        return user_meta[key]
    meta = payload.get("metadata")
    if isinstance(meta, dict) and meta.get(key) not in (None, ""):
        return meta[key]
    value = payload.get(key)
    return None if value in (None, "") else value


def _cache(payload: Mapping[str, Any]) -> tuple[int, int, int]:
    """(cache read, cache write, reasoning) from the usage object litellm keeps in metadata."""
    meta = payload.get("metadata")
    usage = meta.get("usage_object") if isinstance(meta, dict) else None
    if not isinstance(usage, dict):
        return 0, 0, 0
    details = usage.get("prompt_tokens_details") or {}
    cr = _n(details.get("cached_tokens") if isinstance(details, dict) else None, "usage.cached_tokens")
    cr = cr or _n(usage.get("cache_read_input_tokens"), "usage.cache_read_input_tokens")
    cw = _n(usage.get("cache_creation_input_tokens"), "usage.cache_creation_input_tokens")
    out_details = usage.get("completion_tokens_details") or {}
    rt = _n(out_details.get("reasoning_tokens") if isinstance(out_details, dict) else None, "usage.reasoning_tokens")
    return cr, cw, rt


def _usage_object(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    meta = payload.get("metadata")
    usage = meta.get("usage_object") if isinstance(meta, dict) else None
    return usage if isinstance(usage, dict) else None


def _cache_1h(payload: Mapping[str, Any]) -> int:
    """Anthropic's 1-hour cache writes, as litellm keeps them (``cache_creation_token_details``)."""
    from governor.integrations.usage import from_chat_usage

    found = from_chat_usage(_usage_object(payload))
    return found.cache_write_1h_tokens if found is not None else 0


def _service_tier(payload: Mapping[str, Any]) -> str | None:
    from governor.integrations.usage import normal_tier

    hidden = payload.get("hidden_params")
    usage = _usage_object(payload) or {}
    return normal_tier((hidden.get("service_tier") if isinstance(hidden, dict) else None) or usage.get("service_tier"))


class LitellmPayloadImporter:
    name = "litellm"
    streams = True  # one run may continue in the next file
    description = "LiteLLM StandardLoggingPayload JSON Lines (one payload per line)"

    def sniff(self, head: str) -> bool:
        first = head.lstrip().split("\n", 1)[0]
        return '"standard_logging_object"' in first or (
            '"trace_id"' in first and '"call_type"' in first and '"prompt_tokens"' in first
        )

    def read(self, file: str, text: str, ctx: ImportContext) -> Iterator[TraceRun]:
        calls: list[TraceCall] = []
        for line, doc, err in json_lines(text):
            if err is not None:
                ctx.issue(file, line, err)
                continue
            if isinstance(doc, dict) and isinstance(doc.get("standard_logging_object"), dict):
                doc = doc["standard_logging_object"]
            call = self._call(file, line, doc, ctx)
            if call is not None:
                calls.append(call)
        yield from group_calls(calls)

    def _call(self, file: str, line: int, p: Any, ctx: ImportContext) -> TraceCall | None:
        try:
            if not isinstance(p, dict):
                raise ValueError("line is not a StandardLoggingPayload object")
            model = p.get("model")
            if not isinstance(model, str) or not model:
                raise ValueError("field 'model' is missing or empty")
            start = p.get("startTime")
            if isinstance(start, bool) or not isinstance(start, (int, float)):
                raise ValueError(f"field 'startTime' must be epoch seconds, got {start!r}")
            inp = _n(p.get("prompt_tokens"), "prompt_tokens")
            out = _n(p.get("completion_tokens"), "completion_tokens")
            cr, cw, rt = _cache(p)
            cost = p.get("response_cost")
            if cost is not None and (isinstance(cost, bool) or not isinstance(cost, (int, float)) or cost < 0):
                raise ValueError(f"field 'response_cost' must be a non-negative number, got {cost!r}")
        except ValueError as exc:
            ctx.issue(file, line, str(exc))
            return None
        user_meta = _user_metadata(p)
        key = ctx.run_key
        run = _lookup(p, user_meta, key) if key else (p.get("session_id") or None)
        trace_id = p.get("trace_id") or None
        run_id = str(run or trace_id or p.get("id") or f"{file}:{line}")
        meta: dict[str, Any] = {k: v for k, v in user_meta.items() if isinstance(k, str)}
        meta["run_id"] = run_id
        if p.get("end_user"):
            meta.setdefault("user", p["end_user"])
        params = _dict(p.get("model_parameters"))
        if params.get("user"):
            meta.setdefault("user", str(params["user"]))  # the OpenAI `user` parameter (SDK calls)
        lmeta = _dict(p.get("metadata"))
        if lmeta.get("user_api_key_team_id"):
            meta.setdefault("team", lmeta["user_api_key_team_id"])
        if lmeta.get("user_api_key_user_id"):
            meta.setdefault("user", lmeta["user_api_key_user_id"])
        tags = p.get("request_tags")
        if tags:
            meta.setdefault("tags", [str(t) for t in tags])
        max_tokens = params.get("max_tokens") or params.get("max_completion_tokens")
        status = p.get("status")
        error = None
        if status not in (None, "success"):
            info = _dict(p.get("error_information"))
            error = str(info.get("error_class") or p.get("error_str") or status)
        msgs = p.get("messages")
        return TraceCall(
            call_id=str(p.get("id") or p.get("litellm_call_id") or f"{file}:{line}"),
            file=file,
            line=line,
            run_id=run_id,
            index=0,
            timestamp=float(start),
            model=model,
            input_tokens=inp,
            output_tokens=out,
            cache_read_tokens=min(cr, inp),
            cache_write_tokens=min(cw, max(inp - cr, 0)),
            cache_write_1h_tokens=min(_cache_1h(p), cw),
            service_tier=_service_tier(p),
            reasoning_tokens=min(rt, out),
            cost_usd=None if cost is None else float(cost),
            error=error,
            retry_group=str(trace_id) if trace_id else None,
            max_tokens=int(max_tokens) if isinstance(max_tokens, int) else None,
            metadata=meta,
            messages=tuple(m for m in msgs if isinstance(m, dict)) if isinstance(msgs, list) else None,
        )


register(LitellmPayloadImporter())


def _dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a dict, else an empty one (a payload field that may be absent or null)."""
    return value if isinstance(value, dict) else {}
