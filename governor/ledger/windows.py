"""Budget windows: none, rolling duration, calendar day/month in a time zone.

A window maps a point in time to *slots*: the slot a charge is written to, and
the slots whose sum is the window's current usage. Every ledger uses these
functions, so windows roll over identically in every store and process.

* ``none``: one slot, ``"all"``, forever.
* ``rolling``: the duration is cut into ``ROLLING_SLOTS`` buckets; usage is the
  sum of the last ``ROLLING_SLOTS`` buckets, so the window is exact to within
  one bucket (1/60 of its length: one minute for ``1h``).
* ``calendar``: one slot per calendar day or month in the named time zone,
  e.g. ``"d2026-11-22"``; it resets at local midnight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

ROLLING_SLOTS = 60

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str) -> float:
    """``"90s"``, ``"10m"``, ``"1h"``, ``"7d"`` -> seconds. Raises ValueError."""
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"not a duration: {text!r} (expected e.g. 30s, 10m, 1h, 7d)")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


@dataclass(frozen=True, slots=True)
class Window:
    kind: str = "none"  # "none" | "rolling" | "calendar"
    seconds: float = 0.0  # rolling length
    unit: str = ""  # calendar: "day" | "month"
    tz: str = "UTC"

    @property
    def slot_seconds(self) -> float:
        return self.seconds / ROLLING_SLOTS if self.kind == "rolling" else 0.0

    def ttl(self) -> float:
        """How long a slot must be kept, in seconds (0 = forever)."""
        if self.kind == "rolling":
            return self.seconds + self.slot_seconds
        if self.kind == "calendar":
            return 32 * 86400.0 if self.unit == "month" else 2 * 86400.0
        return 0.0

    def describe(self) -> str:
        if self.kind == "rolling":
            return f"rolling {self.seconds:g}s"
        if self.kind == "calendar":
            return f"calendar {self.unit} ({self.tz})"
        return "no window"


NO_WINDOW = Window()


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def current_slot(window: Window, now: float) -> str:
    """The slot a charge made at ``now`` belongs to."""
    if window.kind == "rolling":
        return f"r{int(now // window.slot_seconds)}"
    if window.kind == "calendar":
        local = datetime.fromtimestamp(now, tz=timezone.utc).astimezone(_zone(window.tz))
        if window.unit == "month":
            return f"m{local.year:04d}-{local.month:02d}"
        return f"d{local.year:04d}-{local.month:02d}-{local.day:02d}"
    return "all"


def live_slots(window: Window, now: float) -> tuple[str, ...]:
    """The slots whose sum is the window's usage at ``now``."""
    if window.kind == "rolling":
        cur = int(now // window.slot_seconds)
        return tuple(f"r{i}" for i in range(cur - ROLLING_SLOTS + 1, cur + 1))
    return (current_slot(window, now),)


def slot_is_live(window: Window, slot: str, now: float) -> bool:
    if window.kind == "rolling":
        cur = int(now // window.slot_seconds)
        return cur - ROLLING_SLOTS < int(slot[1:]) <= cur
    return slot == current_slot(window, now)


def seconds_until_window_frees(window: Window, now: float) -> float | None:
    """How long until what is charged in the window at ``now`` has left it (None: the window never resets).

    A calendar window resets at the next local midnight (or first of the month);
    a rolling window has let go of every charge made up to ``now`` after its
    full length (an upper bound: older charges leave sooner).
    """
    if window.kind == "rolling":
        return window.seconds
    if window.kind == "calendar":
        zone = _zone(window.tz)
        local = datetime.fromtimestamp(now, tz=timezone.utc).astimezone(zone)
        if window.unit == "month":
            year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
            boundary = datetime(year, month, 1, tzinfo=zone)
        else:
            boundary = datetime(local.year, local.month, local.day, tzinfo=zone) + timedelta(days=1)
            boundary = datetime(boundary.year, boundary.month, boundary.day, tzinfo=zone)  # DST-safe midnight
        return max(boundary.timestamp() - now, 0.0)
    return None
