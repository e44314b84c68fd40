"""The SQLite ledger: budgets shared by many processes on one machine.

One WAL-mode database file. Every write runs in ``BEGIN IMMEDIATE`` so a
reserve takes the database's single write lock *before* it reads the counters:
the read-check-write of all counters of a call is one atomic step across every
process that opens the same file (readers are never blocked by WAL).

Waiting for that lock is done here, not by SQLite's busy handler: it sleeps 1,
2, 5, 10, 15 ... ms between tries, so with eight processes a writer that found
the lock taken for a quarter of a millisecond slept ten; the p99 of a reserve
was 56-80 ms. ``BEGIN IMMEDIATE`` is retried after a short randomised pause
(from 20 us, doubling up to 1 ms) until ``timeout_s``. Expired rows (leases,
settled ids, slots) are deleted at most every ``SWEEP_S`` by each process,
so a transaction is the call's own statements.

Reservations live in two tables (the reservation, and the counters it holds);
a counter's in-flight amount is the sum of its live reservations, so nothing
can drift. Expired reservations are ignored by every read and deleted on each
write through an index on ``expires_at``: a crashed worker's reservations free
their budget when their lease ends. Settled spend is kept per window slot
(:mod:`governor.ledger.windows`), so windows roll over the same way as in the
in-memory reference ledger. Settle is idempotent through a table of settled
reservation ids kept for ``settled_ttl_s``.

The file is the budget: every transaction first checks that the file at
``path`` is still the one this ledger opened (same device and inode). A file
deleted or replaced while the process runs (a cleanup job, a redeploy that
recreated it) would otherwise leave this process counting into a file no other
process sees; instead every operation raises :class:`LedgerError`, logged once,
so the budgets' ``on_error`` applies, until the process opens the ledger again.

After ``fork()`` the child drops the parent's connection without closing it
(closing would touch the parent's file state) and opens its own, with a fresh
lock. Stored quantities stay within ``MAX_QUANTITY`` (an INTEGER never
overflows, and never turns into a REAL).
"""

from __future__ import annotations

import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from governor.errors import LedgerError
from governor.ledger.base import (
    MAX_QUANTITY,
    Adjustment,
    Amount,
    Counter,
    ReserveResult,
    check_amount,
    decode_adjustments,
)
from governor.ledger.forks import after_fork_in_child
from governor.ledger.memory import SETTLED_ID_TTL_S
from governor.ledger.windows import ROLLING_SLOTS, Window, current_slot

log = logging.getLogger("governor.ledger")

KEEP_MARGIN_S = 60.0  # a slot outlives its window by this much before it is deleted
SWEEP_S = 1.0  # how often a process deletes expired rows (every read ignores them meanwhile)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reservations (
    rid TEXT PRIMARY KEY, expires_at REAL NOT NULL,
    usd INTEGER NOT NULL, tokens INTEGER NOT NULL, calls INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS reservations_expiry ON reservations(expires_at);
CREATE TABLE IF NOT EXISTS reservation_counters (
    counter_key TEXT NOT NULL, rid TEXT NOT NULL, PRIMARY KEY (counter_key, rid)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS reservation_counters_rid ON reservation_counters(rid);
CREATE TABLE IF NOT EXISTS slots (
    counter_key TEXT NOT NULL, slot TEXT NOT NULL, idx INTEGER,
    usd INTEGER NOT NULL, tokens INTEGER NOT NULL, calls INTEGER NOT NULL,
    expires_at REAL NOT NULL, PRIMARY KEY (counter_key, slot)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS slots_idx ON slots(counter_key, idx);
CREATE INDEX IF NOT EXISTS slots_expiry ON slots(expires_at) WHERE expires_at > 0;
CREATE TABLE IF NOT EXISTS settled (rid TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS settled_at ON settled(at);
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, until REAL NOT NULL);
"""

# Operators' adjustments (governor budget raise|reset, governor run resume): a table of their own, created on
# first use, never rewritten: the audit trail. ``until`` NULL: in force until the records are read otherwise.
_ADJUSTMENTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS adjustments (
    id TEXT PRIMARY KEY, at REAL NOT NULL, until REAL, record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS adjustments_until ON adjustments(until);
"""


def _set_wal(conn: sqlite3.Connection, deadline: float) -> None:
    """``PRAGMA journal_mode = WAL``, retried until ``deadline``.

    While another connection writes to the file (a process creating the schema of a
    new ledger), SQLite refuses the journal-mode change at once with "database is
    locked", without waiting on its busy timeout. Several processes opening one new
    ledger at the same moment (proxy workers starting) then failed one open in about
    fifty; retrying, with a short growing pause, waits out the writer as the busy
    timeout would.
    """
    pause = 0.002
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


_INFLIGHT = (
    "SELECT COALESCE(SUM(r.usd),0), COALESCE(SUM(r.tokens),0), COALESCE(SUM(r.calls),0) "
    "FROM reservation_counters k JOIN reservations r ON r.rid = k.rid "
    "WHERE k.counter_key = ? AND r.expires_at > ?"
)
_SUM = "SELECT COALESCE(SUM(usd),0), COALESCE(SUM(tokens),0), COALESCE(SUM(calls),0) FROM slots "
_ROLLING = _SUM + "WHERE counter_key = ? AND idx > ? AND idx <= ?"
_SINGLE = _SUM + "WHERE counter_key = ? AND slot = ?"
_ADD = (
    "INSERT INTO slots (counter_key, slot, idx, usd, tokens, calls, expires_at) VALUES (?,?,?,?,?,?,?) "
    f"ON CONFLICT (counter_key, slot) DO UPDATE SET usd = MIN(usd + excluded.usd, {MAX_QUANTITY}), "
    f"tokens = MIN(tokens + excluded.tokens, {MAX_QUANTITY}), calls = MIN(calls + excluded.calls, {MAX_QUANTITY}), "
    "expires_at = CASE WHEN expires_at = 0 OR excluded.expires_at = 0 THEN 0 "
    "ELSE MAX(expires_at, excluded.expires_at) END"
)


class SqliteLedger:
    """A :class:`governor.ledger.base.Ledger` in one SQLite file shared by processes.

    ``timeout_s`` is SQLite's busy timeout: how long a writer waits for the
    lock before the operation fails with :class:`LedgerError`. One connection
    per process, guarded by a lock (SQLite serialises writers anyway); a forked
    child opens its own connection on first use.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, timeout_s: float = 5.0, settled_ttl_s: float = SETTLED_ID_TTL_S
    ) -> None:
        self.path = str(path)
        self.timeout_s = timeout_s
        self.settled_ttl_s = settled_ttl_s
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._file: tuple[int, int] | None = None  # (st_dev, st_ino) of the file opened
        self._lost = False  # the file was deleted or replaced (logged once)
        self._inherited: list[sqlite3.Connection] = []  # a parent's connections, kept open in a child
        self._adjustments_ready: sqlite3.Connection | None = None  # the connection the adjustments table was made on
        self._next_sweep = float("-inf")  # when this process deletes expired rows next (ledger time)
        with self._lock:
            self._connection()
        after_fork_in_child(self, SqliteLedger._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        if self._conn is not None:
            self._inherited.append(self._conn)
        self._conn = None

    def _identity(self) -> tuple[int, int] | None:
        if self.path == ":memory:":
            return (0, 0)
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino)

    def _check_file(self) -> None:
        """Raise LedgerError when the file at ``path`` is no longer the one opened."""
        if self._file is not None and self._identity() == self._file:
            return
        what = "deleted" if self._identity() is None else "replaced by another file"
        if not self._lost:
            self._lost = True
            log.error(
                "sqlite ledger %s: the file was %s while in use; budgets follow on_error until the "
                "ledger is opened again",
                self.path,
                what,
            )
        raise LedgerError(f"sqlite ledger {self.path}: the file was {what} while in use (budgets follow on_error)")

    # -- connection and transactions ------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            self._check_file()
            return self._conn
        if self._file is not None:  # a forked child reopens the file its parent had, if it is still there
            self._check_file()
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
            _set_wal(conn, time.monotonic() + self.timeout_s)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise LedgerError(f"sqlite ledger {self.path}: cannot open: {exc}") from exc
        if self._file is None:
            self._file = self._identity()
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _begin(self, conn: sqlite3.Connection, begin: str) -> None:
        """``begin``, waiting for the write lock in short randomised pauses (see the module docstring);
        inside the transaction SQLite's own busy timeout applies again."""
        if begin != "BEGIN IMMEDIATE":
            conn.execute(begin)
            return
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            deadline = time.monotonic() + self.timeout_s
            pause = 20e-6
            while True:
                try:
                    conn.execute(begin)
                    return
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                        raise
                time.sleep(pause * (0.5 + random.random()))
                pause = min(pause * 2, 1e-3)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Connection]:
        """One transaction; any SQLite error becomes a LedgerError and rolls back."""
        with self._lock:
            conn = None
            try:
                conn = self._connection()
                self._begin(conn, begin)
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback(conn)
                raise LedgerError(f"sqlite ledger {self.path} unavailable: {exc}") from exc
            except BaseException:
                self._rollback(conn)
                raise

    @staticmethod
    def _rollback(conn: sqlite3.Connection | None) -> None:
        if conn is not None and conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:  # pragma: no cover - the connection is gone as well
                pass

    @contextmanager
    def _write(self, now: float) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` (the write lock, taken before any read), after reclaiming expired leases."""
        with self._transaction("BEGIN IMMEDIATE") as conn:
            if not self._next_sweep - SWEEP_S <= now < self._next_sweep:  # due, or the clock went back
                self._reclaim(conn, now)
                self._next_sweep = now + SWEEP_S
            yield conn

    def _reclaim(self, conn: sqlite3.Connection, now: float) -> None:
        """Delete expired rows. Only housekeeping: every read already ignores an expired lease, settled id
        or slot. Each statement is an index range scan, empty on the common path."""
        conn.execute(
            "DELETE FROM reservation_counters WHERE rid IN (SELECT rid FROM reservations WHERE expires_at <= ?)", (now,)
        )
        conn.execute("DELETE FROM reservations WHERE expires_at <= ?", (now,))
        conn.execute("DELETE FROM settled WHERE at <= ?", (now - self.settled_ttl_s,))
        conn.execute("DELETE FROM slots WHERE expires_at > 0 AND expires_at <= ?", (now,))

    # -- reads ------------------------------------------------------------------
    @staticmethod
    def _used(conn: sqlite3.Connection, counter: Counter, now: float) -> Amount:
        window = counter.window
        if window.kind == "rolling":
            cur = int(now // window.slot_seconds)
            row = conn.execute(_ROLLING, (counter.key, cur - ROLLING_SLOTS, cur)).fetchone()
        else:
            row = conn.execute(_SINGLE, (counter.key, current_slot(window, now))).fetchone()
        inflight = conn.execute(_INFLIGHT, (counter.key, now)).fetchone()
        return Amount(row[0] + inflight[0], row[1] + inflight[1], row[2] + inflight[2])

    @staticmethod
    def _known(conn: sqlite3.Connection, rid: str, now: float) -> bool:
        held = conn.execute("SELECT expires_at FROM reservations WHERE rid = ?", (rid,)).fetchone()
        if held is not None:
            if held[0] > now:
                return True
            SqliteLedger._drop(conn, rid)  # its lease ended and no sweep deleted it yet: the id is free again
        return conn.execute("SELECT 1 FROM settled WHERE rid = ?", (rid,)).fetchone() is not None

    # -- the Ledger protocol ---------------------------------------------------
    def reserve(
        self, reservation_id: str, counters: Sequence[Counter], amount: Amount, *, now: float, lease_s: float
    ) -> ReserveResult:
        check_amount(amount)
        with self._write(now) as conn:
            if self._known(conn, reservation_id, now):
                return ReserveResult(True, used=tuple(self._used(conn, c, now).figures() for c in counters))
            after: list[tuple[int, int, int]] = []
            for c in counters:
                total = self._used(conn, c, now) + amount
                metric = c.limit.exceeded_by(total) or total.beyond_storage()
                if metric is not None:
                    return ReserveResult(False, denied=c, denied_metric=metric)
                after.append(total.figures())
            conn.execute(
                "INSERT INTO reservations VALUES (?,?,?,?,?)",
                (reservation_id, now + lease_s, amount.usd_nano, amount.tokens, amount.calls),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO reservation_counters VALUES (?,?)", [(c.key, reservation_id) for c in counters]
            )
            return ReserveResult(True, used=tuple(after))

    def settle(
        self, reservation_id: str, counters: Sequence[Counter], actual: Amount, *, now: float, reserved_at: float
    ) -> bool:
        check_amount(actual)
        with self._write(now) as conn:
            if conn.execute("SELECT 1 FROM settled WHERE rid = ?", (reservation_id,)).fetchone():
                return False
            self._drop(conn, reservation_id)
            conn.executemany(_ADD, [self._slot_row(c, actual, reserved_at) for c in counters])
            conn.execute("INSERT INTO settled VALUES (?,?)", (reservation_id, now))
            return True

    def release(self, reservation_id: str, *, now: float) -> bool:
        # Like the reference ledger, release drops a reservation even if its
        # lease ended and nothing reclaimed it yet (so no reclaim first).
        with self._transaction("BEGIN IMMEDIATE") as conn:
            return self._drop(conn, reservation_id)

    def usage(self, counter: Counter, *, now: float) -> Amount:
        with self._transaction("BEGIN") as conn:  # one consistent snapshot for both sums
            return self._used(conn, counter, now)

    def claim(self, key: str, *, now: float, until: float) -> bool:
        with self._transaction("BEGIN IMMEDIATE") as conn:
            conn.execute("DELETE FROM claims WHERE until <= ?", (now,))
            return conn.execute("INSERT OR IGNORE INTO claims VALUES (?,?)", (key, until)).rowcount > 0

    def unclaim(self, key: str) -> None:
        with self._transaction("BEGIN IMMEDIATE") as conn:
            conn.execute("DELETE FROM claims WHERE key = ?", (key,))

    def scopes(self, budget_id: str, *, now: float) -> list[str]:
        lo, hi = budget_id + "|", budget_id + "}"  # "}" sorts right after "|": the keys of this budget
        with self._transaction("BEGIN") as conn:
            rows = conn.execute(
                "SELECT counter_key FROM slots WHERE counter_key >= ? AND counter_key < ? "
                "AND (expires_at = 0 OR expires_at > ?) UNION "
                "SELECT k.counter_key FROM reservation_counters k JOIN reservations r ON r.rid = k.rid "
                "WHERE k.counter_key >= ? AND k.counter_key < ? AND r.expires_at > ?",
                (lo, hi, now, lo, hi, now),
            ).fetchall()
        return sorted(r[0] for r in rows)

    def in_flight(self, counter: Counter, *, now: float) -> tuple[int, Amount]:
        with self._transaction("BEGIN") as conn:
            row = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(r.usd),0), COALESCE(SUM(r.tokens),0), COALESCE(SUM(r.calls),0) "
                "FROM reservation_counters k JOIN reservations r ON r.rid = k.rid "
                "WHERE k.counter_key = ? AND r.expires_at > ?",
                (counter.key, now),
            ).fetchone()
        return int(row[0]), Amount(int(row[1]), int(row[2]), int(row[3]))

    def _adjustments_table(self, conn: sqlite3.Connection) -> None:
        """Create the adjustments table on first use (inside the caller's transaction)."""
        if self._adjustments_ready is not conn:
            for statement in _ADJUSTMENTS_SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            self._adjustments_ready = conn

    def adjust(self, adjustment: Adjustment) -> bool:
        check_amount(adjustment.amount)
        record = json.dumps(adjustment.as_dict(), sort_keys=True)
        with self._transaction("BEGIN IMMEDIATE") as conn:
            self._adjustments_table(conn)
            cur = conn.execute(
                "INSERT OR IGNORE INTO adjustments VALUES (?,?,?,?)",
                (adjustment.id, adjustment.at, adjustment.until, record),
            )
            return cur.rowcount > 0

    def adjustments(self, *, now: float, include_expired: bool = False) -> list[Adjustment]:
        with self._transaction("BEGIN") as conn:  # a reader: never the write lock (the table may not exist yet)
            exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'adjustments'")
            if exists.fetchone() is None:
                return []
            if include_expired:
                rows = conn.execute("SELECT record FROM adjustments ORDER BY at, id").fetchall()
            else:
                rows = conn.execute(
                    "SELECT record FROM adjustments WHERE until IS NULL OR until > ? ORDER BY at, id", (now,)
                ).fetchall()
        return decode_adjustments((r[0] for r in rows), self.path)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None  # a parent's connections stay open in a child (_inherited): never closed here

    # -- helpers ------------------------------------------------------------------
    @staticmethod
    def _drop(conn: sqlite3.Connection, rid: str) -> bool:
        conn.execute("DELETE FROM reservation_counters WHERE rid = ?", (rid,))
        return conn.execute("DELETE FROM reservations WHERE rid = ?", (rid,)).rowcount > 0

    @staticmethod
    def _slot_row(counter: Counter, actual: Amount, reserved_at: float) -> tuple[Any, ...]:
        window: Window = counter.window
        slot = current_slot(window, reserved_at)
        idx = int(slot[1:]) if window.kind == "rolling" else None
        ttl = window.ttl()
        expires = reserved_at + ttl + KEEP_MARGIN_S if ttl else 0.0
        return (counter.key, slot, idx, actual.usd_nano, actual.tokens, actual.calls, expires)

    def __repr__(self) -> str:
        return f"SqliteLedger({self.path!r})"
