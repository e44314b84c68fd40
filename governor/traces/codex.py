"""Codex CLI rollouts (``$CODEX_HOME/sessions/YYYY/MM/DD/rollout-*.jsonl``).

Counting rules (docs/replay.md):

- A call is a ``token_count`` event (``event_msg`` with ``payload.type:
  token_count``) whose cumulative ``info.total_token_usage`` grew: the call's
  usage is the growth since the previous event. Codex re-emits the event with
  unchanged totals (after tool output, on rate-limit updates, with ``info:
  null``): those are not calls.
- The first event of a file whose total differs from its ``last_token_usage``
  carries history this file does not hold (a fork starts from its parent's
  totals; a resume in a new file from the earlier file's): its call is
  ``last_token_usage``. Counters that go down (a reset) also take
  ``last_token_usage``. Every event is counted once per load by its time and
  totals, so a fork that copies the parent's lines counts none of them again.
- Tokens: ``input_tokens`` includes ``cached_input_tokens`` (the cache read);
  ``reasoning_output_tokens`` is part of ``output_tokens``;
  ``cache_write_input_tokens`` when present.
- The model is the latest ``turn_context.model`` (else ``session_meta``'s);
  the run is the session id from ``session_meta`` (a fork is its own run with
  ``parent_run_id``, a resume appends to its run). Metadata: ``project``
  (cwd), ``git_branch``, ``client_version``, ``originator``, ``agent: codex``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from governor.traces import _fields as f
from governor.traces._io import json_lines
from governor.traces.model import TraceCall, TraceRun
from governor.traces.registry import ImportContext, register

AGENT = "codex"
SEEN = "codex.events"
KEYS = ("input_tokens", "cached_input_tokens", "cache_write_input_tokens", "output_tokens", "reasoning_output_tokens")


def usage_counts(obj: Any, name: str) -> tuple[int, ...]:
    if not isinstance(obj, dict):
        raise ValueError(f"{name} must be an object")
    return f.counts(obj, name, *KEYS)


def token_count_delta(
    prev: tuple[int, ...] | None, total: tuple[int, ...], last: tuple[int, ...] | None
) -> tuple[int, ...] | None:
    """The call a ``token_count`` event with cumulative ``total`` (and ``last_token_usage`` ``last``) stands
    for, after an event with ``prev`` (None: the file's first); None when it is a re-emission, not a call."""
    if prev is None:
        return last if last is not None and last != total else total
    if total == prev:
        return None  # re-emitted with unchanged totals
    if any(t < q for t, q in zip(total, prev, strict=True)):
        return last  # counters reset: the event's own call
    return tuple(t - q for t, q in zip(total, prev, strict=True))


def usage_record(payload: dict[str, Any]) -> tuple[str | None, tuple[int, ...]]:
    """``(response id, usage)`` of a ``token_usage_record`` line (Codex 0.171+: one per model response,
    written before the response's tools run); ValueError naming the field when its usage is not counts."""
    return f.text(payload.get("response_id")), usage_counts(payload.get("usage"), "payload.usage")


class CodexImporter:
    name = "codex"
    streams = True  # a resumed session appends to its rollout, or continues in a new one
    description = "Codex CLI rollouts ($CODEX_HOME/sessions/YYYY/MM/DD/rollout-*.jsonl)"

    def sniff(self, head: str) -> bool:
        first = head.lstrip().split("\n", 1)[0]
        return '"payload"' in first and (
            '"session_meta"' in first
            or '"turn_context"' in first
            or '"event_msg"' in first
            or '"response_item"' in first
        )

    def read(self, file: str, text: str, ctx: ImportContext) -> Iterator[TraceRun]:
        seen = ctx.seen(SEEN)
        run_id: str | None = None
        meta: dict[str, Any] = {}
        model: str | None = None
        prev: tuple[int, ...] | None = None
        calls: list[TraceCall] = []
        bad: list[tuple[int, str]] = []  # reported one by one, unless no line of the file is a rollout line
        rollout_lines = 0
        for line, rec, err in json_lines(text):
            if err is not None:
                bad.append((line, err))
                continue
            if not isinstance(rec, dict) or not isinstance(rec.get("payload"), dict):
                bad.append((line, "line is not a JSON object with a 'payload' object"))
                continue
            rollout_lines += 1
            kind, p = rec.get("type"), rec["payload"]
            if kind == "session_meta":
                if run_id is None:
                    run_id = f.text(p.get("id")) or f.text(p.get("session_id"))
                    meta.update(self._session_meta(p))
                    model = model or f.text(p.get("model"))
                continue
            if kind == "turn_context":
                model = f.text(p.get("model")) or model
                continue
            if kind != "event_msg" or p.get("type") != "token_count" or p.get("info") is None:
                continue
            try:
                info = p["info"]
                if not isinstance(info, dict):
                    raise ValueError("payload.info must be an object")
                total = usage_counts(info.get("total_token_usage"), "payload.info.total_token_usage")
                last = (
                    usage_counts(info.get("last_token_usage"), "payload.info.last_token_usage")
                    if info.get("last_token_usage") is not None
                    else None
                )
                ts = f.timestamp(rec.get("timestamp"))
            except ValueError as exc:
                ctx.issue(file, line, str(exc))
                continue
            key = (ts, total)
            delta = token_count_delta(prev, total, last)
            prev = total
            if delta is None or not any(delta) or key in seen:
                continue
            seen.add(key)
            inp, cached, cw, out, reasoning = delta
            rid = run_id or Path(file).name
            calls.append(
                TraceCall(
                    call_id=f"{rid}#{len(calls) + 1}",
                    file=file,
                    line=line,
                    run_id=rid,
                    index=len(calls),
                    timestamp=ts,
                    model=model or "unknown",
                    input_tokens=inp,
                    output_tokens=out,
                    cache_read_tokens=min(cached, inp),
                    cache_write_tokens=min(cw, max(inp - cached, 0)),
                    reasoning_tokens=min(reasoning, out),
                    metadata={"run_id": rid, "agent": AGENT, **meta},
                )
            )
            if model is None:
                ctx.note(f"{file}:{line}: token_count before any turn_context names a model: model 'unknown'")
        if rollout_lines == 0 and bad:
            ctx.issue(
                file,
                0,
                f"no Codex rollout line (an object with a 'payload') in {len(bad)} line(s): not a "
                "rollout, or a rollout of an old Codex that kept no token counts",
            )
        else:
            for line, message in bad:
                ctx.issue(file, line, message)
        if calls:
            yield TraceRun(calls[0].run_id, tuple(calls), None, dict(meta), file)

    @staticmethod
    def _session_meta(p: dict[str, Any]) -> dict[str, Any]:
        meta: dict[str, Any] = {}
        for key, name in (
            ("cwd", "project"),
            ("cli_version", "client_version"),
            ("originator", "originator"),
            ("forked_from_id", "parent_run_id"),
            ("model_provider", "model_provider"),
        ):
            value = f.text(p.get(key))
            if value is not None:
                meta[name] = value
        git = p.get("git")
        if isinstance(git, dict) and f.text(git.get("branch")):
            meta["git_branch"] = git["branch"]
        return meta


register(CodexImporter())
