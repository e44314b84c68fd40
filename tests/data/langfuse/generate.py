"""Re-generate the Langfuse observations export in this folder with the real ``langfuse`` SDK.

    uv venv /tmp/lf && VIRTUAL_ENV=/tmp/lf uv pip install langfuse==5.2.0 openai
    /tmp/lf/bin/python tests/data/langfuse/generate.py

No Langfuse server runs offline, so the export is made in two steps. (1) The
SDK's own OpenAI integration (``langfuse.openai``) traces real Chat
Completions calls to tests/support/upstream.py (turns of ../scripted_agents.py), with user,
session, tags and metadata set by ``propagate_attributes``; the SDK's spans
are captured with an in-memory exporter instead of being sent. (2) Each
generation span becomes one observation of the SDK's own API model
(``ObservationV2`` in an ``ObservationsV2Response`` page, serialised by the
SDK as the API returns it), with usage flattened to Langfuse's usage types
the way its server does for OpenAI usage (``input`` without the cached part,
``input_cached_tokens``, ``output`` without reasoning,
``output_reasoning_tokens``, ``total``) and a cost per type from the list
prices below, as Langfuse infers one. upstream.jsonl is the upstream's log of
the calls it served (the independent count).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from scripted_agents import ScriptedUpstream, scripted, write_log  # noqa: E402

PRICE = {"input": 0.15e-6, "input_cached_tokens": 0.075e-6, "output": 0.6e-6, "output_reasoning_tokens": 0.6e-6}


def flatten(raw: dict) -> dict[str, int]:
    cached = (raw.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (raw.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    out = {
        "input": raw["prompt_tokens"] - cached,
        "output": raw["completion_tokens"] - reasoning,
        "total": raw["total_tokens"],
    }
    if cached:
        out["input_cached_tokens"] = cached
    if reasoning:
        out["output_reasoning_tokens"] = reasoning
    return out


def main() -> None:
    from langfuse import Langfuse, propagate_attributes
    from langfuse.api.commons.types.observation_v2 import ObservationV2
    from langfuse.api.observations.types.observations_v2meta import ObservationsV2Meta
    from langfuse.api.observations.types.observations_v2response import ObservationsV2Response
    from langfuse.openai import OpenAI
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    log: list[dict[str, Any]] = []
    upstream = ScriptedUpstream().start()
    upstream.responder = scripted(log)
    port = upstream.port
    spans = InMemorySpanExporter()
    try:
        lf = Langfuse(
            public_key="pk-lf-test",
            secret_key="sk-lf-test",
            base_url=f"http://127.0.0.1:{port}",
            span_exporter=spans,
            tracing_enabled=True,
        )
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test", max_retries=0)
        for user, session, tags, prompts in (
            ("alice", "sess-1", ["support", "prod"], ["hi", "more"]),
            ("bob", "sess-2", ["batch"], ["extract this"]),
        ):
            for prompt in prompts:
                with (
                    lf.start_as_current_observation(name="ticket", as_type="span"),
                    propagate_attributes(
                        user_id=user, session_id=session, tags=tags, trace_name="triage", metadata={"team": "support"}
                    ),
                ):
                    client.chat.completions.create(
                        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], name="answer"
                    )
        lf.flush()
    finally:
        upstream.stop()
    observations = []
    for span in spans.get_finished_spans():
        a = dict(span.attributes or {})
        if a.get("langfuse.observation.type") != "generation":
            continue
        usage = flatten(json.loads(a["langfuse.observation.usage_details"]))
        cost = {k: v * PRICE[k] for k, v in usage.items() if k in PRICE}
        cost["total"] = sum(cost.values())
        meta = {k.split(".")[-1]: json.loads(v) for k, v in a.items() if k.startswith("langfuse.trace.metadata.")}
        observations.append(
            ObservationV2(
                id=format(span.context.span_id, "016x"),
                trace_id=format(span.context.trace_id, "032x"),
                start_time=datetime.fromtimestamp(span.start_time / 1e9, timezone.utc),
                end_time=datetime.fromtimestamp(span.end_time / 1e9, timezone.utc),
                project_id="demo-project",
                parent_observation_id=format(span.parent.span_id, "016x") if span.parent else None,
                type="GENERATION",
                name=span.name,
                level="DEFAULT",
                environment=a.get("langfuse.environment", "default"),
                user_id=a.get("user.id"),
                session_id=a.get("session.id"),
                trace_name=a.get("langfuse.trace.name"),
                tags=list(a.get("langfuse.trace.tags") or []),
                metadata=meta,
                model=a.get("langfuse.observation.model.name"),
                usage_details=usage,
                cost_details=cost,
                total_cost=cost["total"],
            )
        )
    observations.sort(key=lambda o: o.start_time, reverse=True)  # the API pages latest first
    page = ObservationsV2Response(data=observations, meta=ObservationsV2Meta(cursor=None))
    (HERE / "observations.json").write_text(page.json(indent=2) if hasattr(page, "json") else "")
    write_log(log, HERE / "upstream.jsonl")
    (HERE / "VERSIONS").write_text(f"langfuse {version('langfuse')}\nopenai {version('openai')}\n")


if __name__ == "__main__":
    main()
