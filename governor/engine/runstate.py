"""Per-run state for stop conditions: calls, consecutive errors, cost, loops, wall time.

A run is identified by its ``run_id`` metadata. States live in a bounded LRU
(``MAX_RUNS``) so a long-lived process never grows without bound; a run evicted
from it simply starts over. Identical-call fingerprints live in a per-run
``cachetools.TTLCache`` whose timer is the governor's (injectable) clock, so a
fingerprint is forgotten ``within`` after it was last seen.

All mutation happens under :attr:`RunStates.lock`: the stop check and the
admission of a call are one atomic step, so N threads of one run cannot all
slip under ``max_calls``.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Mapping, Sequence

from collections import OrderedDict

from cachetools import TTLCache

MAX_RUNS = 50_000
MAX_FINGERPRINTS = 4096  # per run
MAX_SIGHTINGS = 256  # timestamps kept per fingerprint


def call_fingerprint(model: str, messages: Sequence[Mapping[str, Any]]) -> int:
    """A cheap, stable-in-process hash of model + messages (incl. tool calls).

    Python caches a str's hash on the object, so re-hashing a growing history
    whose message strings are reused costs little.
    """
    items = []
    for m in messages:
        content = m.get("content")
        tc = m.get("tool_calls")
        items.append((
            m.get("role"),
            content if isinstance(content, str) else repr(content),
            None if tc is None else repr(tc),
            m.get("tool_call_id"),
        ))
    return hash((model, tuple(items)))


class RunState:
    """What one run did so far. Mutated only under the store lock."""

    __slots__ = ("run_id", "calls", "consecutive_errors", "cost_usd", "started_at", "fingerprints", "outcome")

    def __init__(self, run_id: str, now: float, fp_ttl: float, timer: Callable[[], float]) -> None:
        self.run_id = run_id
        self.calls = 0
        self.consecutive_errors = 0
        self.cost_usd = 0.0
        self.started_at = now
        self.fingerprints: TTLCache = TTLCache(MAX_FINGERPRINTS, max(fp_ttl, 1.0), timer=timer)
        self.outcome: str | None = None

    def repeats(self, fp: int, within: float, now: float) -> int:
        """How many admitted calls with this fingerprint fall within the last ``within`` seconds."""
        seen = self.fingerprints.get(fp)
        if not seen:
            return 0
        low = now - within
        return sum(1 for t in seen if t > low)

    def admit(self, fp: int | None, now: float) -> None:
        self.calls += 1
        if fp is not None:
            seen = self.fingerprints.get(fp)
            # re-set so the TTL counts from the latest sighting
            self.fingerprints[fp] = (seen or ())[-MAX_SIGHTINGS:] + (now,)

    def unadmit(self, fp: int | None) -> None:
        """Undo :meth:`admit` for a call that a later stage blocked."""
        self.calls -= 1
        if fp is not None:
            seen = self.fingerprints.get(fp)
            if seen:
                self.fingerprints[fp] = seen[:-1]


class RunStates:
    """The bounded store of run states, shared by every check of one governor."""

    def __init__(self, clock: Callable[[], float], fp_ttl: float = 600.0) -> None:
        self.lock = threading.Lock()
        self._clock = clock
        self._runs: OrderedDict[str, RunState] = OrderedDict()  # LRU order
        self.fp_ttl = fp_ttl  # the longest repeated_call window of the current policy

    def get(self, run_id: str, now: float) -> RunState:
        """The state of ``run_id``, created on first sight. Call with the lock held."""
        runs = self._runs
        state = runs.get(run_id)
        if state is None:
            state = runs[run_id] = RunState(run_id, now, self.fp_ttl, self._clock)
            if len(runs) > MAX_RUNS:
                runs.popitem(last=False)
        else:
            runs.move_to_end(run_id)
        return state

    def peek(self, run_id: str) -> RunState | None:
        with self.lock:
            return self._runs.get(run_id)

    def record(self, run_ids: Sequence[str], cost_usd: float | None, error: bool, now: float) -> None:
        """Settle one call into every run of its chain."""
        with self.lock:
            for run_id in run_ids:
                state = self.get(run_id, now)
                if error:
                    state.consecutive_errors += 1
                else:
                    state.consecutive_errors = 0
                if cost_usd:
                    state.cost_usd += cost_usd

    def __len__(self) -> int:
        return len(self._runs)
