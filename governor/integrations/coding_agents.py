"""Coding-agent sessions seen by a proxy: the run and the agent a request belongs to, from its headers.

Claude Code sends its session id as ``x-claude-code-session-id`` on every
``/v1/messages`` request; Codex sends ``session-id`` and ``thread-id`` (the
same id for a thread's turns; a resumed or forked thread keeps or gets its
own) with ``originator: codex_exec`` / ``codex_cli_rs`` on ``/v1/responses``.
A session is a run: its budgets (``scope: run``) and stop conditions apply to
every call of the session, wherever the agent sends it from.

A refusal is worded for the client that reads it (:func:`refusal_status`):
Codex 0.171 retries a 429 and a 5xx and then prints only the status
(``exceeded retry limit, last status: 429 Too Many Requests``), retries a 403
five times, and shows a 429 whose ``error.type`` is ``usage_limit_reached`` as
its own fixed "You've hit your usage limit" text. The one answer it shows
verbatim and does not retry is a 400 (its ``InvalidRequest``: codex-rs
``api_bridge.rs`` maps a 400 body to the error it prints; ``is_retryable`` is
false), so a refusal of a Codex request is a 400 with the governor's message,
and the status the refusal would have had is kept in ``x-governor-status``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CLAUDE_CODE_SESSION = "x-claude-code-session-id"
CODEX_SESSION = ("session-id", "thread-id")
CODEX_REFUSAL_STATUS = 400
"""The one status Codex 0.171 neither retries nor hides the body of."""


def agent_session(headers: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(session id, agent)`` of a request whose headers (names lower-cased) come from a coding agent."""
    session = headers.get(CLAUDE_CODE_SESSION)
    if isinstance(session, str) and session:
        return session, "claude-code"
    for name in CODEX_SESSION:
        session = headers.get(name)
        if isinstance(session, str) and session:
            origin = str(headers.get("originator") or headers.get("user-agent") or "")
            return session, "codex" if "codex" in origin else None
    return None, None


def client_agent(headers: Mapping[str, Any]) -> str | None:
    """The coding agent that sent a request (``claude-code``, ``codex``), from its headers (names lower-cased)."""
    if headers.get(CLAUDE_CODE_SESSION):
        return "claude-code"
    origin = f"{headers.get('originator') or ''} {headers.get('user-agent') or ''}"
    return "codex" if "codex" in origin.lower() else None


def refusal_status(status: int, agent: str | None) -> int:
    """The HTTP status a refusal that would be ``status`` gets for a request from ``agent``: what makes that
    client stop at once and show the governor's reason."""
    return CODEX_REFUSAL_STATUS if agent == "codex" else status
