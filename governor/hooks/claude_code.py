"""``governor hook claude-code``: govern a Claude Code session from its hooks, without a proxy.

On each hook event (stdin: ``session_id``, ``transcript_path``,
``hook_event_name``, and for tool events ``tool_name``/``tool_input``):

1. read what the session's transcript, and its subagents' transcripts
   (``<session>/subagents/agent-*.jsonl``), gained since the last event: from
   the byte offset kept in the session's state file, complete lines only,
   through the importer's own parser (:class:`governor.traces.claude_code.TranscriptParser`);
2. account for each new model call once (``message.id`` + ``requestId``; the
   repeats on every content-block line of one message, and the parent's
   messages a fork copies, are not new calls): :meth:`Governor.observe` charges
   the policy's budgets in its ledger (idempotent by call id, so a per-developer
   daily budget in SQLite is shared by every session on the machine and never
   charged twice) and counts the call in the session's run, with what its
   messages added (``no_progress``, ``max_tool_calls``);
3. ask the policy about the session's next call: a :meth:`Governor.check` of
   the last model with the context the last call had, one output token, and the
   messages since the last call (with the tool about to run); its reservation
   is given back (:meth:`Governor.cancel`);
4. answer in the hook protocol: a block denies the tool on ``PreToolUse``
   (the model is told why, in one more call), stops the session on
   ``PostToolUse``/``Stop``/``SubagentStop``/``UserPromptSubmit``
   (``continue: false``), and is a warning (``systemMessage``) on other events;
   a soft threshold is a warning everywhere. Each names the rule
   (``Decision.blocked_by``) and the policy revision.

Bad input never crashes the hook: a malformed event is answered with a
``systemMessage`` naming the field, a malformed transcript line is reported
with its file and line and skipped, and the rest is read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from governor.engine.progress import tail
from governor.hooks.protocol import STOP_EVENTS, Answer, HookEvent, Reading, handle_event, new_lines, parse_event
from governor.traces.claude_code import AGENT, TranscriptParser

if TYPE_CHECKING:
    from governor.engine.governor import Governor

__all__ = ["AGENT", "STOP_EVENTS", "Answer", "HookEvent", "handle", "parse_event"]

DEFAULT_MODEL = "claude-sonnet-4-5"  # the probe's model before the session made a call (ANTHROPIC_MODEL wins)


def _subagent_files(transcript: Path) -> list[Path]:
    sub = transcript.parent / transcript.name.removesuffix(".jsonl") / "subagents"
    try:
        return sorted(p for p in sub.iterdir() if p.name.startswith("agent-") and p.name.endswith(".jsonl"))
    except OSError:
        return []


def _message(rec: Mapping[str, Any]) -> dict[str, Any] | None:
    """The message a user/assistant line adds to the conversation (role and content only)."""
    if rec.get("type") not in ("user", "assistant") or rec.get("isMeta"):
        return None
    msg = rec.get("message")
    if not isinstance(msg, Mapping):
        return None
    return {"role": msg.get("role", rec["type"]), "content": msg.get("content")}


def _read_file(
    gov: Governor,
    path: Path,
    fstate: dict[str, Any],
    seen: dict[str, int],
    last: dict[str, Any],
    metadata: dict[str, Any],
    reading: Reading,
) -> None:
    """Account for the complete lines ``path`` gained since ``fstate['offset']``."""
    got = new_lines(path, fstate, reading)
    if got is None:
        return
    lines, offset = got
    parser = TranscriptParser(fstate.get("parser") if isinstance(fstate.get("parser"), dict) else None)
    kept = fstate.get("pending")
    pending: list[Any] = kept if isinstance(kept, list) else []
    for line_no, raw in lines:
        try:
            rec = json.loads(raw)
            call = parser.feed(rec, line_no)
        except (ValueError, UnicodeDecodeError) as exc:
            reading.notes.append(f"{path}:{line_no}: {exc}")
            continue
        message = _message(rec)
        if call is not None:
            key = f"{call['message_id']}|{call['request_id']}"
            if key not in seen and not parser.is_history(call):
                seen[key] = call["output_tokens"]
                gov.observe(
                    call_id=f"{AGENT}:{key}",
                    model=call["model"],
                    input_tokens=call["input_tokens"],
                    output_tokens=call["output_tokens"],
                    cache_read_tokens=call["cache_read_tokens"],
                    cache_write_tokens=call["cache_write_tokens"],
                    cache_write_1h_tokens=call["cache_write_1h_tokens"],
                    service_tier=call["service_tier"],
                    speed=call["speed"],
                    error=call["error"] is not None,
                    metadata=metadata,
                    at=call["timestamp"],
                    tail=tail(pending, 0),
                )
                reading.calls += 1
                if call["error"] is None:
                    last.update(model=call["model"], input_tokens=call["input_tokens"])
                pending = []
            elif parser.is_history(call):
                seen.setdefault(key, call["output_tokens"])
        if message is not None:
            pending.append(message)
    fstate.update(offset=offset, parser=parser.state(), pending=pending)


def _read(
    gov: Governor, event: HookEvent, state: dict[str, Any], metadata: dict[str, Any], reading: Reading
) -> list[Any]:
    """The session's transcript and its subagents' transcripts: new calls accounted for; the messages since
    the main transcript's last call (and the tool a PreToolUse is about)."""
    if event.transcript is None:
        return _pending_tool(event, [])
    files = state["files"]
    for f in [event.transcript, *_subagent_files(event.transcript)]:
        fstate = files.setdefault(str(f), {})
        _read_file(gov, f, fstate, state["seen"], state["last"], metadata, reading)
    pending = list(files.get(str(event.transcript), {}).get("pending") or ())
    return pending + _pending_tool(event, pending)


def _default_model(event: HookEvent) -> str:
    return os.environ.get("ANTHROPIC_MODEL") or DEFAULT_MODEL


def handle(
    raw: bytes | str, gov: Governor, *, user: str | None = None, team: str | None = None, state_dir: Path | None = None
) -> Answer:
    """Answer one Claude Code hook event with governor ``gov`` (its policy and ledger)."""
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


def _pending_tool(event: HookEvent, pending: list[Any]) -> list[dict[str, Any]]:
    """The tool call a PreToolUse is about, when the transcript does not hold it yet (it is written async)."""
    if event.event != "PreToolUse" or event.tool_name is None:
        return []
    for m in pending:
        content = m.get("content") if isinstance(m, dict) else None
        for block in content if isinstance(content, list) else ():
            if (
                isinstance(block, dict)
                and block.get("type") == "tool_use"
                and (
                    block.get("id") == event.tool_use_id
                    if event.tool_use_id
                    else block.get("name") == event.tool_name and block.get("input") == event.tool_input
                )
            ):
                return []
    block = {"type": "tool_use", "id": event.tool_use_id, "name": event.tool_name, "input": event.tool_input}
    return [{"role": "assistant", "content": [block]}]
