"""Map each framework's usage report to the keyword arguments of ``Governor.record``.

Every integration ends a call by recording what it really used; the frameworks
report usage in six shapes (OpenAI/litellm chat, OpenAI Responses, Anthropic
Messages, LangChain ``usage_metadata``, pydantic-ai ``RequestUsage``, litellm's
``StandardLoggingPayload``); :func:`from_any_usage` tells the first three apart.
One normal form, as ``governor.pricing`` expects:
``input_tokens`` includes cached tokens, ``cache_read_tokens`` and
``cache_write_tokens`` are parts of it, ``reasoning_tokens`` is part of
``output_tokens``.

A call whose framework reports no usage is never recorded as free: the
integration falls back to :func:`estimated_usage` (the check's input count
plus an output estimate) and says so with ``Usage.estimated``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

CHARS_PER_TOKEN = 4  # rough output estimate when a framework reports no usage


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one finished call, in the governor's normal form."""

    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False
    cache_write_1h_tokens: int = 0  # the part of cache_write_tokens written with Anthropic's 1-hour TTL

    def as_kwargs(self) -> dict[str, int]:
        """The keyword arguments of ``Governor.record`` (``error`` aside)."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }


def _get(obj: Any, name: str) -> Any:
    """Attribute or key ``name`` of a pydantic model, dataclass or dict (None if absent)."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def from_chat_usage(usage: Any) -> Usage | None:
    """OpenAI / litellm chat-completions ``usage`` (object or dict); None if absent.

    litellm adds Anthropic-style ``cache_creation_input_tokens`` and
    ``cache_read_input_tokens`` beside OpenAI's ``prompt_tokens_details``.
    """
    if usage is None:
        return None
    prompt = _get(usage, "prompt_tokens")
    completion = _get(usage, "completion_tokens")
    if prompt is None and completion is None:
        return None
    prompt_details = _get(usage, "prompt_tokens_details")
    completion_details = _get(usage, "completion_tokens_details")
    cache_read = _int(_get(prompt_details, "cached_tokens")) or _int(_get(usage, "cache_read_input_tokens"))
    cache_write = _int(_get(usage, "cache_creation_input_tokens")) or _int(
        _get(prompt_details, "cache_creation_tokens")
    )
    return Usage(
        input_tokens=_int(prompt),
        output_tokens=_int(completion),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=_int(_get(completion_details, "reasoning_tokens")),
    )


def from_responses_usage(usage: Any) -> Usage | None:
    """OpenAI Responses-API / Agents SDK ``Usage`` (input/output tokens with details)."""
    if usage is None:
        return None
    inp = _get(usage, "input_tokens")
    out = _get(usage, "output_tokens")
    if inp is None and out is None:
        return None
    in_details = _get(usage, "input_tokens_details")
    return Usage(
        input_tokens=_int(inp),
        output_tokens=_int(out),
        cache_read_tokens=_int(_get(in_details, "cached_tokens")),
        cache_write_tokens=_int(_get(in_details, "cache_write_tokens")),
        reasoning_tokens=_int(_get(_get(usage, "output_tokens_details"), "reasoning_tokens")),
    )


def from_anthropic_usage(usage: Any) -> Usage | None:
    """Anthropic Messages ``usage`` (object or dict); None if absent.

    Anthropic's ``input_tokens`` excludes the cache: the normal form's input is
    ``input_tokens + cache_creation_input_tokens + cache_read_input_tokens``.
    ``cache_creation`` splits the writes by TTL (``ephemeral_5m_input_tokens``,
    ``ephemeral_1h_input_tokens``); the 1-hour part is kept as
    ``cache_write_1h_tokens``. A streamed ``message_delta`` usage carries the
    cumulative counts (``output_tokens`` always, the input counts when given).
    """
    if usage is None:
        return None
    fresh = _get(usage, "input_tokens")
    out = _get(usage, "output_tokens")
    if fresh is None and out is None:
        return None
    read = _int(_get(usage, "cache_read_input_tokens"))
    created = _get(usage, "cache_creation")
    five = _int(_get(created, "ephemeral_5m_input_tokens"))
    hour = _int(_get(created, "ephemeral_1h_input_tokens"))
    write = _int(_get(usage, "cache_creation_input_tokens")) or (five + hour)
    return Usage(
        input_tokens=_int(fresh) + read + write,
        output_tokens=_int(out),
        cache_read_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=hour,
    )


def from_any_usage(usage: Any) -> Usage | None:
    """A usage report of an unknown API (chat, Responses or Anthropic), told apart by its fields."""
    if usage is None:
        return None
    if _get(usage, "prompt_tokens") is not None or _get(usage, "completion_tokens") is not None:
        return from_chat_usage(usage)
    anthropic = any(
        _get(usage, key) is not None
        for key in ("cache_creation_input_tokens", "cache_read_input_tokens", "cache_creation")
    )
    if anthropic and _get(usage, "input_tokens_details") is None:
        return from_anthropic_usage(usage)
    return from_responses_usage(usage)


def from_langchain(usage_metadata: Mapping[str, Any] | None) -> Usage | None:
    """LangChain ``AIMessage.usage_metadata`` (``input_tokens`` already includes cache reads)."""
    if not usage_metadata:
        return None
    inp = usage_metadata.get("input_tokens")
    out = usage_metadata.get("output_tokens")
    if inp is None and out is None:
        return None
    in_details = usage_metadata.get("input_token_details") or {}
    out_details = usage_metadata.get("output_token_details") or {}
    return Usage(
        input_tokens=_int(inp),
        output_tokens=_int(out),
        cache_read_tokens=_int(in_details.get("cache_read")),
        cache_write_tokens=_int(in_details.get("cache_creation")),
        reasoning_tokens=_int(out_details.get("reasoning")),
    )


def from_pydantic_ai(usage: Any) -> Usage | None:
    """pydantic-ai ``RequestUsage`` of one model response."""
    if usage is None:
        return None
    details = _get(usage, "details") or {}
    reasoning = _int(_get(usage, "output_reasoning_tokens")) or _int(_get(details, "reasoning_tokens"))
    return Usage(
        input_tokens=_int(_get(usage, "input_tokens")),
        output_tokens=_int(_get(usage, "output_tokens")),
        cache_read_tokens=_int(_get(usage, "cache_read_tokens")),
        cache_write_tokens=_int(_get(usage, "cache_write_tokens")),
        reasoning_tokens=reasoning,
    )


def from_standard_logging(payload: Mapping[str, Any] | None) -> Usage | None:
    """litellm's ``StandardLoggingPayload`` (``kwargs["standard_logging_object"]``)."""
    if not payload:
        return None
    usage_object = _get(payload.get("metadata"), "usage_object")
    detailed = from_chat_usage(usage_object)
    if detailed is not None:
        return detailed
    if payload.get("prompt_tokens") is None and payload.get("completion_tokens") is None:
        return None
    return Usage(input_tokens=_int(payload.get("prompt_tokens")), output_tokens=_int(payload.get("completion_tokens")))


def estimate_tokens(text: str) -> int:
    """A rough token count of generated text (used only when no usage was reported)."""
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def estimated_usage(input_tokens: int, output_text: str = "") -> Usage:
    """Usage for a call whose framework reported none: never silently zero."""
    return Usage(input_tokens=input_tokens, output_tokens=estimate_tokens(output_text), estimated=True)
