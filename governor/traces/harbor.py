"""Harbor trial directories and ATIF trajectories (Agent Trajectory Interchange Format, v1.x).

Counting rules (docs/replay.md):

- ATIF: a call is a ``source: agent`` step with ``metrics``; a step with
  ``llm_call_count: 0`` is a deterministic dispatch (no call), one with
  ``is_copied_context: true`` was copied from an earlier trajectory (not a
  new call), and one with ``llm_call_count > 1`` aggregates several calls
  that cannot be told apart (one call, noted). Embedded
  ``subagent_trajectories`` are read too, their calls labelled ``subagent``.
- Tokens: ``prompt_tokens`` includes ``cached_tokens`` (the cache read);
  cache writes are ``extra.cache_creation_input_tokens`` (1-hour part:
  ``extra.cache_creation.ephemeral_1h_input_tokens``); ``extra.reasoning_tokens``
  is part of ``completion_tokens``. A step's ``cost_usd`` is its recorded cost
  unless ``extra.cost_source`` says it is an estimate (Harbor's litellm
  estimate is computed, not paid).
- A Harbor trial directory (``result.json`` beside ``agent/``) is one run,
  named by its ``trial_name``, read once: every other file in it (the agent's
  raw session logs, ``agent/trajectory.json``, the stream-json stdout) holds
  the same calls again. The calls come from ``agent/trajectory.json``, else
  from the Claude Code or Codex session logs under ``agent/``. The outcome is
  ``verifier_result.rewards.reward`` (>= 1 accepted, else rejected; none:
  unknown); ``agent_result.cost_usd`` is the run's recorded cost
  (``TraceRun.metadata['cost_usd_recorded']``); agent and model come from
  ``config.agent`` / ``agent_info``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from governor.traces import _fields as f
from governor.traces._io import decode, load_document, read_bytes
from governor.traces.model import TraceCall, TraceRun
from governor.traces.registry import ImportContext, register

MAX_DEPTH = 8  # how far above a file its trial directory may be


def trial_dir_of(path: Path) -> Path | None:
    """The Harbor trial directory holding ``path`` (a directory with result.json and agent/), if any."""
    for parent in list(path.parents)[:MAX_DEPTH]:
        if (parent / "result.json").is_file() and (parent / "agent").is_dir():
            return parent
    return None


def _estimate(metrics: dict[str, Any]) -> bool:
    extra = metrics.get("extra")
    source = extra.get("cost_source") if isinstance(extra, dict) else None
    return isinstance(source, str) and "estimate" in source


class AtifImporter:
    name = "atif"
    streams = False
    description = "ATIF agent trajectories (Harbor, Terminal-Bench, NeMo Agent Toolkit): trajectory.json"

    def sniff(self, head: str) -> bool:
        return '"schema_version"' in head and '"ATIF-v' in head and '"steps"' in head

    def read(self, file: str, text: str, ctx: ImportContext) -> Iterator[TraceRun]:
        doc = load_document(text, file)
        run = read_trajectory(doc, file, ctx, run_id=None, run_meta={}, outcome=None)
        if run is not None:
            yield run


def read_trajectory(
    doc: Any,
    file: str,
    ctx: ImportContext,
    *,
    run_id: str | None,
    run_meta: dict[str, Any],
    outcome: str | None,
    fallback_ts: float = 0.0,
) -> TraceRun | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("steps"), list):
        ctx.issue(file, 0, "not an ATIF trajectory: no 'steps' list", where="steps")
        return None
    agent = _obj(doc.get("agent"))
    rid = run_id or f.text(doc.get("session_id")) or f.text(doc.get("trajectory_id")) or Path(file).parent.name
    meta = {"agent": f.text(agent.get("name")) or "atif", **run_meta}
    if f.text(agent.get("version")):
        meta.setdefault("client_version", agent["version"])
    raw: list[dict[str, Any]] = []
    _steps(doc, file, "", f.text(agent.get("model_name")), None, raw, ctx, fallback_ts)
    raw.sort(key=lambda c: c["timestamp"])
    calls = []
    for i, c in enumerate(raw):
        sub = c.pop("subagent")
        calls.append(
            TraceCall(
                call_id=f"{rid}#{i + 1}",
                file=file,
                line=0,
                run_id=rid,
                index=i,
                metadata={"run_id": rid, **meta, **({"subagent": sub} if sub else {})},
                **c,
            )
        )
    if not calls:
        return None
    return TraceRun(rid, tuple(calls), outcome, {**meta}, file)


def _steps(
    doc: dict[str, Any],
    file: str,
    prefix: str,
    model: str | None,
    subagent: str | None,
    out: list[dict[str, Any]],
    ctx: ImportContext,
    fallback_ts: float,
) -> None:
    agent = _obj(doc.get("agent"))
    model = f.text(agent.get("model_name")) or model
    last_ts = fallback_ts
    aggregated = 0
    for j, step in enumerate(doc.get("steps") or []):
        where = f"{prefix}steps[{j}]"
        if not isinstance(step, dict):
            ctx.issue(file, 0, "step is not an object", where=where)
            continue
        metrics = step.get("metrics")
        if step.get("source") != "agent" or metrics is None or step.get("llm_call_count") == 0:
            continue
        if step.get("is_copied_context") is True:
            continue
        try:
            if not isinstance(metrics, dict):
                raise ValueError("metrics must be an object")
            extra = _obj(metrics.get("extra"))
            prompt, cached, out_tokens = f.counts(
                metrics, "metrics", "prompt_tokens", "cached_tokens", "completion_tokens"
            )
            write = f.count(extra.get("cache_creation_input_tokens"), "metrics.extra.cache_creation_input_tokens")
            creation = _obj(extra.get("cache_creation"))
            w1 = f.count(
                creation.get("ephemeral_1h_input_tokens"), "metrics.extra.cache_creation.ephemeral_1h_input_tokens"
            )
            reasoning = f.count(extra.get("reasoning_tokens"), "metrics.extra.reasoning_tokens")
            if cached + write > prompt:
                raise ValueError(f"cached ({cached}) plus cache writes ({write}) exceed prompt_tokens ({prompt})")
            cost = None if _estimate(metrics) else f.cost(metrics.get("cost_usd"), "metrics.cost_usd")
            ts = f.timestamp(step["timestamp"], "timestamp") if step.get("timestamp") is not None else last_ts
            name = f.text(step.get("model_name")) or model
            if name is None:
                raise ValueError("no model_name on the step or the trajectory's agent")
        except ValueError as exc:
            ctx.issue(file, 0, str(exc), where=where)
            continue
        last_ts = ts
        if isinstance(step.get("llm_call_count"), int) and step["llm_call_count"] > 1:
            aggregated += 1
        step_extra = _obj(step.get("extra"))
        out.append(
            {
                "timestamp": ts,
                "model": name,
                "input_tokens": prompt,
                "output_tokens": out_tokens,
                "cache_read_tokens": cached,
                "cache_write_tokens": write,
                "cache_write_1h_tokens": min(w1, write),
                "reasoning_tokens": min(reasoning, out_tokens),
                "cost_usd": cost,
                "service_tier": f.text(extra.get("service_tier")),
                "speed": f.text(extra.get("speed")),
                "subagent": subagent
                or (f.text(step_extra.get("agent_id")) if step_extra.get("is_sidechain") else None),
            }
        )
    if aggregated:
        ctx.note(f"{file}: {aggregated} step(s) aggregate several LLM calls (llm_call_count > 1); each is one call")
    for k, sub in enumerate(doc.get("subagent_trajectories") or []):
        if isinstance(sub, dict):
            sub_name = f.text(sub.get("trajectory_id")) or f.text(sub.get("session_id")) or f"subagent[{k}]"
            _steps(sub, file, f"{prefix}subagent_trajectories[{k}].", model, sub_name, out, ctx, last_ts)


class HarborTrialImporter:
    name = "harbor"
    streams = False
    description = "Harbor trial directories (result.json, config.json, agent/trajectory.json or agent logs)"

    def sniff(self, head: str) -> bool:
        return '"trial_name"' in head and '"task_checksum"' in head

    def owner_of(self, path: Path) -> Path | None:
        trial = trial_dir_of(path)
        return None if trial is None else trial / "result.json"

    def read(self, file: str, text: str, ctx: ImportContext) -> Iterator[TraceRun]:
        doc = load_document(text, file)
        if not isinstance(doc, dict):
            ctx.issue(file, 0, "not a Harbor trial result object")
            return
        trial = Path(file).parent
        name = f.text(doc.get("trial_name")) or trial.name
        cfg_agent = _obj(_get(doc, "config", "agent"))
        info = _obj(doc.get("agent_info"))
        meta: dict[str, Any] = {
            "agent": f.text(cfg_agent.get("name")) or f.text(info.get("name")) or "harbor",
            "trial": name,
        }
        for key, value in (
            ("task", doc.get("task_name")),
            ("client_version", info.get("version")),
            ("configured_model", cfg_agent.get("model_name")),
        ):
            if f.text(value):
                meta[key] = value
        try:
            recorded = f.cost(_get(doc, "agent_result", "cost_usd"), "agent_result.cost_usd")
            start = f.timestamp(doc["started_at"], "started_at") if doc.get("started_at") else 0.0
        except ValueError as exc:
            ctx.issue(file, 0, str(exc))
            recorded, start = None, 0.0
        reward = _get(doc, "verifier_result", "rewards", "reward")
        outcome = None
        if isinstance(reward, (int, float)) and not isinstance(reward, bool):
            outcome = "accepted" if reward >= 1 else "rejected"
            meta["reward"] = reward
        if recorded is not None:
            meta["cost_usd_recorded"] = recorded
        run = self._calls(trial, name, meta, outcome, start, ctx)
        if run is None:
            ctx.note(f"{file}: trial {name} has no agent/trajectory.json or session logs with usage: no calls")
            return
        yield run

    def _calls(
        self, trial: Path, name: str, meta: dict[str, Any], outcome: str | None, start: float, ctx: ImportContext
    ) -> TraceRun | None:
        trajectory = trial / "agent" / "trajectory.json"
        if trajectory.is_file():
            doc = load_document(decode(read_bytes(trajectory), str(trajectory)), str(trajectory))
            return read_trajectory(
                doc, str(trajectory), ctx, run_id=name, run_meta=meta, outcome=outcome, fallback_ts=start
            )
        from dataclasses import replace

        from governor.traces.registry import load_traces  # the agent's own logs, when Harbor wrote no ATIF

        logs = sorted(p for p in (trial / "agent").rglob("*.jsonl*") if "subagents" not in p.parts)
        if not logs:
            return None
        inner = load_traces(logs, strict=ctx.strict)
        ctx.issues.extend(inner.issues)
        calls = [c for r in inner.runs for c in r.calls]
        if not calls:
            return None
        calls.sort(key=lambda c: c.timestamp)
        ordered = tuple(
            replace(c, run_id=name, index=i, metadata={**c.metadata, **meta, "run_id": name})
            for i, c in enumerate(calls)
        )
        return TraceRun(name, ordered, outcome, meta, str(trial / "result.json"))


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _get(obj: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(k)
    return obj


register(HarborTrialImporter())
register(AtifImporter())
