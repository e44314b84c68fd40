"""Stage 2: routing. Routes are tried in policy order; the first enforced one that matches wins.

An audit-mode route that matches first notes where it would have sent the call
(once: the first audit route that matches) and routing goes on.
"""

from __future__ import annotations

from governor.engine.compiled import View
from governor.engine.match import CallContext
from governor.engine.work import Work


def route_stage(view: View, w: Work, ctx: CallContext) -> None:
    """Send ``w`` to the model of the first matching enforced route of ``view`` (and its fallbacks)."""
    requested = w.model
    audited = False
    for route in view.routes:
        if route.dynamic is not None and not route.dynamic(ctx):
            continue
        rule = route.rule
        if route.audit:
            if not audited:
                if rule.to != requested:  # a route to the requested model would change nothing: no note
                    w.note(route.id, "reroute", f"route {route.id}: would send {requested} to {rule.to}", rule.to)
                audited = True
            continue
        if rule.to != requested:
            w.change(route.id, route.route_reason(requested))
        else:
            w.rule_ids.append(route.id)
        w.model = rule.to
        w.fallbacks = rule.fallbacks
        return
