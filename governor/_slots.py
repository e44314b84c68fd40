"""Fast constructors for frozen slotted dataclasses built in bulk (trace import).

A frozen dataclass's ``__init__`` sets each field through
``object.__setattr__(self, "name", value)``; calling each slot's descriptor
directly, unrolled, costs about half as much. Importing a trace builds one
value per recorded call, so this is most of the per-call import cost saved.
The constructor takes every field, required and keyword-only (a forgotten
field is a TypeError, as with the class itself). No ``__post_init__`` is run,
so use it only for classes without one. The engine does not use it: a
``Decision`` is built by its own constructor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def slots_constructor(cls: type[T]) -> Callable[..., T]:
    """``new(**every_field) -> cls`` that skips the frozen ``__setattr__`` detour."""
    if hasattr(cls, "__post_init__") or not hasattr(cls, "__slots__"):
        raise TypeError(f"{cls.__name__}: only for slotted dataclasses without __post_init__")
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    body = "".join(f"    _set_{n}(obj, {n})\n" for n in names)
    params = f"*, {', '.join(names)}"
    src = f"def new({params}):\n    obj = _new(_cls)\n{body}    return obj\n"
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    scope.update({f"_set_{n}": getattr(cls, n).__set__ for n in names})
    exec(src, scope)  # noqa: S102 - built from the dataclass's own field names, no outside input
    return scope["new"]  # type: ignore[no-any-return]
