"""The decision log: one JSON line per check, per record and per outcome.

Two outputs, both optional and independent:

* a log ``sink`` (``"stderr"``, ``"stdout"``, a path, an open text file, or
  None) written through a *dedicated* structlog logger with a JSONRenderer;
  structlog's global configuration is never touched;
* a trace recorder (``record_to=path``): the same records appended to a JSONL
  file in the project's own trace format, ``governor-trace/v1``
  (docs/trace-format.md), which ``governor replay`` reads back.

Prompt text is never written unless ``content=True`` (the policy's
``logging.content``). With neither output configured every method returns
at once, so a governor without a log pays nothing for it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Mapping, Sequence

from cachetools import LRUCache

from governor.decision import OUTCOMES, Decision
from governor.errors import GovernorError, TraceError

TRACE_FORMAT = "governor-trace/v1"
MAX_ERROR_CHARS = 300
CANONICAL_KEYS = ("run_id", "user", "team", "task", "agent", "workflow")

Sink = str | os.PathLike | IO[str] | None


def jsonable(obj: Any) -> Any:
    """JSON fallback: pydantic models, dataclasses, sets, mappings; else ``str(obj)``."""
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    return str(obj)


def _json_dumps(record: Any, **_: Any) -> str:
    return json.dumps(record, default=jsonable, ensure_ascii=False, separators=(",", ":"))


try:  # orjson, when installed, serialises a record ~10x faster than json
    import orjson as _orjson

    def _dumps(record: Any, **_: Any) -> str:
        try:
            return _orjson.dumps(record, default=jsonable).decode()
        except TypeError:  # e.g. non-string keys in free-form metadata
            return _json_dumps(record)

except ImportError:  # pragma: no cover - depends on the environment
    _dumps = _json_dumps


class TraceRecorder:
    """Appends records to a ``governor-trace/v1`` JSONL file, one line each, under a lock.

    A new (or empty) file gets the header line first. An existing file is
    appended to only if its first line is a ``governor-trace/v1`` header, so
    another file is never mixed into.
    """

    def __init__(self, path: str | os.PathLike, header: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        first, ends_cleanly = _inspect(self.path)
        if first is not None:
            try:
                fmt = json.loads(first).get("format")
            except (ValueError, AttributeError):
                fmt = None
            if fmt != TRACE_FORMAT:
                raise TraceError(
                    f"refusing to append: line 1 is not a {TRACE_FORMAT} header "
                    "(record_to must name a new file or an earlier governor trace)",
                    file=str(self.path),
                    line=1,
                )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8", buffering=1)  # line-buffered
        if first is None:
            self.write({"format": TRACE_FORMAT, "event": "header", **header})
        elif not ends_cleanly:  # a line cut short by a crash stays on its own line
            self._file.write("\n")

    def write(self, record: Mapping[str, Any]) -> None:
        line = _dumps(record) + "\n"
        with self._lock:
            if self._file.closed:
                raise TraceError("the trace recorder was closed (Governor.close()); nothing more is recorded", file=str(self.path))
            self._file.write(line)

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()


def _inspect(path: Path) -> tuple[str | None, bool]:
    """(first line, whether the file ends with a newline); (None, True) for a new or empty file."""
    try:
        with open(path, "rb") as f:
            first = f.readline()
            if not first:
                return None, True
            f.seek(-1, os.SEEK_END)
            return first.decode("utf-8", "replace").strip(), f.read(1) == b"\n"
    except FileNotFoundError:
        return None, True


class DecisionLog:
    """Writes decision records to a structlog sink and/or a trace file.

    The engine calls :meth:`check`, :meth:`record` and :meth:`outcome`; each
    returns the record it wrote (or None when the log is disabled), which
    tests and observers may inspect.
    """

    def __init__(
        self,
        sink: Sink = None,
        *,
        content: bool = False,
        record_to: str | os.PathLike | None = None,
        header: Mapping[str, Any] | None = None,
        pending_max: int = 65536,
    ) -> None:
        self.content = content
        self._owned: IO[str] | None = None
        self._logger = self._make_logger(sink) if sink is not None else None
        self._recorder = (
            TraceRecorder(record_to, {"content": content, "created": time.time(), **(header or {})}) if record_to is not None else None
        )
        self.enabled = self._logger is not None or self._recorder is not None
        # decision_id -> what the check saw of the request, until record(); bounded
        self._pending: LRUCache = LRUCache(maxsize=pending_max)
        self._pending_lock = threading.Lock()

    def _make_logger(self, sink: Sink) -> Any:
        import structlog

        if sink == "stderr":
            stream: IO[str] = sys.stderr
        elif sink == "stdout":
            stream = sys.stdout
        elif isinstance(sink, (str, os.PathLike)):
            Path(sink).parent.mkdir(parents=True, exist_ok=True)
            stream = self._owned = open(sink, "a", encoding="utf-8", buffering=1)
        else:
            stream = sink  # an open text stream
        return structlog.wrap_logger(
            structlog.WriteLogger(stream),
            processors=[structlog.processors.JSONRenderer(serializer=_dumps)],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            context_class=dict,
            cache_logger_on_first_use=True,
        )

    @property
    def recording(self) -> bool:
        return self._recorder is not None

    # -- records ------------------------------------------------------------
    def check(
        self,
        decision: Decision,
        *,
        ts: float,
        messages: Sequence[Mapping[str, Any]] | None = None,
        max_tokens: int | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any] | None:
        """Log one check. ``messages``, ``max_tokens`` and ``tools`` are what the caller
        *requested* (before trims and clamps); messages are written only with
        ``content=True``, tools only by name. They are kept (bounded) until the
        call's :meth:`record`, so that line is self-contained for replay."""
        if not self.enabled:
            return None
        rec = self._decision_fields("check", decision, ts)
        rec["requested_max_tokens"] = max_tokens
        tool_names = _tool_names(tools)
        if tool_names:
            rec["tools"] = tool_names
        rec["input_tokens"] = decision.input_tokens
        rec["input_tokens_estimated"] = decision.input_tokens_estimated
        rec["estimated_cost_usd"] = decision.estimated_cost_usd
        if decision.reasons:
            rec["reasons"] = list(decision.reasons)
        if decision.warnings:
            rec["warnings"] = list(decision.warnings)
        if decision.audit:
            rec["audit"] = [
                {"rule_id": a.rule_id, "would": a.would, "reason": a.reason, "model": a.model} for a in decision.audit
            ]
        if decision.block_kind:
            rec["block_kind"] = decision.block_kind
        self._add_messages(rec, decision, messages)
        if decision.verdict != "block":
            kept = rec.get("messages")
            with self._pending_lock:
                self._pending[decision.decision_id] = (ts, max_tokens, tool_names, rec["message_count"], kept)
        self._emit(rec)
        return rec

    def record(
        self,
        decision: Decision,
        *,
        ts: float,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        cost_usd: float | None,
        error: str | BaseException | None = None,
        check_ts: float | None = None,
    ) -> dict[str, Any] | None:
        """Log one settled call: actual tokens and cost. Self-contained (what the
        check saw of the request is carried over), so replay needs no other line.
        ``check_ts`` (when the call was checked) wins over the time kept from the check."""
        if not self.enabled:
            return None
        with self._pending_lock:
            pending = self._pending.pop(decision.decision_id, None)
        rec = self._decision_fields("record", decision, ts)
        seen_ts, req_max, tool_names, count, kept = pending or (None, None, None, len(decision.messages), None)
        rec["check_ts"] = check_ts if check_ts is not None else seen_ts
        rec["requested_max_tokens"] = req_max
        if tool_names:
            rec["tools"] = tool_names
        rec["estimated_input_tokens"] = decision.input_tokens
        rec["input_tokens"] = input_tokens
        rec["output_tokens"] = output_tokens
        rec["cache_read_tokens"] = cache_read_tokens
        rec["cache_write_tokens"] = cache_write_tokens
        rec["reasoning_tokens"] = reasoning_tokens
        rec["estimated_cost_usd"] = decision.estimated_cost_usd
        rec["cost_usd"] = cost_usd
        rec["error"] = None if error is None else _error_text(error)
        rec["message_count"] = count
        if decision.verdict == "trim":
            rec["sent_message_count"] = len(decision.messages)
        if self.content:
            rec["messages"] = kept if kept is not None else list(decision.messages)
        self._emit(rec)
        return rec

    def outcome(
        self,
        run_id: str,
        outcome: str,
        *,
        ts: float,
        policy: str = "",
        revision: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Log the outcome of a run (accepted | edited | rejected | escalated)."""
        if outcome not in OUTCOMES:
            raise GovernorError(f"unknown outcome {outcome!r}: expected one of {', '.join(OUTCOMES)}")
        if not self.enabled:
            return None
        rec: dict[str, Any] = {"event": "outcome", "ts": ts, "policy": policy, "revision": revision}
        rec["run_id"] = run_id
        rec["outcome"] = outcome
        if metadata:
            rec["metadata"] = dict(metadata)
        self._emit(rec)
        return rec

    # -- helpers ------------------------------------------------------------
    def _decision_fields(self, event: str, d: Decision, ts: float) -> dict[str, Any]:
        meta = d.metadata
        rec: dict[str, Any] = {
            "event": event,
            "ts": ts,
            "decision_id": d.decision_id,
            "policy": d.policy_name,
            "revision": d.revision,
            "verdict": d.verdict,
            "rule_ids": list(d.rule_ids),
            "requested_model": d.requested_model or d.model,
            "model": d.model,
            "max_tokens": d.max_tokens,
        }
        for key in CANONICAL_KEYS:
            value = meta.get(key)
            if value is not None:
                rec[key] = value
        if meta:
            rec["metadata"] = dict(meta)
        return rec

    def _add_messages(
        self, rec: dict[str, Any], d: Decision, messages: Sequence[Mapping[str, Any]] | None
    ) -> None:
        requested = messages if messages is not None else d.messages
        rec["message_count"] = len(requested)
        if d.verdict == "trim":
            rec["sent_message_count"] = len(d.messages)
        if self.content:
            rec["messages"] = list(requested)

    def _emit(self, rec: dict[str, Any]) -> None:
        if self._logger is not None:
            fields = dict(rec)
            event = fields.pop("event")
            self._logger.info(event, **fields)
        if self._recorder is not None:
            self._recorder.write(rec)

    def close(self) -> None:
        if self._recorder is not None:
            self._recorder.close()
        if self._owned is not None and not self._owned.closed:
            self._owned.close()

    def __enter__(self) -> "DecisionLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tool_names(tools: Sequence[Mapping[str, Any]] | None) -> list[str]:
    names: list[str] = []
    for tool in tools or ():
        fn = tool.get("function") if isinstance(tool, dict) else None
        name = (fn or tool).get("name") if isinstance(fn or tool, dict) else None
        if isinstance(name, str):
            names.append(name)
    return names


def _error_text(error: str | BaseException) -> str:
    """Error text, capped at MAX_ERROR_CHARS (provider errors may echo the request)."""
    if isinstance(error, BaseException):
        text = str(error)
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    else:
        text = str(error)
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."
