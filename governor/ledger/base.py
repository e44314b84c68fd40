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
* ``adjust`` -- store an operator's :class:`Adjustment` (a limit raised, a
  scope's spend reset, a stopped run resumed), idempotent by its id: a second
  write of the same id changes nothing and returns False. ``adjustments`` --
  the stored records in force at ``now`` (``until`` not passed), oldest first,
  or every record (the audit trail) with ``include_expired``. Records are never
  edited or deleted by the governor (a reset is a record, not a deletion of
  spend); running governors read them when a budget or a stop would refuse a
  call (:mod:`governor.engine.adjust`).

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

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from governor.ledger.windows import Window

log = logging.getLogger("governor.ledger")

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


ADJUSTMENT_KINDS = ("raise", "reset", "resume")


@dataclass(frozen=True, slots=True, kw_only=True)
class Adjustment:
    """One operator action, as the shared ledger keeps it (``governor budget raise|reset``, ``governor run resume``)."""

    id: str
    """Unique id (``adj-`` + random hex): the ledgers store each id once."""
    kind: str
    """``raise`` (a limit raised), ``reset`` (a scope's spend in the current window set aside) or ``resume``
    (a stopped run's stop conditions cleared)."""
    budget: str = ""
    """The budget id (raise, reset); empty for a resume."""
    scope: str = ""
    """The budget scope value as counter keys spell it (``team=platform``, ``global``); empty for a resume."""
    run_id: str = ""
    """The run resumed (resume only)."""
    amount: Amount = ZERO
    """By how much: a raise adds it to the limit; a reset holds the spend it set aside (also counted as room
    above the limit, so nothing is deleted). Zero for a resume."""
    at: float
    """When it was written (epoch seconds)."""
    until: float | None = None
    """When it stops applying (epoch seconds): the end of the window it was made in unless the operator said
    otherwise; None: never (a budget without a window)."""
    by: str
    """Who: the operator's OS user, or the name given with ``--by-user``."""
    reason: str
    """Why, in the operator's words."""

    @property
    def key(self) -> str:
        """The counter key it applies to (``budget|scope``); empty for a resume."""
        return f"{self.budget}|{self.scope}" if self.budget else ""

    def live(self, now: float) -> bool:
        """Whether it applies at ``now``."""
        return self.until is None or now < self.until

    def as_dict(self) -> dict[str, object]:
        """As JSON values (what the SQLite and Redis ledgers store, and trace and status output show)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "budget": self.budget,
            "scope": self.scope,
            "run_id": self.run_id,
            "usd": nano_to_usd(self.amount.usd_nano),
            "usd_nano": self.amount.usd_nano,
            "tokens": self.amount.tokens,
            "calls": self.amount.calls,
            "at": self.at,
            "until": self.until,
            "by": self.by,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, object]) -> Adjustment:
        """The inverse of :meth:`as_dict`; ValueError naming the field that is missing or of the wrong type."""

        def text(name: str, required: bool = False) -> str:
            v = doc.get(name, "")
            if not isinstance(v, str) or (required and not v):
                raise ValueError(f"adjustment field {name!r} must be a non-empty string, got {v!r}")
            return v

        def count(name: str) -> int:
            v = doc.get(name, 0)
            if v.__class__ is not int or not 0 <= v <= MAX_QUANTITY:
                raise ValueError(f"adjustment field {name!r} must be an integer in 0..{MAX_QUANTITY}, got {v!r}")
            return v

        def when(name: str, optional: bool = False) -> float | None:
            v = doc.get(name)
            if v is None and optional:
                return None
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
                raise ValueError(f"adjustment field {name!r} must be epoch seconds, got {v!r}")
            return float(v)

        kind = text("kind", True)
        if kind not in ADJUSTMENT_KINDS:
            raise ValueError(f"adjustment field 'kind' must be one of {', '.join(ADJUSTMENT_KINDS)}, got {kind!r}")
        at = when("at")
        assert at is not None
        return cls(
            id=text("id", True),
            kind=kind,
            budget=text("budget"),
            scope=text("scope"),
            run_id=text("run_id"),
            amount=Amount(count("usd_nano"), count("tokens"), count("calls")),
            at=at,
            until=when("until", optional=True),
            by=text("by"),
            reason=text("reason"),
        )


def decode_adjustments(records: Iterable[str | bytes], where: str) -> list[Adjustment]:
    """Stored adjustment records (JSON) as values; one that does not read is logged and skipped, never applied."""
    out = []
    for raw in records:
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            out.append(Adjustment.from_dict(doc))
        except ValueError as exc:
            log.error("ledger %s: an adjustment record does not read (%s); it is not applied: %r", where, exc, raw)
    return out


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

    def adjust(self, adjustment: Adjustment) -> bool: ...

    def adjustments(self, *, now: float, include_expired: bool = False) -> list[Adjustment]: ...

    def close(self) -> None: ...
