"""Governed chat-completions streams (litellm and the OpenAI SDK yield the same chunks).

The wrapper passes every chunk through, watches for the final usage chunk
(``stream_options={"include_usage": True}``; a usage-only chunk the caller did
not ask for is recorded and not passed on, so their loop over
``chunk.choices[0]`` keeps working) and records the call exactly once
when the stream ends, fails or is closed early. With ``stop_at_cap`` it also
counts output approximately and stops a stream that passes the call's output
cap, raising :class:`governor.errors.CostCapExceeded` (the stream's own usage
so far is recorded first).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from governor.decision import Decision
from governor.integrations._common import OutputMeter, aclose_stream, stream_cap_error
from governor.integrations.usage import Usage, estimated_usage, from_chat_usage


def asked_for_usage(kwargs: Mapping[str, Any]) -> bool:
    """Whether the caller asked for the usage chunk themselves (else the wrapper hides it from them)."""
    return bool((kwargs.get("stream_options") or {}).get("include_usage"))


def with_usage_option(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Ask the provider for a final usage chunk, keeping the caller's other stream options."""
    options = dict(kwargs.get("stream_options") or {})
    options.setdefault("include_usage", True)
    kwargs["stream_options"] = options
    return kwargs


class _StreamState:
    """What the sync and async wrappers share: the meter, the usage seen, the cap."""

    def __init__(self, decision: Decision, stop_at_cap: bool, show_usage_chunk: bool) -> None:
        self.decision = decision
        self.show_usage_chunk = show_usage_chunk
        self.meter = OutputMeter()
        self.usage: Usage | None = None
        self.cap = decision.max_tokens if stop_at_cap else None
        self.done = False

    def observe(self, chunk: Any) -> None:
        self.meter.feed_chat_chunk(chunk)
        found = from_chat_usage(getattr(chunk, "usage", None), service_tier=getattr(chunk, "service_tier", None))
        if found is not None:
            self.usage = found

    def hidden(self, chunk: Any) -> bool:
        """A usage-only chunk (no choices) the caller did not ask for: it is ours, not theirs."""
        return not self.show_usage_chunk and not getattr(chunk, "choices", None) and chunk.usage is not None

    def over_cap(self) -> bool:
        return self.cap is not None and self.usage is None and self.meter.tokens > self.cap

    def final_usage(self) -> Usage:
        """The provider's usage chunk, else the counted output (an estimate, never zero-cost)."""
        if self.usage is not None:
            return self.usage
        if self.meter.chars:
            return Usage(input_tokens=self.decision.input_tokens, output_tokens=self.meter.tokens, estimated=True)
        return estimated_usage(self.decision.input_tokens)


class GovernedStream:
    """Sync iterator over a governed stream; records on end, error or close."""

    def __init__(
        self,
        stream: Any,
        governor: Any,
        decision: Decision,
        *,
        stop_at_cap: bool = False,
        show_usage_chunk: bool = True,
    ) -> None:
        self._stream = stream
        self._gov = governor
        self._state = _StreamState(decision, stop_at_cap, show_usage_chunk)
        self.decision = decision

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        state = self._state
        while True:
            try:
                chunk = next(self._stream)
            except StopIteration:
                self._finish(None)
                raise
            except BaseException as exc:
                self._finish(exc)
                raise
            state.observe(chunk)
            if state.over_cap():
                self._close_inner()
                error = stream_cap_error(state.decision, state.cap or 0, state.meter.tokens)
                self._finish(error)
                raise error
            if not state.hidden(chunk):
                return chunk

    def _close_inner(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()

    def _finish(self, error: BaseException | None) -> None:
        if self._state.done:
            return
        self._state.done = True
        self._gov.record(self.decision, **self._state.final_usage().as_kwargs(), error=error)

    def close(self) -> None:
        """Stop early: the output streamed so far is recorded."""
        self._close_inner()
        self._finish(None)

    def __enter__(self) -> GovernedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._stream, name)


class AsyncGovernedStream:
    """Async iterator over a governed stream; records on end, error or close."""

    def __init__(
        self,
        stream: Any,
        governor: Any,
        decision: Decision,
        *,
        stop_at_cap: bool = False,
        show_usage_chunk: bool = True,
    ) -> None:
        self._stream = stream
        self._gov = governor
        self._state = _StreamState(decision, stop_at_cap, show_usage_chunk)
        self.decision = decision

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        state = self._state
        while True:
            try:
                chunk = await self._stream.__anext__()
            except StopAsyncIteration:
                await self._finish(None)
                raise
            except BaseException as exc:
                await self._finish(exc)
                raise
            state.observe(chunk)
            if state.over_cap():
                await self._close_inner()
                error = stream_cap_error(state.decision, state.cap or 0, state.meter.tokens)
                await self._finish(error)
                raise error
            if not state.hidden(chunk):
                return chunk

    async def _close_inner(self) -> None:
        await aclose_stream(self._stream)

    async def _finish(self, error: BaseException | None) -> None:
        if self._state.done:
            return
        self._state.done = True
        await self._gov.arecord(self.decision, **self._state.final_usage().as_kwargs(), error=error)

    async def aclose(self) -> None:
        """Stop early: the output streamed so far is recorded."""
        await self._close_inner()
        await self._finish(None)

    async def __aenter__(self) -> AsyncGovernedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._stream, name)
