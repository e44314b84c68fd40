"""A policy's revision: what exactly decided, for decision logs and diffs.

The content hash covers the canonical JSON of the merged document (after
``extends``, without the ``extends`` key), so comments, key order, anchors and
how the policy is split over files do not change it; any change of meaning
does. Git facts are added when the file lives in a work tree: HEAD's commit
and whether the policy files differ from it. Git is optional and asked once
per load; any failure just leaves the git facts out.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from governor.policy.model import Revision

_GIT_TIMEOUT_S = 3.0


def canonical_json(doc: Mapping[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k != "extends"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def content_hash(doc: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()[:12]


def _git(cwd: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(cwd), *args],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_facts(files: Iterable[str]) -> tuple[str | None, bool]:
    """(HEAD commit, dirty) for the work tree holding the first file; (None, False) without git."""
    paths = [Path(f).resolve() for f in files if f and not f.startswith("<") and Path(f).is_file()]
    if not paths:
        return None, False
    top = _git(paths[0].parent, "rev-parse", "--show-toplevel")
    head = _git(paths[0].parent, "rev-parse", "--verify", "-q", "HEAD")
    if top is None:
        return None, False
    root = Path(top.strip())
    inside = [str(p.relative_to(root)) for p in paths if p.is_relative_to(root)]
    status = _git(root, "status", "--porcelain", "--untracked-files=all", "--ignored", "--", *inside)
    dirty = bool(status and status.strip()) or head is None
    return (head.strip() if head else None), dirty


def make_revision(doc: Mapping[str, Any], files: Iterable[str]) -> Revision:
    commit, dirty = git_facts(files)
    return Revision(content_hash=content_hash(doc), git_commit=commit, git_dirty=dirty)
