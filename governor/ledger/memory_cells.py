"""The in-process ledger's fast path: reserve and settle on pre-resolved cells.

The engine resolves a call's counters once per (view, scope values, run chain)
and asks :meth:`CellPath.cells` for their cells; every later call of that
shape reserves and settles on the cell objects directly: no key lookups, no
``Amount`` or ``ReserveResult`` per counter, plain int compares and adds.
Same semantics as :meth:`MemoryLedger.reserve` / ``settle`` (one lock, all or
nothing, idempotent by reservation id); other ledgers keep the generic
:class:`governor.ledger.base.Ledger` protocol.
"""

from __future__ import annotations

import heapq
from typing import Any, Sequence

from governor.ledger.base import Counter
from governor.ledger.windows import ROLLING_SLOTS

Limits = tuple[int, int, int]  # usd_nano, tokens, calls of one counter; UNLIMITED for a metric without a limit
UNLIMITED = 1 << 62
GRANTED = -1


class HeldReservation:
    """A live reservation of the memory ledger: what to take back from its cells."""

    __slots__ = ("cells", "usd", "tokens", "calls", "expires_at")

    def __init__(self, cells: tuple[Any, ...], usd: int, tokens: int, calls: int, expires_at: float) -> None:
        self.cells = cells
        self.usd = usd
        self.tokens = tokens
        self.calls = calls
        self.expires_at = expires_at


class CellPath:
    """Mixed into :class:`governor.ledger.memory.MemoryLedger` (uses its lock and tables)."""

    _lock: Any
    _reservations: dict
    _settled_ids: dict
    _expiry: list
    _next_forget: float

    def cells(self, counters: Sequence[Counter]) -> tuple[Any, ...]:
        """Handles on the cells of ``counters``, valid for this ledger's lifetime."""
        with self._lock:
            return tuple(self._cell(c) for c in counters)  # type: ignore[attr-defined]

    def reserve_cells(
        self, reservation_id: str, cells: tuple[Any, ...], limits: tuple[Limits, ...], usd: int, tokens: int, calls: int,
        *, now: float, lease_s: float, want: tuple[int, ...] = (),
    ) -> tuple[int, str | None, tuple[tuple[int, int, int], ...]]:
        """``(GRANTED, None, usage after)`` -- usage (usd, tokens, calls) incl. this call,
        of the cells whose index is in ``want`` -- or ``(index of the denying cell, metric, ())``.

        ``limits[i]`` are the limits of ``cells[i]``, :data:`UNLIMITED` where a metric has none."""
        with self._lock:
            if (self._expiry and self._expiry[0][0] <= now) or now >= self._next_forget:
                self._reclaim(now)  # type: ignore[attr-defined]
            if reservation_id in self._reservations or reservation_id in self._settled_ids:
                return GRANTED, None, tuple(self._used(cells[i], now) for i in want)  # type: ignore[attr-defined]
            after = []
            for i, cell in enumerate(cells):
                kind = cell.kind
                if kind == "rolling":
                    if cell.r_cur != int(now // cell.slot_s):
                        self._settled(cell, now)  # type: ignore[attr-defined]  # the bucket moved: re-sum
                    u, t, n = cell.ru + cell.fu + usd, cell.rt + cell.ft + tokens, cell.rc + cell.fc + calls
                else:
                    s = cell.slots.get("all" if kind == "none" else cell.cal_slot if cell.cal_lo <= now < cell.cal_hi
                                       else self._calendar_slot(cell, now))  # type: ignore[attr-defined]
                    if s is None:
                        u, t, n = cell.fu + usd, cell.ft + tokens, cell.fc + calls
                    else:
                        u, t, n = s[0] + cell.fu + usd, s[1] + cell.ft + tokens, s[2] + cell.fc + calls
                lu, lt, lc = limits[i]
                if u > lu or t > lt or n > lc:
                    return i, ("usd" if u > lu else "tokens" if t > lt else "calls"), ()
                if want and i in want:
                    after.append((u, t, n))
            for cell in cells:
                cell.fu += usd
                cell.ft += tokens
                cell.fc += calls
            expires = now + lease_s
            self._reservations[reservation_id] = HeldReservation(cells, usd, tokens, calls, expires)
            heapq.heappush(self._expiry, (expires, reservation_id))
            return GRANTED, None, tuple(after)

    def settle_cells(
        self, reservation_id: str, cells: tuple[Any, ...], usd: int, tokens: int, calls: int, *, now: float, reserved_at: float,
    ) -> bool:
        """:meth:`MemoryLedger.settle` on cells: the actual spend goes to the slot of ``reserved_at``."""
        with self._lock:
            if (self._expiry and self._expiry[0][0] <= now) or now >= self._next_forget:
                self._reclaim(now)  # type: ignore[attr-defined]
            if reservation_id in self._settled_ids:
                return False
            res = self._reservations.get(reservation_id)
            if res is not None:
                self._drop(reservation_id, res)  # type: ignore[attr-defined]
            for cell in cells:
                kind = cell.kind
                if kind == "none":
                    slot: object = "all"
                elif kind == "calendar":
                    slot = cell.cal_slot if cell.cal_lo <= reserved_at < cell.cal_hi else self._calendar_slot(cell, reserved_at)  # type: ignore[attr-defined]
                else:
                    slot = int(reserved_at // cell.slot_s)
                s = cell.slots.get(slot)
                if s is None:
                    cell.slots[slot] = [usd, tokens, calls]
                else:
                    s[0] += usd
                    s[1] += tokens
                    s[2] += calls
                if kind == "rolling" and cell.r_cur is not None and cell.r_cur - ROLLING_SLOTS < slot <= cell.r_cur:  # type: ignore[operator]
                    cell.ru += usd
                    cell.rt += tokens
                    cell.rc += calls
            self._settled_ids[reservation_id] = now
            return True
