"""Policies named as files or as ``REV:path`` git revisions of the current repository.

A revision is read by extracting the policy's directory at that revision into
a temporary directory (``git archive``), so ``extends`` resolves against files
of the same revision, never the work tree.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

from governor.errors import GovernorError
from governor.policy.model import Policy


def _git(cwd: Path, *args: str) -> bytes:
    try:
        proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise GovernorError(f"git {' '.join(args)}: {exc}") from exc
    if proc.returncode != 0:
        raise GovernorError(f"git {' '.join(args)}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def split_ref(ref: str) -> tuple[str, str] | None:
    """``("REV", "path")`` for a ``REV:path`` argument that is not an existing file; else None."""
    if Path(ref).exists() or ":" not in ref:
        return None
    rev, _, path = ref.partition(":")
    if not rev or not path or len(rev) == 1 and ref[1:3] in (":\\", ":/"):
        return None  # a Windows drive letter, not a revision
    return rev, path


def load_policy_ref(ref: str, *, cwd: str | Path = ".") -> Policy:
    """Load a policy from a file path, or from ``REV:path`` in the git repository around ``cwd``."""
    from governor.policy.loader import load_policy

    parts = split_ref(ref)
    if parts is None:
        if not Path(ref).is_file():
            raise GovernorError(f"{ref}: no such policy file (or REV:path git revision)")
        return load_policy(ref)
    rev, path = parts
    root = Path(_git(Path(cwd), "rev-parse", "--show-toplevel").decode().strip())
    prefix = _git(Path(cwd), "rev-parse", "--show-prefix").decode().strip()
    rel = (Path(prefix) / path).as_posix() if not path.startswith("/") else path.lstrip("/")
    _git(root, "cat-file", "-e", f"{rev}:{rel}")  # a clear error when the file is not in that revision
    archive = _git(root, "archive", "--format=tar", rev, "--", str(Path(rel).parent) if "/" in rel else ".")
    with tempfile.TemporaryDirectory(prefix="governor-rev-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        return load_policy(str(Path(tmp) / rel), source=f"{rev}:{rel}")
