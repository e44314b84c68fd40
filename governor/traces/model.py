"""Normalised trace values every importer produces and replay consumes.

Importers turn each source format into these frozen values, so replay, reports
and diagnostics never know which format a call came from. Token counts follow
the project's accounting: ``input_tokens`` includes cached tokens,
``cache_read_tokens`` / ``cache_write_tokens`` are the parts of it billed at
cache rates (``cache_write_1h_tokens`` the part of the writes with the 1-hour
TTL), ``reasoning_tokens`` the part of ``output_tokens`` billed as reasoning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from governor.ledger.base import Adjustment
from governor.pricing import CallUsage


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
    cache_write_1h_tokens: int = 0  # the part of cache_write_tokens written with the 1-hour TTL
    service_tier: str | None = None  # flex | priority | batch (None: standard), as the provider reported it
    speed: str | None = None  # Anthropic fast mode ("fast"); None: standard
    inference_geo: str | None = None  # data residency region (e.g. "us"); None: global
    cost_model: str | None = None  # the model cost_usd was paid for, when not ``model`` (a routed call's)

    @property
    def paid_model(self) -> str:
        """The model that served the recorded call (and was paid for)."""
        return self.cost_model or self.model

    def usage(self) -> CallUsage:
        """The recorded usage, as ``governor.pricing`` prices it."""
        return CallUsage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
            cache_write_1h_tokens=self.cache_write_1h_tokens,
            reasoning_tokens=self.reasoning_tokens,
            service_tier=self.service_tier,
            speed=self.speed,
            inference_geo=self.inference_geo,
        )

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
    cost_usd: float | None = None  # what the source recorded for the whole run, where it records cost per run

    @property
    def recorded_cost(self) -> float | None:
        """The cost recorded for the whole run: ``cost_usd``, else ``metadata["cost_usd_recorded"]``
        (Harbor's ``agent_result.cost_usd``); None when the source records none per run."""
        if self.cost_usd is not None:
            return self.cost_usd
        whole = self.metadata.get("cost_usd_recorded")
        return float(whole) if isinstance(whole, (int, float)) and not isinstance(whole, bool) else None


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
    skipped_files: tuple[str, ...] = ()  # files that could not be parsed at all (each also among issues)
    adjustments: tuple[Adjustment, ...] = ()  # operators' adjustments a governor trace recorded, once per id

    @property
    def calls(self) -> int:
        return sum(len(r.calls) for r in self.runs)


def _location(file: str, line: int, where: str) -> str:
    text = f"{file}:{line}" if line else file
    return f"{text}:{where}" if where else text
