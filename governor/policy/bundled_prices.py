"""litellm's price table for validation, without importing litellm when possible.

Importing litellm costs seconds; ``governor validate`` only needs to know
which models have a price. When litellm is already imported we use its live
``litellm.model_cost`` (which may hold the user's registrations); otherwise we
read the JSON file bundled with the installed litellm the same way litellm
does with ``LITELLM_LOCAL_MODEL_COST_MAP=True``: parse it, drop the
``fallback_generalizations`` block, and expand each entry's ``aliases`` and the
``alias_of`` pointer rows into top-level names (existing names win). A test asserts that the result equals
``litellm.model_cost`` for the installed version.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

_FILE = "model_prices_and_context_window_backup.json"
_RESERVED = "fallback_generalizations"


def litellm_price_table() -> Mapping[str, Any]:
    """litellm's price table: the live one if litellm is imported, else its bundled file.

    The bundled file is what litellm itself uses with
    ``LITELLM_LOCAL_MODEL_COST_MAP=True`` (our default); a user who sets that
    variable to false gets litellm's remote map, fetched by litellm.
    """
    module = sys.modules.get("litellm")
    cost = getattr(module, "model_cost", None) if module is not None else None
    if isinstance(cost, Mapping):
        return cost
    if os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP", "true").strip().lower() not in ("true", "1", "yes"):
        # the user asked litellm for its remote price map: let litellm fetch it
        from governor._litellm import model_cost_table

        return model_cost_table()
    try:
        return _bundled()
    except (OSError, ValueError, ModuleNotFoundError):  # no bundled file: ask litellm itself
        from governor._litellm import model_cost_table

        return model_cost_table()


def bundled_file() -> Path:
    """The price file bundled with the installed litellm, found without importing litellm."""
    spec = importlib.util.find_spec("litellm")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("litellm")
    return Path(next(iter(spec.submodule_search_locations))) / _FILE


def uses_bundled_file() -> bool:
    """Whether :func:`litellm_price_table` reads :func:`bundled_file` (litellm not imported, local map)."""
    module = sys.modules.get("litellm")
    if module is not None and isinstance(getattr(module, "model_cost", None), Mapping):
        return False
    return os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP", "true").strip().lower() in ("true", "1", "yes")


@lru_cache(maxsize=1)
def _bundled() -> dict[str, Any]:
    path = bundled_file()
    table: dict[str, Any] = json.loads(path.read_bytes())
    table.pop(_RESERVED, None)
    return _expand_aliases(table)


def _expand_aliases(table: dict[str, Any]) -> dict[str, Any]:
    """Alias names as litellm serves them: an entry's ``aliases`` list names it again, and a row
    ``{"alias_of": "<model>"}`` (litellm >= 1.110) is served as that model's entry. An alias never
    replaces a real entry nor one claimed before it; a pointer to nothing (or to a pointer) is dropped."""
    pointers = {
        name: entry["alias_of"]
        for name, entry in table.items()
        if isinstance(entry, dict) and isinstance(entry.get("alias_of"), str)
    }
    owners: dict[str, str] = {}
    for name, entry in table.items():
        if name in pointers or not isinstance(entry, dict):
            continue
        aliases = entry.pop("aliases", None)
        for alias in aliases if isinstance(aliases, list) else ():
            if (alias in table and alias not in pointers) or alias in owners:
                continue
            owners[alias] = name
    for alias, target in pointers.items():
        if target in table and target not in pointers and alias not in owners:
            owners[alias] = target
    for alias in pointers.keys() - owners.keys():
        del table[alias]
    for alias, owner in owners.items():
        table[alias] = table[owner]
    return table


class LazyPriceTable(Mapping[str, Any]):
    """:func:`litellm_price_table`, read on first lookup (a policy pricing all its models never reads it)."""

    def __getitem__(self, model: str) -> Any:
        return litellm_price_table()[model]

    def __iter__(self) -> Iterator[str]:
        return iter(litellm_price_table())

    def __len__(self) -> int:
        return len(litellm_price_table())
