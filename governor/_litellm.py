"""Lazy access to litellm, leaving the host process as it found it.

``import governor`` must stay light (litellm costs ~3 s and ~170 MB to import),
so litellm is imported here, on first use only, and only by the code that
calls it (the litellm adapters; pricing reads litellm's bundled price file
without importing litellm).

The one thing we do to litellm, and only when the governor is the first to
import it and ``LITELLM_LOCAL_MODEL_COST_MAP`` is unset: the import runs with
that variable set to ``True``, so litellm loads the price map bundled with the
installed package instead of fetching one over the network (with retries,
seconds when offline) at import. The variable is removed again as soon as the
import returns, so ``os.environ`` (and every subprocess) is as the user left
it. A user who imported litellm first, or set the variable (either way), gets
exactly litellm's own behaviour. Nothing else is set: no litellm globals,
callbacks or log levels.
"""

from __future__ import annotations

import os
import sys
import threading
from types import ModuleType
from typing import Any

_VAR = "LITELLM_LOCAL_MODEL_COST_MAP"
_lock = threading.Lock()


def litellm() -> ModuleType:
    """The litellm module, imported on first use (with the bundled price map when nobody chose one)."""
    module = sys.modules.get("litellm")
    if module is not None and getattr(module, "model_cost", None) is not None:
        return module
    with _lock:
        if _VAR in os.environ:
            import litellm as _litellm  # noqa: PLC0415  (deliberately lazy)

            imported: ModuleType = _litellm
            return imported
        os.environ[_VAR] = "True"
        try:
            import litellm as _litellm  # noqa: PLC0415
        finally:
            os.environ.pop(_VAR, None)
        loaded: ModuleType = _litellm
        return loaded


def model_cost_table() -> dict[str, Any]:
    """litellm's price and context-window table (``litellm.model_cost``)."""
    table: dict[str, Any] = litellm().model_cost
    return table
