"""The one way an SDK adapter governs a call of any API shape: read, check, send as decided, settle.

Used by the OpenAI and Anthropic client wrappers and ``GovernedLiteLLM`` for
every shape but the chat-completions paths they already had: ``create`` for a
plain or ``stream=True`` call, ``stream`` for the SDK's helper streams
(``responses.stream``, ``messages.stream``). A block raises the ``CallBlocked``
subclass of the decision before anything is sent; an error of the call is
recorded and re-raised; a stream records when it ends (see ``_event_stream``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from governor.decision import Decision
from governor.integrations._chat_stream import with_usage_option
from governor.integrations._common import block_error
from governor.integrations._event_stream import (
    AsyncGovernedEventStream,
    AsyncGovernedStreamManager,
    GovernedEventStream,
    GovernedStreamManager,
)
from governor.integrations.shapes import Call, decided_request, read_call
from governor.integrations.usage import (
    Usage,
    estimated_usage,
    from_anthropic_usage,
    from_chat_usage,
    from_responses_usage,
)

API_KEY = "api"  # metadata naming the call's API shape, in the decision log and for match conditions


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _output_text(shape: str, response: Any) -> str:
    try:
        if shape == "responses":
            text = _get(response, "output_text")
            if isinstance(text, str):
                return text
            return "".join(
                str(_get(part, "text") or "")
                for item in _get(response, "output") or ()
                for part in (_get(item, "content") or ())
            )
        if shape == "messages":
            return "".join(str(_get(block, "text") or "") for block in _get(response, "content") or ())
        if shape == "completions":
            return str(_get(_get(response, "choices")[0], "text") or "")
    except (AttributeError, IndexError, TypeError, KeyError):
        pass
    return ""


USAGE_READERS: Mapping[str, Callable[[Any], Usage | None]] = {
    "responses": from_responses_usage,
    "messages": from_anthropic_usage,
    "completions": from_chat_usage,
    "embeddings": from_chat_usage,
    "chat": from_chat_usage,
}


def response_usage(shape: str, response: Any, decision: Decision) -> Usage:
    """The usage a response of ``shape`` reports, or an estimate (never zero-cost by omission)."""
    found = USAGE_READERS[shape](_get(response, "usage"))
    if found is not None and (found.input_tokens or found.output_tokens):
        return found
    return estimated_usage(decision.input_tokens, _output_text(shape, response))


def _metadata(shape: str, governor_metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    out = dict(governor_metadata or {})
    out[API_KEY] = shape
    return out


def _decided(call: Call, decision: Decision, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    request = decided_request(call, decision, kwargs)
    if call.stream and call.shape in ("chat", "completions"):
        with_usage_option(request)  # the final chunk carries the usage
    return request


class GovernedCall:
    """One API shape of one SDK resource governed: ``create`` (plain or ``stream=True``) and ``stream``."""

    def __init__(self, shape: str, governor: Any, *, stop_at_cap: bool = False) -> None:
        self.shape = shape
        self.governor = governor
        self.stop_at_cap = stop_at_cap

    def check(self, kwargs: Mapping[str, Any], governor_metadata: Mapping[str, Any] | None) -> tuple[Call, Decision]:
        call = read_call(self.shape, kwargs)
        decision = self.governor.check(**call.check_kwargs(), metadata=_metadata(self.shape, governor_metadata))
        if decision.blocked:
            raise block_error(decision)
        return call, decision

    async def acheck(
        self, kwargs: Mapping[str, Any], governor_metadata: Mapping[str, Any] | None
    ) -> tuple[Call, Decision]:
        call = read_call(self.shape, kwargs)
        decision = await self.governor.acheck(**call.check_kwargs(), metadata=_metadata(self.shape, governor_metadata))
        if decision.blocked:
            raise block_error(decision)
        return call, decision

    def create(self, send: Callable[..., Any], kwargs: dict[str, Any], governor_metadata: Any = None) -> Any:
        call, decision = self.check(kwargs, governor_metadata)
        request = _decided(call, decision, kwargs)
        try:
            response = send(**request)
        except Exception as exc:
            self.governor.record(decision, input_tokens=0, output_tokens=0, error=exc)
            raise
        if request.get("stream"):
            return GovernedEventStream(response, self.governor, decision, stop_at_cap=self.stop_at_cap)
        self.governor.record(decision, **response_usage(self.shape, response, decision).as_kwargs())
        return response

    async def acreate(self, send: Callable[..., Any], kwargs: dict[str, Any], governor_metadata: Any = None) -> Any:
        call, decision = await self.acheck(kwargs, governor_metadata)
        request = _decided(call, decision, kwargs)
        try:
            response = await send(**request)
        except Exception as exc:
            await self.governor.arecord(decision, input_tokens=0, output_tokens=0, error=exc)
            raise
        if request.get("stream"):
            if not hasattr(response, "__anext__") and hasattr(response, "__aiter__"):
                response = response.__aiter__()
            return AsyncGovernedEventStream(response, self.governor, decision, stop_at_cap=self.stop_at_cap)
        await self.governor.arecord(decision, **response_usage(self.shape, response, decision).as_kwargs())
        return response

    def stream(self, open_stream: Callable[..., Any], kwargs: dict[str, Any], governor_metadata: Any = None) -> Any:
        """A helper stream (``responses.stream`` / ``messages.stream``): checked now, settled at its end."""
        call, decision = self.check(kwargs, governor_metadata)
        try:
            manager = open_stream(**decided_request(call, decision, kwargs))
        except Exception as exc:
            self.governor.record(decision, input_tokens=0, output_tokens=0, error=exc)
            raise
        return GovernedStreamManager(manager, self.governor, decision)

    def astream(self, open_stream: Callable[..., Any], kwargs: dict[str, Any], governor_metadata: Any = None) -> Any:
        """The async helper stream: checked when entered (``async with``), settled at its end."""

        async def start() -> tuple[Decision, Any]:
            call, decision = await self.acheck(kwargs, governor_metadata)
            return decision, open_stream(**decided_request(call, decision, kwargs))

        return AsyncGovernedStreamManager(start, self.governor)


__all__ = ["API_KEY", "GovernedCall", "response_usage"]
