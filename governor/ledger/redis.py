"""The Redis ledger: one budget shared by many processes on many hosts.

Each operation is one Lua script (:mod:`governor.ledger.redis_scripts`), so a
reserve checks and charges every counter of a call atomically on the server; no
client-side read-check-write window exists for concurrent workers to race in.
Scripts run by EVALSHA; after a Redis restart (script cache empty) they are
loaded again on NOSCRIPT.

Connection errors and timeouts raise :class:`LedgerError` quickly (0.25 s socket
timeouts by default) so the engine can apply the budget's ``on_error``; the
client reconnects on the next call, so service resumes by itself when Redis is
back. Every host must run with a synchronised clock (NTP): window slots and
lease expiry use the caller's ``now``.

Redis Cluster: a counter's keys share the hash tag ``{prefix:budget_id}``, but
a reservation record and a call spanning several budgets touch several slots,
so this ledger needs a single Redis primary (standalone, Sentinel, or a managed
primary with replicas). See docs/ledgers.md.
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

from governor.errors import LedgerError
from governor.ledger import redis_scripts
from governor.ledger.base import Amount, Counter, ReserveResult
from governor.ledger.memory import SETTLED_ID_TTL_S
from governor.ledger.windows import ROLLING_SLOTS, current_slot

KEEP_MARGIN_S = 60  # keys outlive their data by this much: clock skew between hosts


def redact(url: str) -> str:
    """The URL without its password, for error messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _lim(value: int | None) -> int:
    return -1 if value is None else value


class RedisLedger:
    """A :class:`governor.ledger.base.Ledger` in Redis (``pip install budget-governor[redis]``).

    ``url`` is a redis-py URL (``redis://[:password@]host:port/db``,
    ``rediss://`` for TLS). ``key_prefix`` namespaces every key, so several
    governors (or environments) can share one Redis.
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, key_prefix: str = "governor",
                 socket_timeout_s: float = 0.25, connect_timeout_s: float = 0.25,
                 settled_ttl_s: float = SETTLED_ID_TTL_S) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise LedgerError("the redis ledger needs the redis package: "
                              "pip install 'budget-governor[redis]'") from exc
        self.url = url
        self.where = redact(url)
        self.prefix = key_prefix
        self.settled_ttl_s = max(1, int(math.ceil(settled_ttl_s)))
        self._errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError,)
        self._down: tuple[type[BaseException], ...] = (redis.exceptions.ConnectionError,
                                                       redis.exceptions.TimeoutError)
        try:
            # One retry, on connection errors only: it replaces a pooled
            # connection that died while Redis restarted. Timeouts are not
            # retried, so an unresponsive Redis costs one socket timeout.
            self._client = redis.Redis.from_url(
                url, socket_timeout=socket_timeout_s, socket_connect_timeout=connect_timeout_s,
                retry=Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)),
                retry_on_timeout=False)
        except (ValueError, redis.exceptions.RedisError) as exc:
            raise LedgerError(f"redis ledger {self.where}: bad url: {exc}") from exc
        self._reserve = self._client.register_script(redis_scripts.RESERVE)
        self._settle = self._client.register_script(redis_scripts.SETTLE)
        self._release = self._client.register_script(redis_scripts.RELEASE)
        self._usage = self._client.register_script(redis_scripts.USAGE)
        self._bases: dict[str, str] = {}

    # -- keys ------------------------------------------------------------------------
    def _base(self, counter: Counter) -> str:
        base = self._bases.get(counter.key)
        if base is None:
            if len(self._bases) > 10_000:
                self._bases.clear()
            base = self._bases[counter.key] = f"{{{self.prefix}:{counter.budget_id}}}:c:{counter.key}"
        return base

    def _counter_keys(self, counters: Sequence[Counter]) -> list[str]:
        keys: list[str] = []
        for c in counters:
            base = self._base(c)
            keys += (base + ":s", base + ":i", base + ":z", base + ":a")
        return keys

    def _id_keys(self, rid: str) -> list[str]:
        return [f"{self.prefix}:res:{rid}", f"{self.prefix}:done:{rid}"]

    @staticmethod
    def _window_args(counter: Counter, now: float) -> list[str]:
        window = counter.window
        if window.kind == "rolling":
            cur = int(now // window.slot_seconds)
            return ["r", str(cur - ROLLING_SLOTS), str(cur)]
        return ["c", current_slot(window, now), ""]

    def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return script(keys=keys, args=args)
        except self._down as exc:
            raise LedgerError(f"redis ledger {self.where} unavailable: "
                              f"{type(exc).__name__}: {exc}") from exc
        except self._errors as exc:
            raise LedgerError(f"redis ledger {self.where} failed: {type(exc).__name__}: {exc}") from exc

    # -- the Ledger protocol -------------------------------------------------------
    def reserve(self, reservation_id: str, counters: Sequence[Counter], amount: Amount, *,
                now: float, lease_s: float) -> ReserveResult:
        keep_ms = int((lease_s + KEEP_MARGIN_S) * 1000)
        args: list[Any] = [reservation_id, repr(now), repr(now + lease_s), amount.usd_nano,
                           amount.tokens, amount.calls, keep_ms,
                           json.dumps([self._base(c) for c in counters])]
        for c in counters:
            lim = c.limit
            args += self._window_args(c, now)
            args += [_lim(lim.usd_nano), _lim(lim.tokens), _lim(lim.calls)]
        out = self._run(self._reserve, self._id_keys(reservation_id) + self._counter_keys(counters), args)
        if not out[0]:
            metric = out[2].decode() if isinstance(out[2], bytes) else str(out[2])
            return ReserveResult(False, denied=counters[int(out[1]) - 1], denied_metric=metric)
        vals = [int(v) for v in out[3:]]
        used = tuple(Amount(vals[i], vals[i + 1], vals[i + 2]) for i in range(0, len(vals), 3))
        return ReserveResult(True, used_after=used)

    def settle(self, reservation_id: str, counters: Sequence[Counter], actual: Amount, *,
               now: float, reserved_at: float) -> bool:
        args: list[Any] = [reservation_id, repr(now), self.settled_ttl_s,
                           actual.usd_nano, actual.tokens, actual.calls]
        for c in counters:
            ttl = c.window.ttl()
            args += [current_slot(c.window, reserved_at), int(math.ceil(ttl)) + KEEP_MARGIN_S if ttl else 0]
        out = self._run(self._settle, self._id_keys(reservation_id) + self._counter_keys(counters), args)
        return bool(out)

    def release(self, reservation_id: str, *, now: float) -> bool:
        return bool(self._run(self._release, self._id_keys(reservation_id)[:1], [reservation_id]))

    def usage(self, counter: Counter, *, now: float) -> Amount:
        out = self._run(self._usage, self._counter_keys([counter]), [repr(now)] + self._window_args(counter, now))
        return Amount(int(out[0]), int(out[1]), int(out[2]))

    def close(self) -> None:
        try:
            self._client.close()
        except self._errors:  # pragma: no cover - closing a dead connection
            pass

    def __repr__(self) -> str:
        return f"RedisLedger({self.where!r}, key_prefix={self.prefix!r})"
