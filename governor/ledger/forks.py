"""What each ledger (and the governor) does in a child process after ``fork()``.

A forked child inherits its parent's objects as they were at that instant: a
lock another thread held stays held forever, a SQLite connection or a Redis
socket is shared with the parent (two processes talking over one connection
corrupt it), and ids the parent hands out would be handed out again. Each such
object registers a method here; ``os.register_at_fork(after_in_child=...)``
calls it in the child, for every object still alive.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_hooks: weakref.WeakKeyDictionary[Any, Callable[[Any], None]] = weakref.WeakKeyDictionary()
_hooks_lock = threading.Lock()


def after_fork_in_child(obj: T, method: Callable[[T], None]) -> None:
    """Call ``method(obj)`` in every child forked while ``obj`` is alive (``obj`` is held weakly)."""
    with _hooks_lock:
        _hooks[obj] = method


def _run_hooks() -> None:
    global _hooks_lock
    _hooks_lock = threading.Lock()  # the parent's may have been held at the fork
    for obj, method in list(_hooks.items()):
        method(obj)


os.register_at_fork(after_in_child=_run_hooks)
