"""The ledger interface: where budget counters live.

Every ledger (memory, SQLite, Redis) implements the same four operations with
the same semantics, so the engine never knows which one it talks to:

* ``reserve`` -- atomically, for every counter of one call: if used + in-flight
  + amount stays within the counter's limit on every metric, record an
  in-flight reservation on all of them; otherwise change nothing and say which
  counter denied. All or nothing.
* ``settle`` -- turn a reservation into actual spend (the actual may be lower or
  higher than reserved). Idempotent by reservation id: a second settle of the
  same id changes nothing and returns False. A settle that arrives after the
  reservation's lease expired still counts the actual spend (money was spent).
* ``release`` -- drop a reservation without spend (the call failed before it
  cost anything). Idempotent.
* ``usage`` -- what a counter has used in its current window (settled plus
  live reservations), for soft thresholds, stats and tests.

Money is integer nano-USD (1e-9 USD) so every ledger adds exactly. Every stored
quantity (an amount, a counter's total) stays within ``0 .. MAX_QUANTITY``
(2**53 - 1: exact in a SQLite INTEGER, in a double, in Redis's Lua): an amount
outside it is refused before anything is reserved (:func:`check_amount`), and a
reservation that would take a counter past it is denied like one past a limit.
A reservation not settled within its lease is reclaimed (no leaked counters).
A store that cannot answer raises :class:`governor.errors.LedgerError`; the
engine then applies the budget's ``on_error`` rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from governor.ledger.windows import Window

NANO = 1_000_000_000  # nano-USD per USD
MAX_QUANTITY = 2**53 - 1  # the largest nano-USD, token or call count a ledger stores (~$9.0M; 9e15 tokens)


def usd_to_nano(usd: float) -> int:
    return int(round(usd * NANO))


def nano_to_usd(nano: int) -> float:
    return nano / NANO


@dataclass(frozen=True, slots=True)
class Amount:
    """A quantity charged to a counter: nano-USD, tokens and calls."""

    usd_nano: int = 0
    tokens: int = 0
    calls: int = 0

    def __add__(self, other: Amount) -> Amount:
        return Amount(self.usd_nano + other.usd_nano, self.tokens + other.tokens, self.calls + other.calls)

    @property
    def usd(self) -> float:
        return self.usd_nano / NANO

    def beyond_storage(self) -> str | None:
        """The first metric above MAX_QUANTITY ("usd", "tokens", "calls"), or None."""
        if self.usd_nano > MAX_QUANTITY:
            return "usd"
        if self.tokens > MAX_QUANTITY:
            return "tokens"
        if self.calls > MAX_QUANTITY:
            return "calls"
        return None


def check_amount(amount: Amount) -> None:
    """Refuse an amount a ledger cannot store: each metric an int in 0 .. MAX_QUANTITY (ValueError)."""
    usd, tokens, calls = amount.usd_nano, amount.tokens, amount.calls
    if (
        usd.__class__ is int
        and tokens.__class__ is int
        and calls.__class__ is int
        and 0 <= usd <= MAX_QUANTITY
        and 0 <= tokens <= MAX_QUANTITY
        and 0 <= calls <= MAX_QUANTITY
    ):
        return
    for name in ("usd_nano", "tokens", "calls"):
        value = getattr(amount, name)
        if value.__class__ is not int:  # bool is an int subclass: refused too
            raise ValueError(f"ledger amount {name}={value!r} is not an integer")
        if not 0 <= value <= MAX_QUANTITY:
            raise ValueError(f"ledger amount {name}={value} is outside 0..{MAX_QUANTITY} (what a ledger stores)")


ZERO = Amount()


@dataclass(frozen=True, slots=True)
class Limit:
    """Hard limits of a counter; None means that metric is not limited."""

    usd_nano: int | None = None
    tokens: int | None = None
    calls: int | None = None

    def exceeded_by(self, total: Amount) -> str | None:
        """The first metric that ``total`` exceeds ("usd", "tokens", "calls"), or None."""
        if self.usd_nano is not None and total.usd_nano > self.usd_nano:
            return "usd"
        if self.tokens is not None and total.tokens > self.tokens:
            return "tokens"
        if self.calls is not None and total.calls > self.calls:
            return "calls"
        return None

    def fraction(self, total: Amount) -> float:
        """The largest used/limit ratio over the limited metrics (0.0 when unlimited)."""
        f = 0.0
        if self.usd_nano:
            f = max(f, total.usd_nano / self.usd_nano)
        if self.tokens:
            f = max(f, total.tokens / self.tokens)
        if self.calls:
            f = max(f, total.calls / self.calls)
        return f


@dataclass(frozen=True, slots=True)
class Counter:
    """One budget counter: a budget id plus the scope value it counts for.

    ``key`` is stable across processes, e.g. ``"team-daily|team=support"``.
    ``budget_id`` is kept separately so stores can group keys (Redis hash tags).
    """

    key: str
    budget_id: str
    limit: Limit
    window: Window


@dataclass(frozen=True, slots=True)
class ReserveResult:
    ok: bool
    denied: Counter | None = None  # the counter that refused, when not ok
    denied_metric: str | None = None  # "usd" | "tokens" | "calls"
    used_after: tuple[Amount, ...] = ()  # per counter, in the order given, incl. this reservation


@runtime_checkable
class Ledger(Protocol):
    """What the engine needs from a budget store. See the module docstring."""

    def reserve(
        self,
        reservation_id: str,
        counters: Sequence[Counter],
        amount: Amount,
        *,
        now: float,
        lease_s: float,
    ) -> ReserveResult: ...

    def settle(
        self,
        reservation_id: str,
        counters: Sequence[Counter],
        actual: Amount,
        *,
        now: float,
        reserved_at: float,
    ) -> bool: ...

    def release(self, reservation_id: str, *, now: float) -> bool: ...

    def usage(self, counter: Counter, *, now: float) -> Amount: ...

    def close(self) -> None: ...
