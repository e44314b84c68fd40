"""The hook protocol Claude Code and Codex share, and the one pipeline every hook event goes through.

Both agents run a command hook with a JSON event on stdin (``session_id``,
``transcript_path``, ``hook_event_name``; tool events add ``tool_name``,
``tool_input``, ``tool_use_id``; Codex adds ``model`` and ``turn_id``) and read
the same answers on stdout: ``hookSpecificOutput.permissionDecision: deny``
on ``PreToolUse``, ``continue: false`` with ``stopReason`` elsewhere,
``systemMessage`` for a warning. :func:`handle_event` is the pipeline:

1. parse the event (:func:`parse_event`; a bad one is answered with a
   ``systemMessage`` naming the field);
2. under the session's state lock, restore the session's run, let the agent's
   reader account for what its transcript gained (``read``: each new model call
   through :meth:`Governor.observe`), and keep the run's state;
3. ask the policy about the session's next call (a :meth:`Governor.check` of
   the last model with the context the last call had, one output token, and
   the messages since the last call) and give its reservation back;
4. answer (:func:`answer_for`), naming the rule and the policy revision.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from governor.decision import Decision
from governor.errors import HookInputError
from governor.hooks.state import default_dir, locked_state, state_path

# events whose block stops the session (continue: false). Claude Code 2.1.197 ignores continue: false in a
# PreToolUse answer that also denies the tool, and runs the tool when the answer only stops; Codex 0.171 calls
# continue: false in a PreToolUse answer invalid: PreToolUse denies.
STOP_EVENTS = frozenset({"Stop", "SubagentStop", "UserPromptSubmit", "PostToolUse"})
MAX_READ = 64 << 20  # bytes of transcript read per file and event; the rest waits for the next event

if TYPE_CHECKING:  # typing only: the engine is imported by the command once it needs it
    from governor.engine.governor import Governor


@dataclass(frozen=True, kw_only=True)
class HookEvent:
    """One hook event, as the agent sends it on stdin."""

    event: str
    """``hook_event_name``: PreToolUse, PostToolUse, Stop, UserPromptSubmit, SessionStart ..."""
    session: str
    """``session_id``: the run the session's calls count in."""
    transcript: Path | None
    """``transcript_path``: the session's JSONL transcript or rollout (None: nothing to account for yet)."""
    cwd: str | None = None
    """``cwd``: kept as the ``project`` metadata."""
    tool_name: str | None = None
    """``tool_name`` (tool events)."""
    tool_input: Any = None
    """``tool_input`` (tool events)."""
    tool_use_id: str | None = None
    """``tool_use_id`` (tool events, recent versions)."""
    model: str | None = None
    """``model``: the session's model (Codex sends it on every event)."""


@dataclass(frozen=True, kw_only=True)
class Answer:
    """What the hook prints and exits with."""

    output: dict[str, Any] | None
    """The JSON object for stdout (None: print nothing, the event proceeds)."""
    exit_code: int = 0
    """0: the agent reads ``output``."""
    notes: tuple[str, ...] = ()
    """Lines for stderr: located transcript problems (shown in the agent's verbose mode)."""
    decision: Decision | None = None
    """The probe's decision (None when the event was not evaluated)."""
    new_calls: int = 0
    """Model calls this event accounted for."""


@dataclass
class Reading:
    """What one event read from the session's files."""

    notes: list[str] = field(default_factory=list)
    """Located problems (file:line: what)."""
    calls: int = 0
    """Model calls accounted for."""


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
        model=text("model"),
    )


def new_lines(path: Path, fstate: dict[str, Any], reading: Reading) -> tuple[list[tuple[int, bytes]], int] | None:
    """The complete lines ``path`` gained since ``fstate['offset']`` (numbered), and the offset after them;
    None when there is none yet. A file shorter than the offset was rewritten: it is read again from 0
    (``fstate`` loses its line count and pending messages; calls already seen are not counted twice)."""
    offset = fstate.get("offset", 0) if isinstance(fstate.get("offset"), int) else 0
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < offset:
                offset = 0
                fstate.pop("line", None)
                fstate.pop("pending", None)
            fh.seek(offset)
            chunk = fh.read(min(size - offset, MAX_READ))
    except FileNotFoundError:
        return None
    except OSError as exc:
        reading.notes.append(f"{path}: cannot read: {exc}")
        return None
    end = chunk.rfind(b"\n")
    if end < 0:
        return None  # no complete line yet (the line being written is read by a later event)
    line_no = fstate.get("line", 0) if isinstance(fstate.get("line"), int) else 0
    out = []
    for raw in chunk[:end].split(b"\n"):
        line_no += 1
        if raw.strip():
            out.append((line_no, raw))
    fstate["line"] = line_no
    return out, offset + end + 1


def answer_for(event: HookEvent, d: Decision, notes: list[str], calls: int) -> Answer:
    """The hook answer to ``event`` for the probe's decision ``d``."""
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


Reader = Callable[["Governor", HookEvent, dict[str, Any], dict[str, Any], Reading], list[Any]]
"""An agent's transcript reader: ``(gov, event, state, metadata, reading) -> messages since the last call``
(with the tool a PreToolUse is about). It accounts for each new call through ``gov.observe`` and keeps what
it needs in ``state`` (JSON values); ``state['last']`` holds the last call's ``model`` and ``input_tokens``."""


def handle_event(
    raw: bytes | str,
    gov: Governor,
    *,
    agent: str,
    read: Reader,
    default_model: Callable[[HookEvent], str],
    user: str | None = None,
    team: str | None = None,
    state_dir: Path | None = None,
) -> Answer:
    """Answer one hook event of ``agent`` with governor ``gov`` (its policy and ledger)."""
    try:
        event = parse_event(raw)
    except HookInputError as exc:
        return Answer(output={"systemMessage": f"budget-governor: {exc}"}, exit_code=0, notes=(str(exc),))
    metadata: dict[str, Any] = {"run_id": event.session, "agent": agent}
    for key, value in (("user", user), ("team", team), ("project", event.cwd)):
        if value:
            metadata[key] = value
    reading = Reading()
    path = state_path(state_dir or default_dir(), agent, event.session)
    with locked_state(path) as state:
        run = state.get("run")
        gov.restore_run(event.session, run if isinstance(run, dict) else {})
        for key in ("seen", "last", "files"):
            if not isinstance(state.get(key), dict):
                state[key] = {}
        messages = read(gov, event, state, metadata, reading)
        state["run"] = gov.export_run(event.session) or {}
    last = state["last"]
    model = last.get("model")
    if not isinstance(model, str):
        model = default_model(event)
    context = last.get("input_tokens") if isinstance(last.get("input_tokens"), int) else 0
    d = gov.check(model=model, messages=messages, input_tokens=context, max_tokens=1, metadata=metadata)
    gov.cancel(d)
    return answer_for(event, d, reading.notes, reading.calls)
