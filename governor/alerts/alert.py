"""The alert a sink receives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

KINDS = ("budget_threshold", "stop", "store_outage", "overrun")


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """One alert: what happened, to which budget and scope, under which policy revision."""

    kind: str
    """budget_threshold | stop | store_outage | overrun."""
    rule: str
    """The alert rule (``alerts.rules[].id``) that sent it."""
    policy: str
    """The policy's name."""
    revision: str
    """The policy revision that was running."""
    message: str
    """One line for people (the Slack text and the log line)."""
    ts: float
    """When it was detected (epoch seconds)."""
    budget: str | None = None
    """The budget (budget_threshold), else None."""
    scope: str | None = None
    """The scope value, e.g. ``team=platform`` (budget_threshold)."""
    threshold: float | None = None
    """The fraction of the limit crossed (budget_threshold)."""
    utilization: float | None = None
    """used / limit when detected, the largest over the limited metrics (budget_threshold)."""
    spend_usd: float | None = None
    """USD used in the window (settled plus in flight), or the call's actual cost (overrun)."""
    limit_usd: float | None = None
    """The budget's USD limit, or the call's reserved worst case (overrun)."""
    window_end: float | None = None
    """When the budget's window resets (None: no window)."""
    stop: str | None = None
    """The stop condition that fired (stop)."""
    run_id: str | None = None
    """The run it stopped (stop) or the call's run (overrun)."""
    model: str | None = None
    """The model of the call (overrun)."""
    decision_id: str | None = None
    """The decision that triggered it, when one did."""
    detail: str | None = None
    """The governor's own reason text (stop, store_outage)."""

    def to_json(self) -> dict[str, Any]:
        """The webhook body: every field, times as ISO 8601 UTC, None fields left out."""
        out: dict[str, Any] = {"type": "governor.alert"}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value is None:
                continue
            out[name] = _iso(value) if name in ("ts", "window_end") else value
        return out
