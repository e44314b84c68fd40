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

import logging
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from governor.decision import OUTCOMES, Decision
from governor.engine.trace_recorder import TRACE_FORMAT, MessagesDigest, TraceRecorder, dumps, jsonable
from governor.errors import GovernorError
from governor.ledger.base import Adjustment
from governor.redact import scrub

__all__ = ["TRACE_FORMAT", "DecisionLog", "jsonable"]

MAX_ERROR_CHARS = 300
CANONICAL_KEYS = ("run_id", "user", "team", "task", "agent", "workflow")

Sink = str | os.PathLike[str] | IO[str] | None


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
        record_to: str | os.PathLike[str] | None = None,
        header: Mapping[str, Any] | None = None,
        pending_max: int = 65536,
    ) -> None:
        self.content = content
        self._owned: IO[str] | None = None
        self._logger = self._make_logger(sink) if sink is not None else None
        self._recorder = (
            TraceRecorder(
                record_to,
                {"content": content, "created": time.time(), "governor_version": _version(), **(header or {})},
            )
            if record_to is not None
            else None
        )
        self.enabled = self._logger is not None or self._recorder is not None
        # decision_id -> what the check saw of the request, until record(); the oldest
        # goes first past pending_max. Each entry is written once and popped once, so
        # insertion order is LRU order: an OrderedDict does it in C (cachetools' LRUCache
        # took ~3 us of the two operations here; a plain dict's first key is O(n) to
        # find after many deletions)
        self._pending: OrderedDict[str, tuple[Any, ...]] = OrderedDict()
        self._pending_max = pending_max
        self._pending_lock = threading.Lock()
        self._digest = MessagesDigest() if self.enabled else None
        self._adjustments: OrderedDict[str, None] = OrderedDict()  # adjustment ids written (each once), bounded

    def _make_logger(self, sink: Sink) -> Any:
        import structlog

        if sink == "stderr":
            stream: IO[str] = sys.stderr
        elif sink == "stdout":
            stream = sys.stdout
        elif isinstance(sink, (str, os.PathLike)):
            Path(sink).parent.mkdir(parents=True, exist_ok=True)
            stream = open(sink, "a", encoding="utf-8", buffering=1)
            self._owned = stream
        else:
            stream = sink  # type: ignore[assignment]  # an open text stream (None is handled by the caller)
        return structlog.wrap_logger(
            structlog.WriteLogger(stream),  # type: ignore[arg-type]  # any text stream with write() and flush()
            processors=[structlog.processors.JSONRenderer(serializer=dumps)],
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
        hashes: Sequence[int] | None = None,
    ) -> dict[str, Any] | None:
        """Log one check. ``messages``, ``max_tokens`` and ``tools`` are what the caller
        *requested* (before trims and clamps); messages are written only with
        ``content=True``, tools only by name. They are kept (bounded) until the
        call's :meth:`record`, so that line is self-contained for replay. ``hashes``
        (``message_hash`` of each of ``messages``, when the caller has them) save
        hashing them again for the digest."""
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
        if decision.warnings:  # a store's error (in "store is down" warnings) can carry its URL's password
            rec["warnings"] = [scrub(w) for w in decision.warnings]
        if decision.audit:
            rec["audit"] = [
                {"rule_id": a.rule_id, "would": a.would, "reason": a.reason, "model": a.model} for a in decision.audit
            ]
        if decision.block_kind:
            rec["block_kind"] = decision.block_kind
            rec["blocked_by"] = decision.blocked_by
        if decision.adjustments:
            rec["adjustments"] = list(decision.adjustments)
        self._add_messages(rec, decision, messages, hashes)
        if decision.verdict != "block":
            kept = rec.get("messages")
            entry = (ts, max_tokens, tool_names, rec["message_count"], rec.get("messages_digest"), kept)
            pending = self._pending
            with self._pending_lock:
                if len(pending) >= self._pending_max:
                    pending.popitem(last=False)
                pending[decision.decision_id] = entry
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
        overrun: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Log one settled call: actual tokens and cost. Self-contained (what the
        check saw of the request is carried over), so replay needs no other line.
        ``check_ts`` (when the call was checked) wins over the time kept from the check.
        ``overrun`` ({usd, tokens} above the reservation) is written when the call overran it."""
        if not self.enabled:
            return None
        with self._pending_lock:
            pending = self._pending.pop(decision.decision_id, None)
        rec = self._decision_fields("record", decision, ts)
        seen_ts, req_max, tool_names, count, digest, kept = pending or (
            None,
            None,
            None,
            len(decision.messages),
            None,
            None,
        )
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
        if overrun is not None:
            rec["overrun"] = dict(overrun)
        rec["message_count"] = count
        if digest is not None:
            rec["messages_digest"] = digest
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

    def adjustment(
        self, adjustment: Adjustment, *, ts: float, policy: str = "", revision: str = ""
    ) -> dict[str, Any] | None:
        """Log an operator's adjustment the first time it changes a decision of this log (once per id): who,
        when, why and by how much, so a trace read later (replay, ``governor status --trace``) shows it."""
        if not self.enabled:
            return None
        with self._pending_lock:
            if adjustment.id in self._adjustments:
                return None
            self._adjustments[adjustment.id] = None
            if len(self._adjustments) > 4096:
                self._adjustments.popitem(last=False)
        rec: dict[str, Any] = {"event": "adjustment", "ts": ts, "policy": policy, "revision": revision}
        rec["adjustment"] = {k: (scrub(v) if isinstance(v, str) else v) for k, v in adjustment.as_dict().items()}
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
        self,
        rec: dict[str, Any],
        d: Decision,
        messages: Sequence[Mapping[str, Any]] | None,
        hashes: Sequence[int] | None = None,
    ) -> None:
        requested = messages if messages is not None else d.messages
        rec["message_count"] = len(requested)
        if requested and self._digest is not None:
            rec["messages_digest"] = self._digest(requested, hashes if messages is not None else None)
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

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _version() -> str:
    from governor import __version__

    return __version__


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
    text = scrub(text)  # a provider's error can echo the key it was given
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."
