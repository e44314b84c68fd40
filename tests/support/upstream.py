"""A scripted model provider on 127.0.0.1 for the tests: the provider's wire format, none of our code.

It speaks the OpenAI Chat Completions, OpenAI Responses, legacy Completions and
Embeddings APIs and the Anthropic Messages API, as JSON and as SSE streams with
each API's real event sequence:

- Chat Completions: ``chat.completion.chunk`` deltas (content, then tool-call
  argument pieces), a final usage chunk with empty ``choices`` when the request
  asks for ``stream_options.include_usage``, then ``data: [DONE]``.
- Responses: ``response.created``, ``response.in_progress``, then per output
  item ``response.output_item.added`` / ``content_part.added`` /
  ``output_text.delta`` ... ``output_text.done`` / ``content_part.done`` /
  ``output_item.done`` (``function_call_arguments.delta``/``.done`` for a tool
  call, ``reasoning_summary_*`` for a reasoning item), and ``response.completed``
  whose ``response.usage`` is the usage. No ``[DONE]``.
- Anthropic Messages: ``message_start`` (usage with the input and cache
  tokens), ``content_block_start`` / ``ping`` / ``content_block_delta``
  (``text_delta``, ``input_json_delta``, ``thinking_delta``/``signature_delta``)
  / ``content_block_stop`` per block, ``message_delta`` (stop reason and the
  cumulative usage), ``message_stop``.

Each test scripts the turns it needs::

    with ScriptedUpstream() as upstream:
        upstream.script(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]),
                        Reply(text="It is sunny.", usage=Tokens(input=40, output=5)))
        client = OpenAI(base_url=upstream.base_url + "/v1", api_key="sk-test")
        ...
        assert upstream.requests[-1].body["model"] == "gpt-4o"

Replies are taken in order (then ``default``), or from ``responder(request)``
when one is set. Each reply is rendered in the format of the route it answers.
``requests`` records every request received, so a test can assert that a
blocked call never reached the provider. Paths are accepted with or without a
``/v1`` prefix (litellm's ``api_base`` and the SDKs' ``base_url`` differ there).

Run it alone (for a CLI under test) with ``python tests/support/upstream.py
[--port N] [--log requests.jsonl]``; it prints its base URL and answers the
default reply until interrupted.
"""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Event = tuple[str | None, Any]  # (SSE event name or None, data: a JSON value or the literal "[DONE]")


@dataclass(frozen=True)
class Tokens:
    """The usage a reply reports; unset counts are estimated from the request and the reply."""

    input: int | None = None
    """Fresh (uncached) input tokens. OpenAI formats add the cache counts to it; Anthropic reports it alone."""
    output: int | None = None
    """Output tokens, reasoning included."""
    cache_read: int = 0
    """Input tokens read from the prompt cache."""
    cache_write_5m: int = 0
    """Input tokens written to the cache with the 5-minute TTL (Anthropic ``ephemeral_5m_input_tokens``)."""
    cache_write_1h: int = 0
    """Input tokens written to the cache with the 1-hour TTL (Anthropic ``ephemeral_1h_input_tokens``)."""
    reasoning: int = 0
    """The part of ``output`` spent on reasoning."""

    @property
    def cache_write(self) -> int:
        return self.cache_write_5m + self.cache_write_1h


@dataclass(frozen=True)
class ToolCall:
    """A tool call the model makes (Chat ``tool_calls``, Responses ``function_call``, Anthropic ``tool_use``)."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None
    """The call id; generated when unset (``call_…`` for OpenAI, ``toolu_…`` for Anthropic)."""


@dataclass(frozen=True)
class Reply:
    """One scripted answer, rendered in whichever API format the request used."""

    text: str = "scripted answer"
    tool_calls: Sequence[ToolCall] = ()
    reasoning: str | None = None
    """A reasoning summary (Responses ``reasoning`` item) or thinking block (Anthropic) before the text."""
    usage: Tokens = field(default_factory=Tokens)
    model: str | None = None
    """The model the answer names; the request's own model when unset."""
    status: int = 200
    """An HTTP error status instead of an answer (the body is the API's own error shape)."""
    error_message: str = "scripted upstream error"
    error_type: str | None = None
    """The error ``type``; a sensible one for the status when unset."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra response headers (``retry-after``, ``x-should-retry``...)."""
    event_delay: float = 0.0
    """Seconds to wait before each streamed event (so a client can stop a stream mid-way)."""
    cut_after_events: int | None = None
    """Drop the connection after this many streamed events, as a failing provider does."""
    embedding_dimensions: int = 8


@dataclass
class Received:
    """One request as the upstream received it."""

    method: str
    path: str
    """The request path without the query string, as sent (``/v1/messages``)."""
    route: str
    """The API it addressed: ``chat``, ``responses``, ``messages``, ``count_tokens``, ``completions``,
    ``embeddings``, ``models`` or ``unknown``."""
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Header names lower-cased."""
    body: Any
    """The parsed JSON body (None for an empty or non-JSON body)."""
    at: float

    @property
    def stream(self) -> bool:
        return isinstance(self.body, Mapping) and bool(self.body.get("stream"))


ROUTES: tuple[tuple[str, str], ...] = (
    ("/chat/completions", "chat"),
    ("/responses", "responses"),
    ("/messages/count_tokens", "count_tokens"),
    ("/messages", "messages"),
    ("/completions", "completions"),
    ("/embeddings", "embeddings"),
    ("/models", "models"),
)


def route_of(path: str) -> str:
    for suffix, name in ROUTES:
        if path.rstrip("/").endswith(suffix):
            return name
    return "unknown"


# --- estimating the counts a test left unset ---------------------------------------------------


def _text_of(value: Any) -> str:
    """Every string inside a JSON value (message contents, input items, prompts)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return " ".join(_text_of(v) for k, v in value.items() if k not in ("type", "role", "id", "call_id"))
    if isinstance(value, (list, tuple)):
        return " ".join(_text_of(v) for v in value)
    return ""


def _estimate(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


def request_text(route: str, body: Mapping[str, Any]) -> str:
    """The prompt text of a request, by API."""
    if route == "chat":
        return _text_of(body.get("messages"))
    if route == "responses":
        return _text_of([body.get("instructions"), body.get("input")])
    if route in ("messages", "count_tokens"):
        return _text_of([body.get("system"), body.get("messages")])
    if route == "completions":
        return _text_of(body.get("prompt"))
    if route == "embeddings":
        return _text_of(body.get("input"))
    return ""


@dataclass(frozen=True)
class _Counts:
    fresh: int
    output: int
    cache_read: int
    cache_5m: int
    cache_1h: int
    reasoning: int

    @property
    def openai_input(self) -> int:
        """OpenAI's input count includes the cached tokens."""
        return self.fresh + self.cache_read + self.cache_5m + self.cache_1h


def _counts(reply: Reply, route: str, body: Mapping[str, Any]) -> _Counts:
    usage = reply.usage
    fresh = usage.input if usage.input is not None else _estimate(request_text(route, body))
    if usage.output is not None:
        output = usage.output
    else:
        produced = reply.text + "".join(json.dumps(dict(c.arguments)) + c.name for c in reply.tool_calls)
        output = _estimate(produced + (reply.reasoning or "")) + usage.reasoning
    return _Counts(fresh, output, usage.cache_read, usage.cache_write_5m, usage.cache_write_1h, usage.reasoning)


def _pieces(text: str, size: int = 12) -> list[str]:
    """A text split into stream deltas (at least one, possibly empty)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def _call_ids(reply: Reply, prefix: str) -> list[str]:
    return [c.id or _id(prefix) for c in reply.tool_calls]


# --- OpenAI Chat Completions -------------------------------------------------------------------


def _chat_usage(c: _Counts) -> dict[str, Any]:
    return {
        "prompt_tokens": c.openai_input,
        "completion_tokens": c.output,
        "total_tokens": c.openai_input + c.output,
        "prompt_tokens_details": {"cached_tokens": c.cache_read, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": c.reasoning, "audio_tokens": 0},
    }


def chat_json(reply: Reply, body: Mapping[str, Any]) -> dict[str, Any]:
    c = _counts(reply, "chat", body)
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None}
    if reply.tool_calls:
        ids = _call_ids(reply, "call_")
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": t.name, "arguments": json.dumps(dict(t.arguments))}}
            for i, t in zip(ids, reply.tool_calls, strict=True)
        ]
    return {
        "id": _id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model or body.get("model", "unknown"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
            }
        ],
        "usage": _chat_usage(c),
    }


def chat_events(reply: Reply, body: Mapping[str, Any]) -> Iterator[Event]:
    c = _counts(reply, "chat", body)
    base = {
        "id": _id("chatcmpl-"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": reply.model or body.get("model", "unknown"),
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> Event:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return None, {**base, "choices": [choice]}

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    if reply.text:
        for piece in _pieces(reply.text):
            yield chunk({"content": piece})
    for index, (call_id, call) in enumerate(zip(_call_ids(reply, "call_"), reply.tool_calls, strict=True)):
        head = {"index": index, "id": call_id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        yield chunk({"tool_calls": [head]})
        for piece in _pieces(json.dumps(dict(call.arguments))):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, "tool_calls" if reply.tool_calls else "stop")
    options = body.get("stream_options") or {}
    if options.get("include_usage"):
        yield None, {**base, "choices": [], "usage": _chat_usage(c)}
    yield None, "[DONE]"


# --- OpenAI legacy Completions ------------------------------------------------------------------


def completions_json(reply: Reply, body: Mapping[str, Any]) -> dict[str, Any]:
    c = _counts(reply, "completions", body)
    return {
        "id": _id("cmpl-"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": reply.model or body.get("model", "unknown"),
        "choices": [{"text": reply.text, "index": 0, "logprobs": None, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": c.openai_input,
            "completion_tokens": c.output,
            "total_tokens": c.openai_input + c.output,
        },
    }


def completions_events(reply: Reply, body: Mapping[str, Any]) -> Iterator[Event]:
    c = _counts(reply, "completions", body)
    base = {
        "id": _id("cmpl-"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": reply.model or body.get("model", "unknown"),
    }
    for piece in _pieces(reply.text):
        yield None, {**base, "choices": [{"text": piece, "index": 0, "logprobs": None, "finish_reason": None}]}
    yield None, {**base, "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}]}
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {
            "prompt_tokens": c.openai_input,
            "completion_tokens": c.output,
            "total_tokens": c.openai_input + c.output,
        }
        yield None, {**base, "choices": [], "usage": usage}
    yield None, "[DONE]"


# --- OpenAI Embeddings --------------------------------------------------------------------------


def _vector(seed: str, dims: int) -> list[float]:
    digest = uuid.uuid5(uuid.NAMESPACE_OID, seed).bytes
    return [((digest[i % len(digest)] / 255.0) - 0.5) for i in range(dims)]


def embeddings_json(reply: Reply, body: Mapping[str, Any]) -> dict[str, Any]:
    raw = body.get("input")
    if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
        inputs: list[Any] = [raw]
    else:
        inputs = list(raw or [])
    dims = int(body.get("dimensions") or reply.embedding_dimensions)
    data = []
    for index, item in enumerate(inputs):
        vector = _vector(json.dumps(item), dims)
        if body.get("encoding_format") == "base64":
            encoded: Any = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        else:
            encoded = vector
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    prompt = reply.usage.input if reply.usage.input is not None else _estimate(_text_of(inputs))
    return {
        "object": "list",
        "data": data,
        "model": reply.model or body.get("model", "unknown"),
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }


# --- OpenAI Responses ---------------------------------------------------------------------------


def _responses_usage(c: _Counts) -> dict[str, Any]:
    return {
        "input_tokens": c.openai_input,
        "input_tokens_details": {"cached_tokens": c.cache_read, "cache_write_tokens": c.cache_5m + c.cache_1h},
        "output_tokens": c.output,
        "output_tokens_details": {"reasoning_tokens": c.reasoning},
        "total_tokens": c.openai_input + c.output,
    }


def _responses_items(reply: Reply) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if reply.reasoning is not None:
        items.append(
            {
                "id": _id("rs_"),
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": reply.reasoning}],
                "status": "completed",
            }
        )
    if reply.text:
        items.append(
            {
                "id": _id("msg_"),
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}],
            }
        )
    for call_id, call in zip(_call_ids(reply, "call_"), reply.tool_calls, strict=True):
        items.append(
            {
                "id": _id("fc_"),
                "type": "function_call",
                "status": "completed",
                "call_id": call_id,
                "name": call.name,
                "arguments": json.dumps(dict(call.arguments)),
            }
        )
    return items


def _response_object(reply: Reply, body: Mapping[str, Any], response_id: str, created: int) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": reply.model or body.get("model", "unknown"),
        "output": [],
        "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
        "previous_response_id": body.get("previous_response_id"),
        "temperature": body.get("temperature"),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": list(body.get("tools") or []),
        "top_p": body.get("top_p"),
        "truncation": "disabled",
        "usage": None,
        "metadata": body.get("metadata") or {},
    }


def responses_json(reply: Reply, body: Mapping[str, Any]) -> dict[str, Any]:
    response = _response_object(reply, body, _id("resp_"), int(time.time()))
    response.update(
        status="completed", output=_responses_items(reply), usage=_responses_usage(_counts(reply, "responses", body))
    )
    return response


def responses_events(reply: Reply, body: Mapping[str, Any]) -> Iterator[Event]:
    response = _response_object(reply, body, _id("resp_"), int(time.time()))
    sequence = iter(range(1_000_000))

    def event(kind: str, **data: Any) -> Event:
        return kind, {"type": kind, "sequence_number": next(sequence), **data}

    yield event("response.created", response=dict(response))
    yield event("response.in_progress", response=dict(response))
    done_items = _responses_items(reply)
    for index, item in enumerate(done_items):
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            text = item["content"][0]["text"]
            yield event(
                "response.output_item.added", output_index=index, item={**item, "status": "in_progress", "content": []}
            )
            empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            yield event("response.content_part.added", **where, content_index=0, part=empty)
            for piece in _pieces(text):
                yield event("response.output_text.delta", **where, content_index=0, delta=piece, logprobs=[])
            yield event("response.output_text.done", **where, content_index=0, text=text, logprobs=[])
            yield event("response.content_part.done", **where, content_index=0, part=item["content"][0])
        elif item["type"] == "function_call":
            yield event(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "arguments": ""},
            )
            for piece in _pieces(item["arguments"]):
                yield event("response.function_call_arguments.delta", **where, delta=piece)
            yield event("response.function_call_arguments.done", **where, arguments=item["arguments"])
        else:  # reasoning
            summary = item["summary"][0]["text"]
            yield event(
                "response.output_item.added", output_index=index, item={**item, "status": "in_progress", "summary": []}
            )
            part = {"type": "summary_text", "text": ""}
            yield event("response.reasoning_summary_part.added", **where, summary_index=0, part=part)
            for piece in _pieces(summary):
                yield event("response.reasoning_summary_text.delta", **where, summary_index=0, delta=piece)
            yield event("response.reasoning_summary_text.done", **where, summary_index=0, text=summary)
            yield event("response.reasoning_summary_part.done", **where, summary_index=0, part=item["summary"][0])
        yield event("response.output_item.done", output_index=index, item=item)
    response.update(status="completed", output=done_items, usage=_responses_usage(_counts(reply, "responses", body)))
    yield event("response.completed", response=response)


# --- Anthropic Messages ------------------------------------------------------------------------


def _anthropic_usage(c: _Counts, *, output: int) -> dict[str, Any]:
    return {
        "input_tokens": c.fresh,
        "cache_creation_input_tokens": c.cache_5m + c.cache_1h,
        "cache_read_input_tokens": c.cache_read,
        "cache_creation": {"ephemeral_5m_input_tokens": c.cache_5m, "ephemeral_1h_input_tokens": c.cache_1h},
        "output_tokens": output,
        "service_tier": "standard",
    }


def _anthropic_blocks(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.reasoning is not None:
        blocks.append({"type": "thinking", "thinking": reply.reasoning, "signature": "c2NyaXB0ZWQ="})
    if reply.text:
        blocks.append({"type": "text", "text": reply.text})
    for call_id, call in zip(_call_ids(reply, "toolu_"), reply.tool_calls, strict=True):
        blocks.append({"type": "tool_use", "id": call_id, "name": call.name, "input": dict(call.arguments)})
    return blocks


def messages_json(reply: Reply, body: Mapping[str, Any]) -> dict[str, Any]:
    c = _counts(reply, "messages", body)
    return {
        "id": _id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": reply.model or body.get("model", "unknown"),
        "content": _anthropic_blocks(reply),
        "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(c, output=c.output),
    }


def messages_events(reply: Reply, body: Mapping[str, Any]) -> Iterator[Event]:
    c = _counts(reply, "messages", body)
    message = messages_json(reply, body)
    start = {**message, "content": [], "stop_reason": None, "usage": _anthropic_usage(c, output=1)}
    yield "message_start", {"type": "message_start", "message": start}
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"])]
        elif block["type"] == "tool_use":
            opening = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in _pieces(json.dumps(block["input"]))]
        else:  # thinking
            opening = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in _pieces(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": opening}
        if index == 0:
            yield "ping", {"type": "ping"}
        for delta in deltas:
            yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    final_usage = _anthropic_usage(c, output=c.output)
    final_usage.pop("service_tier")
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    yield "message_delta", {"type": "message_delta", "delta": delta, "usage": final_usage}
    yield "message_stop", {"type": "message_stop"}


# --- errors in each API's own shape ------------------------------------------------------------

OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def error_body(route: str, reply: Reply) -> dict[str, Any]:
    if route in ("messages", "count_tokens"):
        kind = reply.error_type or ANTHROPIC_ERROR_TYPES.get(reply.status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": reply.error_message}}
    kind = reply.error_type or OPENAI_ERROR_TYPES.get(reply.status, "server_error")
    return {"error": {"message": reply.error_message, "type": kind, "param": None, "code": None}}


JSON_RENDERERS: Mapping[str, Callable[[Reply, Mapping[str, Any]], dict[str, Any]]] = {
    "chat": chat_json,
    "responses": responses_json,
    "messages": messages_json,
    "completions": completions_json,
    "embeddings": embeddings_json,
}
STREAM_RENDERERS: Mapping[str, Callable[[Reply, Mapping[str, Any]], Iterable[Event]]] = {
    "chat": chat_events,
    "responses": responses_events,
    "messages": messages_events,
    "completions": completions_events,
}


# --- the server --------------------------------------------------------------------------------


class ScriptedUpstream:
    """An HTTP server on 127.0.0.1 (a free port) answering scripted replies; a context manager."""

    def __init__(self, *, default: Reply | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.default = default or Reply()
        self.responder: Callable[[Received], Reply] | None = None
        self.requests: list[Received] = []
        self._queue: list[Reply] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # scripting ---------------------------------------------------------------------------------

    def script(self, *replies: Reply) -> ScriptedUpstream:
        """Queue replies for the next model requests, in order (then ``default``)."""
        with self._lock:
            self._queue.extend(replies)
        return self

    def reset(self) -> None:
        """Forget the requests received and the replies not yet used."""
        with self._lock:
            self.requests.clear()
            self._queue.clear()
        self.responder = None

    def requests_to(self, route: str) -> list[Received]:
        """The requests received by one API (``chat``, ``responses``, ``messages``...)."""
        with self._lock:
            return [r for r in self.requests if r.route == route]

    def model_requests(self) -> list[Received]:
        """Every request that would have cost money (all but ``models`` and ``count_tokens``)."""
        with self._lock:
            return [r for r in self.requests if r.route in JSON_RENDERERS]

    def _next_reply(self, received: Received) -> Reply:
        if self.responder is not None:
            return self.responder(received)
        with self._lock:
            return self._queue.pop(0) if self._queue else self.default

    # lifecycle ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (append ``/v1`` for an OpenAI ``base_url``)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ScriptedUpstream:
        self._thread = threading.Thread(target=self._server.serve_forever, name="scripted-upstream", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # HTTP --------------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                received = self._receive()
                if received.route == "models":
                    self._json(
                        200,
                        {
                            "object": "list",
                            "data": [{"id": "scripted", "object": "model", "created": 0, "owned_by": "tests"}],
                        },
                    )
                else:
                    self._json(404, error_body(received.route, Reply(status=404, error_message="no such route")))

            def do_POST(self) -> None:  # noqa: N802
                received = self._receive()
                body = received.body if isinstance(received.body, Mapping) else {}
                route = received.route
                if route == "count_tokens":
                    self._json(200, {"input_tokens": _estimate(request_text(route, body))})
                    return
                if route not in JSON_RENDERERS:
                    self._json(404, error_body(route, Reply(status=404, error_message=f"no route {received.path}")))
                    return
                reply = upstream._next_reply(received)
                if reply.status != 200:
                    self._json(reply.status, error_body(route, reply), reply.headers)
                elif received.stream and route in STREAM_RENDERERS:
                    self._stream(STREAM_RENDERERS[route](reply, body), reply)
                else:
                    self._json(200, JSON_RENDERERS[route](reply, body), reply.headers)

            def _receive(self) -> Received:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                received = Received(
                    method=self.command,
                    path=parts.path,
                    route=route_of(parts.path),
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    at=time.time(),
                )
                with upstream._lock:
                    upstream.requests.append(received)
                return received

            def _json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("x-request-id", _id("req_"))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, events: Iterable[Event], reply: Reply) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("transfer-encoding", "chunked")
                self.send_header("x-request-id", _id("req_"))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    for count, (name, data) in enumerate(events):
                        if reply.cut_after_events is not None and count >= reply.cut_after_events:
                            self.close_connection = True
                            return  # no terminating chunk: the client sees the connection drop
                        if reply.event_delay:
                            time.sleep(reply.event_delay)
                        payload = data if isinstance(data, str) else json.dumps(data)
                        frame = (f"event: {name}\n" if name else "") + f"data: {payload}\n\n"
                        self._chunk(frame.encode())
                    self._chunk(b"")
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client stopped reading: that is its right

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

        return Handler


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="A scripted model provider for manual runs of CLIs under test.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--text", default="scripted answer", help="the text every reply answers")
    parser.add_argument("--log", help="append each request received to this JSONL file")
    args = parser.parse_args(argv)
    upstream = ScriptedUpstream(default=Reply(text=args.text), port=args.port)
    if args.log:
        log_path = args.log

        def log_and_answer(received: Received) -> Reply:
            with open(log_path, "a") as fh:
                fh.write(json.dumps({"path": received.path, "route": received.route, "body": received.body}) + "\n")
            return upstream.default

        upstream.responder = log_and_answer
    upstream.start()
    print(upstream.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        upstream.stop()


if __name__ == "__main__":
    main()
