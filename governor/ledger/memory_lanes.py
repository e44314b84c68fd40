"""The in-process ledger's fast path: one lane per budget plan, with a local allowance.

A call charges every counter of its plan (run, user, team, global ...). Doing
that cell by cell costs a pass over every counter at check and another at
record. A :class:`Lane` instead takes an *allowance* on all of its counters at
once -- counted as in flight there, like any reservation -- and hands it out
to the calls of its plan with three compares and three subtractions; their
actual spend collects in the lane and goes to the counters' window slots in
one pass when the allowance runs out, a window slot ends, or someone needs
exact figures. So the per-call work no longer grows with the number of budgets.

Why this keeps the ledger's semantics exactly (``tests/ledger/test_memory_lanes.py``
runs both paths side by side):

* An allowance is reserved on the counters before any call uses it, so the
  counters never show less than was really used: concurrent callers still
  cannot pass a limit.
* Allowances only ever make a counter look *fuller*. Before anything is denied,
  every other lane holding an allowance on the counters in question gives it
  back and the check is repeated on exact figures, so a call is denied only
  when the protocol path would deny it. :meth:`usage` and soft thresholds read
  exact figures the same way (a soft threshold first tests an upper bound, so
  the common, far-from-the-threshold case stays cheap).
* An allowance is at most ``BATCH`` more calls like the one that asked, fills a
  counter at most to just under its soft threshold, takes at most ``1/SHARE`` of
  the remaining headroom of a counter that other lanes use too, and at most
  ``MAX_LANES`` lanes hold one at a time, so idle lanes tie up little.
* Spend is attributed to the window slot the call was reserved in: a lane lives
  in *epochs* during which no counter's slot changes; a call reserved in an
  earlier epoch settles through the per-counter path, with its own time.

Other ledgers keep the generic :class:`governor.ledger.base.Ledger` protocol.
"""

from __future__ import annotations

import heapq
import math
from typing import Any, NamedTuple, Sequence

from governor.ledger.base import Counter

Limits = tuple[int, int, int]  # usd_nano, tokens, calls of one counter; UNLIMITED for a metric without a limit
UNLIMITED = 1 << 62
GRANTED = -1
BATCH = 32  # an allowance covers this many more calls like the one that asked for it ...
SHARE = 8  # ... and at most 1/SHARE of the remaining headroom of a counter other lanes use too
MAX_LANES = 4096  # lanes holding an allowance at once; beyond that the oldest gives its back
RECLAIM = 4  # a lane that cannot get a full allowance on a shared counter takes back this many others' first
INF = math.inf


class HeldReservation:
    """A live reservation made through the protocol path: what to take back from its cells."""

    __slots__ = ("cells", "usd", "tokens", "calls", "expires_at")

    def __init__(self, cells: tuple[Any, ...], usd: int, tokens: int, calls: int, expires_at: float) -> None:
        self.cells = cells
        self.usd = usd
        self.tokens = tokens
        self.calls = calls
        self.expires_at = expires_at


class LaneReservation(NamedTuple):
    """A live reservation drawn from a lane's allowance in epoch ``epoch`` (a tuple: built per call)."""

    lane: "Lane"
    usd: int
    tokens: int
    calls: int
    expires_at: float
    epoch: int


_new_tuple = tuple.__new__


class Lane:
    """The counters of one budget plan on a memory ledger, and what the lane holds on them.

    On every cell of the lane, the lane's share of in-flight is ``allowance +
    held + spent``: allowance not yet given to a call (``a*``), live reservations
    (the ledger's :class:`LaneReservation` entries on this lane) and actual spend
    not yet moved to the window slots (``s*``).
    Invariants: a lane holds allowance or spent only while ``registered`` on its
    cells, and a cell with registered lanes has its total (settled + in flight,
    allowances included) within its limits -- so an allowance is always one that
    an exact check would grant.
    """

    __slots__ = ("cells", "limits", "caps", "soft", "audit", "au", "at", "an", "su", "st", "sn",
                 "lo", "until", "slots", "epoch", "registered", "soft_gen", "counters", "audit_counters", "gen")

    def __init__(self, cells: tuple[Any, ...], limits: tuple[Limits, ...], soft: tuple[tuple[int, float], ...],
                 audit: tuple[Any, ...], counters: tuple[Counter, ...] = (), audit_counters: tuple[Counter, ...] = (),
                 gen: int = 0) -> None:
        self.counters, self.audit_counters = counters, audit_counters  # to find the cells again (_current)
        self.gen = gen  # the ledger's cells generation its cells were resolved in
        self.cells = cells
        self.limits = limits
        # (cell index, threshold fraction, and the threshold per metric, a hair low so that a
        # float compare never calls "below" what Limit.fraction would call "at") of soft cells
        self.soft: tuple[tuple[Any, ...], ...] = tuple(
            (i, at, *(at * lim * (1 - 1e-9) if 0 < lim < UNLIMITED else INF for lim in limits[i])) for i, at in soft)
        # how far an allowance may fill each cell: its limit, or just under its soft threshold (so the
        # threshold's cheap upper-bound test keeps passing until real usage gets there)
        caps: list[Any] = list(limits)
        for i, _, *line in self.soft:
            caps[i] = tuple(lim if x == INF else min(lim, math.ceil(x) - 1) for lim, x in zip(limits[i], line))
        self.caps: tuple[Limits, ...] = tuple(caps)
        self.audit = audit  # cells that receive the actual spend but are never reserved on (audit budgets)
        self.au = self.at = self.an = 0
        self.su = self.st = self.sn = 0
        self.lo, self.until = INF, -INF  # the current epoch [lo, until): none yet
        self.slots: tuple[Any, ...] = ()  # each cell's window slot during the epoch
        self.epoch = 0
        self.registered = False  # listed on its cells (it holds an allowance or unmoved spend)
        self.soft_gen = -1  # the ledger generation at which every soft cell last passed its upper-bound test


def _frac(u: int, t: int, n: int, limits: Limits) -> float:
    """:meth:`governor.ledger.base.Limit.fraction` on plain ints."""
    lu, lt, lc = limits
    f = 0.0
    if 0 < lu < UNLIMITED:
        f = max(f, u / lu)
    if 0 < lt < UNLIMITED:
        f = max(f, t / lt)
    if 0 < lc < UNLIMITED:
        f = max(f, n / lc)
    return f


class LanePath:
    """Mixed into :class:`governor.ledger.memory.MemoryLedger` (uses its lock and tables)."""

    _lock: Any
    _reservations: dict
    _settled_ids: dict
    _expiry: list
    _compact_at: int
    _next_forget: float
    _lanes: dict
    _gen: int

    # -- public -----------------------------------------------------------------
    def lane(self, counters: Sequence[Counter], limits: Sequence[Limits], soft: Sequence[tuple[int, float]] = (),
             audit: Sequence[Counter] = ()) -> Lane:
        """A lane over ``counters`` (``limits[i]`` for ``counters[i]``, :data:`UNLIMITED` where a
        metric has none); ``audit`` counters only receive the actual spend at settle."""
        with self._lock:
            self._evict_if_due()  # type: ignore[attr-defined]
            return Lane(tuple(self._cell(c) for c in counters), tuple(limits), tuple(soft),  # type: ignore[attr-defined]
                        tuple(self._cell(c) for c in audit), tuple(counters), tuple(audit), self._cells_gen)  # type: ignore[attr-defined]

    def reserve_lane(
        self, reservation_id: str, lane: Lane, usd: int, tokens: int, calls: int, *, now: float, lease_s: float,
    ) -> tuple[int, str | None, tuple[tuple[int, float], ...]]:
        """``(GRANTED, None, soft hits)`` -- (cell index, fraction used incl. this call) of the
        cells at or past their soft threshold -- or ``(index of the denying cell, metric, ())``."""
        with self._lock:
            self._evict_if_due()  # type: ignore[attr-defined]
            if lane.gen != self._cells_gen:  # type: ignore[attr-defined]
                self._current(lane)
            if (self._expiry and self._expiry[0][0] <= now) or now >= self._next_forget:
                self._reclaim(now)  # type: ignore[attr-defined]
            if reservation_id in self._reservations or reservation_id in self._settled_ids:
                return GRANTED, None, self._soft_hits(lane, now)
            if not (lane.lo <= now < lane.until and lane.au >= usd and lane.at >= tokens and lane.an >= calls):
                denied = self._grant(lane, usd, tokens, calls, now)
                if denied is not None:
                    return denied[0], denied[1], ()
            self._hold(reservation_id, lane, usd, tokens, calls, now + lease_s)
            return GRANTED, None, self._soft_hits(lane, now) if lane.soft else ()

    def take_lane(self, reservation_id: str, lane: Lane, usd: int, tokens: int, now: float, lease_s: float) -> bool:
        """:meth:`reserve_lane` of one call in the usual case, or False having done nothing.

        The usual case: the lane's allowance covers the call in the current epoch, no
        reservation has outlived its lease, and no cell has changed since every soft
        threshold of the lane last passed its upper-bound test (so none can be reached).
        ``reservation_id`` must be new (the governor's decision ids are).
        """
        with self._lock:
            if not (lane.lo <= now < lane.until and lane.au >= usd and lane.at >= tokens and lane.an >= 1) \
                    or (lane.soft and lane.soft_gen != self._gen) \
                    or (self._expiry and self._expiry[0][0] <= now) or now >= self._next_forget:
                return False
            self._hold(reservation_id, lane, usd, tokens, 1, now + lease_s)
            return True

    def settle_lane(
        self, reservation_id: str, lane: Lane, usd: int, tokens: int, calls: int, now: float, reserved_at: float,
    ) -> bool:
        """:meth:`MemoryLedger.settle` for a call reserved on ``lane`` (or not reserved at all)."""
        with self._lock:
            if lane.gen != self._cells_gen:  # type: ignore[attr-defined]
                self._current(lane)
            if (self._expiry and self._expiry[0][0] <= now) or now >= self._next_forget:
                self._reclaim(now)  # type: ignore[attr-defined]
            res = self._reservations.pop(reservation_id, None)
            if res is not None and res.__class__ is LaneReservation and res[0] is lane and res[5] == lane.epoch:
                _, ru, rt, rn, _, _ = res
                lane.su += usd
                lane.st += tokens
                lane.sn += calls
                lane.au += ru - usd
                lane.at += rt - tokens
                lane.an += rn - calls
                over = lane.au < 0 or lane.at < 0 or lane.an < 0  # it cost more than reservation and allowance
                if over or not lane.registered:  # (a lane that gave its allowance back holds none)
                    self._flush(lane)
                    if over:  # the cells' totals grew past what other lanes' allowances were checked against
                        for cell in lane.cells:
                            self._take_back(cell)
            else:  # reserved in an earlier epoch, through the protocol, or its lease ran out: per cell
                if res is not None:
                    self._end(res)  # type: ignore[attr-defined]
                elif reservation_id in self._settled_ids:  # (a live reservation is never among them)
                    return False
                self._settle_into(lane.cells, usd, tokens, calls, reserved_at)  # type: ignore[attr-defined]
            if lane.audit:
                self._settle_into(lane.audit, usd, tokens, calls, reserved_at)  # type: ignore[attr-defined]
            self._remember_settled(reservation_id, now)  # type: ignore[attr-defined]
            return True

    def flush_lanes(self) -> None:
        """Every lane gives back its allowance and moves its spend (a policy reload calls this)."""
        with self._lock:
            for lane in list(self._lanes):
                self._flush(lane)

    # -- internal, lock held ------------------------------------------------------
    def _current(self, lane: Lane) -> None:
        """Find a lane's cells again after the ledger forgot idle ones (``_evict_cells``).

        Only cells with nothing in flight and no lane listed are forgotten, so a lane that
        lost one holds nothing: it starts a new epoch on the cells the ledger has now."""
        cells = tuple(self._cell(c) for c in lane.counters)  # type: ignore[attr-defined]
        audit = tuple(self._cell(c) for c in lane.audit_counters)  # type: ignore[attr-defined]
        if any(a is not b for a, b in zip(cells + audit, lane.cells + lane.audit)):
            lane.cells, lane.audit = cells, audit
            lane.lo, lane.until, lane.slots = INF, -INF, ()
            lane.epoch += 1
        lane.gen = self._cells_gen  # type: ignore[attr-defined]

    def _hold(self, reservation_id: str, lane: Lane, usd: int, tokens: int, calls: int, expires: float) -> None:
        """Move one call's worst case from the lane's allowance (which covers it) to a live reservation."""
        lane.au -= usd
        lane.at -= tokens
        lane.an -= calls
        self._reservations[reservation_id] = _new_tuple(LaneReservation, (lane, usd, tokens, calls, expires, lane.epoch))
        expiry = self._expiry
        heapq.heappush(expiry, (expires, reservation_id))
        if len(expiry) > self._compact_at:
            self._compact_expiry()  # type: ignore[attr-defined]

    def _soft_hits(self, lane: Lane, now: float) -> tuple[tuple[int, float], ...]:
        """Soft cells at or past their threshold. First an upper bound -- the cell's total, every
        allowance counted as used -- in the epoch's slot; exact figures only when it is reached."""
        hits: list[tuple[int, float]] = []
        in_epoch = lane.lo <= now < lane.until
        below = in_epoch  # every soft cell below its upper bound, in the epoch's slots
        for i, at, tu, tt, tn in lane.soft:
            cell = lane.cells[i]
            if not in_epoch:
                u, t, n = self._settled(cell, now)  # type: ignore[attr-defined]
            elif cell.kind == "rolling":
                slot = lane.slots[i]
                u, t, n = (cell.ru, cell.rt, cell.rc) if cell.r_cur == slot else self._settled(cell, now)  # type: ignore[attr-defined]
            else:
                sl = cell.slots.get(lane.slots[i])
                u, t, n = (sl[0], sl[1], sl[2]) if sl is not None else (0, 0, 0)
            if u + cell.fu < tu and t + cell.ft < tt and n + cell.fc < tn:
                continue  # even counting every allowance as used, it is below the threshold
            below = False
            self._take_back(cell)
            frac = _frac(*self._used(cell, now), lane.limits[i])  # type: ignore[attr-defined, call-arg]
            if frac >= at:
                hits.append((i, frac))
        if below:  # until a cell changes (or the epoch ends), take_lane needs no test
            lane.soft_gen = self._gen
        return tuple(hits)

    def _grant(self, lane: Lane, usd: int, tokens: int, calls: int, now: float) -> tuple[int, str] | None:
        """Give ``lane`` a new allowance of at least this call; the denying cell if none fits."""
        self._gen += 1
        self._flush(lane)
        if not lane.lo <= now < lane.until:
            self._open_epoch(lane, now)
        took_back = False
        while True:
            mu = mt = mn = UNLIMITED
            short = None
            starved = []  # shared cells whose room would not give a full batch: other lanes hold it
            for i, cell in enumerate(lane.cells):
                u, t, n = self._used(cell, now)  # type: ignore[attr-defined]
                lu, lt, lc = lane.limits[i]
                if u + usd > lu or t + tokens > lt or n + calls > lc:
                    short = (i, "usd" if u + usd > lu else "tokens" if t + tokens > lt else "calls")
                    break
                # room for the allowance: up to the cap, all of it when no other lane uses the cell
                cu, ct, cn = lane.caps[i]
                ru, rt, rn = cu - u - usd, ct - t - tokens, cn - n - calls
                if cell.lanes:
                    if ru < BATCH * usd or rt < BATCH * tokens or rn < BATCH * calls:
                        starved.append(cell)
                    ru, rt, rn = ru // SHARE, rt // SHARE, rn // SHARE
                if cu < UNLIMITED:
                    mu = min(mu, ru)
                if ct < UNLIMITED:
                    mt = min(mt, rt)
                if cn < UNLIMITED:
                    mn = min(mn, rn)
            if took_back:
                if short is not None:
                    return short  # on exact figures: the protocol path denies it too
                break
            # once: the other lanes give back what they hold where this one is short; where it is
            # starved, the RECLAIM longest-held allowances (idle lanes -- ended runs -- would
            # otherwise keep a shared counter's headroom for good)
            if short is not None:
                if not any([self._take_back(cell) for cell in lane.cells]):
                    return short
            elif not (starved and any([self._take_back(cell, RECLAIM) for cell in starved])):
                break
            took_back = True
        gu = usd + (BATCH * usd if mu == UNLIMITED else max(0, min(BATCH * usd, mu)))
        gt = tokens + (BATCH * tokens if mt == UNLIMITED else max(0, min(BATCH * tokens, mt)))
        gn = calls + (BATCH * calls if mn == UNLIMITED else max(0, min(BATCH * calls, mn)))
        for cell in lane.cells:
            cell.fu += gu
            cell.ft += gt
            cell.fc += gn
        lane.au, lane.at, lane.an = gu, gt, gn
        self._register(lane)
        return None

    def _open_epoch(self, lane: Lane, now: float) -> None:
        """The slot of every cell at ``now`` and the longest span around it where none changes."""
        lo, hi = -INF, INF
        slots: list[Any] = []
        for cell in lane.cells:
            kind = cell.kind
            if kind == "none":
                slots.append("all")
                continue
            if kind == "calendar":
                slots.append(self._calendar_slot(cell, now))  # type: ignore[attr-defined]
                if cell.cal_lo <= now < cell.cal_hi:
                    clo, chi = cell.cal_lo, cell.cal_hi
                else:  # bounds not established (a DST oddity): the slot holds for this minute
                    clo = now // 60 * 60
                    chi = clo + 60
            else:
                s = cell.slot_s
                idx = int(now // s)
                slots.append(idx)
                clo, chi = idx * s, (idx + 1) * s
                while int(clo // s) < idx:  # float rounding: keep [clo, chi) inside bucket idx
                    clo = math.nextafter(clo, INF)
                while int(math.nextafter(chi, -INF) // s) > idx:
                    chi = math.nextafter(chi, -INF)
            lo, hi = max(lo, clo), min(hi, chi)
        lane.lo, lane.until, lane.slots = lo, hi, tuple(slots)
        lane.epoch += 1

    def _flush(self, lane: Lane) -> bool:
        """Give back the allowance, move the spend to the epoch's slots; True if it held any."""
        held = bool(lane.au or lane.at or lane.an or lane.su or lane.st or lane.sn)
        if held:
            self._gen += 1
            su, st, sn = lane.su, lane.st, lane.sn
            du, dt, dn = lane.au + su, lane.at + st, lane.an + sn
            for cell, slot in zip(lane.cells, lane.slots):
                cell.fu -= du
                cell.ft -= dt
                cell.fc -= dn
                if su or st or sn:
                    self._add(cell, slot, su, st, sn)  # type: ignore[attr-defined]
            lane.au = lane.at = lane.an = lane.su = lane.st = lane.sn = 0
        if lane.registered:
            for cell in lane.cells:
                cell.lanes.pop(lane, None)
            self._lanes.pop(lane, None)
            lane.registered = False
        return held

    def _register(self, lane: Lane) -> None:
        for cell in lane.cells:
            cell.lanes[lane] = None
        lanes = self._lanes
        lanes.pop(lane, None)
        lanes[lane] = None
        lane.registered = True
        if len(lanes) > MAX_LANES:
            self._flush(next(iter(lanes)))

    def _take_back(self, cell: Any, most: int | None = None) -> bool:
        """Every lane on ``cell`` (or the ``most`` longest listed) gives back its allowance;
        with every lane, the cell's figures become exact."""
        took = False
        if cell.lanes:
            for lane in list(cell.lanes)[:most]:
                took = self._flush(lane) or took
        return took

    def _unhold(self, res: LaneReservation) -> None:
        """A lane reservation ends without spend (released, or its lease ran out): back to the allowance."""
        lane = res.lane
        if lane.registered:  # back to the allowance, which was checked against the limits
            lane.au += res.usd
            lane.at += res.tokens
            lane.an += res.calls
        else:  # a lane that gave its allowance back holds none: the cells get it back
            for cell in lane.cells:
                cell.fu -= res.usd
                cell.ft -= res.tokens
                cell.fc -= res.calls
