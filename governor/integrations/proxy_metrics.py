"""``GET /metrics`` on the litellm proxy: the governor's metrics in the Prometheus text format.

The proxy handler calls :func:`enable` when it is built. The governor's
instruments go to prometheus_client's global registry, the one litellm's own
Prometheus callback fills too, so one scrape of ``/metrics`` shows both. If a
``/metrics`` route exists already (litellm's), it is kept; otherwise we add one.
litellm's middleware guards ``/metrics`` either way: a scrape needs a key
(``Authorization: Bearer sk-...``) unless ``litellm_settings.require_auth_for_metrics_endpoint: false``.

Environment: ``GOVERNOR_METRICS=off`` leaves metrics out; ``GOVERNOR_METRICS_LABELS=team,user``
copies those metadata keys onto call, spend and token series (opt-in: they multiply
series); ``GOVERNOR_METRICS_PER_SCOPE=1`` gives budget gauges one series per scope value.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

log = logging.getLogger("governor.integrations.litellm_proxy")

METRICS_ENV = "GOVERNOR_METRICS"
LABELS_ENV = "GOVERNOR_METRICS_LABELS"
PER_SCOPE_ENV = "GOVERNOR_METRICS_PER_SCOPE"
PATH = "/metrics"


def _off(value: str) -> bool:
    return value.strip().lower() in ("0", "off", "false", "no")


def enable(governor: Any) -> Any:
    """Instrument ``governor`` and serve ``/metrics`` on the proxy app; the metrics, or None when off."""
    if _off(os.environ.get(METRICS_ENV, "on")):
        return None
    from governor.metrics import instrument

    labels = tuple(k.strip() for k in os.environ.get(LABELS_ENV, "").split(",") if k.strip())
    per_scope = not _off(os.environ.get(PER_SCOPE_ENV, "0"))
    metrics = instrument(governor, labels=labels, per_scope=per_scope)
    try:
        from litellm.proxy.proxy_server import app
    except Exception:  # not running inside the proxy (a test, a script): metrics only
        return metrics
    if any(getattr(r, "path", None) == PATH for r in app.router.routes):
        return metrics  # litellm's own /metrics serves the same registry
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def endpoint(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        body = await asyncio.to_thread(metrics.exposition)  # gauges read the ledger: off the event loop
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app.router.routes.insert(0, Route(PATH, endpoint, methods=["GET"], include_in_schema=False))
    return metrics


__all__ = ["enable"]
