"""Stages 3 and 4: context caps on the routed model, then per-call caps.

Context caps (in policy order, each that matches): when the input is larger
than ``max_input_tokens`` (``None`` = the model's context window) the cap
blocks, trims, or reroutes. Trimming keeps every system message and the last
``keep_last`` other messages (when ``keep_last`` is unset: drops the oldest
until the rest fits); a tool result whose assistant tool call was dropped is dropped
too, so a tool call is never split from its result. A trim that still does not
fit blocks.

Per-call caps: clamp ``max_tokens`` to ``max_output_tokens`` (setting it when
absent), then block when the worst-case cost (input + max_tokens, or the
policy's output allowance, priced at the model to be sent) exceeds
``max_cost_usd``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from governor.engine.compiled import CompiledPolicy, View
from governor.engine.match import CallContext
from governor.engine.tokens import TokenCounter
from governor.engine.work import Work


def context_stage(
    cp: CompiledPolicy, w: Work, ctx: CallContext, tokens: TokenCounter, metadata: Mapping[str, Any], fp: tuple,
    view: View | None = None,
) -> None:
    """``view`` is the caller's view when it has one (any model: the stage looks up its own otherwise)."""
    ctx.model = w.model
    start_model = w.model
    if view is None or view.model != w.model:
        view = cp.view(w.model, metadata, fp)
    for cap in view.context:
        if w.model != start_model and cap.static is not None and not cap.static(ctx):
            continue  # after a reroute, later caps must match the new model
        ctx.input_tokens = w.input_tokens
        if cap.dynamic is not None and not cap.dynamic(ctx):
            continue
        rule = cap.rule
        limit = rule.max_input_tokens
        if limit is None:
            limit = cp.context_window(w.model)
            if limit is None:
                w.warnings.append(f"context cap {cap.id}: context window of {w.model} unknown; cap not applied")
                continue
        if w.input_tokens <= limit:
            continue
        over = f"{w.input_tokens} input tokens > {limit} allowed for {w.model}"
        if rule.action == "block":
            if cap.audit:
                w.note(cap.id, "block", f"context cap {cap.id}: {over}")
                continue
            w.block(cap.id, "context", f"context cap {cap.id}: {over}")
            return
        if rule.action == "reroute":
            if cap.audit:
                w.note(cap.id, "reroute", f"context cap {cap.id}: {over}; would send to {rule.to}", rule.to)
                continue
            w.change(cap.id, f"context cap {cap.id}: {over}; rerouted to {rule.to}")
            w.model = ctx.model = rule.to
            w.context_rerouted = True
            continue
        # trim
        kept, new_tokens = trim(w.messages, rule.keep_last, limit, w.input_tokens, w.model, tokens)
        if cap.audit:
            w.note(cap.id, "trim", f"context cap {cap.id}: {over}; would keep {len(kept)} of {len(w.messages)} messages")
            continue
        if new_tokens > limit:
            w.block(cap.id, "context", f"context cap {cap.id}: {over}, and still {new_tokens} after trimming to {len(kept)} messages")
            return
        w.change(cap.id, f"context cap {cap.id}: {over}; trimmed {len(w.messages) - len(kept)} messages ({w.input_tokens} -> {new_tokens} tokens)")
        w.messages, w.input_tokens, w.trimmed = kept, new_tokens, True
        w.estimated = w.estimated or not tokens.tokenizer(w.model).exact


def trim(
    messages: Sequence[Mapping[str, Any]], keep_last: int | None, limit: int, input_tokens: int, model: str, tokens: TokenCounter
) -> tuple[list[Mapping[str, Any]], int]:
    """(kept messages, their input tokens). System messages always stay.

    The result is ``input_tokens`` minus the tokens of the dropped messages, so
    only those are counted: a replayed call (whose ``input_tokens`` come from the
    trace) never tokenizes the system prompt or the turns it keeps. Without
    ``keep_last``, the oldest turns are dropped until the rest fits ``limit``.
    """
    others = [i for i, m in enumerate(messages) if m.get("role") != "system"]
    count = tokens.message_counter(model)
    dropped: set[int] = set()
    removed = 0
    if keep_last is not None:
        start = max(len(others) - max(keep_last, 0), 0)
        for i in others[:start]:
            removed += count(messages[i])
    else:
        excess = input_tokens - limit
        start = 0
        while start < len(others) and removed < excess:
            removed += count(messages[others[start]])
            start += 1
    dropped.update(others[:start])
    # never keep a tool result whose tool call was dropped
    for i in others[start:]:
        if messages[i].get("role") != "tool":
            break
        dropped.add(i)
        removed += count(messages[i])
    kept = [m for i, m in enumerate(messages) if i not in dropped]
    return kept, max(input_tokens - removed, 0)


def clamp_reason(cap_id: str, max_tokens: int | None, cap_out: int) -> str:
    return f"call cap {cap_id}: max_tokens {max_tokens if max_tokens is not None else 'unset'} -> {cap_out}"


def call_stage(
    cp: CompiledPolicy, w: Work, ctx: CallContext, metadata: Mapping[str, Any], fp: tuple, view: View | None = None
) -> None:
    ctx.model = w.model
    ctx.input_tokens = w.input_tokens
    if view is None or view.model != w.model:
        view = cp.view(w.model, metadata, fp)
    for cap in view.calls:
        if cap.dynamic is not None and not cap.dynamic(ctx):
            continue
        rule = cap.rule
        cap_out = rule.max_output_tokens
        if cap_out is not None and (w.max_tokens is None or w.max_tokens > cap_out):
            text = clamp_reason(cap.id, w.max_tokens, cap_out)
            if cap.audit:
                w.note(cap.id, "clamp", text)
            else:
                w.change(cap.id, text)
                w.max_tokens = cap_out
        if rule.max_cost_usd is None:
            continue
        worst = cp.worst_case_usd(w.model, w.input_tokens, w.max_tokens)
        if worst is None:
            continue  # unpriced: decided once, in the budget stage (see unpriced())
        if worst > rule.max_cost_usd:
            text = f"call cap {cap.id}: worst-case cost ${worst:.4f} of {w.model} > ${rule.max_cost_usd:.4f}"
            if cap.audit:
                w.note(cap.id, "block", text)
            else:
                w.block(cap.id, "cost", text)
                return
