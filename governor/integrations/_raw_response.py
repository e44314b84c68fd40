"""``with_raw_response`` and ``with_streaming_response`` of the OpenAI and Anthropic clients, governed.

Both SDKs give every resource two more ways to call the same endpoint: the
raw response (``resource.with_raw_response.create(...)``: headers and the
parsed body on ``.parse()``) and the streamed response
(``with resource.with_streaming_response.create(...) as response``: the body
read by ``.parse()``, ``.read()``, ``.json()`` or ``.iter_bytes()`` /
``.iter_text()`` / ``.iter_lines()``). Each is checked like ``create`` and
settled once, from the usage the body reports:

- a parsed body: its usage (as ``create`` records it); a parsed stream: the
  governed stream of the shape, recorded at its end;
- a body read as bytes or lines: its JSON usage, or the events of its SSE
  (``StreamTally``); a stream read only partly: what was streamed;
- a streamed response left unread when its ``with`` block ends: a JSON body
  is read then (its usage is the record); an unread stream is recorded from
  the check's input count, an estimate;
- a raw stream never parsed: recorded when it is garbage-collected.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from governor.decision import Decision
from governor.integrations._streams import StreamTally
from governor.integrations.usage import Usage


class BodySettle:
    """What one raw call owes the ledger, and how to read it from the body however the caller read it."""

    def __init__(
        self,
        governor: Any,
        decision: Decision,
        *,
        stream: bool,
        usage_of: Callable[[Any], Usage],
        wrap_stream: Callable[[Any], Any],
    ) -> None:
        self.gov = governor
        self.decision = decision
        self.stream = stream
        self.usage_of = usage_of  # the usage of a parsed (non-stream) response
        self.wrap_stream = wrap_stream  # the governed stream of a parsed stream (it records at its end)
        self.buffer = bytearray()  # what the caller iterated of the body
        self.iterated = False
        self.done = False

    def body_usage(self, body: bytes) -> Usage:
        if self.stream:
            tally = StreamTally()
            tally.feed(body)
            return tally.usage(self.decision.input_tokens)
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        return self.usage_of(parsed if isinstance(parsed, Mapping) else {})

    def record(self, usage: Usage, error: BaseException | None = None) -> None:
        if not self.done:
            self.done = True
            self.gov.record(self.decision, **usage.as_kwargs(), error=error)

    async def arecord(self, usage: Usage, error: BaseException | None = None) -> None:
        if not self.done:
            self.done = True
            await self.gov.arecord(self.decision, **usage.as_kwargs(), error=error)

    def failed(self, error: BaseException) -> None:
        """The call failed before a body came (as ``create`` records a failed call)."""
        self.record(Usage(input_tokens=0, output_tokens=0), error)

    async def afailed(self, error: BaseException) -> None:
        await self.arecord(Usage(input_tokens=0, output_tokens=0), error)

    def known_body(self, response: Any) -> bytes | None:
        """The body as far as the caller read it: what they iterated, else the whole body if it was read."""
        if self.iterated:
            return bytes(self.buffer)
        try:
            content = response.http_response.content  # httpx raises ResponseNotRead until the body is read
        except Exception:  # noqa: BLE001 - not read (or not an httpx response): nothing known
            return None
        return content if isinstance(content, bytes) else None


class GovernedBody:
    """The SDK's raw or streamed response object with its reads observed; everything else is the SDK's."""

    def __init__(self, response: Any, settle: BodySettle, *, is_async: bool) -> None:
        self._response = response
        self._s = settle
        self._async = is_async
        self._stream: Any = None  # the governed stream of a parsed stream, handed out once (it records once)

    @property
    def decision(self) -> Decision:
        return self._s.decision

    def parse(self, **kwargs: Any) -> Any:
        parsed = self._response.parse(**kwargs)
        if inspect.isawaitable(parsed):
            return self._aparse(parsed)
        if self._s.stream:
            return self._governed_stream(parsed)
        self._s.record(self._s.usage_of(parsed))
        return parsed

    async def _aparse(self, pending: Any) -> Any:
        parsed = await pending
        if self._s.stream:
            return self._governed_stream(parsed)
        await self._s.arecord(self._s.usage_of(parsed))
        return parsed

    def _governed_stream(self, stream: Any) -> Any:
        if self._stream is None:
            self._s.done = True  # the governed stream records it
            self._stream = self._s.wrap_stream(stream)
        return self._stream

    def _tee(self, chunk: Any, line: bool) -> None:
        self._s.iterated = True
        data = chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)
        self._s.buffer += data + (b"\n" if line else b"")

    def _iterate(self, name: str, line: bool, *args: Any) -> Any:
        inner = getattr(self._response, name)(*args)
        if self._async:
            return self._aiterate(inner, line)
        return self._siterate(inner, line)

    def _siterate(self, inner: Iterator[Any], line: bool) -> Iterator[Any]:
        for chunk in inner:
            self._tee(chunk, line)
            yield chunk

    async def _aiterate(self, inner: AsyncIterator[Any], line: bool) -> AsyncIterator[Any]:
        async for chunk in inner:
            self._tee(chunk, line)
            yield chunk

    def iter_bytes(self, chunk_size: int | None = None) -> Any:
        return self._iterate("iter_bytes", False, chunk_size)

    def iter_text(self, chunk_size: int | None = None) -> Any:
        return self._iterate("iter_text", False, chunk_size)

    def iter_lines(self) -> Any:
        return self._iterate("iter_lines", True)

    def settle(self) -> None:
        """Record what the body showed (reading a JSON body the caller left unread)."""
        if self._s.done:
            return
        body = self._s.known_body(self._response)
        if body is None and not self._s.stream:
            try:
                body = self._response.read()
            except Exception:  # noqa: BLE001 - the body cannot be read now: the estimate stands
                body = None
        self._s.record(self._s.body_usage(body or b""))

    async def asettle(self) -> None:
        if self._s.done:
            return
        body = self._s.known_body(self._response)
        if body is None and not self._s.stream:
            try:
                body = await self._response.read()
            except Exception:  # noqa: BLE001 - the body cannot be read now: the estimate stands
                body = None
        await self._s.arecord(self._s.body_usage(body or b""))

    def __del__(self) -> None:  # a raw stream never parsed nor read: still settled
        try:
            if not self._s.done:
                self._s.record(self._s.body_usage(self._s.known_body(self._response) or b""))
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._response, name)


class StreamedResponse:
    """``with resource.with_streaming_response.create(...) as response``: checked on entry, settled on exit."""

    def __init__(self, start: Callable[[], Any], *, is_async: bool) -> None:
        self._start = start  # () -> (the SDK's context manager, BodySettle); its check may raise the block
        self._async = is_async
        self._manager: Any = None
        self._body: GovernedBody | None = None

    def __enter__(self) -> GovernedBody:
        self._manager, settle = self._start()
        try:
            response = self._manager.__enter__()
        except BaseException as exc:
            settle.failed(exc)
            raise
        self._body = GovernedBody(response, settle, is_async=False)
        return self._body

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        # the call itself succeeded: an error of the caller's block is theirs, and the body still settles
        try:
            if self._body is not None:
                self._body.settle()
        finally:
            closed = self._manager.__exit__(exc_type, exc, tb)  # the SDK closes the response
        return closed

    async def __aenter__(self) -> GovernedBody:
        self._manager, settle = await self._start()
        try:
            response = await self._manager.__aenter__()
        except BaseException as exc:
            await settle.afailed(exc)
            raise
        self._body = GovernedBody(response, settle, is_async=True)
        return self._body

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            if self._body is not None:
                await self._body.asettle()
        finally:
            closed = await self._manager.__aexit__(exc_type, exc, tb)
        return closed


__all__ = ["BodySettle", "GovernedBody", "StreamedResponse"]
