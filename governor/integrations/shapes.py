"""One call model for every API shape a request can take: what the engine reads, and back.

The engine counts tokens, caps context, trims, fingerprints ``repeated_call``
and matches ``last_user_message`` on chat-style messages. Every other API is
read into that form here, one chat message per item of the request, so a trim
(a subsequence of those messages) maps back to the request's own items:

==============  ==========================================================================
``chat``        Chat Completions: ``messages`` as they are; ``max_completion_tokens`` or
                ``max_tokens``.
``responses``   OpenAI Responses: ``instructions`` (a system message), ``input`` as text or
                items, each read by its type's pattern so new item types read too
                (messages; ``*_call``, ``program``, ``mcp_approval_request`` as assistant
                tool calls; ``*_output``, ``mcp_approval_response`` as their results;
                ``reasoning`` as assistant reasoning glued to the item after it; other
                items as context counted by their JSON); ``max_output_tokens``;
                ``previous_response_id`` / ``conversation`` / ``prompt`` (stored input the
                request does not carry: ``input`` may then be absent).
``messages``    Anthropic Messages: top-level ``system`` (text or text blocks); messages
                of role ``user``, ``assistant`` or ``system`` (a system message between
                turns, as Claude Code sends); content blocks ``text``, ``image``,
                ``document``, ``tool_use`` / ``server_tool_use`` (tool calls),
                ``tool_result`` (a user message of results only is a tool message; one
                that also has text stays the user's and names its results), ``thinking``,
                ``redacted_thinking``, and any other block (search results, server tool
                results, blocks yet unknown) counted by its JSON; ``cache_control`` is not
                counted; ``max_tokens``; ``tools``.
``completions`` Legacy completions: ``prompt`` (text, texts or token ids) as one user message.
``embeddings``  Embeddings: ``input`` as one user message, no output (priced by input tokens).
==============  ==========================================================================

Every body valid by the installed ``openai`` / ``anthropic`` SDKs' request
types reads (tests/integrations/test_shapes_sdk_bodies.py generates them from
those types). A request that cannot be read (no model, an empty or malformed
``messages`` / ``input`` / ``prompt``, a message or item that is not an object
or has no role or type) raises :class:`governor.errors.UnreadableCall` naming the
field, so the caller can refuse it instead of letting it through unchecked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from governor.decision import Decision
from governor.errors import UnreadableCall

SHAPES: tuple[str, ...] = ("chat", "responses", "messages", "completions", "embeddings")
REASONING_PART = "reasoning"  # the content-part type of a reasoning item read into a message


@dataclass(frozen=True, kw_only=True, slots=True)
class Call:
    """One request read into what the engine checks."""

    shape: str
    """Which API the request speaks: one of :data:`SHAPES`."""
    model: str
    """The model requested."""
    messages: tuple[Mapping[str, Any], ...]
    """Chat-style messages: ``fixed`` leading ones from outside the items (system, instructions), then one
    per item of ``items`` in order."""
    items: tuple[Any, ...] = ()
    """The request's own items (messages, input items), aligned with ``messages[fixed:]``."""
    items_key: str | None = None
    """The request field that holds ``items`` (``messages``, ``input``); None when it is not trimmable."""
    fixed: int = 0
    """How many leading ``messages`` are not items (a trim keeps them: they are system messages)."""
    tools: tuple[Mapping[str, Any], ...] | None = None
    """The tools offered, in chat-completions form (``{"type": "function", "function": {...}}``)."""
    max_tokens: int | None = None
    """The output allowance the request asks for (None: unset; 0 for embeddings)."""
    max_tokens_key: str | None = None
    """The request field that carries the output allowance, written back when the policy clamps it."""
    input_tokens: int | None = None
    """Input tokens when the request gives them exactly (token-id prompts); None lets the engine count."""
    previous_response_id: str | None = None
    """Responses ``previous_response_id``: the call also pays for a stored history it does not carry."""
    stream: bool = False
    """Whether the request asks for a stream."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Shape-specific facts for the caller (e.g. ``string_input`` for a Responses text input)."""

    def check_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``Governor.check`` (metadata aside)."""
        return {
            "model": self.model,
            "messages": list(self.messages),
            "max_tokens": self.max_tokens,
            "tools": list(self.tools) if self.tools is not None else None,
            "input_tokens": self.input_tokens,
        }


# --- small readers ---------------------------------------------------------------------------


def _where(shape: str, key: str) -> str:
    return f"{shape} request field {key!r}"


def _int_or_none(value: Any, shape: str, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UnreadableCall(f"{_where(shape, key)} must be an integer, not {type(value).__name__}")
    try:
        return int(value)
    except ValueError:
        raise UnreadableCall(f"{_where(shape, key)} must be an integer, not {value!r}") from None


def _model(shape: str, request: Mapping[str, Any]) -> str:
    model = request.get("model")
    if not isinstance(model, str) or not model:
        raise UnreadableCall(f"{_where(shape, 'model')} is missing or not a string")
    return model


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """Key or attribute (SDK params may be pydantic models or TypedDicts)."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _plain(obj: Any) -> Any:
    """A JSON-like copy of an SDK object (pydantic model) for reading; mappings and lists pass through."""
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump(exclude_none=True)
    return obj


def _text(value: Any) -> str:
    """The text of a content value: a string, or parts with ``text``/``output``/``thinking``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence):
        return "".join(_text(part) for part in value)
    value = _plain(value)
    if isinstance(value, Mapping):
        for key in ("text", "thinking", "output", "content", "refusal"):
            inner = value.get(key)
            if inner is not None:
                return _text(inner)
        return ""
    return str(value)


def _json(value: Any) -> str:
    try:
        return json.dumps(_plain(value), sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


# --- tools -----------------------------------------------------------------------------------


def _chat_tool(tool: Any) -> Mapping[str, Any] | None:
    """A tool of any API as a chat-completions tool (None for one with no name)."""
    tool = _plain(tool)
    if not isinstance(tool, Mapping):
        return None
    fn = tool.get("function")
    if isinstance(fn, Mapping):
        return tool
    name = tool.get("name") or tool.get("type")  # built-in tools (web_search, local_shell) go by type
    if not isinstance(name, str) or not name:
        return None
    spec: dict[str, Any] = {"name": name}
    if tool.get("description"):
        spec["description"] = tool["description"]
    params = tool.get("input_schema") or tool.get("parameters")
    if isinstance(params, Mapping):
        spec["parameters"] = params
    return {"type": "function", "function": spec}


def _tools(shape: str, request: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...] | None:
    raw = request.get("tools")
    if raw is None:
        return None
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
        raise UnreadableCall(f"{_where(shape, 'tools')} must be a list")
    if shape == "chat":
        return tuple(raw)
    return tuple(t for t in map(_chat_tool, raw) if t is not None)


# --- chat ------------------------------------------------------------------------------------


def _items(shape: str, request: Mapping[str, Any], key: str) -> list[Any]:
    raw = request.get(key)
    if raw is None:
        raise UnreadableCall(f"{_where(shape, key)} is missing")
    if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Sequence):
        raise UnreadableCall(f"{_where(shape, key)} must be a list, not {type(raw).__name__}")
    if not raw:
        raise UnreadableCall(f"{_where(shape, key)} is empty: there is nothing to send")
    return list(raw)


def read_chat(request: Mapping[str, Any]) -> Call:
    items = _items("chat", request, "messages")
    for index, message in enumerate(items):
        if _get(message, "role") is None:
            raise UnreadableCall(f"chat request field 'messages[{index}]' has no role")
    key = "max_completion_tokens" if request.get("max_completion_tokens") is not None else "max_tokens"
    return Call(
        shape="chat",
        model=_model("chat", request),
        messages=tuple(items),
        items=tuple(items),
        items_key="messages",
        tools=_tools("chat", request),
        max_tokens=_int_or_none(request.get(key), "chat", key),
        max_tokens_key=key,
        stream=bool(request.get("stream")),
    )


# --- Responses -------------------------------------------------------------------------------

_RESPONSES_ROLES = {"developer": "system", "system": "system", "user": "user", "assistant": "assistant"}


def _responses_parts(content: Any) -> Any:
    """Responses content (text or parts) as chat content the token counter reads."""
    if content is None or isinstance(content, str):
        return content or ""
    parts: list[dict[str, Any]] = []
    for part in content if isinstance(content, Sequence) else [content]:
        part = _plain(part)
        kind = _get(part, "type")
        if kind in ("input_image", "image_url", "input_file", "input_audio"):
            parts.append({"type": "image"})  # counted as an image: an estimate
        else:
            parts.append({"type": "text", "text": _text(part)})
    return parts


def _call_message(call_id: Any, name: Any, arguments: str) -> dict[str, Any]:
    call = {"id": str(call_id or ""), "type": "function", "function": {"name": str(name), "arguments": arguments}}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def _rest(item: Mapping[str, Any], *drop: str) -> str:
    """The JSON text of an item's fields but ``drop`` (how an item of no text is counted: an estimate)."""
    return _json({k: v for k, v in item.items() if k not in drop})


def _responses_item(item: Any, index: int) -> dict[str, Any]:
    """One input item as a chat message, by its type's pattern, so an item type added to the API reads too.

    ``message`` (or an item with a ``role``) is a message; ``*_call``, ``program`` and ``mcp_approval_request``
    are tool calls (by ``call_id``, else ``id``); ``*_output`` and ``mcp_approval_response`` are their results;
    ``reasoning`` is assistant reasoning; an ``item_reference`` (or an item of only an ``id``) is a stored item;
    any other typed item (``compaction``, ``additional_tools``, ...) is context in its ``role`` (assistant when
    it has none), counted by its JSON.
    """
    item = _plain(item)
    if isinstance(item, str):
        return {"role": "user", "content": item}
    if not isinstance(item, Mapping):
        raise UnreadableCall(f"responses request field 'input[{index}]' must be an object, not {type(item).__name__}")
    kind = item.get("type") or ("message" if "role" in item else "item_reference" if "id" in item else None)
    if not isinstance(kind, str):
        raise UnreadableCall(f"responses request field 'input[{index}]' has no type")
    if kind == "message":
        role = _RESPONSES_ROLES.get(str(item.get("role")), "user")
        return {"role": role, "content": _responses_parts(item.get("content"))}
    if kind == "reasoning":
        summary = " ".join(_text(s) for s in item.get("summary") or ())
        return {"role": "assistant", "content": [{"type": REASONING_PART, "text": summary}]}
    if kind.endswith("_output") or kind == "mcp_approval_response":
        output = item.get("output")
        text = output if isinstance(output, str) else _text(output) if output is not None else ""
        result_id = item.get("call_id") or item.get("approval_request_id") or item.get("id")
        return {"role": "tool", "tool_call_id": str(result_id or ""), "content": text or _rest(item, "type", "id")}
    if kind.endswith("_call") or kind in ("program", "mcp_approval_request"):
        arguments = item.get("arguments")
        if not isinstance(arguments, str):
            arguments = _rest(item, "type", "id", "call_id", "status", "name")
        return _call_message(item.get("call_id") or item.get("id"), item.get("name") or kind, arguments)
    if kind == "item_reference":
        return {"role": "assistant", "content": ""}  # a stored item: its tokens are not in the request
    role = _RESPONSES_ROLES.get(str(item.get("role")), "assistant")
    return {"role": role, "content": _rest(item, "id", "role")}


def read_responses(request: Mapping[str, Any]) -> Call:
    raw = request.get("input")
    fixed: list[Mapping[str, Any]] = []
    instructions = request.get("instructions")
    if isinstance(instructions, str) and instructions:
        fixed.append({"role": "system", "content": instructions})
    elif isinstance(instructions, Sequence) and not isinstance(instructions, str) and instructions:
        fixed.append({"role": "system", "content": " ".join(_text(_get(i, "content", i)) for i in instructions)})
    previous = request.get("previous_response_id")
    # the request may carry no input of its own: a stored history (previous_response_id, conversation) or a
    # stored prompt template holds it, and the engine counts only what the request carries
    stored = previous or request.get("conversation") or request.get("prompt")
    if isinstance(raw, str):
        if not raw and not stored:
            raise UnreadableCall("responses request field 'input' is empty: there is nothing to send")
        # a text input is one turn: nothing to trim
        items: list[Any] = [raw]
        messages: list[Mapping[str, Any]] = [{"role": "user", "content": raw}]
    else:
        items = [] if raw is None and stored else _items("responses", request, "input")
        messages = [_responses_item(item, i) for i, item in enumerate(items)]
    return Call(
        shape="responses",
        model=_model("responses", request),
        messages=(*fixed, *messages),
        items=tuple(items),
        items_key=None if isinstance(raw, str) else "input",
        fixed=len(fixed),
        tools=_tools("responses", request),
        max_tokens=_int_or_none(request.get("max_output_tokens"), "responses", "max_output_tokens"),
        max_tokens_key="max_output_tokens",
        previous_response_id=previous if isinstance(previous, str) else None,
        stream=bool(request.get("stream")),
        extra={"string_input": True} if isinstance(raw, str) else {},
    )


# --- Anthropic Messages ----------------------------------------------------------------------


_TOOL_USES = ("tool_use", "server_tool_use", "mcp_tool_use")


def _anthropic_block(block: Any, role: str, parts: list[dict[str, Any]], calls: list[Any], results: list[str]) -> None:
    """Read one content block into the message's parts, tool calls and the tool results it answers."""
    block = _plain(block)
    kind = _get(block, "type")
    if kind in _TOOL_USES:
        calls.append(_call_message(_get(block, "id"), _get(block, "name") or kind, _json(_get(block, "input") or {})))
    elif kind == "tool_result" or (role == "user" and isinstance(kind, str) and kind.endswith("_tool_result")):
        results.append(str(_get(block, "tool_use_id") or ""))
        inner = _get(block, "content")
        parts.append({"type": "text", "text": inner if isinstance(inner, str) else _text(inner)})
    elif kind in ("image", "document", "container_upload"):
        source = _get(block, "source") or {}
        if kind == "document" and _get(source, "type") == "text":
            parts.append({"type": "text", "text": str(_get(source, "data") or "")})
        elif kind == "document" and _get(source, "type") == "content":
            parts.append({"type": "text", "text": _text(_get(source, "content"))})
        else:
            parts.append({"type": "image"})  # counted as an image: an estimate
    elif kind == "redacted_thinking":
        parts.append({"type": "text", "text": str(_get(block, "data") or "")})
    elif kind in ("text", "thinking"):
        parts.append({"type": "text", "text": _text(block)})
    elif isinstance(block, Mapping):  # search results, server tool results, blocks yet unknown: their JSON
        parts.append({"type": "text", "text": _json({k: v for k, v in block.items() if k != "cache_control"})})
    else:
        parts.append({"type": "text", "text": _text(block)})


def _anthropic_message(message: Any, index: int) -> dict[str, Any]:
    message = _plain(message)
    if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant", "system"):
        raise UnreadableCall(f"messages request field 'messages[{index}]' needs a role of user, assistant or system")
    role = message["role"]
    content = message.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, Sequence):
        raise UnreadableCall(f"messages request field 'messages[{index}].content' must be text or a list of blocks")
    if role == "system":  # a system message between turns (Claude Code sends one): text blocks
        return {"role": "system", "content": _text(list(content))}
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    results: list[str] = []
    for block in content:
        _anthropic_block(block, role, parts, calls, results)
    # a message of tool results only is a tool message; a user message that also says something stays the
    # user's (its text is the last user message) and names its results, so a trim never opens at it
    only_results = bool(results) and len(parts) == len(results)
    out: dict[str, Any] = {"role": "tool" if only_results else role, "content": parts}
    if results:
        out["tool_call_id"] = ",".join(results)
    if calls:
        out["tool_calls"] = [c for call in calls for c in call["tool_calls"]]
    return out


def _anthropic_system(system: Any) -> list[Mapping[str, Any]]:
    if system is None or system == "" or (isinstance(system, Sequence) and not system):
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if isinstance(system, Sequence):
        return [{"role": "system", "content": _text(list(system))}]
    raise UnreadableCall("messages request field 'system' must be text or a list of text blocks")


def read_messages(request: Mapping[str, Any]) -> Call:
    items = _items("messages", request, "messages")
    fixed = _anthropic_system(request.get("system"))
    messages = [_anthropic_message(m, i) for i, m in enumerate(items)]
    return Call(
        shape="messages",
        model=_model("messages", request),
        messages=(*fixed, *messages),
        items=tuple(items),
        items_key="messages",
        fixed=len(fixed),
        tools=_tools("messages", request),
        max_tokens=_int_or_none(request.get("max_tokens"), "messages", "max_tokens"),
        max_tokens_key="max_tokens",
        stream=bool(request.get("stream")),
    )


# --- completions and embeddings --------------------------------------------------------------


def _text_or_ids(shape: str, key: str, raw: Any) -> tuple[str, int | None]:
    """(text, exact token count when the input is token ids) of a prompt or an embeddings input."""
    if isinstance(raw, str):
        if not raw:
            raise UnreadableCall(f"{_where(shape, key)} is empty: there is nothing to send")
        return raw, None
    if isinstance(raw, Sequence) and raw:
        if all(isinstance(x, int) and not isinstance(x, bool) for x in raw):
            return "", len(raw)
        if all(isinstance(x, str) for x in raw):
            return "\n".join(raw), None
        if all(isinstance(x, Sequence) and not isinstance(x, str) for x in raw):
            return "", sum(len(x) for x in raw)
    if isinstance(raw, Sequence) and not raw:
        raise UnreadableCall(f"{_where(shape, key)} is empty: there is nothing to send")
    raise UnreadableCall(f"{_where(shape, key)} must be text, a list of texts or token ids")


def read_completions(request: Mapping[str, Any]) -> Call:
    text, ids = _text_or_ids("completions", "prompt", request.get("prompt"))
    message = {"role": "user", "content": text} if ids is None else {"role": "user", "content": f"<{ids} token ids>"}
    return Call(
        shape="completions",
        model=_model("completions", request),
        messages=(message,),
        items=(request.get("prompt"),),
        tools=None,
        max_tokens=_int_or_none(request.get("max_tokens"), "completions", "max_tokens"),
        max_tokens_key="max_tokens",
        input_tokens=ids,
        stream=bool(request.get("stream")),
    )


def read_embeddings(request: Mapping[str, Any]) -> Call:
    text, ids = _text_or_ids("embeddings", "input", request.get("input"))
    message = {"role": "user", "content": text} if ids is None else {"role": "user", "content": f"<{ids} token ids>"}
    return Call(
        shape="embeddings",
        model=_model("embeddings", request),
        messages=(message,),
        items=(request.get("input"),),
        max_tokens=0,  # no output: the call costs its input tokens
        input_tokens=ids,
    )


READERS = {
    "chat": read_chat,
    "responses": read_responses,
    "messages": read_messages,
    "completions": read_completions,
    "embeddings": read_embeddings,
}


def read_call(shape: str, request: Mapping[str, Any]) -> Call:
    """Read one request of API ``shape``; raise ``UnreadableCall`` naming the field that is wrong."""
    if not isinstance(request, Mapping):
        raise UnreadableCall(f"a {shape} request must be a JSON object")
    reader = READERS.get(shape)
    if reader is None:
        raise UnreadableCall(f"unknown API shape {shape!r} (known: {', '.join(SHAPES)})")
    return reader(request)


# --- back to the request ---------------------------------------------------------------------


def kept_items(call: Call, decision: Decision) -> list[Any]:
    """The request items that survive the decision's trim, in order (matched by identity, then equality)."""
    ours = call.messages[call.fixed :]
    decided = [m for m in decision.messages if not any(m is f for f in call.messages[: call.fixed])]
    if len(decided) == len(ours):
        return list(call.items)
    by_id = {id(m): i for i, m in enumerate(ours)}
    out: list[Any] = []
    cursor = 0
    for message in decided:
        index = by_id.get(id(message))
        if index is None:
            index = next((i for i in range(cursor, len(ours)) if ours[i] == message), None)
        if index is None:
            raise ValueError("trimmed messages are not a subsequence of the messages checked")
        out.append(call.items[index])
        cursor = index + 1
    return out


def decided_request(call: Call, decision: Decision, request: Mapping[str, Any]) -> dict[str, Any]:
    """``request`` as decided: the decided model, the items kept by a trim, the clamped output allowance."""
    out = dict(request)
    out["model"] = decision.model
    if call.items_key is not None and decision.verdict == "trim":
        out[call.items_key] = kept_items(call, decision)
    if call.max_tokens_key is not None and decision.max_tokens is not None and call.shape != "embeddings":
        out[call.max_tokens_key] = decision.max_tokens
    return out


__all__ = ["Call", "READERS", "SHAPES", "decided_request", "kept_items", "read_call"]
