"""A file that is either one JSON document (pretty-printed or not) or JSON Lines, as exports come."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from governor.traces._io import json_lines, load_document


def documents(file: str, text: str) -> Iterator[tuple[int, Any, str | None]]:
    """(line, value, error) per document: line 0 for a whole-file document, else each JSON line's number.

    A file that parses as one JSON value is one document; one whose first
    value is followed by more (JSON Lines) is read line by line.
    """
    stripped = text.lstrip()
    if stripped.startswith("["):
        yield 0, load_document(text, file), None
        return
    try:
        yield 0, json.loads(text), None
        return
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            if "\n" not in text.strip():
                yield 1, None, f"invalid JSON: {exc.msg} (column {exc.colno})"
                return
    yield from json_lines(text)
