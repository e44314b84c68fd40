"""Store failures surface as LedgerError (the engine applies on_error) and heal by themselves."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from redis_proc import RedisServer, free_port

from governor.errors import LedgerError
from governor.ledger.base import Amount, Counter, Limit
from governor.ledger.redis import RedisLedger, redact
from governor.ledger.sqlite import SqliteLedger
from governor.ledger.windows import NO_WINDOW

TEAM = Counter("team|team=a", "team", Limit(usd_nano=1000), NO_WINDOW)


def test_sqlite_path_that_cannot_be_a_database(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(LedgerError, match=r"sqlite ledger .*dir\.db: cannot open"):
        SqliteLedger(tmp_path / "dir.db")


def test_sqlite_lock_held_too_long_is_a_ledger_error_then_recovers(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.db", timeout_s=0.1)
    other = sqlite3.connect(tmp_path / "l.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    with pytest.raises(LedgerError, match="database is locked"):
        ledger.reserve("r1", [TEAM], Amount(400), now=0.0, lease_s=10)
    other.execute("COMMIT")
    other.close()
    assert ledger.reserve("r1", [TEAM], Amount(400), now=0.0, lease_s=10).ok  # nothing was half-written
    assert ledger.usage(TEAM, now=0.0) == Amount(400)


def test_sqlite_file_is_created_with_its_directory_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "governor" / "ledger.db"
    SqliteLedger(path).close()
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_new_sqlite_ledger_opens_while_another_process_writes_its_schema(tmp_path: Path) -> None:
    """SQLite refuses the switch to WAL at once while another connection writes the new
    file: the open waits for it (up to its timeout), as for any other lock."""
    import threading
    import time

    path = tmp_path / "new.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process, mid-way through creating the file
    other.execute("CREATE TABLE IF NOT EXISTS being_written (x)")
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
    started = time.monotonic()
    ledger = SqliteLedger(path, timeout_s=5.0)
    assert time.monotonic() - started >= 0.25  # it waited for the writer, and then opened
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert ledger.usage(TEAM, now=1.0) == Amount(0, 0, 0)
    ledger.close()
    other.close()
    # a writer that holds a new file past the open's timeout: a LedgerError naming the file
    held = sqlite3.connect(tmp_path / "held.db", isolation_level=None)
    held.execute("BEGIN IMMEDIATE")
    held.execute("CREATE TABLE being_written (x)")
    with pytest.raises(LedgerError, match=r"sqlite ledger .*held\.db: cannot open: database is locked"):
        SqliteLedger(tmp_path / "held.db", timeout_s=0.2)
    held.execute("ROLLBACK")
    held.close()


def test_redis_not_running_yet_then_started(tmp_path: Path) -> None:
    port = free_port()
    ledger = RedisLedger(f"redis://127.0.0.1:{port}/0", key_prefix="late")
    with pytest.raises(LedgerError, match=f"redis ledger redis://127.0.0.1:{port}/0 unavailable"):
        ledger.reserve("r1", [TEAM], Amount(400), now=0.0, lease_s=10)
    server = RedisServer(tmp_path / "redis", port=port).start()
    try:
        assert ledger.reserve("r1", [TEAM], Amount(400), now=0.0, lease_s=10).ok
        assert ledger.usage(TEAM, now=0.0) == Amount(400)
    finally:
        ledger.close()
        server.stop()


def test_redis_error_messages_never_show_the_password() -> None:
    assert redact("redis://user:s3cret@cache.internal:6380/2") == "redis://user:***@cache.internal:6380/2"
    ledger = RedisLedger(f"redis://:s3cret@127.0.0.1:{free_port()}/0", connect_timeout_s=0.05)
    with pytest.raises(LedgerError) as err:
        ledger.usage(TEAM, now=0.0)
    assert "s3cret" not in str(err.value) and ":***@127.0.0.1" in str(err.value)
