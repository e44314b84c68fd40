"""Field readers shared by the importers of other tools' logs: token counts, times, strings.

Each raises ValueError with the field's name, which the importer reports as
the record's issue (file, line, message) before skipping the record.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

MAX_COUNT = 2**63  # no real token count is near it; beyond 64 bits orjson reads an integer as a float


def count(value: Any, name: str) -> int:
    """A token count: a non-negative integer below 2**63; absent (None) is 0."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >= MAX_COUNT:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def counts(obj: Mapping[str, Any], prefix: str, *keys: str) -> tuple[int, ...]:
    return tuple(count(obj.get(k), f"{prefix}.{k}") for k in keys)


def timestamp(value: Any, name: str = "timestamp") -> float:
    """Epoch seconds from epoch seconds, epoch milliseconds (> 1e11) or ISO-8601 (no zone: UTC)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) / 1000.0 if value > 1e11 else float(value)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is missing or not a time, got {value!r}")
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise ValueError(f"{name} is not an ISO-8601 time: {value!r}") from None
    if dt.tzinfo is None:
        return (dt - datetime(1970, 1, 1)).total_seconds()
    return dt.timestamp()


def text(value: Any) -> str | None:
    """A non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def cost(value: Any, name: str) -> float | None:
    """A recorded cost in USD: a non-negative number, or None when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != value:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)
