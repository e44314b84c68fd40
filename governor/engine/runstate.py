"""Per-run state for stop conditions: calls, consecutive errors, cost, loops, wall time.

A run is identified by its ``run_id`` metadata. States live in a bounded LRU
(``MAX_RUNS``) so a long-lived process never grows without bound; a run evicted
from it simply starts over. Identical-call fingerprints live in a small per-run
TTL map on the governor's (injectable) clock: a fingerprint is forgotten
``within`` after it was last seen, and at most ``MAX_FINGERPRINTS`` are kept.
(``cachetools.TTLCache`` did the same at ~15 us per get+set once full, more
than the whole check is allowed to cost.)

All mutation happens under :attr:`RunStates.lock`: the stop check and the
admission of a call are one atomic step, so N threads of one run cannot all
slip under ``max_calls``.
"""

from __future__ import annotations

import threading
from typing import Any, Mapping, Sequence

from collections import OrderedDict, deque

from governor.engine.tokens import message_hash

MAX_RUNS = 50_000
MAX_FINGERPRINTS = 4096  # per run
MAX_SIGHTINGS = 256  # timestamps kept per fingerprint


def call_fingerprint(model: str, messages: Sequence[Mapping[str, Any]], digest: str | int | None = None) -> int | None:
    """A cheap, stable-in-process hash of model + messages (incl. tool calls), or None.

    A caller's ``digest`` (a stable digest of the request: a trace's
    ``messages_digest``, or replay's per-run prefix hash) takes precedence: a
    caller that already has one saves the hashing. Otherwise the fingerprint is
    that of the :func:`message_hash` of each message, with
    ``hash(tuple(m.items()))`` inlined for plain dicts (what ``message_hash``
    returns for them). A caller that has those hashes already (the governor,
    after counting tokens with them) passes ``hash(tuple(hashes))`` as the
    digest and gets the same fingerprint. Python caches a str's hash on the
    object, so a resent message of a growing history costs a tuple hash, not a
    pass over its text. With neither, there is nothing to compare and the call
    has no fingerprint.
    """
    if digest is None:
        if not messages:
            return None
        try:
            digest = hash(tuple([hash(tuple(m.items())) if m.__class__ is dict else message_hash(m) for m in messages]))
        except TypeError:  # content parts, tool calls: through message_hash
            digest = hash(tuple(map(message_hash, messages)))
    return hash((model, digest))


def under_floors(
    states: Sequence["RunState"], floors: tuple[float, float, float, bool], fp: int | None, now: float,
) -> bool:
    """Whether every run is below the view's stop floors (``View.stop_floors``): calls,
    consecutive errors, wall time, and (with a repeated_call stop) a fingerprint not seen.
    Then no stop can fire and the rule-by-rule loop is skipped. Call with the lock held."""
    max_calls, max_errors, max_wall, repeat = floors
    for st in states:
        if (st.calls >= max_calls or st.consecutive_errors >= max_errors or now - st.started_at > max_wall
                or (repeat and fp is not None and st.seen.get(fp))):
            return False
    return True


class RunSnapshot:
    """The run so far, as match conditions (``run_calls`` ...) see it: before this call."""

    __slots__ = ("calls", "cost_usd", "consecutive_errors", "overruns")

    def __init__(self, calls: int, cost_usd: float, consecutive_errors: int, overruns: int = 0) -> None:
        self.calls = calls
        self.cost_usd = cost_usd
        self.consecutive_errors = consecutive_errors
        self.overruns = overruns


class RunState:
    """What one run did so far. Mutated only under the store lock."""

    __slots__ = ("run_id", "calls", "consecutive_errors", "cost_usd", "started_at", "fp_ttl", "seen", "order", "outcome", "matched",
                 "overruns")

    def __init__(self, run_id: str, now: float, fp_ttl: float) -> None:
        self.run_id = run_id
        self.calls = 0
        self.consecutive_errors = 0
        self.cost_usd = 0.0
        self.started_at = now
        self.fp_ttl = fp_ttl
        self.seen: dict[int, tuple[float, ...]] = {}  # fingerprint -> sighting times
        self.order: deque[tuple[float, int]] = deque()  # (time, fingerprint), oldest first
        self.outcome: str | None = None
        self.matched: dict[str, int] = {}  # stop id -> calls admitted that matched its match (max_calls)
        self.overruns = 0  # recorded calls that used more than their check reserved (run_overruns)

    def repeats(self, fp: int, within: float, now: float) -> int:
        """How many admitted calls with this fingerprint fall within the last ``within`` seconds."""
        seen = self.seen.get(fp)
        if not seen:
            return 0
        low = now - within
        return sum(1 for t in seen if t > low)

    def admit(self, fp: int | None, now: float, counted: Sequence[str] = ()) -> None:
        """Count an admitted call (and, in ``counted``, the stop ids whose match it met)."""
        self.calls += 1
        for sid in counted:
            self.matched[sid] = self.matched.get(sid, 0) + 1
        if fp is not None:
            seen = self.seen.get(fp)
            self.seen[fp] = (seen[-MAX_SIGHTINGS:] + (now,)) if seen else (now,)
            self.order.append((now, fp))
            self.forget(now)

    def unadmit(self, fp: int | None, counted: Sequence[str] = ()) -> None:
        """Undo :meth:`admit` for a call that a later stage blocked."""
        self.calls -= 1
        for sid in counted:
            self.matched[sid] -= 1
        if fp is not None:
            seen = self.seen.get(fp)
            if seen:
                self.seen[fp] = seen[:-1]

    def forget(self, now: float) -> None:
        """Drop fingerprints last seen longer than ``fp_ttl`` ago, and the oldest beyond the bound."""
        order, seen = self.order, self.seen
        low = now - self.fp_ttl
        while order and (order[0][0] <= low or len(order) > MAX_FINGERPRINTS):
            t, fp = order.popleft()
            times = seen.get(fp)
            if times is not None and (not times or times[-1] <= t):
                del seen[fp]


class RunStates:
    """The bounded store of run states, shared by every check of one governor."""

    def __init__(self, fp_ttl: float = 600.0) -> None:
        self.lock = threading.Lock()
        self._runs: OrderedDict[str, RunState] = OrderedDict()  # LRU order
        self.fp_ttl = fp_ttl  # the longest repeated_call window of the current policy

    def get(self, run_id: str, now: float) -> RunState:
        """The state of ``run_id``, created on first sight. Call with the lock held."""
        runs = self._runs
        state = runs.get(run_id)
        if state is None:
            state = runs[run_id] = RunState(run_id, now, self.fp_ttl)
            if len(runs) > MAX_RUNS:
                runs.popitem(last=False)
        else:
            runs.move_to_end(run_id)
            if state.fp_ttl != self.fp_ttl:  # a reload changed the longest repeated_call window
                state.fp_ttl = self.fp_ttl
        return state

    def peek(self, run_id: str) -> RunState | None:
        with self.lock:
            return self._runs.get(run_id)

    def settle(self, states: Sequence[RunState], cost_usd: float | None, error: bool, overrun: bool = False) -> None:
        """Settle one call into the states a check admitted it to: its error streak, cost and overrun."""
        with self.lock:
            for state in states:
                if overrun:
                    state.overruns += 1
                if error:
                    state.consecutive_errors += 1
                else:
                    state.consecutive_errors = 0
                if cost_usd:
                    state.cost_usd += cost_usd

    def __len__(self) -> int:
        return len(self._runs)
