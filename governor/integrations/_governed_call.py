"""The one way an SDK adapter governs a call of any API shape: read, check, send as decided, settle.

:class:`GovernedCall` is used by the OpenAI and Anthropic client wrappers and
``GovernedLiteLLM``: ``create`` for a plain or ``stream=True`` call (and the
SDKs' ``parse``), ``stream`` for the SDK's helper streams
(``responses.stream``, ``messages.stream``), ``raw`` / ``streaming`` for
``with_raw_response`` / ``with_streaming_response`` (see ``_raw_response``). A
block raises the ``CallBlocked`` subclass of the decision before anything is
sent; an error of the call is recorded and re-raised; a stream records when it
ends (``_streams``).

:class:`GovernedResource` is an SDK resource (``chat.completions``,
``responses``, ``messages``...) with those methods governed and everything else
the SDK's own.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from governor.decision import Decision
from governor.integrations._common import block_error
from governor.integrations._raw_response import BodySettle, GovernedBody, StreamedResponse
from governor.integrations._streams import (
    AsyncGovernedStream,
    AsyncGovernedStreamManager,
    GovernedStream,
    GovernedStreamManager,
    asked_for_usage,
    with_usage_option,
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
        if shape == "chat":
            return str(_get(_get(_get(response, "choices")[0], "message"), "content") or "")
    except (AttributeError, IndexError, TypeError, KeyError):
        pass
    return ""


def _reported(shape: str, response: Any) -> Usage | None:
    usage = _get(response, "usage")
    if shape == "messages":
        return from_anthropic_usage(usage)
    tier = _get(response, "service_tier")
    if shape == "responses":
        return from_responses_usage(usage, service_tier=tier)
    return from_chat_usage(usage, service_tier=tier)


def response_usage(shape: str, response: Any, decision: Decision) -> Usage:
    """The usage a response of ``shape`` reports, or an estimate (never zero-cost by omission)."""
    found = _reported(shape, response)
    if found is not None and (found.input_tokens or found.output_tokens):
        return found
    return estimated_usage(decision.input_tokens, _output_text(shape, response))


def _metadata(shape: str, governor_metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    out = dict(governor_metadata or {})
    out[API_KEY] = shape
    return out


def _decided(call: Call, decision: Decision, kwargs: Mapping[str, Any], *, helper: bool = False) -> dict[str, Any]:
    request = decided_request(call, decision, kwargs)
    if (call.stream or (helper and call.shape == "chat")) and call.shape in ("chat", "completions"):
        with_usage_option(request)  # the final chunk carries the usage
    return request


class GovernedCall:
    """One API shape of one SDK resource governed: ``create`` (plain or ``stream=True``), ``stream``, ``raw``
    and ``streaming``."""

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

    def governed_stream(self, stream: Any, decision: Decision, kwargs: Mapping[str, Any], *, is_async: bool) -> Any:
        """The SDK's ``stream=True`` stream, recorded at its end (a chat usage chunk the caller did not ask for
        is hidden from them)."""
        wrapper = AsyncGovernedStream if is_async else GovernedStream
        show = asked_for_usage(kwargs) if self.shape == "chat" else True
        return wrapper(stream, self.governor, decision, stop_at_cap=self.stop_at_cap, show_usage_chunk=show)

    def create(self, send: Callable[..., Any], kwargs: dict[str, Any], governor_metadata: Any = None) -> Any:
        call, decision = self.check(kwargs, governor_metadata)
        request = _decided(call, decision, kwargs)
        try:
            response = send(**request)
        except Exception as exc:
            self.governor.record(decision, input_tokens=0, output_tokens=0, error=exc)
            raise
        if request.get("stream"):
            return self.governed_stream(response, decision, kwargs, is_async=False)
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
            return self.governed_stream(response, decision, kwargs, is_async=True)
        await self.governor.arecord(decision, **response_usage(self.shape, response, decision).as_kwargs())
        return response

    def stream(self, open_stream: Callable[..., Any], kwargs: dict[str, Any], governor_metadata: Any = None) -> Any:
        """A helper stream (``responses.stream`` / ``messages.stream``): checked now, settled at its end."""
        call, decision = self.check(kwargs, governor_metadata)
        try:
            manager = open_stream(**_decided(call, decision, kwargs, helper=True))
        except Exception as exc:
            self.governor.record(decision, input_tokens=0, output_tokens=0, error=exc)
            raise
        return GovernedStreamManager(manager, self.governor, decision)

    def astream(self, open_stream: Callable[..., Any], kwargs: dict[str, Any], governor_metadata: Any = None) -> Any:
        """The async helper stream: checked when entered (``async with``), settled at its end."""

        async def start() -> tuple[Decision, Any]:
            call, decision = await self.acheck(kwargs, governor_metadata)
            return decision, open_stream(**_decided(call, decision, kwargs, helper=True))

        return AsyncGovernedStreamManager(start, self.governor)

    def _settle(self, decision: Decision, kwargs: Mapping[str, Any], request: Mapping[str, Any], is_async: bool) -> Any:
        return BodySettle(
            self.governor,
            decision,
            stream=bool(request.get("stream")),
            usage_of=lambda parsed: response_usage(self.shape, parsed, decision),
            wrap_stream=lambda stream: self.governed_stream(stream, decision, kwargs, is_async=is_async),
        )

    def raw(self, send: Callable[..., Any], kwargs: dict[str, Any], governor_metadata: Any = None) -> Any:
        """``with_raw_response.<method>``: the SDK's raw response, settled from what its body reports."""
        call, decision = self.check(kwargs, governor_metadata)
        request = _decided(call, decision, kwargs)
        settle = self._settle(decision, kwargs, request, False)
        try:
            response = send(**request)
        except Exception as exc:
            settle.failed(exc)
            raise
        body = GovernedBody(response, settle, is_async=False)
        if settle.stream:
            return body
        body.parse()  # the body is here: record it now (the SDK keeps the parsed object for the caller's parse())
        return response

    async def araw(self, send: Callable[..., Any], kwargs: dict[str, Any], governor_metadata: Any = None) -> Any:
        call, decision = await self.acheck(kwargs, governor_metadata)
        request = _decided(call, decision, kwargs)
        settle = self._settle(decision, kwargs, request, True)
        try:
            response = await send(**request)
        except Exception as exc:
            await settle.afailed(exc)
            raise
        body = GovernedBody(response, settle, is_async=True)
        if settle.stream:
            return body
        parsed = body.parse()
        if inspect.isawaitable(parsed):
            await parsed
        else:  # the OpenAI SDK's raw response parses synchronously in async clients too
            await settle.arecord(response_usage(self.shape, parsed, decision))
        return response

    def streaming(
        self, open_response: Callable[..., Any], kwargs: dict[str, Any], governor_metadata: Any, *, is_async: bool
    ) -> StreamedResponse:
        """``with_streaming_response.<method>``: a context manager like the SDK's, checked when entered."""

        def start() -> tuple[Any, BodySettle]:
            call, decision = self.check(kwargs, governor_metadata)
            request = _decided(call, decision, kwargs)
            return open_response(**request), self._settle(decision, kwargs, request, False)

        async def astart() -> tuple[Any, BodySettle]:
            call, decision = await self.acheck(kwargs, governor_metadata)
            request = _decided(call, decision, kwargs)
            return open_response(**request), self._settle(decision, kwargs, request, True)

        return StreamedResponse(astart if is_async else start, is_async=is_async)


class _RawView:
    """``resource.with_raw_response`` / ``.with_streaming_response``: its governed methods checked and settled."""

    def __init__(self, inner: Any, call: GovernedCall, methods: tuple[str, ...], *, streaming: bool, is_async: bool):
        self._inner, self._call, self._methods = inner, call, methods
        self._streaming, self._async = streaming, is_async

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        send = getattr(self._inner, name)
        if name not in self._methods:
            return send
        call, streaming, is_async = self._call, self._streaming, self._async

        def governed(*, governor_metadata: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
            if streaming:
                return call.streaming(send, kwargs, governor_metadata, is_async=is_async)
            if is_async:
                return call.araw(send, kwargs, governor_metadata)
            return call.raw(send, kwargs, governor_metadata)

        return governed


class GovernedResource:
    """An SDK resource whose model calls are governed: ``create`` and ``parse`` (plain or ``stream=True``),
    ``stream`` (the SDK's helper stream), and the same through ``with_raw_response`` and
    ``with_streaming_response``; everything else on it is the SDK's own."""

    def __init__(
        self, inner: Any, call: GovernedCall, *, is_async: bool, methods: tuple[str, ...] = ("create",)
    ) -> None:
        self._inner, self._call, self._async, self._methods = inner, call, is_async, methods

    def create(self, *, governor_metadata: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """The SDK's ``create`` governed (``stream=True`` included); extra keywords go to the SDK unchanged."""
        if self._async:
            return self._call.acreate(self._inner.create, kwargs, governor_metadata)
        return self._call.create(self._inner.create, kwargs, governor_metadata)

    def parse(self, *, governor_metadata: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """The SDK's ``parse`` (structured output) governed like ``create``."""
        if "parse" not in self._methods:
            return self._inner.parse(governor_metadata=governor_metadata, **kwargs)
        if self._async:
            return self._call.acreate(self._inner.parse, kwargs, governor_metadata)
        return self._call.create(self._inner.parse, kwargs, governor_metadata)

    def stream(self, *, governor_metadata: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """The SDK's helper stream governed: use it as the SDK's (``with ... as stream``)."""
        if self._async:
            return self._call.astream(self._inner.stream, kwargs, governor_metadata)
        return self._call.stream(self._inner.stream, kwargs, governor_metadata)

    @property
    def with_raw_response(self) -> Any:
        return _RawView(self._inner.with_raw_response, self._call, self._methods, streaming=False, is_async=self._async)

    @property
    def with_streaming_response(self) -> Any:
        view = self._inner.with_streaming_response
        return _RawView(view, self._call, self._methods, streaming=True, is_async=self._async)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class WrappedClient:
    """The part every governed SDK client shares: the client it wraps, and everything it does not govern."""

    _client: Any

    @property
    def unwrapped(self) -> Any:
        """The SDK's own client."""
        return self._client

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._client, name)


__all__ = ["API_KEY", "GovernedCall", "GovernedResource", "WrappedClient", "response_usage"]
