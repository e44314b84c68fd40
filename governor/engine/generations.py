"""A bounded cache in two generations, for what the per-call path keeps: views, budget plans.

``young`` is a plain dict, so the hot path can read it directly; a miss goes
through :meth:`Generations.get`, which moves the entry back from ``old`` or
makes it. When ``young`` holds ``maxsize`` entries it becomes ``old`` and the
generation before is dropped. So an entry used at least once per generation
stays (a run that keeps calling keeps its budget plan), one unused
for two generations goes, and there are never more than ``2 * maxsize``.
Clearing a full cache instead made every call rebuild its plan once more runs
were active than the cache held (4x the time per call).

Not locked: two threads racing on a turnover may lose an entry, which is made
again (a plan is only a list of counters: nothing is counted twice).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Generations(Generic[K, V]):
    __slots__ = ("young", "old", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self.young: dict[K, V] = {}
        self.old: dict[K, V] = {}
        self.maxsize = maxsize

    def get(self, key: K, make: Callable[[], V]) -> V:
        """The entry of ``key``: from this generation, moved back from the last, or ``make()``."""
        value = self.young.get(key)
        if value is None:
            value = self.old.pop(key, None)
            if value is None:
                value = make()
            self.put(key, value)
        return value

    def put(self, key: K, value: V) -> None:
        if len(self.young) >= self.maxsize:
            self.old, self.young = self.young, {}
        self.young[key] = value

    def items(self) -> list[tuple[K, V]]:
        """Every entry, the older generation first."""
        return [*self.old.items(), *self.young.items()]

    def __len__(self) -> int:
        return len(self.young) + len(self.old)
