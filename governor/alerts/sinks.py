"""Delivering one alert to one sink: a JSON webhook, a Slack-compatible incoming webhook, a log line.

HTTP posts use the standard library (``urllib.request``) with the sink's timeout;
a non-2xx answer or a network error raises :class:`DeliveryError`, which the
dispatcher retries. A sink's URL is a secret (Slack's carries a token): it is
never logged, and ``url_env`` reads it from the environment at send time.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request

from governor.alerts.alert import Alert
from governor.errors import GovernorError
from governor.policy.model import AlertSink

log = logging.getLogger("governor.alerts")

USER_AGENT = "budget-governor-alerts/1"


class DeliveryError(GovernorError):
    """A sink did not take an alert (it is retried)."""


def sink_url(sink: AlertSink) -> str:
    url = sink.url or (os.environ.get(sink.url_env or "") if sink.url_env else None)
    if not url:
        raise DeliveryError(f"alert sink {sink.name}: environment variable {sink.url_env} is not set")
    return url


def slack_body(alert: Alert) -> dict[str, object]:
    """What a Slack-compatible incoming webhook takes (Slack, Mattermost, Rocket.Chat): ``text``."""
    return {"text": f":rotating_light: {alert.message}", "username": "budget-governor"}


def _post(sink: AlertSink, body: dict[str, object]) -> None:
    data = json.dumps(body).encode()
    headers = {"content-type": "application/json", "user-agent": USER_AGENT, **dict(sink.headers)}
    req = urllib.request.Request(sink_url(sink), data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=sink.timeout_s) as resp:  # noqa: S310 - the policy's URL
            resp.read()
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"alert sink {sink.name}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"alert sink {sink.name}: {type(exc).__name__}: {reason}") from None


def deliver(sink: AlertSink, alert: Alert) -> None:
    """Send ``alert`` to ``sink``; raise DeliveryError if it did not take it."""
    if sink.type == "log":
        log.warning("governor alert [%s] %s", alert.rule, alert.message, extra={"governor_alert": alert.to_json()})
    elif sink.type == "slack":
        _post(sink, slack_body(alert))
    else:
        _post(sink, alert.to_json())
