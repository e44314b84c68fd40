"""Settlements the budget store could not take (it was down), kept and retried.

Money was spent even if the store cannot hear about it yet: ``record()`` puts a
failed settle here and the governor retries the queue on later checks and
records (at most once per ``RETRY_S`` while the store stays down). Ledgers
settle idempotently by reservation id, so a retry can never count twice, and
totals are exact once the store is back.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence

from governor.errors import LedgerError
from governor.ledger.base import Amount, Counter, Ledger

log = logging.getLogger("governor.engine")

RETRY_S = 1.0  # while the store is down, retry at most this often
MAX_QUEUED = 100_000  # beyond this the oldest settlement is dropped, with an error logged


class SettleQueue:
    """Failed settlements in arrival order. ``items`` is truthy when something waits."""

    def __init__(self) -> None:
        self.items: deque[tuple[str, Sequence[Counter], Amount, float]] = deque()
        self._lock = threading.Lock()
        self._next_try = 0.0

    def add(
        self, decision_id: str, counters: Sequence[Counter], actual: Amount, reserved_at: float, now: float
    ) -> None:
        with self._lock:
            if len(self.items) >= MAX_QUEUED:
                lost = self.items.popleft()
                log.error("settlement queue full: decision %s dropped, its spend is not counted", lost[0])
            self.items.append((decision_id, counters, actual, reserved_at))
            self._next_try = now + RETRY_S
        log.warning(
            "budget store unavailable: settlement of decision %s queued (%d waiting); retried on later calls",
            decision_id,
            len(self.items),
        )

    def flush(self, ledger: Ledger, now: float) -> None:
        """Settle what waits, oldest first; stop at the first store error (retry later)."""
        if now < self._next_try or not self._lock.acquire(blocking=False):
            return  # too soon, or another thread is flushing
        try:
            done = 0
            while self.items:
                did, counters, actual, reserved_at = self.items[0]
                try:
                    ledger.settle(did, counters, actual, now=now, reserved_at=reserved_at)
                except LedgerError:
                    self._next_try = now + RETRY_S
                    break
                self.items.popleft()
                done += 1
        finally:
            self._lock.release()
        if done:
            log.warning("budget store back: %d queued settlement(s) applied, %d waiting", done, len(self.items))
