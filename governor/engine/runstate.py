"""Per-run state for stop conditions: calls, consecutive errors, cost, loops, wall time.

A run is identified by its ``run_id`` metadata. Full states live in a bounded
LRU (``MAX_RUNS``). Forgetting a run's state must never turn its stop conditions
off, so a state pushed out of the LRU is kept in a compact form
(:class:`CompactRun`: its counts, start time, and the fingerprints and times of
its latest ``COMPACT_FINGERPRINTS`` calls -- about 300 bytes instead of a full
state's dicts and deque) and restored when the run calls again, so every stop
condition still sees its calls, errors, wall time and recent repeats. Only past
``MAX_COMPACT_RUNS`` compact states is the oldest forgotten for good: counted
(``RunStates.forgotten``) and logged, never silent. Identical-call fingerprints
live in a small per-run TTL map on the governor's (injectable) clock: a
fingerprint is forgotten ``within`` after it was last seen, and at most
``MAX_FINGERPRINTS`` are kept.
(``cachetools.TTLCache`` did the same at ~15 us per get+set once full, more
than the whole check is allowed to cost.)

All mutation happens under :attr:`RunStates.lock`: the stop check and the
admission of a call are one atomic step, so N threads of one run cannot all
slip under ``max_calls``.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from typing import Any

from governor.engine.progress import MAX_CONTENT, Tail, matches
from governor.engine.tokens import message_hash

log = logging.getLogger("governor.engine")

MAX_RUNS = 50_000  # full run states kept (the most recently active runs)
MAX_COMPACT_RUNS = 1_000_000  # compact states of the runs before them (~300 bytes each)
COMPACT_FINGERPRINTS = 8  # the latest call fingerprints a compact state keeps (repeated_call)
MAX_FINGERPRINTS = 4096  # per run
MAX_SIGHTINGS = 256  # timestamps kept per fingerprint
COMPACT_CONTENT = 256  # content digests a compact run keeps (no_progress compares a call's tail with them)


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
    states: Sequence[RunState],
    floors: tuple[float, float, float, bool],
    fp: int | None,
    now: float,
) -> bool:
    """Whether every run is below the view's stop floors (``View.stop_floors``): calls,
    consecutive errors, wall time, and (with a repeated_call stop) a fingerprint not seen.
    Then no stop can fire and the rule-by-rule loop is skipped. Call with the lock held."""
    max_calls, max_errors, max_wall, repeat = floors
    for st in states:
        if (
            st.calls >= max_calls
            or st.consecutive_errors >= max_errors
            or now - st.started_at > max_wall
            or (repeat and fp is not None and st.seen.get(fp))
        ):
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

    __slots__ = (
        "run_id",
        "calls",
        "consecutive_errors",
        "cost_usd",
        "started_at",
        "fp_ttl",
        "seen",
        "order",
        "outcome",
        "matched",
        "content",
        "stale",
        "sent",
        "tools",
        "overruns",
        "resumed",
    )

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
        # no_progress and max_tool_calls (governor.engine.progress), kept only when a policy has them
        self.content: dict[int, None] = {}  # content digests of the messages sent so far, oldest first
        self.stale = 0  # consecutive admitted calls that added no new content
        self.sent = 0  # messages in the last admitted call: the next call's tail starts there
        self.tools: dict[str, int] = {}  # tool name -> calls of it seen in the run's messages
        self.resumed: tuple[str, ...] = ()  # ids of the operators' resumes this state has taken (each once)

    def clear_stops(self, now: float) -> None:
        """An operator resumed the run: what its stop conditions and run match conditions count starts again
        (calls, matching calls, errors, cost, overruns, repeats, wall time, the no-progress streak, tool calls).
        The content seen so far is kept, so the next call's new messages are still told apart."""
        self.calls = 0
        self.matched = {}
        self.consecutive_errors = 0
        self.cost_usd = 0.0
        self.overruns = 0
        self.seen = {}
        self.order = deque()
        self.started_at = now
        self.stale = 0
        self.tools = {}

    def adds_content(self, t: Tail) -> bool | None:
        """Whether a call with tail ``t`` adds content the run has not seen; None for an empty tail."""
        if not t.digests:
            return None
        content = self.content
        return any(d not in content for d in t.digests)

    def tool_count(self, patterns: Sequence[str], t: Tail | None = None) -> int:
        """Calls of the tools named by ``patterns`` so far, with those of tail ``t``."""
        n = sum(c for name, c in self.tools.items() if matches(name, patterns))
        return n + (sum(1 for name in t.tools if matches(name, patterns)) if t is not None else 0)

    def note_tail(self, t: Tail) -> None:
        """Count an admitted call's tail: its content, its tool calls and the no-progress streak."""
        new = self.adds_content(t)
        if new is not None:
            self.stale = 0 if new else self.stale + 1
        content = self.content
        for d in t.digests:
            content[d] = None
        while len(content) > MAX_CONTENT:
            del content[next(iter(content))]
        for name in t.tools:
            self.tools[name] = self.tools.get(name, 0) + 1
        self.sent = t.size

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


class CompactRun:
    """What a run's stop conditions need of a state pushed out of the LRU, in one small object."""

    __slots__ = (
        "calls",
        "consecutive_errors",
        "cost_usd",
        "started_at",
        "outcome",
        "matched",
        "recent",
        "progress",
        "overruns",
        "resumed",
    )

    def __init__(self, st: RunState) -> None:
        self.calls = st.calls
        self.consecutive_errors = st.consecutive_errors
        self.cost_usd = st.cost_usd
        self.overruns = st.overruns
        self.resumed = st.resumed
        self.started_at = st.started_at
        self.outcome = st.outcome
        self.matched: tuple[tuple[str, int], ...] = tuple(st.matched.items())
        # (fingerprint, its sighting times) of the latest calls, newest last
        latest: dict[int, tuple[float, ...]] = {}
        for _, fp in reversed(st.order):
            if fp not in latest and fp in st.seen:
                latest[fp] = st.seen[fp][-MAX_SIGHTINGS:]
                if len(latest) >= COMPACT_FINGERPRINTS:
                    break
        self.recent: tuple[tuple[int, tuple[float, ...]], ...] = tuple(reversed(latest.items()))
        # no_progress / max_tool_calls: the streak, the tail start, tool counts and the latest content digests
        self.progress: tuple[int, int, tuple[tuple[str, int], ...], tuple[int, ...]] | None = (
            (st.stale, st.sent, tuple(st.tools.items()), tuple(st.content)[-COMPACT_CONTENT:])
            if st.content or st.tools
            else None
        )

    def restore(self, run_id: str, fp_ttl: float) -> RunState:
        st = RunState(run_id, self.started_at, fp_ttl)
        st.calls, st.consecutive_errors, st.cost_usd, st.outcome = (
            self.calls,
            self.consecutive_errors,
            self.cost_usd,
            self.outcome,
        )
        st.matched = dict(self.matched)
        st.overruns = self.overruns
        st.resumed = self.resumed
        if self.progress is not None:
            st.stale, st.sent, tools, content = self.progress
            st.tools, st.content = dict(tools), dict.fromkeys(content)
        for fp, times in self.recent:
            st.seen[fp] = times
            st.order.append((times[-1], fp))
        return st


class RunStates:
    """The bounded store of run states, shared by every check of one governor."""

    def __init__(self, fp_ttl: float = 600.0) -> None:
        self.lock = threading.Lock()
        self._runs: OrderedDict[str, RunState] = OrderedDict()  # LRU order
        self._compact: dict[str, CompactRun] = {}  # runs pushed out of the LRU, oldest first
        self.fp_ttl = fp_ttl  # the longest repeated_call window of the current policy
        self.compacted = 0  # run states moved to their compact form
        self.forgotten = 0  # compact states forgotten for good (their runs' stop conditions restart)

    def get(self, run_id: str, now: float) -> RunState:
        """The state of ``run_id``, created on first sight. Call with the lock held."""
        runs = self._runs
        state = runs.get(run_id)
        if state is None:
            compact = self._compact.pop(run_id, None) if self._compact else None
            if compact is not None:
                state = runs[run_id] = compact.restore(run_id, self.fp_ttl)
            else:
                state = runs[run_id] = RunState(run_id, now, self.fp_ttl)
            if len(runs) > MAX_RUNS:
                self._compact_oldest()
        else:
            runs.move_to_end(run_id)
            if state.fp_ttl != self.fp_ttl:  # a reload changed the longest repeated_call window
                state.fp_ttl = self.fp_ttl
        return state

    def export(self, run_id: str) -> dict[str, Any] | None:
        """The state of ``run_id`` as JSON values, for a process that keeps it between calls (the hook).
        Identical-call fingerprints are process-local hashes and are not kept; content digests are."""
        with self.lock:
            st = self._runs.get(run_id)
            if st is None:
                return None
            return {
                "calls": st.calls,
                "consecutive_errors": st.consecutive_errors,
                "cost_usd": st.cost_usd,
                "started_at": st.started_at,
                "matched": dict(st.matched),
                "content": list(st.content),
                "stale": st.stale,
                "tools": dict(st.tools),
                "resumed": list(st.resumed),
            }

    def restore(self, run_id: str, doc: Mapping[str, Any], now: float) -> RunState:
        """Install a state :meth:`export` produced (values of the wrong type are ignored, not trusted)."""
        with self.lock:
            st = self.get(run_id, now)
            for name in ("calls", "consecutive_errors", "stale"):
                if isinstance(doc.get(name), int):
                    setattr(st, name, doc[name])
            for name in ("cost_usd", "started_at"):
                if isinstance(doc.get(name), (int, float)):
                    setattr(st, name, float(doc[name]))
            for name in ("matched", "tools"):
                if isinstance(doc.get(name), dict):
                    setattr(st, name, {str(k): v for k, v in doc[name].items() if isinstance(v, int)})
            if isinstance(doc.get("resumed"), list):
                st.resumed = tuple(str(r) for r in doc["resumed"] if isinstance(r, str))
            if isinstance(doc.get("content"), list):
                st.content = dict.fromkeys(d for d in doc["content"] if isinstance(d, int))
            st.sent = 0  # the restorer passes each call's new messages only
            return st

    def _compact_oldest(self) -> None:
        """Move the least recently active full state to its compact form (lock held)."""
        run_id, st = self._runs.popitem(last=False)
        self._compact[run_id] = CompactRun(st)
        self.compacted += 1
        if self.compacted == 1 or self.compacted % 100_000 == 0:
            log.warning(
                "more than %d runs active: %d run states kept in compact form so far (their stop "
                "conditions still apply)",
                MAX_RUNS,
                self.compacted,
            )
        if len(self._compact) > MAX_COMPACT_RUNS:
            del self._compact[next(iter(self._compact))]
            self.forgotten += 1
            if self.forgotten == 1 or self.forgotten % 10_000 == 0:
                log.error(
                    "more than %d runs active: %d run states forgotten so far; a forgotten run's stop "
                    "conditions count from zero if it calls again",
                    MAX_RUNS + MAX_COMPACT_RUNS,
                    self.forgotten,
                )

    def peek(self, run_id: str) -> RunState | None:
        with self.lock:
            state = self._runs.get(run_id)
            if state is None and run_id in self._compact:
                return self._compact[run_id].restore(run_id, self.fp_ttl)  # a copy, for reading
            return state

    def current(self, st: RunState) -> RunState | CompactRun:
        """The kept state of ``st``'s run: ``st`` itself, or what replaced it since (its compact
        form, or the state restored from that). Lock held. A call settles into what is kept."""
        kept = self._runs.get(st.run_id)
        if kept is not None:
            return kept
        return self._compact.get(st.run_id, st)

    def settle(self, states: Sequence[RunState], cost_usd: float | None, error: bool, overrun: bool = False) -> None:
        """Settle one call into the states a check admitted it to: its error streak, cost and overrun."""
        with self.lock:
            for st in states:
                kept = self.current(st)
                if overrun:
                    kept.overruns += 1
                if error:
                    kept.consecutive_errors += 1
                else:
                    kept.consecutive_errors = 0
                if cost_usd:
                    kept.cost_usd += cost_usd

    def resume(self, resumes: Sequence[Any], now: float) -> list[Any]:
        """Apply operators' resumes (:class:`~governor.ledger.base.Adjustment`, kind ``resume``): each clears,
        once, the stop state of its run when this governor knew the run before the resume was written.
        Returns the resumes applied now."""
        applied = []
        with self.lock:
            for a in resumes:
                if a.run_id not in self._runs and a.run_id not in self._compact:
                    continue
                st = self.get(a.run_id, now)
                if a.id in st.resumed:
                    continue
                st.resumed = (*st.resumed[-63:], a.id)
                if st.started_at <= a.at:  # known before the resume: its stop is what the operator lifted
                    st.clear_stops(now)
                    applied.append(a)
        return applied

    def set_outcome(self, run_id: str, outcome: str) -> None:
        with self.lock:
            kept: RunState | CompactRun | None = self._runs.get(run_id) or self._compact.get(run_id)
            if kept is not None:
                kept.outcome = outcome

    def __len__(self) -> int:
        """Runs whose state is kept, full or compact."""
        return len(self._runs) + len(self._compact)
