"""A starting state for replay and policy tests: spend already on the budgets' counters.

File (YAML or JSON)::

    spend:
      - budget: per-user-daily   # a budget id of the policy
        value: alice             # the scope value (user, team, run id, tag, metadata value); omit for global
        usd: 12.5                # any of usd / tokens / calls
        calls: 3
        at: 1761897600           # epoch seconds or ISO-8601 (UTC if no zone); default: the replay's start

The spend is settled into the ledger through the ledger protocol, under the
same counter keys the engine uses, so windows and limits apply as in production.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from governor.errors import GovernorError
from governor.ledger.base import Amount, Ledger, usd_to_nano
from governor.policy.model import Policy


def _time(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise GovernorError(f"{where}.at: not epoch seconds or ISO-8601: {value!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def load_state(path: str | Path) -> Mapping[str, Any]:
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise GovernorError(f"{p}: cannot read state file: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise GovernorError(f"{p}: state file must be a mapping with a 'spend' list")
    return data


def apply_spend(policy: Policy, ledger: Ledger, spend: Any, *, now: float, source: str = "state") -> int:
    """Settle prior spend into ``ledger``; returns how many entries were applied."""
    from governor.engine.compiled import CompiledBudget

    if spend is None:
        return 0
    if not isinstance(spend, list):
        raise GovernorError(f"{source}: 'spend' must be a list")
    budgets = {b.id: b for b in policy.budgets}
    for i, entry in enumerate(spend):
        where = f"{source}: spend[{i}]"
        if not isinstance(entry, Mapping):
            raise GovernorError(f"{where}: must be a mapping")
        bid = entry.get("budget")
        if bid not in budgets:
            known = ", ".join(budgets) or "none"
            raise GovernorError(f"{where}.budget: unknown budget id {bid!r} (policy budgets: {known})")
        unknown = set(entry) - {"budget", "value", "usd", "tokens", "calls", "at"}
        if unknown:
            raise GovernorError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        counter = CompiledBudget(budgets[bid]).counter("" if entry.get("value") is None else str(entry["value"]))
        amount = Amount(
            usd_to_nano(float(entry.get("usd") or 0.0)), int(entry.get("tokens") or 0), int(entry.get("calls") or 0)
        )
        at = _time(entry.get("at"), where)
        at = now if at is None else at
        ledger.settle(f"state-{i}-{bid}", [counter], amount, now=at, reserved_at=at)
    return len(spend)
