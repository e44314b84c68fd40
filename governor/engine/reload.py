"""Reloading a running governor: loading with the error logged, the opt-in file
watcher, and the observers a governor registers by itself.

The watcher is a daemon thread polling mtimes: polling (not inotify) keeps it
dependency-free and works on every platform and on mounted config maps. A
change triggers ``gov.reload()``; a policy that fails validation is logged and
never replaces the running one.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from governor.errors import PolicyError

if TYPE_CHECKING:  # pragma: no cover
    from governor.policy.model import Policy

log = logging.getLogger("governor.engine")


def load_or_log(path: str, running_revision: str) -> Policy | None:
    """The policy at ``path``, or None (with the findings logged) when it is invalid."""
    from governor.policy.loader import load_policy

    try:
        return load_policy(path)
    except PolicyError as exc:
        log.error("policy reload rejected; still serving revision %s:\n%s", running_revision, exc)
        return None
    except Exception:  # noqa: BLE001 - a reload never raises: whatever went wrong, the running policy stays
        log.exception("policy reload failed; still serving revision %s", running_revision)
        return None


def watched_files(policy: Policy, path: str | None) -> Sequence[str]:
    """The policy file and every file it extends (what a change must trigger on)."""
    files = tuple(getattr(policy, "source_files", ()) or ())
    return files or ((path,) if path else ())


def default_observers() -> list[Callable[[Any], Any]]:
    """The OpenTelemetry span observer, when opentelemetry and our integration are installed."""
    try:
        if importlib.util.find_spec("opentelemetry") is None:
            return []
        if importlib.util.find_spec("governor.integrations.otel") is None:
            return []
        from importlib import import_module

        observer = getattr(import_module("governor.integrations.otel"), "span_observer", None)
    except Exception:
        log.exception("could not load the OpenTelemetry observer")
        return []
    return [observer] if callable(observer) else []


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
