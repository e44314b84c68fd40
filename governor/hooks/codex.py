"""``governor hook codex``: govern a Codex session from its hooks (Codex 0.171's ``[hooks]`` / ``hooks.json``).

Codex runs command hooks on the same events as Claude Code, with the same
input (``session_id``, ``transcript_path``: the session's rollout,
``hook_event_name``, ``model``; ``tool_name``/``tool_input``/``tool_use_id``
on tool events) and reads the same answers: a ``PreToolUse`` answer with
``permissionDecision: deny`` blocks the tool ("Command blocked by PreToolUse
hook: <reason>") and the reason goes to the model; ``continue: false`` stops
the session on the other events. Its ``notify`` program, by contrast, runs
after a turn and cannot refuse anything: the hooks are the way in.

On each event the hook reads what the rollout
(``$CODEX_HOME/sessions/YYYY/MM/DD/rollout-*.jsonl``) gained since the last
event, by byte offset, and accounts for each new model call once:

- Codex 0.171 writes a ``token_usage_record`` line per model response (its
  ``response_id`` and its own ``usage``) before the response's tools run, so
  the call a ``PreToolUse`` follows is already counted; the call id is the
  response id;
- a rollout without those lines (an older Codex) is counted as the importer
  counts it (:func:`governor.traces.codex.token_count_delta`: the growth of
  ``token_count``'s cumulative total), and a call is then counted at the first
  event after its ``token_count`` is written;
- ``response_item`` lines (messages, function calls and their outputs, in the
  Responses shape) are what each call added to the run (``no_progress``,
  ``max_tool_calls``): what came back since the previous call, the previous
  response's own message and tool calls included, as in the request the
  call sends (the proxy counts the same). The tool names are the rollout's
  (``exec_command``, ``apply_patch`` ...), the same the proxy sees.

Then, as for Claude Code (:mod:`governor.hooks.protocol`), it asks the policy
about the session's next call and answers: deny the tool, stop the session,
or warn, naming the rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from governor.engine.progress import tail
from governor.hooks.protocol import Answer, HookEvent, Reading, handle_event, new_lines
from governor.traces import _fields as f
from governor.traces.codex import AGENT, token_count_delta, usage_counts, usage_record

if TYPE_CHECKING:
    from governor.engine.governor import Governor

DEFAULT_MODEL = "gpt-5-codex"  # the probe's model when neither the event nor the rollout names one
ITEMS = frozenset(
    {
        "message",
        "function_call",
        "function_call_output",
        "custom_tool_call",
        "custom_tool_call_output",
        "local_shell_call",
        "web_search_call",
    }
)
"""``response_item`` payload types that are conversation (reasoning, opaque and new on every call, is not)."""
ANSWER_ITEMS = frozenset({"function_call", "custom_tool_call", "local_shell_call", "web_search_call"})
"""Items a model response adds (with assistant messages): they come back to the model in the next call."""
MAX_TOOL_IDS = 64  # call ids of the rollout's latest tool calls, kept to know the one a PreToolUse is about


def _is_answer(item: Any) -> bool:
    return isinstance(item, dict) and (
        item.get("type") in ANSWER_ITEMS or (item.get("type") == "message" and item.get("role") == "assistant")
    )


def _split_answer(pending: list[Any]) -> tuple[list[Any], list[Any]]:
    """``(what the call was sent, what it answered)``: the rollout writes a response's own items (its
    message, its function calls) before its usage record. The answer belongs to the next call's tail, as in
    the request that call sends (and as the proxy sees it): a call adds what came back since the last one."""
    cut = len(pending)
    while cut > 0 and _is_answer(pending[cut - 1]):
        cut -= 1
    return pending[:cut], pending[cut:]


def _call(
    gov: Governor,
    key: str,
    usage: tuple[int, ...],
    model: str,
    at: float | None,
    pending: list[Any],
    state: dict[str, Any],
    metadata: dict[str, Any],
    reading: Reading,
) -> bool:
    """Account for one call (once per ``key``); True when it is new."""
    seen = state["seen"]
    if key in seen:
        return False
    inp, cached, cache_write, out, _reasoning = usage
    seen[key] = out
    gov.observe(
        call_id=f"{AGENT}:{key}",
        model=model,
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=min(cached, inp),
        cache_write_tokens=min(cache_write, max(inp - cached, 0)),
        metadata=metadata,
        at=at,
        tail=tail(pending, 0),
    )
    reading.calls += 1
    state["last"].update(model=model, input_tokens=inp)
    return True


def _read_rollout(
    gov: Governor, path: Path, fstate: dict[str, Any], state: dict[str, Any], metadata: dict[str, Any], r: Reading
) -> None:
    """Account for the complete lines the rollout at ``path`` gained since the last event."""
    got = new_lines(path, fstate, r)
    if got is None:
        return
    lines, offset = got
    kept_parser = fstate.get("parser")
    parser: dict[str, Any] = kept_parser if isinstance(kept_parser, dict) else {}
    model: str | None = parser.get("model") if isinstance(parser.get("model"), str) else None
    records = parser.get("records") is True
    prev = tuple(parser["prev"]) if isinstance(parser.get("prev"), list) else None
    kept = fstate.get("pending")
    pending: list[Any] = kept if isinstance(kept, list) else []
    for line_no, raw in lines:
        try:
            rec = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            r.notes.append(f"{path}:{line_no}: invalid JSON: {exc}")
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("payload"), dict):
            r.notes.append(f"{path}:{line_no}: line is not a JSON object with a 'payload' object")
            continue
        kind, p = rec.get("type"), rec["payload"]
        try:
            if kind == "session_meta":
                model = model or f.text(p.get("model"))
            elif kind == "turn_context":
                model = f.text(p.get("model")) or model
            elif kind == "response_item":
                if p.get("type") in ITEMS:
                    pending.append({k: v for k, v in p.items() if k != "id"})
                if isinstance(p.get("call_id"), str) and p.get("type") != "function_call_output":
                    tools = state.get("tools")
                    kept_ids = tools[-(MAX_TOOL_IDS - 1) :] if isinstance(tools, list) else []
                    state["tools"] = [*kept_ids, p["call_id"]]
            elif kind == "token_usage_record":
                response_id, usage = usage_record(p)
                records = True
                at = f.timestamp(rec.get("timestamp"))
                key = response_id or f"{rec.get('timestamp')}:{','.join(map(str, usage))}"
                sent, answer = _split_answer(pending)
                if any(usage) and _call(gov, key, usage, model or "unknown", at, sent, state, metadata, r):
                    pending = answer
            elif kind == "event_msg" and p.get("type") == "token_count" and isinstance(p.get("info"), dict):
                info = p["info"]
                total = usage_counts(info.get("total_token_usage"), "payload.info.total_token_usage")
                last_usage = info.get("last_token_usage")
                last = usage_counts(last_usage, "payload.info.last_token_usage") if last_usage is not None else None
                delta = token_count_delta(prev, total, last)
                prev = total
                if not records and delta is not None and any(delta):
                    at = f.timestamp(rec.get("timestamp"))
                    key = f"{rec.get('timestamp')}:{','.join(map(str, total))}"
                    sent, answer = _split_answer(pending)
                    if _call(gov, key, delta, model or "unknown", at, sent, state, metadata, r):
                        pending = answer
        except ValueError as exc:
            r.notes.append(f"{path}:{line_no}: {exc}")
    fstate.update(
        offset=offset,
        pending=pending,
        parser={"model": model, "records": records, "prev": list(prev) if prev is not None else None},
    )


def _read(
    gov: Governor, event: HookEvent, state: dict[str, Any], metadata: dict[str, Any], reading: Reading
) -> list[Any]:
    """The session's rollout: new calls accounted for; the items since its last call (and the tool a
    PreToolUse is about, when the rollout does not hold it yet)."""
    pending: list[Any] = []
    if event.transcript is not None:
        fstate = state["files"].setdefault(str(event.transcript), {})
        _read_rollout(gov, event.transcript, fstate, state, metadata, reading)
        pending = list(fstate.get("pending") or ())
    return pending + _pending_tool(event, state)


def _pending_tool(event: HookEvent, state: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool call a PreToolUse is about, unless the rollout already holds it (Codex writes a response's
    function calls, and its usage record, before their hooks run: the call counted it)."""
    if event.event != "PreToolUse" or event.tool_name is None:
        return []
    tools = state.get("tools")
    if event.tool_use_id and isinstance(tools, list) and event.tool_use_id in tools:
        return []
    arguments = json.dumps(event.tool_input, sort_keys=True, default=str)
    return [{"type": "function_call", "call_id": event.tool_use_id, "name": event.tool_name, "arguments": arguments}]


def _default_model(event: HookEvent) -> str:
    return event.model or DEFAULT_MODEL


def handle(
    raw: bytes | str, gov: Governor, *, user: str | None = None, team: str | None = None, state_dir: Path | None = None
) -> Answer:
    """Answer one Codex hook event with governor ``gov`` (its policy and ledger)."""
    return handle_event(
        raw,
        gov,
        agent=AGENT,
        read=_read,
        default_model=_default_model,
        user=user,
        team=team,
        state_dir=state_dir,
    )
