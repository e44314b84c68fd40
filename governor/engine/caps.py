"""Stages 3 and 4: context caps on the routed model, then per-call caps.

Context caps (in policy order, each that matches): when the input is larger
than ``max_input_tokens`` (``None`` = the model's context window) the cap
blocks, trims, or reroutes. Trimming (:func:`trim`) keeps every system message,
the last user turn and what follows it, and the last ``keep_last`` other
messages (when ``keep_last`` is unset: drops the oldest until the rest fits); it
never splits a tool call from its result. A trim that still does not fit blocks.

Per-call caps: clamp ``max_tokens`` to ``max_output_tokens`` (setting it when
absent), then block when the worst-case cost (input + max_tokens, or the
policy's output allowance, priced at the model to be sent) exceeds
``max_cost_usd``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from governor.engine.compiled import CompiledPolicy, View
from governor.engine.match import CallContext
from governor.engine.tokens import TokenCounter
from governor.engine.work import Work


def context_stage(
    cp: CompiledPolicy,
    w: Work,
    ctx: CallContext,
    tokens: TokenCounter,
    metadata: Mapping[str, Any],
    fp: tuple[Any, ...],
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
            w.note(
                cap.id, "trim", f"context cap {cap.id}: {over}; would keep {len(kept)} of {len(w.messages)} messages"
            )
            continue
        if new_tokens > limit:
            w.block(
                cap.id,
                "context",
                f"context cap {cap.id}: {over}, and still {new_tokens} after trimming to {len(kept)} messages",
            )
            return
        w.change(
            cap.id,
            f"context cap {cap.id}: {over}; trimmed {len(w.messages) - len(kept)} messages "
            f"({w.input_tokens} -> {new_tokens} tokens)",
        )
        w.messages, w.input_tokens, w.trimmed = kept, new_tokens, True
        w.estimated = w.estimated or not tokens.tokenizer(w.model).exact


def trim(
    messages: Sequence[Mapping[str, Any]],
    keep_last: int | None,
    limit: int,
    input_tokens: int,
    model: str,
    tokens: TokenCounter,
) -> tuple[list[Mapping[str, Any]], int]:
    """(kept messages, their input tokens): a trim every provider accepts.

    Drops the oldest non-system turns, either all but the last ``keep_last`` or
    (when unset) until the rest fits ``limit``, and then never:

    - drops a system message (system prompts, Responses ``instructions``);
    - drops the last user turn (nor anything after it): a trim that would have
      to leaves the call over ``limit``, and the caller blocks it;
    - starts the kept turns anywhere but at a user turn, so it never keeps a
      tool result (``role: tool``, an Anthropic ``tool_result``, a Responses
      ``function_call_output``) whose tool call was dropped, nor an item whose
      reasoning item was dropped, nor opens with an assistant turn (which
      Anthropic refuses); a later result of a dropped call is dropped too.

    The result is ``input_tokens`` minus the tokens of the dropped messages, so
    only those are counted: a replayed call (whose ``input_tokens`` come from the
    trace) never tokenizes the system prompt or the turns it keeps.
    """
    others = [i for i, m in enumerate(messages) if _role(m) != "system"]
    users = [k for k, i in enumerate(others) if _role(messages[i]) == "user" and not _result_ids(messages[i])]
    last_turn = users[-1] if users else max(len(others) - 1, 0)  # the cut never passes it
    count = tokens.message_counter(model)
    if keep_last is not None:
        start = max(len(others) - max(keep_last, 0), 0)
    else:
        excess, removed, start = input_tokens - limit, 0, 0
        while start < last_turn and removed < excess:
            removed += count(messages[others[start]])
            start += 1
    start = min(start, last_turn)
    # the kept turns start at a user turn: never at a result of a dropped call, an item glued to a
    # dropped reasoning item, or an assistant turn (Anthropic requires the first message to be the user's)
    while start < last_turn and (_role(messages[others[start]]) != "user" or _result_ids(messages[others[start]])):
        start += 1
    dropped_calls = {cid for i in others[:start] for cid in _call_ids(messages[i])}
    dropped = set(others[:start])
    for i in others[start:]:  # a later result of a dropped call (parallel Responses function calls)
        if _result_ids(messages[i]) & dropped_calls:
            dropped.add(i)
    removed = sum(count(messages[i]) for i in dropped)
    kept = [m for i, m in enumerate(messages) if i not in dropped]
    return kept, max(input_tokens - removed, 0)


def _role(message: Any) -> Any:
    get = getattr(message, "get", None)
    return get("role") if get is not None else getattr(message, "role", None)


def _field(message: Any, name: str) -> Any:
    get = getattr(message, "get", None)
    return get(name) if get is not None else getattr(message, name, None)


def _call_ids(message: Any) -> set[str]:
    ids = set()
    for call in _field(message, "tool_calls") or ():
        cid = call.get("id") if isinstance(call, Mapping) else getattr(call, "id", None)
        if cid:
            ids.add(str(cid))
    return ids


def _result_ids(message: Any) -> set[str]:
    value = _field(message, "tool_call_id")
    return {part for part in str(value).split(",") if part} if value else set()


def clamp_reason(cap_id: str, max_tokens: int | None, cap_out: int) -> str:
    return f"call cap {cap_id}: max_tokens {max_tokens if max_tokens is not None else 'unset'} -> {cap_out}"


def call_stage(
    cp: CompiledPolicy,
    w: Work,
    ctx: CallContext,
    metadata: Mapping[str, Any],
    fp: tuple[Any, ...],
    view: View | None = None,
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
