"""Open the ledger a policy names (``ledger:`` section): memory, sqlite or redis.

SQLite and Redis ledgers are imported lazily, so a memory-only user never
imports sqlite3 or redis-py.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from governor.errors import LedgerError
from governor.ledger.base import Ledger
from governor.policy.envvars import ENV_FIELDS, UnsetVariable, expand
from governor.policy.model import LedgerSpec


def open_ledger(spec: LedgerSpec | None = None, *, base_dir: str | os.PathLike[str] | None = None) -> Ledger:
    """A ledger for ``spec`` (default: a fresh in-process MemoryLedger).

    A relative SQLite path is taken relative to ``base_dir`` (the policy file's
    directory, as ``extends`` is) when given, else to the working directory.
    ``${VAR}`` / ``${VAR:-default}`` in the path, url and key prefix are expanded
    here, from the environment (:mod:`governor.policy.envvars`).
    """
    if spec is not None and spec.type != "memory":
        try:
            spec = replace(spec, **{f: expand(getattr(spec, f)) for f in ENV_FIELDS if getattr(spec, f)})
        except UnsetVariable as exc:
            raise LedgerError(f"ledger settings: {exc}") from None
    if spec is None or spec.type == "memory":
        from governor.ledger.memory import MemoryLedger

        return MemoryLedger()
    if spec.type == "sqlite":
        if not spec.path:
            raise LedgerError("ledger type sqlite needs a path (ledger.path in the policy)")
        from governor.ledger.sqlite import SqliteLedger

        path = Path(spec.path).expanduser()
        if base_dir is not None and not path.is_absolute():
            path = Path(base_dir) / path
        return SqliteLedger(path)
    if spec.type == "redis":
        from governor.ledger.redis import RedisLedger

        if spec.url:
            return RedisLedger(spec.url, key_prefix=spec.key_prefix)
        return RedisLedger(key_prefix=spec.key_prefix)
    raise LedgerError(f"unknown ledger type {spec.type!r}: expected memory, sqlite or redis")


def is_blocking(ledger: Ledger) -> bool:
    """True when the ledger does I/O (so async callers should run it in a thread)."""
    from governor.ledger.memory import MemoryLedger

    flag = getattr(ledger, "blocking", None)
    if flag is not None:
        return bool(flag)
    return not isinstance(ledger, MemoryLedger)
