"""The validation boundary: everything a caller hands the governor is checked here, once.

One function per surface, called at the top of it before anything is counted,
reserved or charged:

* :func:`check_args` - ``Governor.check`` (and so every adapter);
* :func:`record_counts` - ``Governor.record``;
* :func:`scope_metadata` - ``Governor.run`` / ``check(metadata=...)``;
* a litellm proxy request body - read by :mod:`governor.integrations.shapes`, then
  :func:`check_args` through ``check`` (the proxy answers InvalidCall with HTTP 400);
* :func:`trace_count`, :func:`trace_number`, :func:`trace_text` - fields of a trace record.

A bad value raises :class:`~governor.errors.InvalidCall` naming the field
(``metadata.team``, ``messages[3]``), never a ``TypeError`` from deep inside.
What the engine accepts, and why:

* counts (tokens, ``max_tokens``, message counts) are integers (an integral
  float such as ``256.0`` from JSON is taken as the integer), never bool, from
  0 to :data:`MAX_COUNT`: a negative count would reserve or charge a negative
  amount (a credit), and a larger one cannot be priced in the ledgers' 64-bit
  nano-dollar integers;
* text (the model, scope values) is valid Unicode (no lone surrogates) and at
  most :data:`MAX_TEXT` characters;
* the scope keys (``run_id``, ``user``, ``team``, ``task``, ``agent``,
  ``workflow``, ``end_user``) are budget and stats keys, so they must be scalars:
  a string, or an integer (made a string: ``user=42`` is the user ``"42"``). A
  list, mapping, float or bool there is refused, not stringified: ``str([...])``
  would silently make a new budget key out of a client's mistake. ``tags`` is a
  string or a list of them. Other metadata keys are free-form (matchers compare
  them as they are).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from governor.errors import InvalidCall

__all__ = [
    "MAX_COUNT",
    "MAX_TEXT",
    "SCOPE_KEYS",
    "check_args",
    "count",
    "record_counts",
    "scope_metadata",
    "trace_count",
    "trace_number",
    "trace_text",
    "usd",
]

MAX_COUNT = 10**11
"""The largest token count (or ``max_tokens``) accepted: 100 billion tokens, far beyond any model's
window. Its cost at the highest price a policy may set ($10,000 per million tokens, the schema's
bound) is $1e9, which the ledgers' signed 64-bit nano-dollar integers hold with room to add."""

MAX_TEXT = 4096
"""The longest model name or scope value (run, user, team, ...) accepted, in characters."""

SCOPE_KEYS = ("run_id", "user", "team", "task", "agent", "workflow", "end_user")
"""Metadata keys that name a budget or stats scope: scalars only."""


def _valid_text(value: str, field: str) -> str:
    if len(value) > MAX_TEXT:
        raise InvalidCall(field, f"longer than {MAX_TEXT} characters ({len(value)})")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidCall(field, f"not valid Unicode (lone surrogate at character {exc.start})") from None
    return value


def count(value: Any, field: str, *, limit: int = MAX_COUNT) -> int:
    """A non-negative integer count no larger than ``limit``; an integral float is taken as the integer."""
    if type(value) is int:  # the usual case first
        n = value
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidCall(field, f"expected a non-negative integer, got {type(value).__name__} {_show(value)}")
    elif isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise InvalidCall(field, f"expected a non-negative integer, got {_show(value)}")
        n = int(value)
    else:  # an int subclass (numpy ints are not, and are refused above)
        n = int(value)
    if n < 0:
        raise InvalidCall(field, f"must not be negative, got {n}")
    if n > limit:
        raise InvalidCall(field, f"larger than the largest count the governor accounts for ({limit:,}), got {_show(n)}")
    return n


def usd(value: Any, field: str, *, limit: float = 1e9) -> float:
    """A finite, non-negative amount of USD no larger than ``limit`` (a billed cost)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidCall(field, f"expected a number of USD, got {type(value).__name__} {_show(value)}")
    try:
        f = float(value)
    except OverflowError:
        raise InvalidCall(field, f"out of range: {_show(value)}") from None
    if not math.isfinite(f) or f < 0 or f > limit:
        raise InvalidCall(field, f"expected a finite amount from 0 to {limit:g} USD, got {_show(value)}")
    return f


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def scope_value(value: Any, field: str) -> str:
    """A scope key's value as the string budgets and stats key on."""
    if type(value) is str:
        return _valid_text(value, field)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return _valid_text(str(value), field)
    raise InvalidCall(field, f"must be a string (or an integer), got {type(value).__name__}")


def scope_metadata(metadata: Any, field: str = "metadata") -> Mapping[str, Any]:
    """Call metadata with its scope values made strings (None stays: the scope is unset)."""
    if metadata is None:
        return {}
    if type(metadata) is not dict and not isinstance(metadata, Mapping):
        raise InvalidCall(field, f"expected a mapping, got {type(metadata).__name__}")
    out: dict[str, Any] | None = None
    for key, value in metadata.items():
        if type(key) is not str:
            raise InvalidCall(field, f"keys must be strings, got {type(key).__name__} {_show(key)}")
        if value is None or type(value) is str and key != "tags" and (len(value) <= 128 and value.isascii()):
            continue  # the usual case: nothing to check
        if key in SCOPE_KEYS:
            fixed: Any = scope_value(value, f"{field}.{key}")
        elif key == "tags":
            fixed = _tags(value, f"{field}.tags")
        else:
            continue
        if fixed is not value:
            if out is None:
                out = dict(metadata)
            out[key] = fixed
    return metadata if out is None else out


def _tags(value: Any, field: str) -> Any:
    if value is None or type(value) is str:
        return value if value is None else _valid_text(value, field)
    if isinstance(value, (list, tuple, set, frozenset)):
        fixed = [scope_value(t, f"{field}[{i}]") for i, t in enumerate(value)]
        return value if all(a is b for a, b in zip(fixed, value, strict=False)) else fixed
    raise InvalidCall(field, f"must be a string or a list of strings, got {type(value).__name__}")


def check_args(
    model: Any,
    messages: Any,
    max_tokens: Any,
    tools: Any,
    metadata: Any,
    input_tokens: Any,
    fingerprint: Any,
    message_count: Any,
) -> tuple[
    str,
    Sequence[Mapping[str, Any]],
    int | None,
    Sequence[Any] | None,
    Mapping[str, Any] | None,
    int | None,
    str | int | None,
    int | None,
]:
    """The arguments of ``Governor.check``, checked and normalised (same order), or :class:`InvalidCall`."""
    if type(model) is not str:
        raise InvalidCall("model", f"expected a string, got {type(model).__name__}")
    if not model:
        raise InvalidCall("model", "must not be empty")
    _valid_text(model, "model")
    if messages is None:
        messages = ()
    elif type(messages) is list or type(messages) is tuple:  # the usual case: no ABC checks
        for msg in messages:
            if type(msg) is not dict and not isinstance(msg, Mapping):
                _bad_message(messages)
            content = msg.get("content")
            if (
                content is not None
                and type(content) is not str
                and (
                    type(content) is not list
                    or any(type(part) is not dict or type(part.get("type")) is not str for part in content)
                )
            ):
                _bad_message(messages)
    elif isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise InvalidCall("messages", f"expected a list of message mappings, got {type(messages).__name__}")
    else:
        _bad_message(messages)
    if max_tokens is not None:
        max_tokens = count(max_tokens, "max_tokens")
    if (
        tools is not None
        and type(tools) is not list
        and type(tools) is not tuple
        and (isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence))
    ):
        raise InvalidCall("tools", f"expected a list of tools, got {type(tools).__name__}")
    if metadata is not None:
        metadata = scope_metadata(metadata)
    if input_tokens is not None:
        input_tokens = count(input_tokens, "input_tokens")
    if fingerprint is not None and (isinstance(fingerprint, bool) or not isinstance(fingerprint, (str, int))):
        raise InvalidCall("fingerprint", f"expected a string or an integer, got {type(fingerprint).__name__}")
    if message_count is not None:
        message_count = count(message_count, "message_count")
    return model, messages, max_tokens, tools, metadata, input_tokens, fingerprint, message_count


def _bad_message(messages: Sequence[Any]) -> None:
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping):
            raise InvalidCall(f"messages[{i}]", f"expected a mapping with a role and content, got {type(msg).__name__}")
        content = msg.get("content")
        if isinstance(content, (list, tuple)):
            for k, part in enumerate(content):
                if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
                    raise InvalidCall(
                        f"messages[{i}].content[{k}]",
                        f"expected a content part (a mapping with a type), got {type(part).__name__}",
                    )
        elif content is not None and not isinstance(content, str):
            # a provider refuses it too, after the call was admitted: refuse it here, before anything is reserved
            raise InvalidCall(
                f"messages[{i}].content",
                f"expected text, a list of content parts or null, got {type(content).__name__}",
            )


def record_counts(
    input_tokens: Any,
    output_tokens: Any,
    cache_read_tokens: Any,
    cache_write_tokens: Any,
    reasoning_tokens: Any,
    error: Any,
) -> tuple[int, int, int, int, int]:
    """The token counts of ``Governor.record``, checked (None is 0 for the optional ones), or :class:`InvalidCall`."""
    if (  # the usual case: two counts in range, no cache or reasoning tokens, no error
        type(input_tokens) is int
        and type(output_tokens) is int
        and 0 <= input_tokens <= MAX_COUNT
        and 0 <= output_tokens <= MAX_COUNT
        and not (cache_read_tokens or cache_write_tokens or reasoning_tokens)
        and error is None
        and cache_read_tokens.__class__ is cache_write_tokens.__class__ is reasoning_tokens.__class__ is int
    ):
        return input_tokens, output_tokens, 0, 0, 0
    counts = (
        count(input_tokens, "input_tokens"),
        count(output_tokens, "output_tokens"),
        0 if cache_read_tokens is None else count(cache_read_tokens, "cache_read_tokens"),
        0 if cache_write_tokens is None else count(cache_write_tokens, "cache_write_tokens"),
        0 if reasoning_tokens is None else count(reasoning_tokens, "reasoning_tokens"),
    )
    if error is not None and not isinstance(error, (str, BaseException)):
        raise InvalidCall("error", f"expected a string or an exception, got {type(error).__name__}")
    return counts


# -- trace records ------------------------------------------------------------------
def trace_count(rec: Mapping[str, Any], key: str, *, default: int | None = 0) -> int | None:
    """A record's token count: a non-negative integer in range (``default`` when absent or null).

    Raises ``ValueError`` (the importers report it, located, and skip the record).
    """
    v = rec.get(key)
    if v is None:
        return default
    try:
        return count(v, key)
    except InvalidCall as exc:
        raise ValueError(f"field {key!r}: {exc.reason}") from None


def trace_number(
    rec: Mapping[str, Any], key: str, *, default: float | None = None, limit: float = 1e15
) -> float | None:
    """A record's finite, non-negative number no larger than ``limit`` (``default`` when absent or null).

    Cost and time fields: NaN, infinity and negative values are refused (``ValueError``), so a report
    never shows ``NaN`` or a negative saving and a timestamp always sorts.
    """
    v = rec.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"field {key!r} must be a number, got {_show(v)}")
    try:
        f = float(v)
    except OverflowError:
        raise ValueError(f"field {key!r} is out of range: {_show(v)}") from None
    if not math.isfinite(f) or f < 0 or f > limit:
        raise ValueError(f"field {key!r} must be a finite number from 0 to {limit:g}, got {_show(v)}")
    return f


def trace_text(value: Any, key: str) -> str | None:
    """A record's text field, valid Unicode (``ValueError`` otherwise); None stays None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"field {key!r} must be a string, got {type(value).__name__}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"field {key!r} is not valid Unicode (a lone surrogate)") from None
    return value


MAX_TIMESTAMP = 253402300799.0
"""The latest time a trace record may carry: 9999-12-31T23:59:59Z, the last second a calendar window can name."""


def trace_call_problem(call: Any) -> str | None:
    """Why replay cannot take one imported call (None when it can): the registry reports it, located.

    Every importer's calls pass here, so what one format's reader lets through (a NaN or 1e300
    timestamp, a negative or NaN cost, a count the ledgers cannot hold, a list as the team, a lone
    surrogate in the model) is refused the same way for all of them.
    """
    ts = call.timestamp
    if not isinstance(ts, (int, float)) or isinstance(ts, bool) or not (0 <= ts <= MAX_TIMESTAMP):
        return f"timestamp must be epoch seconds from 0 to {MAX_TIMESTAMP:.0f} (year 9999), got {_show(ts)}"
    cost = call.cost_usd
    if cost is not None and (
        isinstance(cost, bool)
        or not isinstance(cost, (int, float))
        or not math.isfinite(cost)
        or cost < 0
        or cost > 1e15
    ):
        return f"cost must be a finite, non-negative number of USD, got {_show(cost)}"
    try:
        check_args(
            call.model,
            call.messages,
            call.max_tokens,
            None,
            call.metadata,
            call.input_tokens,
            call.messages_digest,
            call.message_count,
        )
        record_counts(
            call.input_tokens,
            call.output_tokens,
            call.cache_read_tokens,
            call.cache_write_tokens,
            call.reasoning_tokens,
            call.error,
        )
    except InvalidCall as exc:
        return str(exc)
    return None
