"""The in-process ledger: the default for one process, and the reference semantics.

One lock guards every operation, so reserve is atomic across all counters of a
call, for threads and for asyncio tasks alike (nothing here awaits).
"""

from __future__ import annotations

import heapq
import threading
from collections import OrderedDict
from typing import Sequence

from governor.ledger.base import ZERO, Amount, Counter, ReserveResult
from governor.ledger.windows import ROLLING_SLOTS, Window, current_slot

SETTLED_ID_TTL_S = 86400.0  # how long a settled id is remembered for idempotency


class _Cell:
    """Settled spend of one counter, by slot, plus its live reservations."""

    __slots__ = ("slots", "inflight")

    def __init__(self) -> None:
        self.slots: dict[str, Amount] = {}
        self.inflight: Amount = ZERO

    def settled(self, window: Window, now: float) -> Amount:
        if window.kind != "rolling":
            return self.slots.get(current_slot(window, now), ZERO)
        cur = int(now // window.slot_seconds)
        low = cur - ROLLING_SLOTS
        total = ZERO
        stale = []
        for slot, amount in self.slots.items():
            idx = int(slot[1:])
            if idx <= low:
                stale.append(slot)
            elif idx <= cur:
                total = total + amount
        for slot in stale:
            del self.slots[slot]
        return total


class _Reservation:
    __slots__ = ("keys", "amount", "expires_at")

    def __init__(self, keys: tuple[str, ...], amount: Amount, expires_at: float) -> None:
        self.keys = keys
        self.amount = amount
        self.expires_at = expires_at


class MemoryLedger:
    """A :class:`governor.ledger.base.Ledger` held in this process's memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cells: dict[str, _Cell] = {}
        self._reservations: dict[str, _Reservation] = {}
        self._expiry: list[tuple[float, str]] = []
        self._settled_ids: OrderedDict[str, float] = OrderedDict()

    # -- internal, lock held --------------------------------------------------
    def _cell(self, key: str) -> _Cell:
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = _Cell()
        return cell

    def _reclaim(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            _, rid = heapq.heappop(self._expiry)
            res = self._reservations.get(rid)
            if res is not None and res.expires_at <= now:
                self._drop(rid, res)
        while self._settled_ids:
            rid, at = next(iter(self._settled_ids.items()))
            if at + SETTLED_ID_TTL_S > now:
                break
            self._settled_ids.popitem(last=False)

    def _drop(self, rid: str, res: _Reservation) -> None:
        del self._reservations[rid]
        neg = Amount(-res.amount.usd_nano, -res.amount.tokens, -res.amount.calls)
        for key in res.keys:
            cell = self._cells[key]
            cell.inflight = cell.inflight + neg

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
            self._reclaim(now)
            if reservation_id in self._reservations or reservation_id in self._settled_ids:
                return ReserveResult(True, used_after=tuple(self._used(c, now) for c in counters))
            after: list[Amount] = []
            for c in counters:
                total = self._used(c, now) + amount
                metric = c.limit.exceeded_by(total)
                if metric is not None:
                    return ReserveResult(False, denied=c, denied_metric=metric)
                after.append(total)
            keys = tuple(c.key for c in counters)
            for key in keys:
                cell = self._cell(key)
                cell.inflight = cell.inflight + amount
            expires = now + lease_s
            self._reservations[reservation_id] = _Reservation(keys, amount, expires)
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
        with self._lock:
            self._reclaim(now)
            if reservation_id in self._settled_ids:
                return False
            res = self._reservations.get(reservation_id)
            if res is not None:
                self._drop(reservation_id, res)
            for c in counters:
                cell = self._cell(c.key)
                slot = current_slot(c.window, reserved_at)
                cell.slots[slot] = cell.slots.get(slot, ZERO) + actual
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
            return self._used(counter, now)

    def _used(self, counter: Counter, now: float) -> Amount:
        cell = self._cells.get(counter.key)
        if cell is None:
            return ZERO
        return cell.settled(counter.window, now) + cell.inflight

    def close(self) -> None:
        return None
