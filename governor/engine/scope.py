"""The run scope: ``with gov.run(...)`` sets metadata for every check inside it.

It lives in a ``contextvars.ContextVar``, so it follows threads (each thread
starts empty) and asyncio tasks (each task copies its creator's context).
Scopes nest: the inner scope's metadata overrides the outer's key by key, and
the chain of run ids (outermost first) is kept so run-scoped budgets and
stop conditions also charge every enclosing run.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from governor import inputs


@dataclass(frozen=True, slots=True)
class Scope:
    metadata: Mapping[str, Any] = field(default_factory=dict)
    run_chain: tuple[str, ...] = ()  # outermost first; the last is the current run


EMPTY = Scope()
_current: contextvars.ContextVar[Scope] = contextvars.ContextVar("governor_scope", default=EMPTY)


def current() -> Scope:
    return _current.get()


@contextmanager
def run_scope(
    run_id: str | None = None,
    *,
    user: str | None = None,
    team: str | None = None,
    task: str | None = None,
    **metadata: Any,
) -> Iterator[Scope]:
    """Enter a (possibly nested) run. Keyword arguments that are None are not set."""
    outer = _current.get()
    merged = dict(outer.metadata)
    for key, value in (("user", user), ("team", team), ("task", task)):
        if value is not None:
            merged[key] = value
    merged.update((k, v) for k, v in metadata.items() if v is not None)
    if run_id is not None:
        merged["run_id"] = run_id
    merged = dict(inputs.scope_metadata(merged, "run"))  # InvalidCall at the `with`, naming the key
    chain = outer.run_chain
    if run_id is not None:
        run_id = merged["run_id"]
        if not chain or chain[-1] != run_id:
            chain = chain + (run_id,)
    scope = Scope(merged, chain)
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)


def resolve(metadata: Mapping[str, Any] | None) -> tuple[Mapping[str, Any], tuple[str, ...]]:
    """The effective metadata of one check and its run chain.

    Metadata given to the check overrides the scope's. An explicit ``run_id``
    that differs from the scope's current run is treated as a run nested in it.
    """
    scope = _current.get()
    if not metadata:
        return scope.metadata, scope.run_chain
    chain = scope.run_chain
    # a copy: the Decision keeps it, and a caller reusing its dict must not change a past call
    merged = {**scope.metadata, **metadata} if scope.metadata else dict(metadata)
    run_id = metadata.get("run_id")
    if run_id is not None:
        run_id = str(run_id)
        if not chain or chain[-1] != run_id:
            chain = chain + (run_id,)
    return merged, chain
