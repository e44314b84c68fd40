"""Graded alerts, sent off the call path. The package's map:

* :mod:`governor.alerts.alert` -- :class:`Alert`, the value a sink receives (JSON and text forms).
* :mod:`governor.alerts.sinks` -- delivery to a JSON webhook, a Slack-compatible incoming webhook, or a log line.
* :mod:`governor.alerts.dispatcher` -- the bounded queue, the background sender, retries with backoff,
  and the sent / failed / dropped counts.
* :mod:`governor.alerts.detect` -- :class:`AlertWatcher`: a governor's decision and record observers put
  jobs on the queue; the sender's thread turns them into alerts (reading the ledger, claiming each
  alert's marker there so every process sharing the ledger sends it once).

A governor whose policy has an ``alerts:`` section attaches a watcher by itself
(``Governor.alerts``); see docs/operations.md for the format and examples.
"""

from __future__ import annotations

from governor.alerts.alert import Alert
from governor.alerts.detect import AlertWatcher, attach_alerts
from governor.alerts.dispatcher import Dispatcher

__all__ = ["Alert", "AlertWatcher", "Dispatcher", "attach_alerts"]
