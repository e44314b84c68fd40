"""The in-process ledger: the default for one process, and the reference semantics.

One lock guards every operation, so reserve is atomic across all counters of a
call, for threads and for asyncio tasks alike (nothing here awaits).

What it keeps, and how it stays flat with load (no operation rebuilds anything
in one go):

* per counter a :class:`_Cell`: settled spend by window slot as ``[usd, tokens,
  calls]`` lists, the sum of its live reservations, and for a rolling window the
  running sum of its live buckets (re-summed only when the current bucket
  moves); a calendar cell remembers the bounds of its current day or month;
* live reservations in a dict in reservation order: with one lease for every
  reservation (a governor's ``lease_s``) that is also expiry order, so expired
  leases are reclaimed from its front; the rare reservation that expires before
  one made earlier (another lease) goes in a small heap as well;
* settled ids (idempotency) in arrival order, forgotten from the front after
  ``SETTLED_ID_TTL_S``, and one at a time beyond ``MAX_SETTLED_IDS``;
* at most about ``MAX_CELLS`` counters: beyond, each new counter forgets a few
  idle ones, oldest first, sparing those spent since eviction last passed them
  (the "clock" approximation of least recently used: a flag set per spend);
* per counter list it is given (a budget plan's, the same object on every call of
  the plan), the cells it resolved to, so a call does not look up each counter.
"""

from __future__ import annotations

import heapq
import math
import os
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import islice

from governor.ledger.base import MAX_QUANTITY, Adjustment, Amount, Counter, Limit, ReserveResult, check_amount
from governor.ledger.forks import after_fork_in_child
from governor.ledger.windows import ROLLING_SLOTS, Window, _zone, current_slot

SETTLED_ID_TTL_S = 86400.0  # how long a settled id is remembered for idempotency ...
MAX_SETTLED_IDS = 200_000  # ... at most: the latest this many (~30 MB), however busy the process
MAX_CELLS = 200_000  # counters kept; beyond, the least recently spent idle ones are forgotten
EVICT_SCAN = 8  # counters looked at per new counter beyond MAX_CELLS
MAX_GROUPS = 8192  # counter lists whose cells are remembered
_CAL_CACHE_MAX = 4096

_EMPTY: list[int] = [0, 0, 0]  # a placeholder never written to (a cell's lo == hi)
Slot = str | int  # a window slot: "all", a calendar slot ("d2026-11-22"), or a rolling bucket index


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


def _edge(bucket: int, width: float) -> float:
    """The earliest time whose rolling bucket (``int(t // width)``, as every ledger computes it) is
    ``bucket`` or later: the exact float, so a cell's [lo, hi) agrees with that division everywhere."""
    t = bucket * width
    while t // width >= bucket:
        t = math.nextafter(t, -math.inf)
    while t // width < bucket:
        t = math.nextafter(t, math.inf)
    return t


class _Cell:
    """One counter: settled spend by slot, its live reservations, and its current window.

    ``now_sum`` is the settled spend a read at a time in ``[lo, hi)`` sees, and
    ``now_slot`` the slot a charge made in ``[lo, hi)`` goes to: for a ``none``
    or calendar window both are the current slot's list; for a rolling one
    ``now_sum`` is the running sum of the live buckets and ``now_slot`` the
    current bucket. Outside ``[lo, hi)`` (a new day, bucket, or another clock)
    :meth:`MemoryLedger._current` moves them.
    """

    __slots__ = (
        "key",
        "window",
        "kind",
        "slots",
        "held_usd",
        "held_tokens",
        "held_calls",
        "lo",
        "hi",
        "now_sum",
        "now_slot",
        "rolling_bucket",
        "spent",
    )

    def __init__(self, window: Window, key: str) -> None:
        self.key = key
        self.window = window
        self.kind = window.kind  # "none" | "rolling" | "calendar"
        self.spent = False  # spent since eviction last passed it (a second chance: see MemoryLedger)
        self.slots: dict[Slot, list[int]] = {}  # slot -> [usd, tokens, calls]
        self.held_usd = self.held_tokens = self.held_calls = 0  # the sum of live reservations
        self.lo = self.hi = 0.0  # [lo, hi): when now_sum and now_slot hold (empty: not yet known)
        self.now_sum: list[int] = _EMPTY
        self.now_slot: list[int] = _EMPTY
        self.rolling_bucket: int | None = None  # rolling: the bucket now_sum is the running sum for

    def retarget(self, window: Window) -> None:
        """The policy changed this budget's window: keep the spend, read it the new way."""
        self.window = window
        self.kind = window.kind
        self.rolling_bucket = None
        self.lo = self.hi = 0.0

    @property
    def idle(self) -> bool:
        return not (self.held_usd or self.held_tokens or self.held_calls)


class _Group:
    """A counter list as the ledger uses it: its cells, and each counter's limits as plain integers
    (an unlimited metric as MAX_QUANTITY, which no stored figure passes). Made once per list."""

    __slots__ = ("counters", "cells", "limits", "gen")

    def __init__(
        self,
        counters: Sequence[Counter],
        cells: tuple[_Cell, ...],
        gen: int,
        shared: dict[Limit, tuple[int, int, int]],
    ) -> None:
        self.counters = counters  # held, so the id the entry is keyed by is not reused while it lives
        self.cells = cells
        self.limits = tuple(shared.get(c.limit) or _limit_figures(c.limit, shared) for c in counters)
        self.gen = gen  # the cells generation the cells were resolved in


def _limit_figures(limit: Limit, shared: dict[Limit, tuple[int, int, int]]) -> tuple[int, int, int]:
    """``limit`` as three integers, kept in ``shared`` (one per distinct limit: every run's counter of a
    per-run budget has the same one)."""
    figures = (
        MAX_QUANTITY if limit.usd_nano is None else limit.usd_nano,
        MAX_QUANTITY if limit.tokens is None else limit.tokens,
        MAX_QUANTITY if limit.calls is None else limit.calls,
    )
    if len(shared) >= MAX_GROUPS:
        shared.clear()
    shared[limit] = figures
    return figures


class _Held:
    """A live reservation: what to give back to its cells."""

    __slots__ = ("cells", "usd", "tokens", "calls", "expires_at")

    def __init__(self, cells: tuple[_Cell, ...], amount: Amount, expires_at: float) -> None:
        self.cells = cells
        self.usd, self.tokens, self.calls = amount.usd_nano, amount.tokens, amount.calls
        self.expires_at = expires_at


class MemoryLedger:
    """A :class:`governor.ledger.base.Ledger` held in this process's memory.

    After ``fork()`` the child gets a fresh lock (the parent's may have been held by
    another thread at that instant) and drops the parent's live reservations (their
    calls are the parent's to record); settled spend is copied with the process.
    """

    blocking = False  # no I/O: async callers need no worker thread

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cells: dict[str, _Cell] = {}  # least recently spent first
        self._held: dict[str, _Held] = {}  # reservation order
        self._latest_expiry = float("-inf")  # the latest lease end in _held's order so far
        self._early: list[tuple[float, str]] = []  # (lease end, id) of those ending before one made earlier
        self._settled_ids: dict[str, float] = {}  # id -> settle time, oldest first
        self._next_forget = 0.0  # when the oldest settled id may be forgotten
        self._calendar_slots: dict[tuple[str, str, int], str] = {}  # (tz, unit, minute) -> slot
        self._groups: dict[int, _Group] = {}  # id(counter list) -> its group
        self._limits: dict[Limit, tuple[int, int, int]] = {}  # a limit as integers, shared by its groups
        self._cells_gen = 0  # bumped when a cell is forgotten or read another way: groups resolve again
        self._claims: dict[str, float] = {}  # marker key -> held until (claim / unclaim)
        self._adjustments: dict[str, Adjustment] = {}  # id -> an operator's adjustment, in the order written
        self._pid = os.getpid()
        after_fork_in_child(self, MemoryLedger._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        for held in self._held.values():
            self._give_back(held)
        self._held.clear()
        self._early.clear()
        self._latest_expiry = float("-inf")
        self._pid = os.getpid()

    # -- internal, lock held --------------------------------------------------
    def _cell(self, counter: Counter) -> _Cell:
        cell = self._cells.get(counter.key)
        if cell is None:
            if len(self._cells) >= MAX_CELLS:
                self._forget_idle_cells()
            cell = self._cells[counter.key] = _Cell(counter.window, counter.key)
        elif cell.window is not counter.window:
            if cell.window != counter.window:
                cell.retarget(counter.window)
                self._cells_gen += 1
            else:
                cell.window = counter.window  # an equal window from a reloaded policy
        return cell

    def _group(self, counters: Sequence[Counter]) -> _Group:
        """The :class:`_Group` of ``counters``, remembered per list object (a budget plan's, the same
        object on every call of the plan); resolved again after a cell was forgotten or retargeted."""
        group = self._groups.get(id(counters))
        if group is not None and group.counters is counters and group.gen == self._cells_gen:
            return group
        group = _Group(counters, tuple(self._cell(c) for c in counters), self._cells_gen, self._limits)
        if len(self._groups) >= MAX_GROUPS:
            self._groups.clear()
        self._groups[id(counters)] = group
        return group

    def _forget_idle_cells(self) -> None:
        """Look at up to EVICT_SCAN of the oldest counters: one spent since the last look, or with
        live reservations, goes to the back (its flag cleared); an idle one is forgotten, with its
        settled spend (a per-run budget of a run idle while MAX_CELLS other counters were spent
        starts from zero)."""
        cells = self._cells
        for key in list(islice(cells, EVICT_SCAN)):
            cell = cells.pop(key)
            if cell.spent or not cell.idle:
                cell.spent = False
                cells[key] = cell
            else:
                self._cells_gen += 1

    def _reclaim(self, now: float) -> None:
        """Drop reservations whose lease ended, and settled ids past their TTL (both from the front)."""
        held = self._held
        while held:
            rid = next(iter(held))
            res = held[rid]
            if res.expires_at > now:
                break
            del held[rid]
            self._give_back(res)
        early = self._early
        while early and early[0][0] <= now:
            _, rid = heapq.heappop(early)
            res2 = held.get(rid)
            if res2 is not None and res2.expires_at <= now:
                del held[rid]
                self._give_back(res2)
        if now >= self._next_forget:
            settled = self._settled_ids
            self._next_forget = now + SETTLED_ID_TTL_S
            while settled:
                rid = next(iter(settled))
                at = settled[rid]
                if at + SETTLED_ID_TTL_S > now:
                    self._next_forget = at + SETTLED_ID_TTL_S
                    break
                del settled[rid]

    def _due(self, now: float) -> bool:
        """Whether a lease may have ended or a settled id may be forgotten at ``now``."""
        if now >= self._next_forget or (self._early and self._early[0][0] <= now):
            return True
        held = self._held
        return bool(held) and held[next(iter(held))].expires_at <= now

    def _remember_settled(self, rid: str, now: float) -> None:
        settled = self._settled_ids
        settled[rid] = now
        if len(settled) > MAX_SETTLED_IDS:
            # A Governor never settles a decision twice (its pending entry goes at the first
            # record), so the bound only shortens idempotency for callers of the ledger itself.
            del settled[next(iter(settled))]

    @staticmethod
    def _give_back(res: _Held) -> None:
        for cell in res.cells:
            cell.held_usd -= res.usd
            cell.held_tokens -= res.tokens
            cell.held_calls -= res.calls

    @staticmethod
    def _add(cell: _Cell, slot: Slot, usd: int, tokens: int, calls: int) -> None:
        """Settled spend into ``slot`` of ``cell`` (and the rolling sum, when the slot is in it)."""
        cell.spent = True
        s = cell.slots.get(slot)
        if s is None:
            s = cell.slots[slot] = [usd, tokens, calls]
        else:
            s[0] += usd
            s[1] += tokens
            s[2] += calls
        if s[0] > MAX_QUANTITY or s[1] > MAX_QUANTITY or s[2] > MAX_QUANTITY:
            s[:] = [min(x, MAX_QUANTITY) for x in s]  # saturate: such a counter denies every reservation
        bucket = cell.rolling_bucket
        if bucket is not None and slot.__class__ is int and bucket - ROLLING_SLOTS < slot <= bucket:
            total = cell.now_sum
            total[0] += usd
            total[1] += tokens
            total[2] += calls

    def _calendar_slot(self, window: Window, at: float) -> str:
        """The calendar slot of ``at`` (cached per minute of time)."""
        key = (window.tz, window.unit, int(at // 60))
        slot = self._calendar_slots.get(key)
        if slot is None:
            if len(self._calendar_slots) >= _CAL_CACHE_MAX:
                self._calendar_slots.clear()
            slot = self._calendar_slots[key] = current_slot(window, at)
        return slot

    def _slot(self, cell: _Cell, at: float) -> Slot:
        """The slot of ``cell``'s window that a charge made at ``at`` belongs to."""
        kind = cell.kind
        if kind == "none":
            return "all"
        if kind == "calendar":
            return self._calendar_slot(cell.window, at)
        return int(at // cell.window.slot_seconds)

    def _current(self, cell: _Cell, now: float) -> list[int]:
        """Move ``cell``'s current window to the one containing ``now`` and return its settled spend
        (``cell.now_sum``). For a rolling window the buckets that left it are dropped and the live
        ones summed again: once per bucket (a minute of a 1h window), not per call."""
        kind = cell.kind
        slots = cell.slots
        if kind == "none":
            cell.now_slot = cell.now_sum = slots.setdefault("all", [0, 0, 0])
            cell.lo, cell.hi = float("-inf"), float("inf")
        elif kind == "calendar":
            window = cell.window
            slot = self._calendar_slot(window, now)
            cell.now_slot = cell.now_sum = slots.setdefault(slot, [0, 0, 0])
            lo, hi = _calendar_bounds(window, now)
            if not (
                lo <= now < hi
                and current_slot(window, lo) == slot == current_slot(window, hi - 0.001)
                and current_slot(window, hi) != slot
            ):  # wall-clock arithmetic missed (a DST change at midnight): the slot holds for this minute
                lo = now // 60 * 60
                hi = lo + 60
            cell.lo, cell.hi = lo, hi
        else:
            width = cell.window.slot_seconds
            bucket = int(now // width)
            low = bucket - ROLLING_SLOTS
            for old in [i for i in slots if not isinstance(i, int) or i <= low]:
                del slots[old]
            live = [s for i, s in slots.items() if isinstance(i, int) and i <= bucket]
            cell.rolling_bucket = bucket
            cell.now_sum = [sum(s[0] for s in live), sum(s[1] for s in live), sum(s[2] for s in live)]
            cell.now_slot = slots.setdefault(bucket, [0, 0, 0])
            cell.lo, cell.hi = _edge(bucket, width), _edge(bucket + 1, width)
        return cell.now_sum

    def _used(self, cell: _Cell, now: float) -> tuple[int, int, int]:
        """Settled spend in the window at ``now`` plus live reservations: (nano-USD, tokens, calls)."""
        cur = cell.now_sum if cell.lo <= now < cell.hi else self._current(cell, now)
        return cur[0] + cell.held_usd, cur[1] + cell.held_tokens, cur[2] + cell.held_calls

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
        check_amount(amount)
        with self._lock:
            if self._due(now):
                self._reclaim(now)
            if reservation_id in self._held or reservation_id in self._settled_ids:
                return ReserveResult(True, used=tuple(self._used(self._cell(c), now) for c in counters))
            group = self._group(counters)
            cells = group.cells
            usd, tokens, calls = amount.usd_nano, amount.tokens, amount.calls
            after: list[tuple[int, int, int]] = []
            for cell, (max_usd, max_tokens, max_calls) in zip(cells, group.limits, strict=True):
                cur = cell.now_sum if cell.lo <= now < cell.hi else self._current(cell, now)
                u = cur[0] + cell.held_usd + usd
                t = cur[1] + cell.held_tokens + tokens
                n = cur[2] + cell.held_calls + calls
                if u > max_usd or t > max_tokens or n > max_calls:
                    c = counters[len(after)]
                    total = Amount(u, t, n)
                    return ReserveResult(
                        False, denied=c, denied_metric=c.limit.exceeded_by(total) or total.beyond_storage()
                    )
                after.append((u, t, n))
            for cell in cells:
                cell.held_usd += usd
                cell.held_tokens += tokens
                cell.held_calls += calls
            expires = now + lease_s
            self._held[reservation_id] = _Held(cells, amount, expires)
            if expires < self._latest_expiry:
                heapq.heappush(self._early, (expires, reservation_id))
            else:
                self._latest_expiry = expires
            return ReserveResult(True, used=tuple(after))

    def settle(
        self,
        reservation_id: str,
        counters: Sequence[Counter],
        actual: Amount,
        *,
        now: float,
        reserved_at: float,
    ) -> bool:
        check_amount(actual)
        with self._lock:
            if self._due(now):
                self._reclaim(now)
            if reservation_id in self._settled_ids:
                return False
            cells = self._group(counters).cells
            res = self._held.pop(reservation_id, None)
            back_usd = back_tokens = back_calls = 0  # what the reservation held on these cells
            if res is not None:
                if res.cells is cells:  # the usual case: given back in the loop below
                    back_usd, back_tokens, back_calls = res.usd, res.tokens, res.calls
                else:
                    self._give_back(res)
            usd, tokens, calls = actual.usd_nano, actual.tokens, actual.calls
            for cell in cells:  # into the slots of the reservation's time
                cell.held_usd -= back_usd
                cell.held_tokens -= back_tokens
                cell.held_calls -= back_calls
                if cell.lo <= reserved_at < cell.hi:  # the usual case: the cell's current slot
                    slot = cell.now_slot
                    slot[0] += usd
                    slot[1] += tokens
                    slot[2] += calls
                    total = cell.now_sum
                    if total is not slot:  # rolling: the running sum too
                        total[0] += usd
                        total[1] += tokens
                        total[2] += calls
                    cell.spent = True
                    if slot[0] > MAX_QUANTITY or slot[1] > MAX_QUANTITY or slot[2] > MAX_QUANTITY:
                        slot[:] = [min(x, MAX_QUANTITY) for x in slot]  # saturate: it denies every reservation
                else:
                    self._add(cell, self._slot(cell, reserved_at), usd, tokens, calls)
            self._remember_settled(reservation_id, now)
            return True

    def release(self, reservation_id: str, *, now: float) -> bool:
        with self._lock:
            res = self._held.pop(reservation_id, None)
            if res is None:
                return False
            self._give_back(res)
            return True

    def usage(self, counter: Counter, *, now: float) -> Amount:
        with self._lock:
            self._reclaim(now)
            cell = self._cells.get(counter.key)
            if cell is None:
                return Amount()
            return Amount(*self._used(self._cell(counter), now))

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

    def scopes(self, budget_id: str, *, now: float) -> list[str]:
        with self._lock:
            self._reclaim(now)
            return sorted(k for k in self._cells if k.partition("|")[0] == budget_id)

    def in_flight(self, counter: Counter, *, now: float) -> tuple[int, Amount]:
        with self._lock:
            self._reclaim(now)
            cell = self._cells.get(counter.key)
            if cell is None:
                return 0, Amount()
            n = sum(1 for h in self._held.values() if cell in h.cells)
            return n, Amount(cell.held_usd, cell.held_tokens, cell.held_calls)

    def adjust(self, adjustment: Adjustment) -> bool:
        check_amount(adjustment.amount)
        with self._lock:
            if adjustment.id in self._adjustments:
                return False
            self._adjustments[adjustment.id] = adjustment
            return True

    def adjustments(self, *, now: float, include_expired: bool = False) -> list[Adjustment]:
        with self._lock:
            found = [a for a in self._adjustments.values() if include_expired or a.live(now)]
        return sorted(found, key=lambda a: a.at)

    def close(self) -> None:
        return None
