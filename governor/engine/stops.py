"""Stage 1: the stop conditions of the run (and of every enclosing run), and admission.

A stop condition that matches is compared with the state of each run of the
call's run chain; the first that fires blocks (audit mode: notes). When none
fires the call is admitted to every run in the same step, under the run-state
lock, so N threads of one run cannot all slip under ``max_calls``. A call that
a later stage blocks is un-admitted (:func:`unadmit`).

Below a view's stop floors (``View.stop_floors``) no stop can fire whatever its
match says, and the rule-by-rule loop is skipped: the one speed technique here,
and it cannot change a decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from governor.engine.compiled import CompiledRule, View
from governor.engine.match import CallContext
from governor.engine.progress import Tail, tail
from governor.engine.runstate import RunSnapshot, RunState, RunStates, call_fingerprint, under_floors
from governor.engine.work import Work


@dataclass(slots=True, kw_only=True)
class Admission:
    """The runs a call was admitted to, and what its admission counted (to undo it)."""

    states: list[RunState] = field(default_factory=list)
    """The states of the call's run chain, outermost first; empty when no run state is kept."""
    fingerprint: int | None = None
    """The call's repeated-call fingerprint, when a repeated_call stop of the view needs it."""
    counted: list[str] = field(default_factory=list)
    """The ids of the max_calls stops with a match that this call met: they count it."""
    tails: list[Tail] = field(default_factory=list)
    """Per state, what the call adds to that run (no_progress, max_tool_calls): counted by :func:`note_tails`
    once the call is allowed."""


def stop_stage(
    view: View,
    runs: RunStates,
    run_chain: tuple[str, ...],
    w: Work,
    ctx: CallContext,
    fingerprint: str | int | None,
    now: float,
    *,
    reads_runs: bool,
) -> Admission:
    """Check the stops of ``view`` and, unless one blocks ``w``, admit the call to its runs."""
    adm = Admission()
    if view.repeat:
        adm.fingerprint = call_fingerprint(ctx.model, ctx.messages, fingerprint)
    with runs.lock:
        adm.states = [runs.get(r, now) for r in run_chain]
        cur = adm.states[-1]
        if reads_runs:
            ctx.run = RunSnapshot(cur.calls, cur.cost_usd, cur.consecutive_errors, cur.overruns)  # before this call
        if view.tails:
            adm.tails = [tail(ctx.messages, st.sent) for st in adm.states]
        if view.stop_floors is None or not under_floors(adm.states, view.stop_floors, adm.fingerprint, now):
            _check_stops(view, adm, w, ctx, now)
        if not w.blocked:
            for st in adm.states:
                st.admit(adm.fingerprint, now, adm.counted)
    return adm


def note_tails(runs: RunStates, adm: Admission) -> None:
    """Count what an allowed call added to its runs (its content, its tool calls, the no-progress streak)."""
    if adm.tails:
        with runs.lock:
            for st, t in zip(adm.states, adm.tails, strict=True):
                st.note_tail(t)


def unadmit(runs: RunStates, adm: Admission) -> None:
    """Undo the admission of a call that a later stage blocked."""
    with runs.lock:
        for st in adm.states:
            kept = runs.current(st)
            if isinstance(kept, RunState):  # a compact state (pushed out meanwhile) keeps the call: conservative
                kept.unadmit(adm.fingerprint, adm.counted)


def _check_stops(view: View, adm: Admission, w: Work, ctx: CallContext, now: float) -> None:
    """Rule by rule (run-state lock held): a stop that fires blocks, or notes in audit mode."""
    call_fp = adm.fingerprint
    for stop in view.stops:
        if stop.dynamic is not None and not stop.dynamic(ctx):
            continue
        if stop.counts_matched:
            adm.counted.append(stop.id)
        text = None
        for i, st in enumerate(adm.states):
            t = adm.tails[i] if adm.tails else None
            if _fires(stop, st, call_fp, now, t):
                text = stop_reason(stop, st, call_fp, now, t)
                break
        if text is None:
            continue
        if stop.audit:
            w.note(stop.id, "block", text)
            continue
        w.block(stop.id, "stop", text)
        return


def _fires(stop: CompiledRule, st: RunState, call_fp: int | None, now: float, t: Tail | None = None) -> bool:
    kind, limit = stop.kind, stop.max
    if kind == "no_progress":
        return t is not None and st.adds_content(t) is False and st.stale + 1 >= limit
    if kind == "max_tool_calls":
        return st.tool_count(stop.tools, t) > limit
    if kind == "max_calls":
        return (st.matched.get(stop.id, 0) if stop.counts_matched else st.calls) >= limit
    if kind == "consecutive_errors":
        return st.consecutive_errors >= limit
    if kind == "repeated_call":
        return call_fp is not None and st.repeats(call_fp, stop.within, now) + 1 >= limit
    return now - st.started_at > limit


def stop_reason(stop: CompiledRule, st: RunState, call_fp: int | None, now: float, t: Tail | None = None) -> str:
    """Why ``stop`` fires for run state ``st`` (the caller's comparison said it does)."""
    kind, limit = stop.kind, stop.max
    if kind == "no_progress":
        return (
            f"stop {stop.id}: run {st.run_id} would make {st.stale + 1} calls in a row that add no new content "
            f"(the same tool calls and results again; max {limit:g})"
        )
    if kind == "max_tool_calls":
        return (
            f"stop {stop.id}: run {st.run_id} reaches {st.tool_count(stop.tools, t)} calls of "
            f"{'/'.join(stop.tools)} (max {limit:g})"
        )
    if kind == "max_calls":
        calls = st.matched.get(stop.id, 0) if stop.counts_matched else st.calls
        which = " matching calls" if stop.counts_matched else " calls"
        return f"stop {stop.id}: run {st.run_id} already made {calls}{which} (max {limit:g})"
    if kind == "consecutive_errors":
        return f"stop {stop.id}: run {st.run_id} had {st.consecutive_errors} consecutive failed calls (max {limit:g})"
    if kind == "repeated_call":
        n = st.repeats(call_fp, stop.within, now) + 1 if call_fp is not None else 0  # this call is the n-th one
        return (
            f"stop {stop.id}: run {st.run_id} would make the same call {n} times within {stop.within:g}s "
            f"(max {limit:g})"
        )
    return f"stop {stop.id}: run {st.run_id} started {now - st.started_at:.0f}s ago (max {limit:g}s)"
