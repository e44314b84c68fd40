"""The Redis ledger: one budget shared by many processes on many hosts.

Each operation is one Lua script (:mod:`governor.ledger.redis_scripts`) in one
round trip, so a reserve checks and charges every counter of a call atomically on
the server; no client-side read-check-write window exists for concurrent workers
to race in. The scripts are light: one hash per counter, read by one HMGET and
written by one HSET, so a reserve and a settle cost a Redis core about what a few
small EVALs do (``benchmarks/bench_ledger.py`` prints both).
Scripts run by EVALSHA; a server that answers NOSCRIPT (restarted, or a new
cluster node) gets the script once by EVAL, which caches it there.

Connection errors and timeouts raise :class:`LedgerError` quickly (0.25 s socket
timeouts by default) so the engine can apply the budget's ``on_error``; the
client reconnects on the next call, so service resumes by itself when Redis is
back. Every host must run with a synchronised clock (NTP): window slots and
lease expiry use the caller's ``now``.

Redis Cluster (detected, or ``cluster=True``): every key of one budget carries
the hash tag ``{prefix:budget_id}``, so each budget lives in one slot. A call
spanning several budgets is reserved budget by budget in a fixed (sorted)
order, and the budgets already reserved are released again when a later one
denies; settle and release work per budget too. On a single primary one script
covers all budgets of a call. See docs/ledgers.md.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from governor.errors import LedgerError
from governor.ledger import redis_scripts
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
    """A limit as the reserve script compares it: no limit is MAX_QUANTITY, the most a counter holds."""
    return MAX_QUANTITY if value is None else min(value, MAX_QUANTITY)


class RedisLedger:
    """A :class:`governor.ledger.base.Ledger` in Redis (``pip install budget-governor[redis]``).

    ``url`` is a redis-py URL (``redis://[:password@]host:port/db``,
    ``rediss://`` for TLS). ``key_prefix`` namespaces every key, so several
    governors (or environments) can share one Redis. ``cluster``: None detects
    Redis Cluster on first use; True or False skips the detection.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        key_prefix: str = "governor",
        socket_timeout_s: float = 0.25,
        connect_timeout_s: float = 0.25,
        settled_ttl_s: float = SETTLED_ID_TTL_S,
        cluster: bool | None = None,
    ) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise LedgerError("the redis ledger needs the redis package: pip install 'budget-governor[redis]'") from exc
        if "{" in key_prefix or "}" in key_prefix:
            raise LedgerError(f"redis ledger key_prefix {key_prefix!r} must not contain braces (hash tags)")
        self.url = url
        self.where = redact(url)
        self.prefix = key_prefix
        self.settled_ttl_s = max(1, int(math.ceil(settled_ttl_s)))
        self.cluster = cluster
        self._redis = redis
        self._timeouts = {"socket_timeout": socket_timeout_s, "socket_connect_timeout": connect_timeout_s}
        self._errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError,)
        self._down: tuple[type[BaseException], ...] = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        self._retry: Callable[[], Any] = lambda: Retry(
            NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)
        )
        try:
            client = self._new_client()
        except (ValueError, redis.exceptions.RedisError) as exc:
            raise LedgerError(f"redis ledger {self.where}: bad url: {exc}") from exc
        self._use(client)
        self._bases: dict[str, str] = {}
        self._inherited: list[Any] = []  # a parent's clients, kept (not closed) in a forked child
        after_fork_in_child(self, RedisLedger._after_fork)

    def _new_client(self) -> Any:
        # One retry, on connection errors only: it replaces a pooled
        # connection that died while Redis restarted. Timeouts are not
        # retried, so an unresponsive Redis costs one socket timeout.
        from_url: Any = self._redis.Redis.from_url
        return from_url(self.url, retry=self._retry(), retry_on_timeout=False, **self._timeouts)

    def _after_fork(self) -> None:
        """A forked child gets a client of its own (the parent's sockets stay the parent's: kept,
        never closed here) and asks again whether the server is a cluster."""
        self._inherited.append(self._client)
        self._use(self._new_client())
        if self.cluster:
            self._use(self._redis.cluster.RedisCluster.from_url(self.url, **self._timeouts))

    def _use(self, client: Any) -> None:
        self._client = client
        self._reserve = _Script(redis_scripts.RESERVE)
        self._settle = _Script(redis_scripts.SETTLE)
        self._release = _Script(redis_scripts.RELEASE)
        self._usage = _Script(redis_scripts.USAGE)

    def _clustered(self) -> bool:
        """Whether the server is a Redis Cluster (asked once, on first use)."""
        if self.cluster is None:
            try:
                info = self._call(lambda: self._client.info("cluster"))
            except LedgerError as exc:
                if not isinstance(exc.__cause__, self._redis.exceptions.ResponseError):
                    raise
                info = {}  # INFO not allowed (ACL, renamed command): a single primary
            self.cluster = bool(info.get("cluster_enabled"))
            if self.cluster:
                old = self._client
                self._use(self._call(lambda: self._redis.cluster.RedisCluster.from_url(self.url, **self._timeouts)))
                old.close()
        elif self.cluster and not hasattr(self._client, "get_nodes"):
            self._use(self._call(lambda: self._redis.cluster.RedisCluster.from_url(self.url, **self._timeouts)))
        return self.cluster

    # -- keys ------------------------------------------------------------------------
    def _base(self, counter: Counter) -> str:
        base = self._bases.get(counter.key)
        if base is None:
            if len(self._bases) > 10_000:
                self._bases.clear()
            base = self._bases[counter.key] = f"{{{self.prefix}:{counter.budget_id}}}:c:{counter.key}"
        return base

    def _counter_keys(self, counters: Sequence[Counter]) -> list[str]:
        """Each counter's hash (see redis_scripts)."""
        return [self._base(c) + ":v" for c in counters]

    def _tag(self, budget: str | None) -> str:
        """The hash tag of a budget's reservation keys in a cluster; the bare prefix on a single primary."""
        return self.prefix if budget is None else f"{{{self.prefix}:{budget}}}"

    def _id_keys(self, rid: str, budget: str | None = None) -> list[str]:
        """The reservation's record, its settled marker and the leases it is listed in."""
        tag = self._tag(budget)
        return [f"{tag}:res:{rid}", f"{tag}:done:{rid}", f"{tag}:leases"]

    def _locator(self, rid: str) -> str:
        return f"{self.prefix}:loc:{rid}"

    @staticmethod
    def _window_args(counter: Counter, now: float) -> list[str]:
        window = counter.window
        if window.kind == "rolling":
            cur = int(now // window.slot_seconds)
            return ["r", str(cur - ROLLING_SLOTS), str(cur)]
        return ["c", current_slot(window, now), ""]

    @staticmethod
    def _groups(counters: Sequence[Counter]) -> list[tuple[str, list[int]]]:
        """Counter positions by budget, budgets in a fixed order (so callers never deadlock-wait)."""
        by: dict[str, list[int]] = {}
        for i, c in enumerate(counters):
            by.setdefault(c.budget_id, []).append(i)
        return sorted(by.items())

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except self._down as exc:
            raise LedgerError(f"redis ledger {self.where} unavailable: {type(exc).__name__}: {exc}") from exc
        except self._errors as exc:
            raise LedgerError(f"redis ledger {self.where} failed: {type(exc).__name__}: {exc}") from exc

    def _run(self, script: _Script, keys: list[str], args: list[Any]) -> Any:
        def go() -> Any:
            try:
                return self._client.evalsha(script.sha, len(keys), *keys, *args)
            except self._redis.exceptions.NoScriptError:
                # Not in this server's script cache (a restart, a new node): EVAL
                # runs it once and caches it on the server that owns these keys.
                return self._client.eval(script.source, len(keys), *keys, *args)

        return self._call(go)

    # -- the Ledger protocol -------------------------------------------------------
    def reserve(
        self, reservation_id: str, counters: Sequence[Counter], amount: Amount, *, now: float, lease_s: float
    ) -> ReserveResult:
        check_amount(amount)
        keep_ms = int((lease_s + KEEP_MARGIN_S) * 1000)
        if not self._clustered():
            out = self._reserve_some(reservation_id, counters, amount, now, lease_s, keep_ms, None)
            if not out[0]:
                return ReserveResult(False, denied=counters[int(out[1]) - 1], denied_metric=_text(out[2]))
            return ReserveResult(True, used=_figures(out[3:]))
        groups = self._groups(counters)
        loc = self._locator(reservation_id)
        self._call(lambda: self._client.set(loc, json.dumps([b for b, _ in groups]), px=keep_ms, nx=True))
        used: list[tuple[int, int, int]] = [(0, 0, 0)] * len(counters)
        done: list[str] = []
        for budget, idx in groups:
            part = [counters[i] for i in idx]
            out = self._reserve_some(reservation_id, part, amount, now, lease_s, keep_ms, budget)
            if not out[0]:
                for b in done:  # compensate: the call is denied as a whole
                    self._drop(reservation_id, b)
                self._call(lambda: self._client.delete(loc))
                return ReserveResult(False, denied=part[int(out[1]) - 1], denied_metric=_text(out[2]))
            done.append(budget)
            for i, a in zip(idx, _figures(out[3:]), strict=True):
                used[i] = a
        return ReserveResult(True, used=tuple(used))

    def _reserve_some(
        self,
        rid: str,
        counters: Sequence[Counter],
        amount: Amount,
        now: float,
        lease_s: float,
        keep_ms: int,
        budget: str | None,
    ) -> Any:
        keys = self._counter_keys(counters)
        args: list[Any] = [
            rid,
            repr(now),
            repr(now + lease_s),
            amount.usd_nano,
            amount.tokens,
            amount.calls,
            keep_ms,
            json.dumps(keys),
            self._tag(budget) + ":res:",
        ]
        for c in counters:
            lim = c.limit
            ttl = c.window.ttl()
            args += self._window_args(c, now)
            args += [_lim(lim.usd_nano), _lim(lim.tokens), _lim(lim.calls)]
            args.append(max(keep_ms, (int(math.ceil(ttl)) + KEEP_MARGIN_S) * 1000) if ttl else 0)
        return self._run(self._reserve, self._id_keys(rid, budget) + keys, args)

    def settle(
        self, reservation_id: str, counters: Sequence[Counter], actual: Amount, *, now: float, reserved_at: float
    ) -> bool:
        check_amount(actual)
        if not self._clustered():
            return self._settle_some(reservation_id, counters, actual, now, reserved_at, None)
        settled = False
        seen = set()
        for budget, idx in self._groups(counters):
            seen.add(budget)
            part = [counters[i] for i in idx]
            settled = self._settle_some(reservation_id, part, actual, now, reserved_at, budget) or settled
        loc = self._locator(reservation_id)
        held = self._call(lambda: self._client.get(loc))
        for budget in json.loads(held) if held else ():
            if budget not in seen:  # reserved on a budget this settle does not charge
                self._drop(reservation_id, budget)
        self._call(lambda: self._client.delete(loc))
        return settled

    def _settle_some(
        self, rid: str, counters: Sequence[Counter], actual: Amount, now: float, reserved_at: float, budget: str | None
    ) -> bool:
        args: list[Any] = [
            rid,
            repr(now),
            self.settled_ttl_s,
            actual.usd_nano,
            actual.tokens,
            actual.calls,
            self._tag(budget) + ":res:",
        ]
        for c in counters:
            window = c.window
            ttl = window.ttl()
            args += [
                current_slot(window, reserved_at),
                "r" if window.kind == "rolling" else "c",
                int(math.ceil(ttl)) + KEEP_MARGIN_S if ttl else 0,
            ]
        return bool(self._run(self._settle, self._id_keys(rid, budget) + self._counter_keys(counters), args))

    def _drop(self, rid: str, budget: str | None) -> bool:
        """Give back the reservation ``rid`` holds on ``budget`` (all of it on a single primary)."""
        res, _, leases = self._id_keys(rid, budget)
        return bool(self._run(self._release, [res, leases], [rid]))

    def release(self, reservation_id: str, *, now: float) -> bool:
        if not self._clustered():
            return self._drop(reservation_id, None)
        loc = self._locator(reservation_id)
        held = self._call(lambda: self._client.get(loc))
        if not held:
            return False
        dropped = False
        for budget in json.loads(held):
            dropped = self._drop(reservation_id, budget) or dropped
        self._call(lambda: self._client.delete(loc))
        return dropped

    def usage(self, counter: Counter, *, now: float) -> Amount:
        return self._usage_of(counter, now)[0]

    def _usage_of(self, counter: Counter, now: float) -> tuple[Amount, int]:
        """What ``counter`` has used (settled in its window plus live reservations), and how many
        reservations are live on it, expired leases given back first."""
        budget = counter.budget_id if self._clustered() else None
        keys = self._counter_keys([counter]) + self._id_keys("", budget)[2:]
        args = [repr(now), *self._window_args(counter, now), self._tag(budget) + ":res:"]
        out = self._run(self._usage, keys, args)
        return Amount(int(out[0]), int(out[1]), int(out[2])), int(out[3])

    def claim(self, key: str, *, now: float, until: float) -> bool:
        ttl_ms = max(1, int((until - now) * 1000))
        self._clustered()
        return bool(self._call(lambda: self._client.set(f"{self.prefix}:claim:{key}", "1", px=ttl_ms, nx=True)))

    def unclaim(self, key: str) -> None:
        self._clustered()
        self._call(lambda: self._client.delete(f"{self.prefix}:claim:{key}"))

    def scopes(self, budget_id: str, *, now: float) -> list[str]:
        self._clustered()
        head = f"{{{self.prefix}:{budget_id}}}:c:"
        pattern = head.replace("[", "\\[").replace("*", "\\*").replace("?", "\\?") + "*"
        found = self._call(lambda: [_text(k) for k in self._client.scan_iter(match=pattern, count=1000)])
        keys = {k[len(head) : -2] for k in found if k.endswith(":v")}
        return sorted(k for k in keys if k.partition("|")[0] == budget_id)

    def in_flight(self, counter: Counter, *, now: float) -> tuple[int, Amount]:
        _, n = self._usage_of(counter, now)  # gives back expired leases first
        held = self._call(lambda: self._client.hmget(self._base(counter) + ":v", "iu", "it", "ic"))
        usd, tokens, calls = (int(v or 0) for v in held)
        return n, Amount(usd, tokens, calls)

    def _adjustments_key(self) -> str:
        """One HASH, id -> the record as JSON: the operators' adjustments (never rewritten: the audit trail)."""
        return f"{self.prefix}:adjustments"

    def adjust(self, adjustment: Adjustment) -> bool:
        check_amount(adjustment.amount)
        self._clustered()
        record = json.dumps(adjustment.as_dict(), sort_keys=True)
        key = self._adjustments_key()
        return bool(self._call(lambda: self._client.hsetnx(key, adjustment.id, record)))

    def adjustments(self, *, now: float, include_expired: bool = False) -> list[Adjustment]:
        self._clustered()
        key = self._adjustments_key()
        stored = self._call(lambda: self._client.hvals(key))
        found = decode_adjustments(stored, self.where)
        return sorted((a for a in found if include_expired or a.live(now)), key=lambda a: (a.at, a.id))

    def close(self) -> None:
        try:
            self._client.close()
        except self._errors:  # pragma: no cover - closing a dead connection
            pass

    def __repr__(self) -> str:
        return f"RedisLedger({self.where!r}, key_prefix={self.prefix!r})"


class _Script:
    """A Lua script called by SHA1 (EVALSHA), sent in full only when a server lacks it."""

    __slots__ = ("source", "sha")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _figures(flat: Sequence[Any]) -> tuple[tuple[int, int, int], ...]:
    vals = [int(v) for v in flat]
    return tuple((vals[i], vals[i + 1], vals[i + 2]) for i in range(0, len(vals), 3))
