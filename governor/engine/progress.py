"""What a call adds to its run: the content behind ``no_progress`` and the tool calls behind ``max_tool_calls``.

A call's *tail* is the part of its messages the run has not sent before: the
messages past the previous admitted call's count (an agent's history only
grows), or all of them when the history shrank (compaction, a trim). Each
message of the tail gets a content digest that ignores what differs between
two otherwise identical turns: call ids (``id``, ``tool_call_id``,
``tool_use_id``, ``call_id``), ``cache_control`` breakpoints (clients move them
to the last message), thinking signatures, Codex's per-item bookkeeping
(``internal_chat_message_metadata_passthrough``) and the header lines Codex
puts on every command's output (``Chunk ID: <random>``, ``Wall time: <n>
seconds``: without this, two runs of one command never look alike). A tail whose digests were all
seen before in the run adds no new content: the same tool call with the same
arguments and the same result, or a context that grows only by repeats.

Tool calls are read from the three shapes a tail can hold: Chat Completions
``tool_calls``, Anthropic ``tool_use`` content blocks and Responses
``function_call`` / ``custom_tool_call`` / ``local_shell_call`` input items.

Digests are stable across processes (BLAKE2b of canonical JSON), so the hook
(``governor hook claude-code``) keeps them in its state file between calls.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

IGNORED_KEYS = frozenset(
    {
        "id",
        "tool_call_id",
        "tool_use_id",
        "call_id",
        "cache_control",
        "signature",
        "internal_chat_message_metadata_passthrough",
    }
)
VOLATILE_LINES = re.compile(r"(?m)^(?:Chunk ID: [0-9A-Za-z]+|Wall time: [0-9.]+ seconds)\n")
"""Lines of a Codex command output that differ on every run of the same command."""
RESPONSES_TOOL_ITEMS = {"function_call": "name", "custom_tool_call": "name"}
MAX_CONTENT = 8192  # digests kept per run; the oldest are forgotten first


@dataclass(frozen=True, kw_only=True, slots=True)
class Tail:
    """What one call adds to its run."""

    digests: tuple[int, ...]
    """The content digest of each new message, in order."""
    tools: tuple[str, ...]
    """The names of the tool calls in the new messages, one per call."""
    size: int
    """How many messages the call has in all (the next call's tail starts there)."""


def _strip(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _strip(v) for k, v in value.items() if k not in IGNORED_KEYS}
    if isinstance(value, (list, tuple)):
        return [_strip(v) for v in value]
    if isinstance(value, str):
        return VOLATILE_LINES.sub("", value)
    return value


def content_digest(message: Any) -> int:
    """A process-independent digest of one message, ids and cache markers left out."""
    text = json.dumps(_strip(message), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


def tool_calls(message: Any) -> Iterator[str]:
    """The tool names a message (or Responses input item) calls."""
    if not isinstance(message, Mapping):
        return
    kind = message.get("type")
    if kind in RESPONSES_TOOL_ITEMS:
        name = message.get(RESPONSES_TOOL_ITEMS[kind])
        if isinstance(name, str):
            yield name
        return
    if kind == "local_shell_call":
        yield "local_shell"
        return
    for call in message.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call, Mapping) else None
        name = fn.get("name") if isinstance(fn, Mapping) else None
        if isinstance(name, str):
            yield name
    content = message.get("content")
    if isinstance(content, list):
        for block in content:
            if isinstance(block, Mapping) and block.get("type") == "tool_use" and isinstance(block.get("name"), str):
                yield block["name"]


def tail(messages: Sequence[Any], seen: int) -> Tail:
    """The tail of ``messages`` for a run whose previous call had ``seen`` messages."""
    new = messages[seen:] if len(messages) >= seen else messages
    return Tail(
        digests=tuple(map(content_digest, new)), tools=tuple(t for m in new for t in tool_calls(m)), size=len(messages)
    )


def matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatchcase(name, p) for p in patterns)
