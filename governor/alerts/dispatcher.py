"""The background sender: a bounded queue, one daemon thread, retries with backoff.

The call path only ever calls :meth:`Dispatcher.submit`, which never blocks: a
full queue drops the job and counts it. The sender's thread runs each job (a
job may read the ledger to decide what to send) and delivers what it returns;
a failed delivery is retried after ``backoff_s``, doubling up to ``MAX_BACKOFF_S``,
``retries`` times, then counted as failed and its ``on_fail`` run (an alert
gives its ledger marker back, so a later event may send it again). A sink that
hangs holds up only this thread, for at most its timeout per attempt.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from governor.alerts.alert import Alert
from governor.alerts.sinks import DeliveryError, deliver
from governor.policy.model import AlertSink

log = logging.getLogger("governor.alerts")

MAX_BACKOFF_S = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One alert for one sink."""

    sink: AlertSink
    """Where it goes."""
    alert: Alert
    """What is sent."""
    on_fail: Callable[[], Any] | None = None
    """Run once when every attempt failed (e.g. unclaim the alert's ledger marker)."""


Job = Callable[[], Iterable[Delivery]]


class Dispatcher:
    """Runs jobs and delivers their alerts on a daemon thread (started on the first submit)."""

    def __init__(
        self,
        *,
        queue_size: int = 1000,
        retries: int = 5,
        backoff_s: float = 1.0,
        send: Callable[[AlertSink, Alert], None] = deliver,
    ) -> None:
        self.retries = retries
        self.backoff_s = backoff_s
        self._send = send
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=queue_size)
        self._retry: list[tuple[float, int, int, Delivery]] = []  # (due, seq, attempts so far, delivery)
        self._seq = itertools.count()
        self._lock = threading.Condition()
        self._busy = 0  # jobs submitted and not finished, deliveries waiting for a retry
        self._thread: threading.Thread | None = None
        self._closed = False
        self.sent: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.retried: Counter[str] = Counter()
        self.dropped = 0
        self._pid = os.getpid()

    def _after_fork(self) -> None:
        """Start afresh in a forked child: its own queue, lock and thread (the parent's alerts stay the parent's)."""
        self._queue = queue.Queue(maxsize=self._queue.maxsize)
        self._retry = []
        self._lock = threading.Condition()
        self._busy = 0
        self._thread = None
        self._pid = os.getpid()

    # -- the call path ------------------------------------------------------------
    def submit(self, job: Job) -> bool:
        """Queue ``job`` without waiting; False (and counted as dropped) when the queue is full or closed."""
        if self._pid != os.getpid():  # a forked child: the sender's thread did not come along
            self._after_fork()
        with self._lock:
            if self._closed:
                return False
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="governor-alerts", daemon=True)
                self._thread.start()
            self._busy += 1
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            with self._lock:
                self._busy -= 1
                self.dropped += 1
                self._lock.notify_all()
            return False
        return True

    # -- the sender's thread --------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._lock:
                wait = max(0.0, self._retry[0][0] - time.monotonic()) if self._retry else 0.5
            try:
                job = self._queue.get(timeout=wait)
            except queue.Empty:
                job = None
            else:
                if job is None:  # close()
                    return
                try:
                    for delivery in job():
                        self._attempt(delivery, 0)
                except Exception:  # a job must never kill the sender
                    log.exception("alert job failed")
                finally:
                    self._done()
            self._retry_due()

    def _retry_due(self) -> None:
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._retry or self._retry[0][0] > now:
                    return
                _, _, attempts, delivery = heapq.heappop(self._retry)
            self.retried[delivery.sink.name] += 1
            self._attempt(delivery, attempts)
            self._done()

    def _attempt(self, d: Delivery, attempts: int) -> None:
        try:
            self._send(d.sink, d.alert)
        except Exception as exc:
            if attempts < self.retries and not self._closed:
                delay = min(MAX_BACKOFF_S, self.backoff_s * 2**attempts)
                log.info("alert %s to %s failed (%s); retry in %.1fs", d.alert.rule, d.sink.name, exc, delay)
                with self._lock:
                    self._busy += 1
                    heapq.heappush(self._retry, (time.monotonic() + delay, next(self._seq), attempts + 1, d))
                return
            reason = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
            log.warning(
                "alert %s to sink %s given up after %d attempts: %s", d.alert.rule, d.sink.name, attempts + 1, reason
            )
            self.failed[d.sink.name] += 1
            if d.on_fail is not None:
                try:
                    d.on_fail()
                except Exception:
                    log.exception("alert %s: on_fail failed", d.alert.rule)
            return
        self.sent[d.sink.name] += 1

    def _done(self) -> None:
        with self._lock:
            self._busy -= 1
            self._lock.notify_all()

    # -- control ---------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted job ran and every delivery was sent or given up; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._busy > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def counts(self) -> dict[str, Any]:
        """``{"sent": {sink: n}, "failed": {...}, "retried": {...}, "dropped": n}``."""
        return {
            "sent": dict(self.sent),
            "failed": dict(self.failed),
            "retried": dict(self.retried),
            "dropped": self.dropped,
        }

    def close(self, timeout: float = 2.0) -> None:
        """Deliver what is queued for up to ``timeout`` seconds, then stop the thread."""
        self.flush(timeout)
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                pass
            thread.join(timeout=0.5)
