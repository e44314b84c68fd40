"""Route candidates, honestly: the spend that short calls carry, and what a reroute would cost.

Replay cannot know whether a cheaper model would have done the work, so a
route is never a measured saving. For each group of calls in scope (by the
``agent`` label, else ``task``, else ``workflow``) this reports the short calls
(input at most ``SHORT_INPUT`` tokens: short turns, classification-like
prompts), the spend they carry, and, for each ``--route-to`` model, what they
would have cost routed there: the base policy plus an enforced route, replayed
through the production path (the tokens kept, the cost scaled from what was
paid). The figure assumes every outcome unchanged; it is labelled so
everywhere it is shown, and routes are never added to the suggested policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from governor.policy.model import Policy
from governor.replay.result import CallResult, ReplayResult
from governor.replay.run import replay_policy
from governor.suggest.knobs import match_item, matches
from governor.suggest.split import Split
from governor.traces.model import TraceSet

if TYPE_CHECKING:  # pragma: no cover
    from governor.suggest.sweep import Frame

SHORT_INPUT = 3000
GROUP_KEYS = ("agent", "task", "workflow")
ASSUMPTION = "assumes the cheaper model succeeds as often: replay cannot measure this; not a measured saving"


@dataclass(frozen=True, kw_only=True)
class RouteCost:
    """What the short calls of a group would cost on one model (an assumption about outcomes)."""

    to: str
    """The model routed to (alias resolved)."""
    calls: int
    """Calls the route would send there."""
    cost_usd: float | None
    """What they would cost there (None when the model has no price)."""


@dataclass(frozen=True, kw_only=True)
class RouteCandidate:
    """A group of calls whose short calls might go to a cheaper model."""

    key: str
    """The metadata key that groups the calls (agent | task | workflow)."""
    value: str
    """The group."""
    calls: int
    """Calls of the group in scope."""
    short_calls: int
    """Those with input at most SHORT_INPUT tokens."""
    spend_usd: float
    """What the group's calls cost under the base policy (priced calls)."""
    short_spend_usd: float
    """What its short calls cost: the spend a route could touch."""
    reroutes: tuple[RouteCost, ...]
    """Per --route-to model: the same calls rerouted (an assumption, see ASSUMPTION)."""


def _group_key(calls: Sequence[CallResult], scope: Mapping[str, str]) -> str | None:
    for key in GROUP_KEYS:
        if any(key in c.call.metadata for c in calls if matches(c.call.metadata, scope)):
            return key
    return None


def route_candidates(
    base: Policy,
    base_replays: Sequence[ReplayResult],
    split: Split,
    scope: Mapping[str, str],
    route_to: Sequence[str],
    *,
    frame: Frame,
) -> tuple[RouteCandidate, ...]:
    """The groups (at most 10, largest short spend first) whose short calls carry spend, on all runs
    (``base_replays``: the base policy's replays of the fit and held-out parts)."""
    from governor.suggest.sweep import build_policy

    everything = TraceSet(split.fit.runs + split.held.runs, (), split.fit.formats, ())
    calls = [c for result in base_replays for c in result.calls()]
    key = _group_key(calls, scope)
    groups: dict[str, list[float]] = {}  # value -> [calls, short calls, spend, short spend]
    for c in calls:
        if not matches(c.call.metadata, scope) or c.verdict == "block":
            continue
        value = str(c.call.metadata.get(key, "")) if key else "all calls"
        g = groups.setdefault(value, [0, 0, 0.0, 0.0])
        g[0] += 1
        g[2] += c.cost_governed or 0.0
        if c.call.input_tokens <= SHORT_INPUT:
            g[1] += 1
            g[3] += c.cost_governed or 0.0
    targets = list(route_to) or (["cheap"] if "cheap" in base.aliases else [])
    out = []
    for value, (n, short, spend, short_spend) in sorted(groups.items(), key=lambda kv: -kv[1][3])[:10]:
        if not short:
            continue
        costs = []
        for target in targets:
            where: dict[str, object] = dict(match_item(scope))
            if key:
                where.update(match_item({key: value}))
            where["input_tokens"] = {"lte": SHORT_INPUT}
            route = {"id": "suggested-route", "match": where, "to": target}
            policy = build_policy([("routes", route)], frame)
            routed = replay_policy(policy, everything)
            moved = [c for c in routed.calls() if c.verdict == "reroute" and "suggested-route" in c.rule_ids]
            cost = None if any(c.cost_governed is None for c in moved) else sum(c.cost_governed or 0.0 for c in moved)
            costs.append(RouteCost(to=policy.resolve(target), calls=len(moved), cost_usd=cost))
        out.append(
            RouteCandidate(
                key=key or "",
                value=value,
                calls=int(n),
                short_calls=int(short),
                spend_usd=spend,
                short_spend_usd=short_spend,
                reroutes=tuple(costs),
            )
        )
    return tuple(out)
