"""budget-governor: a policy-as-code budget governor for LLM calls.

The public API is listed in ``__all__``. Heavy pieces (litellm, the engine)
load lazily, so ``import governor`` stays cheap and never imports litellm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from governor.decision import AuditNote, Decision
from governor.errors import (
    BudgetExceeded,
    CallBlocked,
    ContextTooLarge,
    CostCapExceeded,
    Finding,
    GovernorError,
    InvalidCall,
    LedgerError,
    OperatorError,
    PolicyError,
    PricingError,
    StopConditionHit,
    StoreUnavailable,
    TraceError,
    UnpricedModel,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "AuditNote",
    "BudgetExceeded",
    "CallBlocked",
    "ContextTooLarge",
    "CostCapExceeded",
    "Decision",
    "Finding",
    "Governor",
    "GovernorError",
    "InvalidCall",
    "LedgerError",
    "OperatorError",
    "PolicyError",
    "PricingError",
    "StopConditionHit",
    "StoreUnavailable",
    "TraceError",
    "UnpricedModel",
    "load_policy",
]

if TYPE_CHECKING:  # pragma: no cover
    from governor.engine.governor import Governor
    from governor.policy.loader import load_policy

_LAZY = {
    "Governor": ("governor.engine.governor", "Governor"),
    "load_policy": ("governor.policy.loader", "load_policy"),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'governor' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value
