"""The compiled-at-load policy, kept between hook processes so an event does not validate it again.

A hook is a new process per event; validating the policy (YAML, JSON Schema,
semantics) is most of what a cold event costs. The validated
:class:`~governor.policy.model.Policy` is pickled in the state directory with
the size, mtime and SHA-256 of every file it was built from (the policy and
what it extends); an event whose files all still match loads it from there,
any change loads and validates the files again. The cache is the user's own
state directory, written by this same code: it is not a place for foreign files.
"""

from __future__ import annotations

import copyreg
import hashlib
import io
import os
import pickle
import types
from pathlib import Path
from typing import Any

from governor.policy.model import Policy

VERSION = 1


def _proxy(items: dict[Any, Any]) -> types.MappingProxyType[Any, Any]:
    return types.MappingProxyType(items)


def _dumps(value: Any) -> bytes:
    """Pickle with read-only mappings as copies (a private dispatch table: nothing global changes)."""
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {**copyreg.dispatch_table, types.MappingProxyType: lambda m: (_proxy, (dict(m),))}
    pickler.dump(value)
    return buf.getvalue()


def _stamp(files: list[str]) -> list[tuple[str, int, int, str]] | None:
    out = []
    for name in files:
        try:
            st = os.stat(name)
            digest = hashlib.sha256(Path(name).read_bytes()).hexdigest()
        except OSError:
            return None
        out.append((os.path.abspath(name), st.st_size, st.st_mtime_ns, digest))
    return out


def load_cached(path: str, cache_dir: Path) -> Policy:
    """The policy at ``path``: from the cache when its files are unchanged, else loaded (and cached)."""
    key = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:24]
    cache = cache_dir / f"policy-{key}.pickle"
    try:
        doc: Any = pickle.loads(cache.read_bytes())
        if (
            isinstance(doc, dict)
            and doc.get("version") == VERSION
            and isinstance(doc.get("policy"), Policy)
            and doc.get("stamp") == _stamp([f for f, *_ in doc["stamp"]])
        ):
            policy: Policy = doc["policy"]
            return policy
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError):
        pass
    from governor.engine.reload import watched_files
    from governor.policy.loader import load_policy

    policy = load_policy(path)
    stamp = _stamp(list(watched_files(policy, path)))
    if stamp is not None:
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(_dumps({"version": VERSION, "policy": policy, "stamp": stamp}))
            os.replace(tmp, cache)
        except (OSError, pickle.PicklingError, TypeError, AttributeError):
            pass  # an uncacheable policy is loaded each time: slower, never wrong
    return policy
