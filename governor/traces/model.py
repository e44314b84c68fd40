"""Normalised trace values every importer produces and replay consumes.

Importers turn each source format into these frozen values, so replay, reports
and diagnostics never know which format a call came from. Token counts follow
the project's accounting: ``input_tokens`` includes cached tokens,
``cache_read_tokens`` / ``cache_write_tokens`` are the parts of it billed at
cache rates (``cache_write_1h_tokens`` the part of the writes with the 1-hour
TTL), ``reasoning_tokens`` the part of ``output_tokens`` billed as reasoning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence


@dataclass(frozen=True, slots=True)
class TraceCall:
    """One recorded LLM call, as replay needs it."""

    call_id: str  # stable id within the import (source id, or "<run>#<index>")
    file: str
    line: int  # 1-based line of a JSON Lines file, or record index in a JSON file
    run_id: str
    index: int  # 0-based position of the call within its run
    timestamp: float  # epoch seconds (UTC)
    model: str  # the requested model
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None  # what the trace says was paid; None when absent
    error: str | None = None
    retry_group: str | None = None  # calls sharing it are retries/fallbacks of one request
    max_tokens: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    messages: Sequence[Mapping[str, Any]] | None = None  # the prompt, when the trace kept it
    where: str = ""  # record path inside a JSON file (e.g. "simulations[3].messages[7]")
    messages_digest: str | None = None  # a digest of the prompt when the trace kept no text (repeated_call)
    message_count: int | None = None  # how many messages the prompt had, when the trace kept no text
    cache_write_1h_tokens: int = 0  # the part of cache_write_tokens written with the 1-hour TTL (Anthropic)
    service_tier: str | None = None  # as the provider reported it (standard, priority, flex, batch)
    speed: str | None = None  # Anthropic's fast mode ("fast"); None or "standard" otherwise

    def location(self) -> str:
        """``file:line`` (or ``file:where``) for messages pointing back at the source."""
        return _location(self.file, self.line, self.where)


@dataclass(frozen=True, slots=True)
class TraceRun:
    """The calls of one run (an agent task attempt, a conversation), in time order."""

    run_id: str
    calls: tuple[TraceCall, ...]
    outcome: str | None = None  # accepted | edited | rejected | escalated | None (unknown)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    file: str = ""


@dataclass(frozen=True, slots=True)
class TraceIssue:
    """A record that could not be read: where it is and why. Skipped records are counted, never lost."""

    file: str
    line: int  # 1-based line, or 0 when ``where`` locates it
    message: str
    where: str = ""

    def location(self) -> str:
        return _location(self.file, self.line, self.where)

    def __str__(self) -> str:
        return f"{self.location()}: {self.message}"


@dataclass(frozen=True, slots=True)
class TraceSet:
    """Everything read from a set of trace files: runs, plus what was skipped and why."""

    runs: tuple[TraceRun, ...]
    issues: tuple[TraceIssue, ...] = ()
    formats: Mapping[str, str] = field(default_factory=dict)  # file -> format name
    notes: tuple[str, ...] = ()  # not errors, but worth saying (e.g. recorded calls without usage)

    @property
    def calls(self) -> int:
        return sum(len(r.calls) for r in self.runs)


def _location(file: str, line: int, where: str) -> str:
    text = f"{file}:{line}" if line else file
    return f"{text}:{where}" if where else text
