"""Lazy access to litellm.

``import governor`` must stay light (litellm costs ~3 s and ~170 MB to import),
so litellm is imported here, on first use only. Before the import we make
litellm use the price map bundled with the installed package instead of
fetching one over the network, unless the user set the variable themselves.
"""

from __future__ import annotations

import os
from functools import lru_cache
from types import ModuleType


@lru_cache(maxsize=1)
def litellm() -> ModuleType:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm as _litellm  # noqa: PLC0415  (deliberately lazy)

    return _litellm


def model_cost_table() -> dict:
    """litellm's price and context-window table (``litellm.model_cost``)."""
    return litellm().model_cost
