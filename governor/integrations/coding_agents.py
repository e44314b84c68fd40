"""Coding-agent sessions seen by a proxy: the run and the agent a request belongs to, from its headers.

Claude Code sends its session id as ``x-claude-code-session-id`` on every
``/v1/messages`` request; Codex sends ``session-id`` and ``thread-id`` (the
same id for a thread's turns; a resumed or forked thread keeps or gets its
own) with ``originator: codex_exec`` / ``codex_cli_rs`` on ``/v1/responses``.
A session is a run: its budgets (``scope: run``) and stop conditions apply to
every call of the session, wherever the agent sends it from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CLAUDE_CODE_SESSION = "x-claude-code-session-id"
CODEX_SESSION = ("session-id", "thread-id")


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
