"""From decisions and settled calls to alerts: :class:`AlertWatcher`.

The watcher is a decision observer and a record observer of one governor. On
the call path it only looks at the event and submits a job (a closure) to the
:class:`~governor.alerts.dispatcher.Dispatcher`; the job runs on the sender's
thread, where it may read the ledger:

* ``on: budget`` -- after a call settled, each budget counter it was charged to
  is read (``usage``); for each threshold at or under its fraction the watcher
  claims the marker ``alert|rule|sink|counter|window period|threshold`` in the
  ledger (``claim``: once across every process sharing it) and sends the highest
  threshold it won. A budget that blocks a call counts as 1.0 (it is exhausted
  for that call). Counters already waiting in the queue are not queued twice.
* ``on: stop`` -- a stop condition blocked a run: once per rule, stop and run.
* ``on: overrun`` -- a call cost more than its reserved worst case: once per call.
* ``on: store_outage`` -- the budget store was down at a check or a record; the
  store cannot hold a marker then, so each process sends at most one per ``every``.

The rules and sinks are read from the governor's running policy at each event,
so a reload changes them without a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING, Any

from governor.alerts.alert import Alert
from governor.alerts.dispatcher import Delivery, Dispatcher
from governor.decision import Decision
from governor.engine.events import Recorded, store_outage
from governor.errors import LedgerError
from governor.ledger.base import Counter, nano_to_usd
from governor.ledger.windows import window_period
from governor.policy.model import AlertRule, AlertsSpec

if TYPE_CHECKING:  # pragma: no cover
    from governor.engine.governor import Governor

log = logging.getLogger("governor.alerts")

FOREVER_S = 400 * 86400.0  # how long a marker of a budget without a window is kept
MARK_MARGIN_S = 60.0  # a window's markers outlive it by this much
EVENT_MARK_S = 86400.0  # stop and overrun markers


def _when(ts: float | None) -> str:
    if ts is None:
        return "never (no window)"
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


class AlertWatcher:
    """Watches one governor and sends the alerts its policy asks for (see the module docstring)."""

    def __init__(self, gov: Governor, spec: AlertsSpec, dispatcher: Dispatcher | None = None) -> None:
        self.gov = gov
        self.dispatcher = dispatcher or Dispatcher(
            queue_size=spec.queue, retries=spec.retries, backoff_s=spec.backoff_s
        )
        self._queued: set[str] = set()  # counter keys waiting for a threshold job
        self._lock = threading.Lock()
        self._outage_sent: dict[str, float] = {}
        gov.add_observer(self.on_decision)
        gov.add_record_observer(self.on_record)

    # -- the running policy's rules -------------------------------------------------
    def _rules(self, on: str) -> list[AlertRule]:
        spec = self.gov.policy.alerts
        return [r for r in spec.rules if r.on == on] if spec is not None else []

    def _deliveries(self, rule: AlertRule, alert: Alert, mark: str | None, until: float) -> list[Delivery]:
        """One delivery per sink of ``rule`` whose marker (``mark`` + sink) this process won."""
        spec = self.gov.policy.alerts
        out = []
        for name in rule.to:
            sink = spec.sinks.get(name) if spec is not None else None
            if sink is None:
                continue
            if mark is None:
                out.append(Delivery(sink=sink, alert=alert))
                continue
            key = f"alert|{rule.id}|{name}|{mark}"
            if self._claim(key, alert.ts, until):
                out.append(Delivery(sink=sink, alert=alert, on_fail=partial(self._unclaim, key)))
        return out

    def _claim(self, key: str, now: float, until: float) -> bool:
        try:
            return self.gov.ledger.claim(key, now=now, until=until)
        except LedgerError as exc:
            log.warning("alert marker %s: store unavailable (%s); not sent", key.split("|")[1], exc)
            return False

    def _unclaim(self, key: str) -> None:
        try:
            self.gov.ledger.unclaim(key)
        except LedgerError:
            pass  # it expires with its window

    def _base(self, d: Decision, now: float) -> dict[str, Any]:
        return {
            "policy": d.policy_name or self.gov.policy.name,
            "revision": d.revision,
            "ts": now,
            "decision_id": d.decision_id,
        }

    # -- observers (the call path: look, submit, return) ------------------------------
    def on_decision(self, d: Decision) -> None:
        if d.blocked and d.block_kind == "budget" and self._rules("budget"):
            counters = self._counters_of(d)
            if counters:
                self._submit_thresholds(counters, d, blocked=d.blocked_by)
        elif d.blocked and d.block_kind == "stop" and self._rules("stop"):
            self.dispatcher.submit(lambda: self._stop(d))
        if store_outage(d) and self._rules("store_outage"):
            detail = (
                d.reasons[0]
                if d.block_kind == "store" and d.reasons
                else next((w for w in d.warnings if "store" in w), "budget store is down")
            )
            self.dispatcher.submit(lambda: self._outage(d, detail))

    def on_record(self, r: Recorded) -> None:
        if r.counters and self._rules("budget"):
            self._submit_thresholds(r.counters, r.decision, blocked=None)
        if r.overrun_usd > 0 and self._rules("overrun"):
            self.dispatcher.submit(lambda: self._overrun(r))
        if r.ledger_error and self._rules("store_outage"):
            self.dispatcher.submit(lambda: self._outage(r.decision, "budget store is down: a settlement was queued"))

    def _submit_thresholds(self, counters: Sequence[Counter], d: Decision, blocked: str | None) -> None:
        with self._lock:
            fresh = [c for c in counters if c.key not in self._queued or c.budget_id == blocked]
            if not fresh:
                return
            self._queued.update(c.key for c in fresh)
        if not self.dispatcher.submit(lambda: self._thresholds(fresh, d, blocked)):
            with self._lock:
                self._queued.difference_update(c.key for c in fresh)

    def _counters_of(self, d: Decision) -> list[Counter]:
        """The counters of the budget that blocked ``d`` (for the 1.0 threshold)."""
        for b in self.gov._compiled.budgets:
            if b.id == d.blocked_by and b.scope != "call":
                run = d.metadata.get("run_id")
                return list(b.counters_for(d.metadata, (str(run),) if run is not None else ()))
        return []

    # -- jobs (the sender's thread) ---------------------------------------------------
    def _thresholds(self, counters: Sequence[Counter], d: Decision, blocked: str | None) -> Iterable[Delivery]:
        with self._lock:
            self._queued.difference_update(c.key for c in counters)
        now = self.gov._clock()
        out: list[Delivery] = []
        for c in counters:
            rules = [r for r in self._rules("budget") if not r.budgets or c.budget_id in r.budgets]
            if not rules:
                continue
            try:
                used = self.gov.ledger.usage(c, now=now)
            except LedgerError as exc:
                log.warning("budget %s: store unavailable while checking alert thresholds (%s)", c.budget_id, exc)
                continue
            frac = c.limit.fraction(used)
            if blocked == c.budget_id:
                frac = max(frac, 1.0)
            period, end = window_period(c.window, now)
            until = (end if end is not None else now + FOREVER_S) + MARK_MARGIN_S
            scope = c.key.partition("|")[2]
            limit = None if c.limit.usd_nano is None else nano_to_usd(c.limit.usd_nano)
            for rule in rules:
                crossed = [t for t in rule.thresholds if frac >= t]
                if not crossed:
                    continue
                spec = self.gov.policy.alerts
                for name in rule.to:
                    sink = spec.sinks.get(name) if spec is not None else None
                    if sink is None:
                        continue
                    won = None
                    for t in crossed:  # the lower ones are claimed too: the highest says it all
                        key = f"alert|{rule.id}|{name}|{c.key}|{period}|{t:g}"
                        if self._claim(key, now, until):
                            won = (t, key)
                    if won is None:
                        continue
                    t, key = won
                    what = f"${used.usd:.2f} of ${limit:.2f}" if limit is not None else self._used_text(c, used)
                    verb = "blocked a call" if blocked == c.budget_id else f"at {frac:.0%} of its limit"
                    alert = Alert(
                        kind="budget_threshold",
                        rule=rule.id,
                        budget=c.budget_id,
                        scope=scope,
                        threshold=t,
                        utilization=round(frac, 6),
                        spend_usd=used.usd,
                        limit_usd=limit,
                        window_end=end,
                        message=(
                            f"budget {c.budget_id} ({scope}) {verb}: {what}, crossed {t:.0%}; "
                            f"window resets {_when(end)} [policy {d.policy_name} {d.revision}]"
                        ),
                        **self._base(d, now),
                    )
                    out.append(Delivery(sink=sink, alert=alert, on_fail=partial(self._unclaim, key)))
        return out

    @staticmethod
    def _used_text(c: Counter, used: Any) -> str:
        if c.limit.tokens is not None:
            return f"{used.tokens} of {c.limit.tokens} tokens"
        return f"{used.calls} of {c.limit.calls} calls"

    def _stop(self, d: Decision) -> Iterable[Delivery]:
        now = self.gov._clock()
        run = d.metadata.get("run_id")
        out: list[Delivery] = []
        for rule in self._rules("stop"):
            if rule.stops and d.blocked_by not in rule.stops:
                continue
            alert = Alert(
                kind="stop",
                rule=rule.id,
                stop=d.blocked_by,
                run_id=None if run is None else str(run),
                detail=d.reasons[0] if d.reasons else None,
                message=f"{d.reasons[0] if d.reasons else 'stop ' + str(d.blocked_by)} "
                f"[policy {d.policy_name} {d.revision}]",
                **self._base(d, now),
            )
            out += self._deliveries(rule, alert, f"stop|{d.blocked_by}|{run}", now + EVENT_MARK_S)
        return out

    def _overrun(self, r: Recorded) -> Iterable[Delivery]:
        d = r.decision
        now = self.gov._clock()
        out: list[Delivery] = []
        for rule in self._rules("overrun"):
            if r.overrun_usd < rule.min_usd:
                continue
            run = d.metadata.get("run_id")
            alert = Alert(
                kind="overrun",
                rule=rule.id,
                model=d.model,
                spend_usd=r.cost_usd,
                limit_usd=d.estimated_cost_usd,
                run_id=None if run is None else str(run),
                message=(
                    f"call {d.decision_id} to {d.model} cost ${r.cost_usd:.4f}, "
                    f"${r.overrun_usd:.4f} over its reserved worst case ${d.estimated_cost_usd:.4f} "
                    f"[policy {d.policy_name} {d.revision}]"
                ),
                **self._base(d, now),
            )
            out += self._deliveries(rule, alert, f"overrun|{d.decision_id}", now + EVENT_MARK_S)
        return out

    def _outage(self, d: Decision, detail: str) -> Iterable[Delivery]:
        now = self.gov._clock()
        out: list[Delivery] = []
        for rule in self._rules("store_outage"):
            last = self._outage_sent.get(rule.id)
            if last is not None and now - last < rule.every_s:
                continue
            self._outage_sent[rule.id] = now
            alert = Alert(
                kind="store_outage",
                rule=rule.id,
                detail=detail,
                message=f"{detail} [policy {d.policy_name} {d.revision}]",
                **self._base(d, now),
            )
            out += self._deliveries(rule, alert, None, now)
        return out

    # -- lifecycle ---------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued alert was sent or given up (tests, shutdown)."""
        return self.dispatcher.flush(timeout)

    def close(self, timeout: float = 2.0) -> None:
        self.dispatcher.close(timeout)


def attach_alerts(gov: Governor) -> AlertWatcher | None:
    """An :class:`AlertWatcher` on ``gov`` when its policy has an ``alerts:`` section, else None."""
    spec = gov.policy.alerts
    if spec is None or not spec.rules:
        return None
    return AlertWatcher(gov, spec)
