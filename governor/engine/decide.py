"""``decide()``: one check, in the documented order (docs/engine.md). The only place a decision is made.

1. stop conditions of the run (and of every enclosing run)   (governor.engine.stops)
2. routing: the first matching enforced route wins            (governor.engine.routing)
3. context caps on the routed model                           (governor.engine.caps)
4. per-call caps                                              (governor.engine.caps)
5. budgets: reserve the worst case                            (governor.engine.budgets)
6. soft thresholds: warn / downgrade                          (governor.engine.budgets)

Each stage after routing reads the :class:`~governor.engine.compiled.View` of the
model it judges: the rules whose static match holds, compiled once. A stage that
cannot act on this call (the input is below every context cap's limit, the
output and cost below every call cap's) is skipped by the view's floors; that
skips work, never a rule that could act. Stop-condition state and the admission
of the call are updated in one step under the run-state lock; a call blocked by
a later stage is un-admitted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from governor.decision import Decision, Verdict
from governor.engine.adjust import describe, resume_runs
from governor.engine.budgets import Reservation, budget_stage
from governor.engine.caps import call_stage, context_stage
from governor.engine.compiled import CompiledPolicy
from governor.engine.match import CallContext
from governor.engine.routing import route_stage
from governor.engine.runstate import RunState, RunStates
from governor.engine.stops import Admission, note_tails, stop_stage, unadmit
from governor.engine.tokens import TokenCounter
from governor.engine.work import Work
from governor.ledger.base import Adjustment, Ledger


@dataclass(slots=True, kw_only=True)
class CallRequest:
    """One call as the caller asked for it, with what the governor worked out before deciding."""

    model: str
    """The requested model, after aliases."""
    messages: Sequence[Mapping[str, Any]]
    """The call's messages (empty when the caller gave none)."""
    max_tokens: int | None
    """The caller's output limit, or None."""
    tools: Sequence[Any] | None
    """The call's tool definitions, or None."""
    metadata: Mapping[str, Any]
    """The run scope's metadata merged with the caller's."""
    run_chain: tuple[str, ...]
    """The run ids of the enclosing runs, outermost first (empty outside a run)."""
    input_tokens: int
    """Input tokens: the caller's, or counted."""
    estimated: bool
    """True when ``input_tokens`` is an approximate count."""
    now: float
    """The governor clock's time of the check (epoch seconds)."""
    decision_id: str
    """The id of the decision; the ledger's reservation id."""
    fingerprint: str | int | None = None
    """A stable digest of the request for repeated_call, or None (the messages are hashed)."""
    message_count: int | None = None
    """What ``messages`` conditions see when no messages are given."""


@dataclass(slots=True, kw_only=True)
class Checked:
    """What a check produced: the decision, and what ``record()`` settles it against."""

    decision: Decision
    """The answer returned to the caller."""
    reservation: Reservation | None
    """What was reserved on the budgets (None: a block, or no budget matched)."""
    runs: Sequence[RunState]
    """The states of the runs the call was admitted to (empty when blocked)."""
    adjustments: tuple[Adjustment, ...] = ()
    """The operators' adjustments that changed the outcome (what ``Decision.adjustments`` names)."""


def decide(cp: CompiledPolicy, runs: RunStates, ledger: Ledger, tokens: TokenCounter, call: CallRequest) -> Checked:
    """Decide ``call`` under the compiled policy ``cp``, reserving its worst case on ``ledger``."""
    model, metadata = call.model, call.metadata
    fp = cp.fingerprint(metadata)
    view = cp.view(model, metadata, fp)
    w = Work(model, call.messages, call.max_tokens, call.input_tokens, call.estimated)
    ctx = CallContext(model, metadata, call.input_tokens, call.messages, call.tools, message_count=call.message_count)

    admission: Admission | None = None
    if call.run_chain and cp.needs_runs:  # 1.
        admission = stop_stage(view, runs, call.run_chain, w, ctx, call.fingerprint, call.now, reads_runs=cp.reads_runs)
        if w.block_kind == "stop":  # an operator may have resumed the run: look once, in the ledger
            resumed = resume_runs(ledger, runs, call.run_chain, call.now)
            if resumed:
                w = Work(model, call.messages, call.max_tokens, call.input_tokens, call.estimated)
                w.adjustments += resumed
                w.warnings += [f"run resumed by adjustment {describe(a)}" for a in resumed]
                admission = stop_stage(
                    view, runs, call.run_chain, w, ctx, call.fingerprint, call.now, reads_runs=cp.reads_runs
                )

    reservation = None
    if not w.blocked:
        route_stage(view, w, ctx)  # 2.
        if w.model != model:
            view = cp.view(w.model, metadata, fp)
        if call.input_tokens > view.ctx_floor or view.ctx_floor < 0:  # 3.
            context_stage(cp, w, ctx, tokens, metadata, fp, view)
            if w.model != view.model:
                view = cp.view(w.model, metadata, fp)
        if (
            not w.blocked
            and view.calls
            and (  # 4.
                w.max_tokens is None
                or w.max_tokens > view.out_floor
                or (cp.worst_case_usd(w.model, w.input_tokens, w.max_tokens) or 0.0) > view.cost_floor
            )
        ):
            call_stage(cp, w, ctx, metadata, fp, view)
        if not w.blocked:  # 5. and 6.
            w, reservation = budget_stage(
                cp, w, ctx, metadata, fp, call.run_chain, ledger, call.decision_id, call.now, tokens, view
            )

    if w.blocked:
        if admission is not None and w.block_kind != "stop":
            unadmit(runs, admission)
    elif admission is not None:
        note_tails(runs, admission)
        if w.estimated_cost is None:
            w.estimated_cost = cp.worst_case_usd(w.model, w.input_tokens, w.max_tokens)
    decision = Decision(
        verdict=_verdict(w, model),
        model=w.model,
        messages=w.messages,
        max_tokens=w.max_tokens,
        rule_ids=tuple(w.rule_ids),
        reasons=tuple(w.reasons),
        revision=cp.revision,
        estimated_cost_usd=w.estimated_cost,
        decision_id=call.decision_id,
        requested_model=model,
        input_tokens=w.input_tokens,
        input_tokens_estimated=w.estimated,
        warnings=tuple(w.warnings),
        audit=tuple(w.audit),
        policy_name=cp.name,
        metadata=metadata,
        block_kind=w.block_kind,
        fallbacks=w.fallbacks,
        blocked_by=w.blocked_by,
        adjustments=tuple(a.id for a in w.adjustments),
    )
    admitted: Sequence[RunState] = admission.states if admission is not None and not w.blocked else ()
    return Checked(decision=decision, reservation=reservation, runs=admitted, adjustments=tuple(w.adjustments))


def _verdict(w: Work, requested: str) -> Verdict:
    if w.blocked:
        return "block"
    if w.trimmed:
        return "trim"
    return "reroute" if w.model != requested else "allow"
