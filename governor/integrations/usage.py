"""Map each provider's and framework's usage report to one normal form (``Usage``).

Every integration and importer ends a call by recording what it really used;
usage arrives in these shapes: OpenAI/litellm chat, OpenAI Responses,
Anthropic Messages, Gemini ``usage_metadata``, LangChain ``usage_metadata``,
pydantic-ai ``RequestUsage`` and litellm's ``StandardLoggingPayload``;
:func:`from_any_usage` tells chat, Responses and Anthropic apart. The
normal form, as ``governor.pricing`` prices it:

* ``input_tokens`` includes cached tokens (Anthropic's ``input_tokens``
  excludes cache reads and writes, OpenAI's ``prompt_tokens`` includes them);
* ``cache_read_tokens`` and ``cache_write_tokens`` are parts of it, and
  ``cache_write_1h_tokens`` is the part of the writes made with the 1-hour TTL
  (billed at 2x input on Anthropic, against 1.25x for 5-minute writes);
* ``reasoning_tokens`` is part of ``output_tokens`` (Gemini reports thoughts
  apart from output: they are added to it);
* ``service_tier`` (``flex``, ``priority``, ``batch``...), ``speed``
  (Anthropic's fast mode) and ``inference_geo`` (data residency) select the
  rate where the provider bills them differently.

A call whose framework reports no usage is never recorded as free: the
integration falls back to :func:`estimated_usage` (the check's input count
plus an output estimate) and says so with ``Usage.estimated``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CHARS_PER_TOKEN = 4  # rough output estimate when a framework reports no usage


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one finished call, in the governor's normal form."""

    input_tokens: int
    """All input tokens, cached ones included."""
    output_tokens: int
    """All output tokens, reasoning (thinking) tokens included."""
    cache_read_tokens: int = 0
    """The part of ``input_tokens`` read from the prompt cache."""
    cache_write_tokens: int = 0
    """The part of ``input_tokens`` written to the prompt cache (5-minute and 1-hour writes together)."""
    reasoning_tokens: int = 0
    """The part of ``output_tokens`` spent on reasoning."""
    estimated: bool = False
    """True when the framework reported no usage and the counts are the governor's estimate."""
    cache_write_1h_tokens: int = 0
    """The part of ``cache_write_tokens`` written with the 1-hour TTL."""
    service_tier: str | None = None
    """The provider's service tier of the response (``flex``, ``priority``, ``batch``; None: standard)."""
    speed: str | None = None
    """Anthropic's ``usage.speed`` (``fast`` for fast mode; None: standard)."""
    inference_geo: str | None = None
    """Anthropic's ``usage.inference_geo`` (data residency, e.g. ``us``; None or ``global``: standard)."""

    def as_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``Governor.record`` (``error`` aside)."""
        kwargs: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }
        if self.cache_write_1h_tokens:
            kwargs["cache_write_1h_tokens"] = self.cache_write_1h_tokens
        for name in ("service_tier", "speed", "inference_geo"):
            value = getattr(self, name)
            if value is not None:
                kwargs[name] = value
        return kwargs


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


def normal_tier(value: Any) -> str | None:
    """A service tier, speed or geo as text; the standard ones ("default", "standard", "auto") as None."""
    if value is None or not isinstance(value, str) or not value:
        return None
    low = value.lower()
    return None if low in _STANDARD else low


_STANDARD = frozenset({"default", "standard", "auto", "global", "standard_only"})


def _cache_1h(usage: Any, details: Any = None) -> int:
    """Anthropic's 1-hour cache writes: ``cache_creation.ephemeral_1h_input_tokens`` (litellm:
    ``cache_creation_token_details``)."""
    for holder in (
        _get(usage, "cache_creation"),
        _get(usage, "cache_creation_token_details"),
        _get(details, "cache_creation_token_details"),
    ):
        n = _int(_get(holder, "ephemeral_1h_input_tokens"))
        if n:
            return n
    return 0


def from_chat_usage(usage: Any, *, service_tier: Any = None) -> Usage | None:
    """OpenAI / litellm chat-completions ``usage`` (object or dict); None if absent.

    ``prompt_tokens`` includes cached tokens (``prompt_tokens_details.cached_tokens``).
    litellm adds Anthropic-style ``cache_creation_input_tokens`` and
    ``cache_read_input_tokens`` (and ``cache_creation_token_details`` with the
    5m/1h split) beside OpenAI's details. ``service_tier`` is the response's
    (OpenAI puts it on the response, not in ``usage``).
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
        cache_write_1h_tokens=min(_cache_1h(usage, prompt_details), cache_write),
        service_tier=normal_tier(service_tier if service_tier is not None else _get(usage, "service_tier")),
        speed=normal_tier(_get(usage, "speed")),  # litellm carries Anthropic's speed and geo on its Usage
        inference_geo=normal_tier(_get(usage, "inference_geo")),
    )


def from_anthropic_usage(usage: Any) -> Usage | None:
    """Anthropic Messages ``usage`` (the SDK's ``Usage`` object or the wire JSON); None if absent.

    Anthropic's ``input_tokens`` excludes the cache: the normal form's input is
    ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``.
    ``cache_creation.ephemeral_1h_input_tokens`` is the 1-hour part of the
    writes; ``service_tier`` (``standard``, ``priority``, ``batch``), ``speed``
    (``fast``) and ``inference_geo`` select the rate. Thinking tokens are part
    of ``output_tokens`` and not reported apart (``output_tokens_details``
    where present). A streamed ``message_delta`` usage carries the cumulative
    counts (``output_tokens`` always, the input counts when given).
    """
    if usage is None:
        return None
    inp = _get(usage, "input_tokens")
    out = _get(usage, "output_tokens")
    if inp is None and out is None:
        return None
    cache_read = _int(_get(usage, "cache_read_input_tokens"))
    creation = _get(usage, "cache_creation")
    w5 = _int(_get(creation, "ephemeral_5m_input_tokens"))
    w1 = _int(_get(creation, "ephemeral_1h_input_tokens"))
    cache_write = _int(_get(usage, "cache_creation_input_tokens")) or (w5 + w1)
    details = _get(usage, "output_tokens_details")
    reasoning = _int(_get(details, "thinking_tokens")) or _int(_get(details, "reasoning_tokens"))
    return Usage(
        input_tokens=_int(inp) + cache_read + cache_write,
        output_tokens=_int(out),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=min(reasoning, _int(out)),
        cache_write_1h_tokens=min(w1, cache_write),
        service_tier=normal_tier(_get(usage, "service_tier")),
        speed=normal_tier(_get(usage, "speed")),
        inference_geo=normal_tier(_get(usage, "inference_geo")),
    )


def from_gemini_usage(usage: Any) -> Usage | None:
    """Gemini ``usage_metadata`` (``GenerateContentResponse.usage_metadata`` or its JSON, camelCase too).

    ``prompt_token_count`` includes ``cached_content_token_count``;
    ``candidates_token_count`` excludes ``thoughts_token_count``, which the
    normal form counts as output (and as its reasoning part).
    """
    if usage is None:
        return None

    def field(snake: str) -> Any:
        value = _get(usage, snake)
        if value is None:
            head, *rest = snake.split("_")
            value = _get(usage, head + "".join(w.title() for w in rest))
        return value

    prompt = field("prompt_token_count")
    candidates = field("candidates_token_count")
    if prompt is None and candidates is None:
        return None
    thoughts = _int(field("thoughts_token_count"))
    tool_prompt = _int(field("tool_use_prompt_token_count"))
    return Usage(
        input_tokens=_int(prompt) + tool_prompt,
        output_tokens=_int(candidates) + thoughts,
        cache_read_tokens=min(_int(field("cached_content_token_count")), _int(prompt)),
        reasoning_tokens=thoughts,
    )


def from_responses_usage(usage: Any, *, service_tier: Any = None) -> Usage | None:
    """OpenAI Responses-API / Agents SDK ``Usage`` (``input_tokens`` includes ``cached_tokens``;
    ``output_tokens`` includes ``reasoning_tokens``); ``service_tier`` is the response's."""
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
        service_tier=normal_tier(service_tier),
    )


def from_any_usage(usage: Any, *, service_tier: Any = None) -> Usage | None:
    """A usage report of an unknown API (chat, Responses or Anthropic), told apart by its fields;
    ``service_tier`` is the response's, where the API puts it there (OpenAI)."""
    if usage is None:
        return None
    if _get(usage, "prompt_tokens") is not None or _get(usage, "completion_tokens") is not None:
        return from_chat_usage(usage, service_tier=service_tier)
    anthropic = any(
        _get(usage, key) is not None
        for key in ("cache_creation_input_tokens", "cache_read_input_tokens", "cache_creation")
    )
    if anthropic and _get(usage, "input_tokens_details") is None:
        return from_anthropic_usage(usage)
    return from_responses_usage(usage, service_tier=service_tier)


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
    cache_write = _int(in_details.get("cache_creation"))
    return Usage(
        input_tokens=_int(inp),
        output_tokens=_int(out),
        cache_read_tokens=_int(in_details.get("cache_read")),
        cache_write_tokens=cache_write,
        reasoning_tokens=_int(out_details.get("reasoning")),
        # langchain-anthropic reports the 1-hour writes under their Anthropic name
        cache_write_1h_tokens=min(_int(in_details.get("ephemeral_1h_input_tokens")), cache_write),
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
    hidden = payload.get("hidden_params") or {}
    detailed = from_chat_usage(usage_object, service_tier=_get(hidden, "service_tier"))
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
