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
* ``claim`` -- take a named marker until a time: True for the first claim of
  the key across every process sharing the store (until it expires), False
  after. Alerts use it so each threshold is sent once per scope and window.
  ``unclaim`` gives a marker back (a delivery that finally failed).
* ``scopes`` -- the counter keys of one budget that hold spend or live
  reservations, and ``in_flight`` -- a counter's live reservations (how many,
  how much): what ``governor status`` shows of a shared store.

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

    def figures(self) -> tuple[int, int, int]:
        """(nano-USD, tokens, calls)."""
        return self.usd_nano, self.tokens, self.calls

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
    """What ``reserve`` answered."""

    ok: bool
    """True: reserved on every counter (or the id was reserved already); False: nothing changed."""
    denied: Counter | None = None
    """The counter that refused, when not ok."""
    denied_metric: str | None = None
    """The metric it refused on: "usd" | "tokens" | "calls"."""
    used: tuple[tuple[int, int, int], ...] = ()
    """Per counter, in the order given, what it has used including this reservation, as
    (nano-USD, tokens, calls): plain integers, so a ledger builds no value per counter; read
    them as amounts with :meth:`used_by` or :attr:`used_after`."""

    def used_by(self, index: int) -> Amount:
        """What the ``index``-th counter has used, including this reservation."""
        usd, tokens, calls = self.used[index]
        return Amount(usd, tokens, calls)

    @property
    def used_after(self) -> tuple[Amount, ...]:
        """:attr:`used` as amounts, one per counter."""
        return tuple(Amount(usd, tokens, calls) for usd, tokens, calls in self.used)


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

    def claim(self, key: str, *, now: float, until: float) -> bool: ...

    def unclaim(self, key: str) -> None: ...

    def scopes(self, budget_id: str, *, now: float) -> list[str]: ...

    def in_flight(self, counter: Counter, *, now: float) -> tuple[int, Amount]: ...

    def close(self) -> None: ...
