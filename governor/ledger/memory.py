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
from datetime import datetime, timedelta
from itertools import islice
import threading
from typing import Sequence

from governor.ledger.base import Amount, Counter, ReserveResult
from governor.ledger.memory_lanes import HeldReservation as _Reservation
from governor.ledger.memory_lanes import LanePath, LaneReservation
from governor.ledger.windows import ROLLING_SLOTS, Window, _zone, current_slot

SETTLED_ID_TTL_S = 86400.0  # how long a settled id is remembered for idempotency ...
MAX_SETTLED_IDS = 200_000  # ... at most: the latest this many (~30 MB), however busy the process
MAX_CELLS = 200_000  # counters kept; beyond, the least recently spent idle ones are forgotten (1/16 at a time)
EXPIRY_SLACK = 65_536  # lease-expiry entries of settled reservations kept before the heap is rebuilt
_CAL_CACHE_MAX = 4096

_new = object.__new__
_set_usd = Amount.usd_nano.__set__  # type: ignore[attr-defined, misc]
_set_tokens = Amount.tokens.__set__  # type: ignore[attr-defined, misc]
_set_calls = Amount.calls.__set__  # type: ignore[attr-defined, misc]


def _amount(usd: int, tokens: int, calls: int) -> Amount:
    """An Amount without the frozen-dataclass __init__ (a third of reserve's time)."""
    a = _new(Amount)
    _set_usd(a, usd)
    _set_tokens(a, tokens)
    _set_calls(a, calls)
    return a


def _calendar_bounds(window: Window, at: float) -> tuple[float, float]:
    """[start, end) in epoch seconds of the calendar day or month containing ``at``.

    Callers verify the bounds against :func:`current_slot` (a DST change at
    midnight could make wall-clock arithmetic miss), and fall back to
    per-minute caching when they disagree.
    """
    zone = _zone(window.tz)
    local = datetime.fromtimestamp(at, tz=zone)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if window.unit == "month":
        start = start.replace(day=1)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    else:
        end = start + timedelta(days=1)
    return start.timestamp(), end.timestamp()


_rr_set = tuple(getattr(ReserveResult, f).__set__ for f in ("ok", "denied", "denied_metric", "used_after"))  # type: ignore[attr-defined]


def _granted(used_after: tuple[Amount, ...]) -> ReserveResult:
    """ReserveResult(True, used_after=...) without the frozen-dataclass __init__."""
    r = _new(ReserveResult)
    ok, denied, metric, after = _rr_set
    ok(r, True)
    denied(r, None)
    metric(r, None)
    after(r, used_after)
    return r


class _Cell:
    """One counter: settled spend by slot, its live reservations, a rolling sum."""

    __slots__ = ("key", "window", "kind", "slot_s", "slots", "fu", "ft", "fc", "r_cur", "ru", "rt", "rc", "cal_lo", "cal_hi",
                 "cal_slot", "lanes")

    def __init__(self, window: Window, key: str = "") -> None:
        self.key = key
        self.window = window
        self.kind = window.kind
        self.slot_s = window.slot_seconds
        self.slots: dict = {}  # slot -> [usd, tokens, calls]; rolling windows key by bucket index
        self.fu = self.ft = self.fc = 0  # in flight
        self.r_cur: int | None = None  # rolling: the bucket the running sum is for
        self.ru = self.rt = self.rc = 0
        self.cal_lo = self.cal_hi = 0.0  # calendar: [lo, hi) epoch seconds of cal_slot
        self.cal_slot = ""
        self.lanes: dict = {}  # the lanes holding an allowance or unmoved spend here (memory_lanes)


class MemoryLedger(LanePath):
    """A :class:`governor.ledger.base.Ledger` held in this process's memory.

    Also offers the lane fast path of :class:`governor.ledger.memory_lanes.LanePath`.
    """

    blocking = False  # no I/O: async callers need no worker thread

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cells: dict[str, _Cell] = {}
        self._reservations: dict[str, _Reservation] = {}
        self._expiry: list[tuple[float, str]] = []  # (lease end, id); settled ids stay until compacted
        self._compact_at = EXPIRY_SLACK  # rebuild _expiry from the live reservations past this length
        self._settled_ids: dict[str, float] = {}  # insertion-ordered: oldest first
        self._next_forget = 0.0  # when the oldest settled id may be forgotten
        self._cal: dict[tuple[str, str, int], str] = {}
        self._lanes: dict = {}  # lanes listed on their cells, oldest first (memory_lanes)
        self._gen = 0  # bumped by every change to a cell's figures (memory_lanes: soft thresholds)
        self._cells_gen = 0  # bumped when idle cells are forgotten: lanes made before re-resolve theirs
        self._evict_at = MAX_CELLS  # forget idle cells when there are more than this
        self._claims: dict[str, float] = {}  # marker key -> held until (claim / unclaim)

    # -- internal, lock held --------------------------------------------------
    def _cell(self, counter: Counter) -> _Cell:
        cell = self._cells.get(counter.key)
        if cell is None:
            cell = self._cells[counter.key] = _Cell(counter.window, counter.key)
        elif cell.window is not counter.window:
            if cell.window != counter.window:
                # the policy changed this budget's window: keep the spend, read it the new way
                cell.kind, cell.slot_s, cell.r_cur = counter.window.kind, counter.window.slot_seconds, None
                cell.cal_lo = cell.cal_hi = 0.0
            cell.window = counter.window  # an equal window from a reloaded policy: take it, stay on the fast path
        return cell

    def _evict_if_due(self) -> None:
        if len(self._cells) > self._evict_at:
            self._evict_cells()

    def _evict_cells(self) -> None:
        """Past MAX_CELLS counters, forget the least recently spent idle ones (nothing in flight, no
        lane on them) down to 15/16 of the bound. Called at the start of an operation, before it
        resolves any cell. What is forgotten is that counter's settled spend: a per-run budget of
        a run idle while MAX_CELLS other counters were spent on starts again from zero."""
        cells = self._cells
        target = MAX_CELLS - MAX_CELLS // 16
        forgot = False
        for key in list(cells):  # oldest spend first (_add moves a cell to the end)
            if len(cells) <= target:
                break
            cell = cells[key]
            if not (cell.fu or cell.ft or cell.fc or cell.lanes):
                del cells[key]
                forgot = True
        if forgot:
            self._cells_gen += 1
        # if too few were idle, the next pass waits for another 1/16 (no scan on every operation)
        self._evict_at = max(MAX_CELLS, len(cells) + MAX_CELLS // 16)

    def _reclaim(self, now: float) -> None:
        expiry = self._expiry
        while expiry and expiry[0][0] <= now:
            _, rid = heapq.heappop(expiry)
            res = self._reservations.get(rid)
            if res is not None and res.expires_at <= now:
                self._drop(rid, res)
        if now >= self._next_forget:
            settled = self._settled_ids
            while settled:
                rid = next(iter(settled))
                at = settled[rid]
                if at + SETTLED_ID_TTL_S > now:
                    self._next_forget = at + SETTLED_ID_TTL_S
                    break
                del settled[rid]
            else:
                self._next_forget = now + SETTLED_ID_TTL_S

    def _compact_expiry(self) -> None:
        """Rebuild the lease-expiry heap from the live reservations (called by whoever pushes,
        once the heap is EXPIRY_SLACK longer than at its last rebuild).

        A settled reservation's entry stays in the heap (deleting from a heap costs a
        search) until its lease would have ended. Without the rebuild a busy process kept
        one entry per call for a whole lease: 7 million at 12,000 calls/s and a 10 minute
        lease, over 500 MB."""
        live = [(res.expires_at, rid) for rid, res in self._reservations.items()]
        heapq.heapify(live)
        self._expiry = live
        self._compact_at = len(live) + EXPIRY_SLACK

    def _remember_settled(self, rid: str, now: float) -> None:
        """Remember a settled id (lock held); beyond MAX_SETTLED_IDS the oldest 1/16 are forgotten.

        A Governor never settles a decision twice (its pending entry goes at the first
        record), so the bound only shortens idempotency for callers of the ledger itself."""
        settled = self._settled_ids
        settled[rid] = now
        if len(settled) > MAX_SETTLED_IDS:
            for old in list(islice(settled, MAX_SETTLED_IDS // 16)):
                del settled[old]

    def _drop(self, rid: str, res: _Reservation | LaneReservation) -> None:
        del self._reservations[rid]
        self._end(res)

    def _end(self, res: _Reservation | LaneReservation) -> None:
        """A reservation (already out of the table) ends without spend: its cells or lane get it back."""
        self._gen += 1
        if res.__class__ is LaneReservation:
            self._unhold(res)  # type: ignore[arg-type]
            return
        for cell in res.cells:  # type: ignore[union-attr]
            cell.fu -= res.usd
            cell.ft -= res.tokens
            cell.fc -= res.calls

    def _add(self, cell: _Cell, slot: object, usd: int, tokens: int, calls: int) -> None:
        """Settled spend into ``slot`` of ``cell`` (and the rolling sum, when the slot is in it)."""
        self._gen += 1
        cells, key = self._cells, cell.key
        if cells.get(key) is cell:  # most recently spent last: the order _evict_cells forgets in
            del cells[key]
            cells[key] = cell
        s = cell.slots.get(slot)
        if s is None:
            cell.slots[slot] = [usd, tokens, calls]
        else:
            s[0] += usd
            s[1] += tokens
            s[2] += calls
        if cell.kind == "rolling" and cell.r_cur is not None and cell.r_cur - ROLLING_SLOTS < slot <= cell.r_cur:  # type: ignore[operator]
            cell.ru += usd
            cell.rt += tokens
            cell.rc += calls

    def _settle_into(self, cells: Sequence[_Cell], usd: int, tokens: int, calls: int, reserved_at: float) -> None:
        """Actual spend into the slots of ``reserved_at``. It may be more than any reservation covered,
        so the lanes on these cells give their allowances back: an allowance is valid only while
        the cell's total, allowances included, has been checked against its limit."""
        for cell in cells:
            if cell.lanes:
                self._take_back(cell)
            kind = cell.kind
            if kind == "none":
                slot: object = "all"
            elif kind == "calendar" and cell.cal_lo <= reserved_at < cell.cal_hi:
                slot = cell.cal_slot
            else:
                slot = self._slot_key(cell, reserved_at)
            self._add(cell, slot, usd, tokens, calls)

    def _calendar_slot(self, cell: _Cell, at: float) -> str:
        """The calendar slot of ``at``; the cell remembers the current slot's bounds."""
        if cell.cal_lo <= at < cell.cal_hi:
            return cell.cal_slot
        window = cell.window
        key = (window.tz, window.unit, int(at // 60))
        slot = self._cal.get(key)
        if slot is None:
            if len(self._cal) >= _CAL_CACHE_MAX:
                self._cal.clear()
            slot = self._cal[key] = current_slot(window, at)
        lo, hi = _calendar_bounds(window, at)
        if lo <= at < hi and current_slot(window, lo) == slot == current_slot(window, hi - 0.001) and current_slot(window, hi) != slot:
            cell.cal_lo, cell.cal_hi, cell.cal_slot = lo, hi, slot
        return slot

    def _slot_key(self, cell: _Cell, at: float) -> object:
        kind = cell.kind
        if kind == "rolling":
            return int(at // cell.slot_s)
        if kind == "calendar":
            return self._calendar_slot(cell, at)
        return "all"

    def _settled(self, cell: _Cell, now: float) -> tuple[int, int, int]:
        if cell.kind != "rolling":
            s = cell.slots.get(self._slot_key(cell, now))
            return (s[0], s[1], s[2]) if s is not None else (0, 0, 0)
        cur = int(now // cell.slot_s)
        if cur != cell.r_cur:
            low = cur - ROLLING_SLOTS
            u = t = c = 0
            for idx in [i for i in cell.slots if i.__class__ is not int or i <= low]:
                del cell.slots[idx]
            for idx, s in cell.slots.items():
                if idx <= cur:
                    u += s[0]
                    t += s[1]
                    c += s[2]
            cell.r_cur, cell.ru, cell.rt, cell.rc = cur, u, t, c
        return cell.ru, cell.rt, cell.rc

    def _used(self, cell: _Cell | None, now: float) -> tuple[int, int, int]:
        if cell is None:
            return 0, 0, 0
        u, t, c = self._settled(cell, now)
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
        with self._lock:
            self._evict_if_due()
            if self._lanes:  # a lane's allowance is not usage: the protocol path works on exact figures
                for c in counters:
                    self._take_back(self._cell(c))
            return self._reserve(reservation_id, counters, amount, now, lease_s)

    def _reserve(self, reservation_id: str, counters: Sequence[Counter], amount: Amount, now: float, lease_s: float) -> ReserveResult:
        au, at, ac = amount.usd_nano, amount.tokens, amount.calls
        if (self._expiry and self._expiry[0][0] <= now) or now >= self._next_forget:
            self._reclaim(now)
        if reservation_id in self._reservations or reservation_id in self._settled_ids:
            used = [self._used(self._cells.get(c.key), now) for c in counters]
            return ReserveResult(True, used_after=tuple(_amount(*u) for u in used))
        cells: list[_Cell] = []
        after: list[Amount] = []
        cells_get = self._cells.get
        for c in counters:
            cell = cells_get(c.key)
            if cell is None or cell.window is not c.window:
                cell = self._cell(c)
            kind = cell.kind
            if kind != "rolling":
                if kind == "none":
                    s = cell.slots.get("all")
                elif cell.cal_lo <= now < cell.cal_hi:
                    s = cell.slots.get(cell.cal_slot)
                else:
                    s = cell.slots.get(self._calendar_slot(cell, now))
                u, t, n = (s[0] + cell.fu + au, s[1] + cell.ft + at, s[2] + cell.fc + ac) if s else (cell.fu + au, cell.ft + at, cell.fc + ac)
            else:
                u, t, n = self._settled(cell, now)
                u += cell.fu + au
                t += cell.ft + at
                n += cell.fc + ac
            lim = c.limit
            if lim.usd_nano is not None and u > lim.usd_nano:
                return ReserveResult(False, denied=c, denied_metric="usd")
            if lim.tokens is not None and t > lim.tokens:
                return ReserveResult(False, denied=c, denied_metric="tokens")
            if lim.calls is not None and n > lim.calls:
                return ReserveResult(False, denied=c, denied_metric="calls")
            cells.append(cell)
            a = _new(Amount)  # _amount(u, t, n), inlined: this loop runs for every counter of every call
            _set_usd(a, u)
            _set_tokens(a, t)
            _set_calls(a, n)
            after.append(a)
        for cell in cells:
            cell.fu += au
            cell.ft += at
            cell.fc += ac
        self._gen += 1
        expires = now + lease_s
        self._reservations[reservation_id] = _Reservation(tuple(cells), au, at, ac, expires)
        heapq.heappush(self._expiry, (expires, reservation_id))
        if len(self._expiry) > self._compact_at:
            self._compact_expiry()
        return _granted(tuple(after))

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
            self._evict_if_due()
            if (self._expiry and self._expiry[0][0] <= now) or now >= self._next_forget:
                self._reclaim(now)
            if reservation_id in self._settled_ids:
                return False
            res = self._reservations.get(reservation_id)
            if res is not None:
                self._drop(reservation_id, res)
            cells_get = self._cells.get
            cells = [cell if (cell := cells_get(c.key)) is not None and cell.window is c.window else self._cell(c) for c in counters]
            self._settle_into(cells, au, at, ac, reserved_at)
            self._remember_settled(reservation_id, now)
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
            cell = self._cells.get(counter.key)
            if cell is not None and cell.window is not counter.window:
                cell = self._cell(counter)
            if cell is not None:
                self._take_back(cell)  # lanes' allowances are not usage
            return _amount(*self._used(cell, now))

    def claim(self, key: str, *, now: float, until: float) -> bool:
        with self._lock:
            held = self._claims.get(key)
            if held is not None and held > now:
                return False
            if len(self._claims) > MAX_CELLS:  # forget expired markers
                self._claims = {k: u for k, u in self._claims.items() if u > now}
            self._claims[key] = until
            return True

    def unclaim(self, key: str) -> None:
        with self._lock:
            self._claims.pop(key, None)

    def close(self) -> None:
        return None
