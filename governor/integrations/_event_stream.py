"""Governed streams of every API: Responses events, Anthropic Messages events, completions chunks.

:class:`StreamTally` watches a stream whatever its API (objects, dicts or raw
SSE bytes): the text streamed so far and the usage report of the final event
(``response.completed``'s ``response.usage``; Anthropic's ``message_start``
input and ``message_delta`` cumulative output; a chat/completions usage chunk).
The wrappers pass every event through and record the call exactly once: from
the final usage when the stream completes, from what was streamed (an estimate,
never zero) when it is closed early, fails or is abandoned by the client.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from governor.decision import Decision
from governor.integrations._common import aclose_stream, stream_cap_error
from governor.integrations.usage import Usage, from_anthropic_usage, from_any_usage


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


class StreamTally:
    """What a stream has shown so far: streamed characters, and the usage its events reported."""

    __slots__ = ("chars", "reported", "final", "_anthropic_input")

    def __init__(self) -> None:
        self.chars = 0
        self.reported: Usage | None = None
        self.final = False  # the reported usage is the stream's last word (not message_start's opening count)
        self._anthropic_input: Any = None  # message_start's usage (input and cache counts)

    def feed(self, item: Any) -> None:
        if isinstance(item, (bytes, str)):
            text = item.decode("utf-8", "replace") if isinstance(item, bytes) else item
            for line in text.splitlines():
                if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
                    try:
                        self._event(json.loads(line[5:]))
                    except ValueError:
                        continue
            return
        self._event(item)

    def _event(self, event: Any) -> None:
        kind = _get(event, "type")
        for choice in _get(event, "choices") or ():
            delta = _get(choice, "delta")
            self.chars += len(_get(delta, "content") or "") + len(_get(choice, "text") or "")
            for call in _get(delta, "tool_calls") or ():
                self.chars += len(_get(_get(call, "function"), "arguments") or "")
        delta = _get(event, "delta")
        if isinstance(delta, str):  # Responses *.delta events
            self.chars += len(delta)
        elif delta is not None and kind == "content_block_delta":
            self.chars += len(_get(delta, "text") or _get(delta, "partial_json") or _get(delta, "thinking") or "")
        if kind == "message_start":
            self._anthropic_input = _get(_get(event, "message"), "usage")
            self.reported = from_anthropic_usage(self._anthropic_input)
            return
        if kind == "message_delta":
            self._anthropic_delta(_get(event, "usage"))
            self.final = True
            return
        usage = _get(event, "usage") or _get(_get(event, "response"), "usage")
        found = from_any_usage(usage) if usage is not None else None
        if found is not None and (found.input_tokens or found.output_tokens):
            self.reported, self.final = found, True

    def _anthropic_delta(self, usage: Any) -> None:
        """message_delta's counts are cumulative; input counts come from message_start unless repeated."""
        merged: dict[str, Any] = {}
        for source in (self._anthropic_input, usage):
            if source is None:
                continue
            plain = source if isinstance(source, Mapping) else getattr(source, "__dict__", {})
            merged.update({k: v for k, v in plain.items() if v is not None})
        found = from_anthropic_usage(merged)
        if found is not None:
            self.reported = found

    @property
    def tokens(self) -> int:
        return (self.chars + 3) // 4

    def usage(self, input_tokens: int) -> Usage:
        """The stream's final usage report; else what is known so far, marked estimated: the input its
        opening event reported (or the check's count) and the output streamed."""
        reported = self.reported
        if reported is not None and self.final and reported.input_tokens:
            return reported
        if reported is not None and reported.input_tokens:
            return replace(reported, output_tokens=max(reported.output_tokens, self.tokens), estimated=True)
        return Usage(input_tokens=input_tokens, output_tokens=self.tokens, estimated=True)


class _Settle:
    """The state a sync and an async wrapper share: tally, cap, and record-once."""

    def __init__(self, governor: Any, decision: Decision, stop_at_cap: bool) -> None:
        self.gov = governor
        self.decision = decision
        self.tally = StreamTally()
        self.cap = decision.max_tokens if stop_at_cap else None
        self.done = False

    def over_cap(self) -> bool:
        return self.cap is not None and not self.tally.final and self.tally.tokens > self.cap

    def cap_error(self) -> Exception:
        return stream_cap_error(self.decision, self.cap or 0, self.tally.tokens)

    def kwargs(self, final: Usage | None = None) -> dict[str, int]:
        return (final or self.tally.usage(self.decision.input_tokens)).as_kwargs()


class GovernedEventStream:
    """A sync stream of events (``stream=True``): iterate it as the SDK's own; records at its end."""

    def __init__(self, stream: Any, governor: Any, decision: Decision, *, stop_at_cap: bool = False) -> None:
        self._stream = stream
        self._s = _Settle(governor, decision, stop_at_cap)
        self.decision = decision

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            event = next(self._stream)
        except StopIteration:
            self._finish(None)
            raise
        except BaseException as exc:
            self._finish(exc)
            raise
        self._s.tally.feed(event)
        if self._s.over_cap():
            error = self._s.cap_error()
            self._close_inner()
            self._finish(error)
            raise error
        return event

    def _close_inner(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()

    def _finish(self, error: BaseException | None) -> None:
        if not self._s.done:
            self._s.done = True
            self._s.gov.record(self.decision, **self._s.kwargs(), error=error)

    def close(self) -> None:
        """Stop early: what was streamed so far is recorded."""
        self._close_inner()
        self._finish(None)

    def __enter__(self) -> GovernedEventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # abandoned without close: still settled
        try:
            self._finish(None)
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._stream, name)


class AsyncGovernedEventStream:
    """An async stream of events (``stream=True``); records at its end, close or error."""

    def __init__(self, stream: Any, governor: Any, decision: Decision, *, stop_at_cap: bool = False) -> None:
        self._stream = stream
        self._s = _Settle(governor, decision, stop_at_cap)
        self.decision = decision

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        try:
            event = await self._stream.__anext__()
        except StopAsyncIteration:
            await self._finish(None)
            raise
        except BaseException as exc:
            await self._finish(exc)
            raise
        self._s.tally.feed(event)
        if self._s.over_cap():
            error = self._s.cap_error()
            await self._close_inner()
            await self._finish(error)
            raise error
        return event

    async def _close_inner(self) -> None:
        await aclose_stream(self._stream)

    async def _finish(self, error: BaseException | None) -> None:
        if not self._s.done:
            self._s.done = True
            await self._s.gov.arecord(self.decision, **self._s.kwargs(), error=error)

    async def aclose(self) -> None:
        """Stop early: what was streamed so far is recorded."""
        await self._close_inner()
        await self._finish(None)

    close = aclose

    async def __aenter__(self) -> AsyncGovernedEventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._stream, name)


def _final_usage(inner: Any) -> Usage | None:
    """The usage of a helper stream (``responses.stream`` / ``messages.stream``) that got that far."""
    try:
        snapshot = getattr(inner, "current_message_snapshot", None)  # anthropic MessageStream
    except Exception:  # noqa: BLE001 - no event yet
        snapshot = None
    if snapshot is not None:
        found = from_anthropic_usage(_get(snapshot, "usage"))
        if found is not None and found.input_tokens:
            return found
    try:
        chat = getattr(inner, "current_completion_snapshot", None)  # openai ChatCompletionStream
    except Exception:  # noqa: BLE001 - no chunk yet
        chat = None
    if chat is not None:
        found = from_any_usage(_get(chat, "usage"))
        return found if found is not None and found.input_tokens else None
    final = getattr(inner, "get_final_response", None)  # openai ResponseStream
    if final is not None:
        try:
            response = final()
        except Exception:  # noqa: BLE001 - not completed: the tally decides
            return None
        found = from_any_usage(_get(response, "usage"))
        return found if found is not None and found.input_tokens else None
    return None


class _HelperStream:
    """The stream object a helper's ``with`` block yields, events observed on the way through."""

    def __init__(self, inner: Any, settle: _Settle) -> None:
        self._inner = inner
        self._s = settle

    def __iter__(self) -> Iterator[Any]:
        for event in self._inner:
            self._s.tally.feed(event)
            yield event

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._aiter()

    async def _aiter(self) -> AsyncIterator[Any]:
        async for event in self._inner:
            self._s.tally.feed(event)
            yield event

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._inner, name)


class GovernedStreamManager:
    """``responses.stream(...)`` / ``messages.stream(...)`` governed: a context manager like the SDK's."""

    def __init__(self, manager: Any, governor: Any, decision: Decision) -> None:
        self._manager = manager
        self._s = _Settle(governor, decision, False)
        self._inner: Any = None
        self.decision = decision

    def __enter__(self) -> Any:
        try:
            self._inner = self._manager.__enter__()
        except BaseException as exc:
            self._finish(exc)
            raise
        return _HelperStream(self._inner, self._s)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self._manager.__exit__(exc_type, exc, tb)
        finally:
            self._finish(exc)

    def _finish(self, error: BaseException | None) -> None:
        if not self._s.done:
            self._s.done = True
            final = _final_usage(self._inner) if self._inner is not None else None
            self._s.gov.record(self._s.decision, **self._s.kwargs(final), error=error)


class AsyncGovernedStreamManager:
    """The async ``responses.stream(...)`` / ``messages.stream(...)`` governed: checked on ``async with``.

    ``start`` is a coroutine function returning ``(decision, the SDK's manager)``; a block raises from it.
    """

    def __init__(self, start: Callable[[], Awaitable[tuple[Decision, Any]]], governor: Any) -> None:
        self._start = start
        self._gov = governor
        self._manager: Any = None
        self._s: _Settle | None = None
        self._inner: Any = None
        self.decision: Decision | None = None

    async def __aenter__(self) -> Any:
        self.decision, self._manager = await self._start()
        self._s = _Settle(self._gov, self.decision, False)
        try:
            self._inner = await self._manager.__aenter__()
        except BaseException as exc:
            await self._finish(exc)
            raise
        return _HelperStream(self._inner, self._s)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self._manager.__aexit__(exc_type, exc, tb)
        finally:
            await self._finish(exc)

    async def _finish(self, error: BaseException | None) -> None:
        s = self._s
        if s is not None and not s.done:
            s.done = True
            final = _final_usage(self._inner) if self._inner is not None else None
            await s.gov.arecord(s.decision, **s.kwargs(final), error=error)


__all__ = [
    "AsyncGovernedEventStream",
    "AsyncGovernedStreamManager",
    "GovernedEventStream",
    "GovernedStreamManager",
    "StreamTally",
]
