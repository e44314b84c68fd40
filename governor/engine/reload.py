"""The opt-in policy file watcher: a daemon thread polling the file's mtime.

Polling (not inotify) keeps it dependency-free and works on every platform
and on mounted config maps. A change triggers ``gov.reload()``; a policy that
fails validation is logged and never replaces the running one.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Callable, Sequence

log = logging.getLogger("governor.engine")


def _mtimes(paths: Sequence[str]) -> tuple[float, ...]:
    out = []
    for p in paths:
        try:
            out.append(os.stat(p).st_mtime_ns)
        except OSError:
            out.append(-1)
    return tuple(out)


class PolicyWatcher:
    """Calls ``reload`` whenever one of ``paths()`` changes; ``stop()`` ends it."""

    def __init__(self, paths: Callable[[], Sequence[str]], reload: Callable[[], bool], interval_s: float = 2.0) -> None:
        self._paths = paths
        self._reload = reload
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._seen = _mtimes(paths())
        self._thread = threading.Thread(target=self._loop, name="governor-policy-watcher", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.poll()

    def poll(self) -> bool | None:
        """Reload if a watched file changed; the reload's result, or None when nothing changed."""
        current = _mtimes(self._paths())
        if current == self._seen:
            return None
        self._seen = current
        try:
            ok = self._reload()
        except Exception:  # the watcher must never die
            log.exception("policy reload failed")
            return False
        self._seen = _mtimes(self._paths())  # extends may have changed the file list
        return ok

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
