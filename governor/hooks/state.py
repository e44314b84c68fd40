"""The hook's state between events: one JSON file per session, updated under an exclusive lock.

Claude Code runs a hook for each tool call, and for parallel tool calls at the
same time: the lock (``fcntl.flock`` on ``<file>.lock``) makes each event's
read-account-write one step. A state file that cannot be read (corrupt,
foreign) is set aside as ``<file>.bad`` and the session starts over from
offset 0; calls are charged once even then, because the ledger keeps the ids
of settled calls.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

VERSION = 1


def default_dir() -> Path:
    """``$GOVERNOR_HOOK_STATE_DIR``, else ``$XDG_CACHE_HOME/budget-governor/hooks`` (``~/.cache`` by default)."""
    env = os.environ.get("GOVERNOR_HOOK_STATE_DIR")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "budget-governor" / "hooks"


def state_path(directory: Path, agent: str, session: str) -> Path:
    digest = hashlib.sha256(session.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return directory / f"{agent}-{digest}.json"


@contextlib.contextmanager
def locked_state(path: Path) -> Iterator[dict[str, Any]]:
    """The state at ``path`` (empty when new), locked; written back atomically when the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state: dict[str, Any] = {}
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raw = b""
        if raw:
            try:
                doc = json.loads(raw)
                if not isinstance(doc, dict) or doc.get("version") != VERSION:
                    raise ValueError("not a version-1 hook state")
                state = doc
            except ValueError:
                os.replace(path, path.with_suffix(".bad"))
        state["version"] = VERSION
        yield state
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(state, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)
