"""Regular expressions in policies, matched in linear time (RE2).

Policy regexes (``last_user_message: {regex: ...}``, ``{regex: ...}`` on task,
metadata and the other value conditions) run on text a client controls, on
every call. Python's ``re`` backtracks: ``^(a+)+$`` against 28 characters took
12.9 s and doubled per character, freezing every caller of the process. RE2
(google-re2) guarantees time linear in the text and memory bounded by the
pattern, so no input can stall a check. The price is RE2's syntax: no
backreferences (``\\1``) and no lookaround (``(?=``, ``(?!``, ``(?<=``), which
``governor validate`` rejects with the pattern's location. ``\\Z`` is accepted
and read as ``\\z`` (end of text), its meaning in Python.

Matching looks at the first :data:`TEXT_LIMIT` characters of a value.
"""

from __future__ import annotations

import re2

__all__ = ["MAX_PATTERN", "TEXT_LIMIT", "PolicyRegex", "regex_error"]

MAX_PATTERN = 2000
"""The longest pattern a policy may hold, in characters."""

TEXT_LIMIT = 4096
"""How many characters of a value a regex looks at (as ``last_user_message``)."""

_UNSUPPORTED = (
    ("(?=", "lookahead"),
    ("(?!", "negative lookahead"),
    ("(?<=", "lookbehind"),
    ("(?<!", "negative lookbehind"),
    ("(?>", "atomic group"),
)


def _options(ignore_case: bool) -> re2.Options:
    opts = re2.Options()
    opts.log_errors = False  # the error comes back as an exception; RE2's own stderr line is noise
    opts.case_sensitive = not ignore_case
    return opts


def _translate(pattern: str) -> str:
    return pattern.replace(r"\Z", r"\z")


def regex_error(pattern: str) -> str | None:
    """Why RE2 will not run ``pattern`` (None when it will): what ``governor validate`` reports."""
    if len(pattern) > MAX_PATTERN:
        return f"pattern longer than {MAX_PATTERN} characters ({len(pattern)})"
    for token, name in _UNSUPPORTED:
        if token in pattern:
            return f"{name} '{token}' is not supported: regexes run in linear time (RE2), which has no lookaround"
    try:
        re2.compile(_translate(pattern), _options(False))
    except re2.error as exc:
        text = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        if "invalid escape sequence: \\" in text and text.rstrip()[-1:].isdigit():
            text += " (backreferences are not supported: regexes run in linear time, RE2)"
        return text
    except UnicodeEncodeError:
        return "pattern is not valid Unicode (a lone surrogate)"
    return None


class PolicyRegex:
    """One compiled policy regex: ``search(text)`` in time linear in ``min(len(text), TEXT_LIMIT)``."""

    __slots__ = ("_rx", "pattern")

    def __init__(self, pattern: str, *, ignore_case: bool = False) -> None:
        self.pattern = pattern
        self._rx = re2.compile(_translate(pattern), _options(ignore_case))

    def search(self, text: str) -> bool:
        text = text[:TEXT_LIMIT]
        try:
            return self._rx.search(text) is not None
        except UnicodeEncodeError:  # a lone surrogate in client text: match the rest of it
            return self._rx.search(text.encode("utf-8", "replace").decode("utf-8")) is not None
