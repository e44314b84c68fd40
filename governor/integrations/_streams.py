"""Governed streams of every API: one tally-driven wrapper, sync and async, and a reader per event format.

:class:`StreamTally` watches a stream whatever its API and form (SDK objects,
dicts, or raw SSE bytes/lines), reading each event with its format's reader:

- chat / completions chunks (``choices``): content, tool-call arguments and
  completion text streamed; the final usage chunk
  (``stream_options={"include_usage": True}``, which :func:`with_usage_option`
  asks for) with its service tier;
- Anthropic Messages events: ``content_block_delta`` text, JSON and thinking;
  ``message_start``'s input and cache counts, ``message_delta``'s cumulative
  output (the last word);
- Responses events: ``*.delta`` text; ``response.completed``'s
  ``response.usage``.

:class:`GovernedStream` / :class:`AsyncGovernedStream` pass every event
through and record the call exactly once: from the final usage when the stream
completes, from what was streamed (an estimate, never zero) when it is closed
early, fails, or is abandoned (garbage-collected, sync streams). With
``stop_at_cap`` they stop a stream whose counted output passes the call's cap
before its usage report came, raising :class:`governor.errors.CostCapExceeded`
after recording what was streamed. A usage-only chunk the caller did not ask for
(``show_usage_chunk=False``) is recorded and not passed on, so a loop over
``chunk.choices[0]`` keeps working.

:class:`GovernedStreamManager` / :class:`AsyncGovernedStreamManager` govern the
SDKs' helper streams (``responses.stream``, ``messages.stream``,
``chat.completions.stream``) the same way.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from governor.decision import Decision
from governor.integrations._common import aclose_stream, stream_cap_error
from governor.integrations.usage import Usage, from_anthropic_usage, from_any_usage, from_chat_usage


def asked_for_usage(kwargs: Mapping[str, Any]) -> bool:
    """Whether the caller asked for the usage chunk themselves (else the wrapper hides it from them)."""
    return bool((kwargs.get("stream_options") or {}).get("include_usage"))


def with_usage_option(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Ask the provider for a final usage chunk, keeping the caller's other stream options."""
    options = dict(kwargs.get("stream_options") or {})
    options.setdefault("include_usage", True)
    kwargs["stream_options"] = options
    return kwargs


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
        """Read one event: an SDK object or dict, or raw SSE text (bytes or str, whole ``data:`` lines)."""
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
        if _get(event, "choices") is not None or _get(event, "object") == "chat.completion.chunk":
            self._chunk(event)
            return
        kind = _get(event, "type")
        if kind in ("message_start", "message_delta", "content_block_delta"):
            self._anthropic(kind, event)
            return
        self._responses(event)

    def _found(self, found: Usage | None) -> None:
        if found is not None and (found.input_tokens or found.output_tokens):
            self.reported, self.final = found, True

    # -- the readers, one per event format ---------------------------------------------------------

    def _chunk(self, chunk: Any) -> None:
        """A chat or completions chunk: its deltas, and the usage of the final chunk."""
        for choice in _get(chunk, "choices") or ():
            delta = _get(choice, "delta")
            self.chars += len(_get(delta, "content") or "") + len(_get(choice, "text") or "")
            for call in _get(delta, "tool_calls") or ():
                self.chars += len(_get(_get(call, "function"), "arguments") or "")
        usage = _get(chunk, "usage")
        if usage is not None:
            self._found(from_chat_usage(usage, service_tier=_get(chunk, "service_tier")))

    def _anthropic(self, kind: str, event: Any) -> None:
        """An Anthropic Messages event: deltas; message_start's input, message_delta's cumulative counts."""
        if kind == "content_block_delta":
            delta = _get(event, "delta")
            self.chars += len(_get(delta, "text") or _get(delta, "partial_json") or _get(delta, "thinking") or "")
        elif kind == "message_start":
            self._anthropic_input = _get(_get(event, "message"), "usage")
            self.reported = from_anthropic_usage(self._anthropic_input)
        else:  # message_delta: counts are cumulative; input counts come from message_start unless repeated
            merged: dict[str, Any] = {}
            for source in (self._anthropic_input, _get(event, "usage")):
                if source is None:
                    continue
                plain = source if isinstance(source, Mapping) else getattr(source, "__dict__", {})
                merged.update({k: v for k, v in plain.items() if v is not None})
            found = from_anthropic_usage(merged)
            if found is not None:
                self.reported = found
            self.final = True

    def _responses(self, event: Any) -> None:
        """A Responses event (or any other): ``*.delta`` text, and the usage it carries."""
        delta = _get(event, "delta")
        if isinstance(delta, str):
            self.chars += len(delta)
        usage = _get(event, "usage") or _get(_get(event, "response"), "usage")
        if usage is not None:
            self._found(from_any_usage(usage))

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
    """What a sync and an async wrapper share: the tally, the cap, which events are hidden, record-once."""

    def __init__(self, governor: Any, decision: Decision, stop_at_cap: bool, show_usage_chunk: bool = True) -> None:
        self.gov = governor
        self.decision = decision
        self.tally = StreamTally()
        self.cap = decision.max_tokens if stop_at_cap else None
        self.show_usage_chunk = show_usage_chunk
        self.done = False

    def observe(self, event: Any) -> bool:
        """Tally one event; whether it goes on to the caller (a usage-only chunk they did not ask for: not)."""
        self.tally.feed(event)
        return self.show_usage_chunk or bool(_get(event, "choices")) or _get(event, "usage") is None

    def over_cap(self) -> bool:
        return self.cap is not None and not self.tally.final and self.tally.tokens > self.cap

    def cap_error(self) -> Exception:
        return stream_cap_error(self.decision, self.cap or 0, self.tally.tokens)

    def take(self) -> bool:
        """True once: the caller records now."""
        if self.done:
            return False
        self.done = True
        return True

    def kwargs(self, final: Usage | None = None) -> dict[str, int]:
        return (final or self.tally.usage(self.decision.input_tokens)).as_kwargs()


class GovernedStream:
    """A sync stream (``stream=True``) of any API: iterate it as the SDK's own; records at its end."""

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
        self._s = _Settle(governor, decision, stop_at_cap, show_usage_chunk)
        self.decision = decision

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        while True:
            try:
                event = next(self._stream)
            except StopIteration:
                self._finish(None)
                raise
            except BaseException as exc:
                self._finish(exc)
                raise
            shown = self._s.observe(event)
            if self._s.over_cap():
                error = self._s.cap_error()
                self._close_inner()
                self._finish(error)
                raise error
            if shown:
                return event

    def _close_inner(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()

    def _finish(self, error: BaseException | None) -> None:
        if self._s.take():
            self._s.gov.record(self.decision, **self._s.kwargs(), error=error)

    def close(self) -> None:
        """Stop early: what was streamed so far is recorded."""
        self._close_inner()
        self._finish(None)

    def __enter__(self) -> GovernedStream:
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


class AsyncGovernedStream:
    """An async stream (``stream=True``) of any API; records at its end, close or error."""

    def __init__(
        self,
        stream: Any,
        governor: Any,
        decision: Decision,
        *,
        stop_at_cap: bool = False,
        show_usage_chunk: bool = True,
    ) -> None:
        if not hasattr(stream, "__anext__") and hasattr(stream, "__aiter__"):
            stream = stream.__aiter__()
        self._stream = stream
        self._s = _Settle(governor, decision, stop_at_cap, show_usage_chunk)
        self.decision = decision

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        while True:
            try:
                event = await self._stream.__anext__()
            except StopAsyncIteration:
                await self._finish(None)
                raise
            except BaseException as exc:
                await self._finish(exc)
                raise
            shown = self._s.observe(event)
            if self._s.over_cap():
                error = self._s.cap_error()
                await aclose_stream(self._stream)
                await self._finish(error)
                raise error
            if shown:
                return event

    async def _finish(self, error: BaseException | None) -> None:
        if self._s.take():
            await self._s.gov.arecord(self.decision, **self._s.kwargs(), error=error)

    async def aclose(self) -> None:
        """Stop early: what was streamed so far is recorded."""
        await aclose_stream(self._stream)
        await self._finish(None)

    close = aclose

    async def __aenter__(self) -> AsyncGovernedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._stream, name)


# --- the SDKs' helper streams ------------------------------------------------------------------------


def _final_usage(inner: Any) -> Usage | None:
    """The usage of a helper stream (``responses.stream`` / ``messages.stream`` / ``chat.completions.stream``)
    that got that far."""
    for name, read in (
        ("current_message_snapshot", from_anthropic_usage),  # anthropic MessageStream
        ("current_completion_snapshot", from_any_usage),  # openai ChatCompletionStream
    ):
        try:
            snapshot = getattr(inner, name, None)
        except Exception:  # noqa: BLE001 - no event yet
            snapshot = None
        if snapshot is not None:
            found = read(_get(snapshot, "usage"))
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
    """A helper stream (``responses.stream(...)``, ``messages.stream(...)``) governed: a context manager like
    the SDK's."""

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
        if self._s.take():
            final = _final_usage(self._inner) if self._inner is not None else None
            self._s.gov.record(self._s.decision, **self._s.kwargs(final), error=error)


class AsyncGovernedStreamManager:
    """The async helper stream governed: checked on ``async with``.

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
        if s is not None and s.take():
            final = _final_usage(self._inner) if self._inner is not None else None
            await s.gov.arecord(s.decision, **s.kwargs(final), error=error)


__all__ = [
    "AsyncGovernedStream",
    "AsyncGovernedStreamManager",
    "GovernedStream",
    "GovernedStreamManager",
    "StreamTally",
    "asked_for_usage",
    "with_usage_option",
]
