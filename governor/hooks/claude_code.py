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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from governor.decision import Decision
from governor.engine.governor import Governor
from governor.engine.progress import tail
from governor.errors import HookInputError
from governor.hooks.state import default_dir, locked_state, state_path
from governor.traces.claude_code import AGENT, TranscriptParser

# events whose block stops the session (continue: false). Claude Code 2.1.197 ignores continue: false in a
# PreToolUse answer that also denies the tool, and runs the tool when the answer only stops: PreToolUse denies.
STOP_EVENTS = frozenset({"Stop", "SubagentStop", "UserPromptSubmit", "PostToolUse"})
MAX_READ = 64 << 20  # bytes of transcript read per file and event; the rest waits for the next event
DEFAULT_MODEL = "claude-sonnet-4-5"  # the probe's model before the session made a call (ANTHROPIC_MODEL wins)


@dataclass(frozen=True, kw_only=True)
class HookEvent:
    """One hook event, as Claude Code sends it on stdin."""

    event: str
    """``hook_event_name``: PreToolUse, PostToolUse, Stop, UserPromptSubmit, SessionStart ..."""
    session: str
    """``session_id``: the run the session's calls count in."""
    transcript: Path | None
    """``transcript_path``: the session's JSONL transcript (None: nothing to account for yet)."""
    cwd: str | None = None
    """``cwd``: kept as the ``project`` metadata."""
    tool_name: str | None = None
    """``tool_name`` (tool events)."""
    tool_input: Any = None
    """``tool_input`` (tool events)."""
    tool_use_id: str | None = None
    """``tool_use_id`` (tool events, recent versions)."""


@dataclass(frozen=True, kw_only=True)
class Answer:
    """What the hook prints and exits with."""

    output: dict[str, Any] | None
    """The JSON object for stdout (None: print nothing, the event proceeds)."""
    exit_code: int = 0
    """0: Claude Code reads ``output``."""
    notes: tuple[str, ...] = ()
    """Lines for stderr: located transcript problems (shown in Claude Code's verbose mode)."""
    decision: Decision | None = None
    """The probe's decision (None when the event was not evaluated)."""
    new_calls: int = 0
    """Model calls this event accounted for."""


def parse_event(raw: bytes | str) -> HookEvent:
    """The event in ``raw``; :class:`HookInputError` naming the field when it is not one."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HookInputError(f"hook input is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise HookInputError(f"hook input must be a JSON object, got {type(doc).__name__}")

    def text(name: str, required: bool = False) -> str | None:
        value = doc.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            raise HookInputError(f"hook input field {name!r} must be a non-empty string, got {value!r:.80}")
        return value

    event, session = text("hook_event_name", True), text("session_id", True)
    transcript = text("transcript_path")
    return HookEvent(
        event=event or "",
        session=session or "",
        transcript=Path(transcript) if transcript else None,
        cwd=text("cwd"),
        tool_name=text("tool_name"),
        tool_input=doc.get("tool_input"),
        tool_use_id=text("tool_use_id"),
    )


@dataclass
class _Reading:
    """What one event read from the transcripts."""

    notes: list[str] = field(default_factory=list)
    calls: int = 0


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
    reading: _Reading,
) -> None:
    """Account for the complete lines ``path`` gained since ``fstate['offset']``."""
    offset = fstate.get("offset", 0) if isinstance(fstate.get("offset"), int) else 0
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < offset:  # rewritten or truncated: read it again (seen calls are not counted twice)
                offset, fstate["line"], fstate["pending"] = 0, 0, []
            fh.seek(offset)
            chunk = fh.read(min(size - offset, MAX_READ))
    except FileNotFoundError:
        return
    except OSError as exc:
        reading.notes.append(f"{path}: cannot read: {exc}")
        return
    end = chunk.rfind(b"\n")
    if end < 0:
        return  # no complete line yet (the line being written is read by a later event)
    parser = TranscriptParser(fstate.get("parser") if isinstance(fstate.get("parser"), dict) else None)
    line_no = fstate.get("line", 0) if isinstance(fstate.get("line"), int) else 0
    kept = fstate.get("pending")
    pending: list[Any] = kept if isinstance(kept, list) else []
    for raw in chunk[:end].split(b"\n"):
        line_no += 1
        if not raw.strip():
            continue
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
    fstate.update(offset=offset + end + 1, line=line_no, parser=parser.state(), pending=pending)


def _answer(event: HookEvent, d: Decision, notes: list[str], calls: int) -> Answer:
    rule = f" [rule {d.blocked_by}, policy {d.policy_name}@{d.revision}]" if d.blocked_by else ""
    if d.verdict == "block":
        reason = f"budget-governor: {'; '.join(d.reasons) or 'blocked'}{rule}"
        if event.event == "PreToolUse":
            out: dict[str, Any] = {
                "hookSpecificOutput": {
                    "hookEventName": "PreToolUse",
                    "permissionDecision": "deny",
                    "permissionDecisionReason": reason,
                },
                "systemMessage": reason,
            }
        elif event.event in STOP_EVENTS:
            out = {"continue": False, "stopReason": reason, "systemMessage": reason}
        else:
            out = {"systemMessage": reason}
        return Answer(output=out, notes=tuple(notes), decision=d, new_calls=calls)
    warnings = list(d.warnings) + ([f"would route to {d.model}"] if d.verdict == "reroute" else [])
    if warnings:
        return Answer(
            output={"systemMessage": "budget-governor: " + "; ".join(warnings)},
            notes=tuple(notes),
            decision=d,
            new_calls=calls,
        )
    return Answer(output=None, notes=tuple(notes), decision=d, new_calls=calls)


def handle(
    raw: bytes | str, gov: Governor, *, user: str | None = None, team: str | None = None, state_dir: Path | None = None
) -> Answer:
    """Answer one hook event with governor ``gov`` (its policy and ledger)."""
    try:
        event = parse_event(raw)
    except HookInputError as exc:
        return Answer(output={"systemMessage": f"budget-governor: {exc}"}, exit_code=0, notes=(str(exc),))
    metadata: dict[str, Any] = {"run_id": event.session, "agent": AGENT}
    for key, value in (("user", user), ("team", team), ("project", event.cwd)):
        if value:
            metadata[key] = value
    reading = _Reading()
    path = state_path(state_dir or default_dir(), AGENT, event.session)
    with locked_state(path) as state:
        run = state.get("run")
        gov.restore_run(event.session, run if isinstance(run, dict) else {})
        seen = state.setdefault("seen", {})
        last = state.setdefault("last", {})
        files = state.setdefault("files", {})
        if not isinstance(seen, dict) or not isinstance(last, dict) or not isinstance(files, dict):
            state.update(seen={}, last={}, files={})
            seen, last, files = state["seen"], state["last"], state["files"]
        pending_main: list[Any] = []
        if event.transcript is not None:
            for f in [event.transcript, *_subagent_files(event.transcript)]:
                fstate = files.setdefault(str(f), {})
                _read_file(gov, f, fstate, seen, last, metadata, reading)
            pending_main = list(files.get(str(event.transcript), {}).get("pending") or ())
        state["run"] = gov.export_run(event.session) or {}
    # the probe: the session's next call, as far as the hook can know it
    messages = pending_main + _pending_tool(event, pending_main)
    model = last.get("model")
    if not isinstance(model, str):
        model = os.environ.get("ANTHROPIC_MODEL") or DEFAULT_MODEL
    context = last.get("input_tokens") if isinstance(last.get("input_tokens"), int) else 0
    d = gov.check(model=model, messages=messages, input_tokens=context, max_tokens=1, metadata=metadata)
    gov.cancel(d)
    return _answer(event, d, reading.notes, reading.calls)


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
