"""Where coding agents keep their logs on this machine, and the time window a replay reads.

``--claude-code`` reads ``$CLAUDE_CONFIG_DIR/projects`` (default
``~/.claude/projects``); ``--codex`` reads ``$CODEX_HOME/sessions`` and
``$CODEX_HOME/archived_sessions`` (default ``~/.codex``). ``--since`` /
``--until`` take an ISO-8601 date or time (no zone: UTC) or an age such as
``7d`` or ``12h`` before now.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

from governor.errors import TraceError

_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def claude_code_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    env = os.environ if env is None else env
    root = Path(env["CLAUDE_CONFIG_DIR"]) if env.get("CLAUDE_CONFIG_DIR") else Path.home() / ".claude"
    return [root / "projects"]


def codex_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    env = os.environ if env is None else env
    root = Path(env["CODEX_HOME"]) if env.get("CODEX_HOME") else Path.home() / ".codex"
    return [root / "sessions", root / "archived_sessions"]


def local_logs(
    *, claude_code: bool, codex: bool, since: float | None = None, env: Mapping[str, str] | None = None
) -> dict[Path, str]:
    """The session files of the agents asked for, each with its format; a file last written before ``since``
    holds no call after it and is left out."""
    wanted: list[tuple[str, str, list[Path]]] = []
    if claude_code:
        wanted.append(("Claude Code", "claude-code", claude_code_dirs(env)))
    if codex:
        wanted.append(("Codex", "codex", codex_dirs(env)))
    files: dict[Path, str] = {}
    for name, fmt, dirs in wanted:
        found = [
            p
            for d in dirs
            if d.is_dir()
            for p in sorted(d.rglob("*.jsonl*"))
            if p.is_file() and p.name.endswith((".jsonl", ".jsonl.gz"))
        ]
        if not found:
            raise TraceError(f"no {name} session files under {dirs[0]}", file=str(dirs[0]))
        for p in found:
            if since is None or p.stat().st_mtime >= since:
                files[p] = fmt
    return files


def parse_time(value: str, *, now: float | None = None) -> float:
    """Epoch seconds from ``2026-11-01``, ``2026-11-01T09:00``, ``...+02:00`` or an age (``7d``, ``12h``)."""
    m = _AGE.match(value.strip())
    if m:
        return (time.time() if now is None else now) - float(m.group(1)) * _UNIT[m.group(2)]
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise TraceError(f"not a time: {value!r} (use 2026-11-01, 2026-11-01T09:00 or an age such as 7d)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()
