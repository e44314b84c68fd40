"""tau2-bench results (one JSON object per file): each simulation is a run.

A call is a message with a non-null ``usage``. ``role: assistant`` calls are
the agent model's (``info.agent_info.llm``, metadata ``agent: agent``);
``role: user`` calls are the user simulator's (``info.user_info.llm``,
metadata ``agent: user-simulator``), so policies can match either. A run is
accepted when ``reward_info.reward >= 1``, else rejected. Anthropic raw usage
excludes cached tokens from ``input_tokens``; we normalise to inclusive input
and verify against ``prompt_tokens``. Timestamps are ISO-8601 without a zone,
read as UTC; a call without one takes the previous call's time (else the
simulation's start), so its usage is never dropped for want of a clock.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from governor._slots import slots_constructor
from governor.engine.trace_recorder import dumps as compact_json
from governor.traces._io import load_document
from governor.traces.model import TraceCall, TraceRun
from governor.traces.registry import ImportContext, register

AGENT_LABEL = {"assistant": "agent", "user": "user-simulator"}
_EPOCH = datetime(1970, 1, 1)  # naive: a zone-less timestamp is UTC
_new_call = slots_constructor(TraceCall)  # one per recorded call: half the cost of TraceCall(...)


def _ts(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    dt = datetime.fromisoformat(value)  # raises on anything else
    if dt.tzinfo is None:  # read as UTC; 4x cheaper than replace(tzinfo=utc).timestamp(), same float
        return (dt - _EPOCH).total_seconds()
    return dt.timestamp()


MAX_COUNT = 2**63  # no real token count is near it; beyond 64 bits orjson reads an integer as a float


def _count(value: Any, name: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >= MAX_COUNT:
        raise ValueError(f"{name} must be a non-negative integer below 2**63, got {value!r}")
    return value


def _cache_and_input(usage: Mapping[str, Any], raw: Any) -> tuple[int, int, int, int, int]:
    """(inclusive input, cache read, cache write, reasoning, 1-hour cache write) from usage and the raw
    provider usage."""
    prompt = _count(usage.get("prompt_tokens"), "usage.prompt_tokens")
    if "prompt_tokens" not in usage:
        raise ValueError("usage.prompt_tokens is missing")
    _count(usage.get("completion_tokens"), "usage.completion_tokens")
    if "completion_tokens" not in usage:
        raise ValueError("usage.completion_tokens is missing")
    cr = cw = reasoning = w1 = 0
    details = usage.get("prompt_tokens_details") or {}
    if isinstance(details, dict):
        cr = _count(details.get("cached_tokens"), "usage.prompt_tokens_details.cached_tokens")
    out_details = usage.get("completion_tokens_details") or {}
    if isinstance(out_details, dict):
        reasoning = _count(out_details.get("reasoning_tokens"), "usage.completion_tokens_details.reasoning_tokens")
    raw_usage = raw.get("usage") if isinstance(raw, dict) else None
    if isinstance(raw_usage, dict) and (
        raw_usage.get("cache_read_input_tokens") or raw_usage.get("cache_creation_input_tokens")
    ):
        a_in = _count(raw_usage.get("input_tokens"), "raw_data.usage.input_tokens")
        cr = _count(raw_usage.get("cache_read_input_tokens"), "raw_data.usage.cache_read_input_tokens")
        cw = _count(raw_usage.get("cache_creation_input_tokens"), "raw_data.usage.cache_creation_input_tokens")
        creation = raw_usage.get("cache_creation")
        if isinstance(creation, dict):
            w1 = min(
                _count(
                    creation.get("ephemeral_1h_input_tokens"), "raw_data.usage.cache_creation.ephemeral_1h_input_tokens"
                ),
                cw,
            )
        if a_in + cr + cw == prompt:
            pass  # prompt_tokens already inclusive (litellm's normalisation)
        elif a_in == prompt:
            prompt = a_in + cr + cw  # prompt_tokens is Anthropic's exclusive count
        elif prompt < cr + cw:
            prompt = a_in + cr + cw
    elif isinstance(raw_usage, dict):
        raw_details = raw_usage.get("prompt_tokens_details")
        if isinstance(raw_details, dict) and not cr:
            cr = _count(raw_details.get("cached_tokens"), "raw_data.usage.prompt_tokens_details.cached_tokens")
    if cr + cw > prompt:
        raise ValueError(f"cache tokens ({cr + cw}) exceed prompt_tokens ({prompt})")
    return prompt, cr, cw, reasoning, w1


def _tiers(raw: Any) -> tuple[str | None, str | None, str | None]:
    """(service tier, speed, inference geo) of the raw provider response (None where standard)."""
    from governor.integrations.usage import normal_tier

    raw_usage = raw.get("usage") if isinstance(raw, dict) else None
    if not isinstance(raw_usage, dict):
        return None, None, None
    tier = raw_usage.get("service_tier") or (raw.get("service_tier") if isinstance(raw, dict) else None)
    return normal_tier(tier), normal_tier(raw_usage.get("speed")), normal_tier(raw_usage.get("inference_geo"))


def _message(m: Mapping[str, Any]) -> dict[str, Any]:
    """The prompt-side shape of a tau2 message (no raw provider data)."""
    out: dict[str, Any] = {"role": m.get("role"), "content": m.get("content") or ""}
    calls = m.get("tool_calls")
    if calls:
        # OpenAI's shape (arguments as a JSON string), which the token counter and trimming read
        out["tool_calls"] = [
            {"id": c.get("id"), "type": "function", "function": {"name": c.get("name"), "arguments": _args(c)}}
            for c in calls
            if isinstance(c, dict)
        ]
    if m.get("role") == "tool" and m.get("id"):
        out["tool_call_id"] = m["id"]
    return out


def _args(call: Mapping[str, Any]) -> str:
    args = call.get("arguments")
    return args if isinstance(args, str) else compact_json(args)  # as a model writes it: UTF-8, not \u escapes


def _outcome(sim: Mapping[str, Any]) -> str | None:
    info = sim.get("reward_info")
    reward = info.get("reward") if isinstance(info, dict) else None
    if isinstance(reward, bool) or not isinstance(reward, (int, float)):
        return None
    return "accepted" if reward >= 1 else "rejected"


class Tau2Importer:
    name = "tau2"
    streams = False  # each file is a complete result set
    description = "tau2-bench results JSON (simulations with per-message usage)"

    def sniff(self, head: str) -> bool:
        start = head.lstrip()[:1]
        return start == "{" and (
            '"simulations"' in head
            or ('"agent_info"' in head and '"user_info"' in head)
            or ('"tasks"' in head and '"user_scenario"' in head)
        )

    def read(self, file: str, text: str, ctx: ImportContext) -> Iterator[TraceRun]:
        doc = load_document(text, file, fast=True)  # token counts are checked below 2**63
        if not isinstance(doc, dict) or not isinstance(doc.get("simulations"), list):
            ctx.issue(file, 0, "not a tau2 results object: no 'simulations' list", where="simulations")
            return
        info = doc.get("info") if isinstance(doc.get("info"), dict) else {}
        models = {
            "assistant": _get(info, "agent_info", "llm"),
            "user": _get(info, "user_info", "llm"),
        }
        max_tokens = {
            "assistant": _get(info, "agent_info", "llm_args", "max_tokens"),
            "user": _get(info, "user_info", "llm_args", "max_tokens"),
        }
        domain = _get(info, "environment_info", "domain_name")
        ids: set[str] = set()
        for i, sim in enumerate(doc["simulations"]):
            run = self._run(file, i, sim, models, max_tokens, domain, ids, ctx)
            if run is not None:
                yield run

    def _run(
        self,
        file: str,
        i: int,
        sim: Any,
        models: dict[str, Any],
        max_tokens: dict[str, Any],
        domain: Any,
        ids: set[str],
        ctx: ImportContext,
    ) -> TraceRun | None:
        where = f"simulations[{i}]"
        if not isinstance(sim, dict) or not isinstance(sim.get("messages"), list):
            ctx.issue(file, 0, "simulation has no 'messages' list", where=where)
            return None
        run_id = str(sim.get("id") or f"{file}#{i}")
        if run_id in ids:
            run_id = f"{run_id}#{i}"
        ids.add(run_id)
        task_id = sim.get("task_id")
        labels = {}
        for role, agent in AGENT_LABEL.items():
            meta: dict[str, Any] = {"run_id": run_id, "agent": agent, "model_role": role}
            if task_id is not None:
                meta["task"] = str(task_id)
            if domain:
                meta["workflow"] = domain
            labels[role] = meta
        conv: list[dict[str, Any]] = []
        calls: list[TraceCall] = []
        try:  # a message without a timestamp takes the previous call's, else the run's start
            start = _ts(sim.get("start_time")) if sim.get("start_time") is not None else 0.0
        except (ValueError, TypeError):
            start = 0.0
        for j, m in enumerate(sim["messages"]):
            if not isinstance(m, dict):
                ctx.issue(file, 0, "message is not an object", where=f"{where}.messages[{j}]")
                continue
            usage = m.get("usage")
            if usage is not None:
                fallback = calls[-1].timestamp if calls else start
                call = self._call(
                    file,
                    f"{where}.messages[{j}]",
                    m,
                    usage,
                    run_id,
                    len(calls),
                    conv,
                    models,
                    max_tokens,
                    labels,
                    ctx,
                    fallback,
                )
                if call is not None:
                    calls.append(call)
            conv.append(_message(m))
        run_meta = {
            "task_id": task_id,
            "trial": sim.get("trial"),
            "termination_reason": sim.get("termination_reason"),
            "reward": _get(sim, "reward_info", "reward"),
            "agent_model": models["assistant"],
            "user_model": models["user"],
        }
        return TraceRun(run_id, tuple(calls), _outcome(sim), run_meta, file)

    def _call(
        self,
        file: str,
        where: str,
        m: dict[str, Any],
        usage: Any,
        run_id: str,
        index: int,
        conv: list[dict[str, Any]],
        models: dict[str, Any],
        max_tokens: dict[str, Any],
        labels: dict[str, dict[str, Any]],
        ctx: ImportContext,
        fallback_ts: float,
    ) -> TraceCall | None:
        role = m.get("role")
        try:
            if not isinstance(usage, dict):
                raise ValueError(f"usage must be an object, got {type(usage).__name__}")
            if role not in AGENT_LABEL:
                raise ValueError(f"role must be assistant or user for a message with usage, got {role!r}")
            raw = m.get("raw_data")
            model = models[role]
            if not isinstance(model, str) or not model:
                # the variant without an info block names the model only in the raw provider response
                model = raw.get("model") if isinstance(raw, dict) else None
            if not isinstance(model, str) or not model:
                side = "agent_info" if role == "assistant" else "user_info"
                raise ValueError(f"info.{side}.llm names no model, nor does raw_data.model")
            inp, cr, cw, reasoning, w1 = _cache_and_input(usage, raw)
            tier, speed, geo = _tiers(raw)
            out = usage["completion_tokens"]
            stamp = m.get("timestamp")
            ts = fallback_ts if stamp is None else _ts(stamp)
            cost = m.get("cost")
            if cost is not None and (isinstance(cost, bool) or not isinstance(cost, (int, float)) or cost < 0):
                raise ValueError(f"cost must be a non-negative number, got {cost!r}")
        except (ValueError, TypeError) as exc:
            ctx.issue(file, 0, str(exc), where=where)
            return None
        return _new_call(
            call_id=f"{run_id}#{index + 1}",
            file=file,
            line=0,
            run_id=run_id,
            index=index,
            timestamp=ts,
            model=model,
            input_tokens=inp,
            output_tokens=out,
            cache_read_tokens=cr,
            cache_write_tokens=cw,
            reasoning_tokens=reasoning,
            cost_usd=None if cost is None else float(cost),
            max_tokens=max_tokens[role],
            metadata=labels[role],
            messages=tuple(conv),
            where=where,
            error=None,
            retry_group=None,
            messages_digest=None,
            message_count=None,
            cache_write_1h_tokens=w1,
            service_tier=tier,
            speed=speed,
            inference_geo=geo,
            cost_model=None,
        )


def _get(obj: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(k)
    return obj


register(Tau2Importer())
