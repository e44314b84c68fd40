"""The governor's own recorded JSONL, ``governor-trace/v1`` (docs/trace-format.md).

One call per ``record`` line (self-contained): the model replayed is the
``requested_model``, the time is ``check_ts`` (else ``ts``), the run is the
top-level ``run_id`` (else a run of its own per decision). A ``check`` line
with no ``record`` of the same decision was blocked or never settled: it has
no actual usage, so it is not replayed, but it is counted in the notes, never
dropped silently. A run's outcome is its last ``outcome`` line. An ``adjustment`` line (an
operator's raise, reset or resume the governor applied) is kept for replay, once per id.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from governor.ledger.base import Adjustment
from governor.traces._io import json_lines
from governor.traces.model import TraceCall, TraceRun
from governor.traces.registry import ImportContext, group_calls, register

FORMAT = "governor-trace/v1"
COUNTS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


def _count(rec: dict[str, Any], key: str) -> int:
    v = rec.get(key, 0)
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"field {key!r} must be a non-negative integer, got {v!r}")
    return v


class RecordedImporter:
    name = "governor"
    streams = True  # one run may continue in the next file
    description = "budget-governor recorded JSONL, governor-trace/v1 (record_to=)"

    def sniff(self, head: str) -> bool:
        first = head.lstrip().split("\n", 1)[0]
        return f'"{FORMAT}"' in first

    def read(self, file: str, text: str, ctx: ImportContext) -> Iterator[TraceRun]:
        calls: list[TraceCall] = []
        checks: dict[str, int] = {}
        recorded: set[str] = set()
        outcomes: dict[str, str] = {}
        for line, rec, err in json_lines(text):
            if err is not None:
                ctx.issue(file, line, err)
                continue
            if not isinstance(rec, dict):
                ctx.issue(file, line, "line is not a JSON object")
                continue
            event = rec.get("event")
            if event == "record":
                call = self._call(file, line, rec, ctx)
                if call is not None:
                    calls.append(call)
                    recorded.add(call.call_id)
            elif event == "check":
                if isinstance(rec.get("decision_id"), str):
                    checks[rec["decision_id"]] = line
            elif event == "adjustment":
                self._adjustment(file, line, rec, ctx)
            elif event == "outcome":
                if rec.get("run_id") is not None and isinstance(rec.get("outcome"), str):
                    outcomes[str(rec["run_id"])] = rec["outcome"]
                else:
                    ctx.issue(file, line, "outcome line without run_id or outcome")
            elif event != "header" and line != 1:
                pass  # unknown events are ignored by the format's rule
        unsettled = [d for d in checks if d not in recorded]
        if unsettled:
            ctx.note(
                f"{file}: {len(unsettled)} checked call(s) have no record line (blocked or never settled; "
                f"no usage to replay), first at line {checks[unsettled[0]]}"
            )
        yield from group_calls(calls, outcomes)

    @staticmethod
    def _adjustment(file: str, line: int, rec: dict[str, Any], ctx: ImportContext) -> None:
        """An operator's adjustment the governor applied (written once per id): kept for replay, once."""
        doc = rec.get("adjustment")
        try:
            if not isinstance(doc, dict):
                raise ValueError("field 'adjustment' must be an object")
            adj = Adjustment.from_dict(doc)
        except ValueError as exc:
            ctx.issue(file, line, str(exc))
            return
        ctx.state.setdefault("adjustments", {}).setdefault(adj.id, adj)

    def _call(self, file: str, line: int, rec: dict[str, Any], ctx: ImportContext) -> TraceCall | None:
        try:
            model = rec.get("requested_model") or rec.get("model")
            if not isinstance(model, str) or not model:
                raise ValueError("field 'requested_model' is missing")
            did = rec.get("decision_id")
            if not isinstance(did, str) or not did:
                raise ValueError("field 'decision_id' is missing")
            ts = rec.get("check_ts")
            if ts is None:
                ts = rec.get("ts")
            if isinstance(ts, bool) or not isinstance(ts, (int, float)):
                raise ValueError(f"field 'ts' must be epoch seconds, got {ts!r}")
            counts = [_count(rec, k) for k in COUNTS]
            cost = rec.get("cost_usd")
            if cost is not None and (isinstance(cost, bool) or not isinstance(cost, (int, float))):
                raise ValueError(f"field 'cost_usd' must be a number or null, got {cost!r}")
            meta = rec.get("metadata") or {}
            if not isinstance(meta, dict):
                raise ValueError("field 'metadata' must be an object")
            count = rec.get("message_count")
            if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
                raise ValueError(f"field 'message_count' must be a non-negative integer, got {count!r}")
        except ValueError as exc:
            ctx.issue(file, line, str(exc))
            return None
        run_id = rec.get("run_id", meta.get("run_id"))
        run_id = str(run_id) if run_id is not None else did
        meta = {**meta, "run_id": run_id}
        max_tokens = rec.get("requested_max_tokens")
        if max_tokens is None:
            max_tokens = rec.get("max_tokens")  # as sent (after clamps): the closest we have
        msgs = rec.get("messages")
        digest = rec.get("messages_digest")
        return TraceCall(
            call_id=did,
            file=file,
            line=line,
            run_id=run_id,
            index=0,
            timestamp=float(ts),
            model=model,
            input_tokens=counts[0],
            output_tokens=counts[1],
            cache_read_tokens=counts[2],
            cache_write_tokens=counts[3],
            reasoning_tokens=counts[4],
            cost_usd=None if cost is None else float(cost),
            error=rec.get("error") or None,
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
            metadata=meta,
            messages=tuple(m for m in msgs if isinstance(m, dict)) if isinstance(msgs, list) else None,
            messages_digest=digest if isinstance(digest, str) and digest else None,
            message_count=count,
            cost_model=sent if isinstance(sent := rec.get("model"), str) and sent and sent != model else None,
        )


register(RecordedImporter())
