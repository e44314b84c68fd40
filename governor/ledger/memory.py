"""The in-process ledger: the default for one process, and the reference semantics.

One lock guards every operation, so reserve is atomic across all counters of a
call, for threads and for asyncio tasks alike (nothing here awaits).

It sits on every check's path, so the bookkeeping is plain ints rather than
``Amount`` values: per counter, settled spend by slot as ``[usd, tokens,
calls]`` lists plus the in-flight sum; a rolling window keeps the running sum
of its live buckets (re-summed only when the current bucket moves); the
calendar slot is computed once per (zone, unit, minute). Every calendar
boundary falls on a whole minute in every zone whose UTC offset is a whole
number of minutes (all zones since 1972).
"""

from __future__ import annotations

import heapq
import threading
from collections import OrderedDict
from typing import Sequence

from governor.ledger.base import Amount, Counter, ReserveResult
from governor.ledger.windows import ROLLING_SLOTS, Window, current_slot

SETTLED_ID_TTL_S = 86400.0  # how long a settled id is remembered for idempotency
_CAL_CACHE_MAX = 4096

_new = object.__new__
_set_usd = Amount.usd_nano.__set__  # type: ignore[attr-defined]
_set_tokens = Amount.tokens.__set__  # type: ignore[attr-defined]
_set_calls = Amount.calls.__set__  # type: ignore[attr-defined]


def _amount(usd: int, tokens: int, calls: int) -> Amount:
    """An Amount without the frozen-dataclass __init__ (a third of reserve's time)."""
    a = _new(Amount)
    _set_usd(a, usd)
    _set_tokens(a, tokens)
    _set_calls(a, calls)
    return a


class _Cell:
    """One counter: settled spend by slot, its live reservations, a rolling sum."""

    __slots__ = ("slots", "fu", "ft", "fc", "r_cur", "ru", "rt", "rc")

    def __init__(self) -> None:
        self.slots: dict = {}  # slot -> [usd, tokens, calls]; rolling windows key by bucket index
        self.fu = self.ft = self.fc = 0  # in flight
        self.r_cur: int | None = None  # rolling: the bucket the running sum is for
        self.ru = self.rt = self.rc = 0


class _Reservation:
    __slots__ = ("cells", "usd", "tokens", "calls", "expires_at")

    def __init__(self, cells: tuple[_Cell, ...], usd: int, tokens: int, calls: int, expires_at: float) -> None:
        self.cells = cells
        self.usd = usd
        self.tokens = tokens
        self.calls = calls
        self.expires_at = expires_at


class MemoryLedger:
    """A :class:`governor.ledger.base.Ledger` held in this process's memory."""

    blocking = False  # no I/O: async callers need no worker thread

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cells: dict[str, _Cell] = {}
        self._reservations: dict[str, _Reservation] = {}
        self._expiry: list[tuple[float, str]] = []
        self._settled_ids: OrderedDict[str, float] = OrderedDict()
        self._cal: dict[tuple[str, str, int], str] = {}

    # -- internal, lock held --------------------------------------------------
    def _cell(self, key: str) -> _Cell:
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = _Cell()
        return cell

    def _reclaim(self, now: float) -> None:
        expiry = self._expiry
        while expiry and expiry[0][0] <= now:
            _, rid = heapq.heappop(expiry)
            res = self._reservations.get(rid)
            if res is not None and res.expires_at <= now:
                self._drop(rid, res)
        settled = self._settled_ids
        while settled:
            rid = next(iter(settled))
            if settled[rid] + SETTLED_ID_TTL_S > now:
                break
            del settled[rid]

    def _drop(self, rid: str, res: _Reservation) -> None:
        del self._reservations[rid]
        for cell in res.cells:
            cell.fu -= res.usd
            cell.ft -= res.tokens
            cell.fc -= res.calls

    def _calendar_slot(self, window: Window, now: float) -> str:
        key = (window.tz, window.unit, int(now // 60))
        slot = self._cal.get(key)
        if slot is None:
            if len(self._cal) >= _CAL_CACHE_MAX:
                self._cal.clear()
            slot = self._cal[key] = current_slot(window, now)
        return slot

    def _slot_key(self, window: Window, at: float) -> object:
        kind = window.kind
        if kind == "rolling":
            return int(at // window.slot_seconds)
        if kind == "calendar":
            return self._calendar_slot(window, at)
        return "all"

    def _settled(self, cell: _Cell, window: Window, now: float) -> tuple[int, int, int]:
        if window.kind != "rolling":
            s = cell.slots.get(self._slot_key(window, now))
            return (s[0], s[1], s[2]) if s is not None else (0, 0, 0)
        cur = int(now // window.slot_seconds)
        if cur != cell.r_cur:
            low = cur - ROLLING_SLOTS
            u = t = c = 0
            for idx in [i for i in cell.slots if i <= low]:
                del cell.slots[idx]
            for idx, s in cell.slots.items():
                if idx <= cur:
                    u += s[0]
                    t += s[1]
                    c += s[2]
            cell.r_cur, cell.ru, cell.rt, cell.rc = cur, u, t, c
        return cell.ru, cell.rt, cell.rc

    def _used(self, cell: _Cell | None, window: Window, now: float) -> tuple[int, int, int]:
        if cell is None:
            return 0, 0, 0
        u, t, c = self._settled(cell, window, now)
        return u + cell.fu, t + cell.ft, c + cell.fc

    # -- the Ledger protocol ---------------------------------------------------
    def reserve(
        self,
        reservation_id: str,
        counters: Sequence[Counter],
        amount: Amount,
        *,
        now: float,
        lease_s: float,
    ) -> ReserveResult:
        au, at, ac = amount.usd_nano, amount.tokens, amount.calls
        with self._lock:
            self._reclaim(now)
            if reservation_id in self._reservations or reservation_id in self._settled_ids:
                used = [self._used(self._cells.get(c.key), c.window, now) for c in counters]
                return ReserveResult(True, used_after=tuple(_amount(*u) for u in used))
            cells: list[_Cell] = []
            after: list[Amount] = []
            for c in counters:
                cell = self._cell(c.key)
                u, t, n = self._used(cell, c.window, now)
                u += au
                t += at
                n += ac
                lim = c.limit
                if lim.usd_nano is not None and u > lim.usd_nano:
                    return ReserveResult(False, denied=c, denied_metric="usd")
                if lim.tokens is not None and t > lim.tokens:
                    return ReserveResult(False, denied=c, denied_metric="tokens")
                if lim.calls is not None and n > lim.calls:
                    return ReserveResult(False, denied=c, denied_metric="calls")
                cells.append(cell)
                after.append(_amount(u, t, n))
            for cell in cells:
                cell.fu += au
                cell.ft += at
                cell.fc += ac
            expires = now + lease_s
            self._reservations[reservation_id] = _Reservation(tuple(cells), au, at, ac, expires)
            heapq.heappush(self._expiry, (expires, reservation_id))
            return ReserveResult(True, used_after=tuple(after))

    def settle(
        self,
        reservation_id: str,
        counters: Sequence[Counter],
        actual: Amount,
        *,
        now: float,
        reserved_at: float,
    ) -> bool:
        au, at, ac = actual.usd_nano, actual.tokens, actual.calls
        with self._lock:
            self._reclaim(now)
            if reservation_id in self._settled_ids:
                return False
            res = self._reservations.get(reservation_id)
            if res is not None:
                self._drop(reservation_id, res)
            for c in counters:
                cell = self._cell(c.key)
                window = c.window
                slot = self._slot_key(window, reserved_at)
                s = cell.slots.get(slot)
                if s is None:
                    cell.slots[slot] = [au, at, ac]
                else:
                    s[0] += au
                    s[1] += at
                    s[2] += ac
                if window.kind == "rolling" and cell.r_cur is not None and cell.r_cur - ROLLING_SLOTS < slot <= cell.r_cur:  # type: ignore[operator]
                    cell.ru += au
                    cell.rt += at
                    cell.rc += ac
            self._settled_ids[reservation_id] = now
            return True

    def release(self, reservation_id: str, *, now: float) -> bool:
        with self._lock:
            res = self._reservations.get(reservation_id)
            if res is None:
                return False
            self._drop(reservation_id, res)
            return True

    def usage(self, counter: Counter, *, now: float) -> Amount:
        with self._lock:
            self._reclaim(now)
            return _amount(*self._used(self._cells.get(counter.key), counter.window, now))

    def close(self) -> None:
        return None
