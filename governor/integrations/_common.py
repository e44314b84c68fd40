"""Pieces every integration shares: the exception for a blocked decision, mapping a
trimmed message list back to the framework's own message objects, and an
approximate counter of streamed output."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from governor.decision import Decision
from governor.errors import BLOCK_ERRORS, CostCapExceeded, block_error
from governor.integrations.usage import estimate_tokens

T = TypeVar("T")

STREAM_CAP_RULE = "stream-output-cap"


def block_message(decision: Decision) -> str:
    """One line for a framework's graceful stop: reason, rule ids and revision."""
    return str(block_error(decision))


async def aclose_stream(stream: Any) -> None:
    """Close a provider's async stream: ``aclose()`` where it has one, else ``close()`` (awaited if it returns
    an awaitable). Both governed stream wrappers (chat chunks and API events) stop their source this way."""
    for name in ("aclose", "close"):
        close = getattr(stream, name, None)
        if close is not None:
            result = close()
            if hasattr(result, "__await__"):
                await result
            return


def stream_cap_error(decision: Decision, cap: int, counted: int) -> CostCapExceeded:
    """The error raised when a stream passes its call's output cap mid-way.

    It carries a copy of the decision turned into a block, naming the rules
    that set the cap (or ``stream-output-cap`` if the cap was the caller's own).
    """
    reason = f"stream stopped: about {counted} output tokens passed the call's cap of {cap}"
    blocked = replace(
        decision,
        verdict="block",
        block_kind="cost",
        reasons=(reason,),
        rule_ids=decision.rule_ids or (STREAM_CAP_RULE,),
        blocked_by=(decision.rule_ids or (STREAM_CAP_RULE,))[-1],
    )
    return CostCapExceeded(blocked)


def kept_messages(originals: Sequence[T], sent: Sequence[Any], decided: Sequence[Any]) -> list[T]:
    """The framework messages that survive a trim.

    ``sent`` are the dicts given to ``check`` (one per item of ``originals``);
    ``decided`` is ``Decision.messages``, a subsequence of ``sent``. Matched by
    identity first, then by equality in order, so the framework keeps its own
    message objects (tool calls, ids) rather than our flattened copies.
    """
    if len(decided) == len(sent):
        return list(originals)
    by_id = {id(m): i for i, m in enumerate(sent)}
    out: list[T] = []
    cursor = 0
    for msg in decided:
        index = by_id.get(id(msg))
        if index is None:
            index = next((i for i in range(cursor, len(sent)) if sent[i] == msg), None)
        if index is None:
            raise ValueError("trimmed messages are not a subsequence of the messages checked")
        out.append(originals[index])
        cursor = index + 1
    return out


def message_text(content: Any) -> str:
    """Plain text of a message ``content`` (a string or a list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping):
                parts.append(str(part.get("text") or ""))
            else:
                parts.append(str(getattr(part, "text", "") or ""))
        return "".join(parts)
    return str(content)


__all__ = [
    "BLOCK_ERRORS",
    "block_error",
    "block_message",
    "estimate_tokens",
    "kept_messages",
    "message_text",
    "stream_cap_error",
]
