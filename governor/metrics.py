"""Metrics of a running governor: OpenTelemetry instruments, exposed in the Prometheus text format.

``instrument(gov)`` attaches a :class:`GovernorMetrics` to a governor (its
decision and record observers: the call path only adds to counters); the
litellm proxy does it by itself and serves ``GET /metrics``. Embedded::

    metrics = instrument(gov)        # the process's default: prometheus_client's REGISTRY
    metrics.serve(9464)              # or: metrics.exposition() -> bytes for your own endpoint

The instruments are OpenTelemetry ones. By default they live on a
``MeterProvider`` of our own whose reader is the OpenTelemetry Prometheus
exporter (``PrometheusMetricReader``), which does the OTel -> Prometheus name
translation (dots to underscores, unit suffix, ``_total`` on counters). Pass
``meter_provider=`` to send the same instruments anywhere else (OTLP).

Names (after translation; docs/operations.md lists them all): ``governor_calls_total``,
``governor_spend_usd_total``, ``governor_tokens_total``, ``governor_budget_spend_usd_total``,
``governor_budget_used_usd``, ``governor_budget_limit_usd``, ``governor_budget_remaining_usd``,
``governor_budget_utilization_ratio``, ``governor_reservations_in_flight``,
``governor_ledger_errors_total``, ``governor_overruns_total``, ``governor_overrun_usd_total``,
``governor_unpriced_calls_total``, ``governor_alerts_sent_total``, ``governor_alerts_failed_total``,
``governor_alerts_dropped_total``, and the GenAI client histogram ``gen_ai_client_token_usage``
(OpenTelemetry semantic conventions for GenAI as of semconv 1.37-1.40, shipped in
``opentelemetry-semantic-conventions`` 0.66b2: ``gen_ai.token.type`` input|output,
``gen_ai.operation.name``, ``gen_ai.request.model``, ``gen_ai.response.model``, ``gen_ai.provider.name``).

No per-user, per-team or per-run label unless asked: ``labels=("team",)`` copies
those metadata keys onto the call, spend and token series, and ``per_scope=True``
gives the budget gauges one series per scope value (``scope="team=support"``).
Without it a budget's gauges show its most-used scope value among those this
process charged.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from governor.decision import Decision
from governor.engine.events import Recorded, store_outage
from governor.errors import GovernorError, LedgerError
from governor.ledger.base import Counter, nano_to_usd

if TYPE_CHECKING:  # pragma: no cover
    from governor.engine.governor import Governor

log = logging.getLogger("governor.metrics")

METER_NAME = "budget-governor"
SEMCONV_GENAI = "1.37+ (opentelemetry-semantic-conventions 0.66b2)"
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
COUNTERS_MAX = 5_000  # budget counters whose gauges are kept (most recently charged first)
TOKEN_SAMPLES_MAX = 100_000  # recorded calls buffered between two collections for the token histogram
TOKEN_KINDS = ("input", "output", "cache_read", "cache_write", "reasoning")

__all__ = ["GovernorMetrics", "default_metrics", "instrument", "SEMCONV_GENAI"]


def _require_otel() -> Any:
    try:
        from opentelemetry.sdk.metrics import MeterProvider
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise GovernorError("metrics need the 'metrics' extra: pip install 'budget-governor[metrics]'") from exc
    return MeterProvider


def _provider_name(model: str) -> str | None:
    """``openai/gpt-4o`` -> ``openai``; a bare model name has no provider we can name cheaply."""
    head, sep, _ = model.partition("/")
    return head if sep and head else None


class _Tally:
    """A monotonic counter per attribute set, kept in a dict; ``observe`` reports it to OpenTelemetry."""

    __slots__ = ("_lock", "_values")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[tuple[str, Any], ...], float] = {}

    def add(self, value: float, attrs: dict[str, Any]) -> None:
        key = tuple(attrs.items())
        with self._lock:
            self._values[key] = self._values.get(key, 0) + value

    def observe(self, options: Any) -> list[Any]:
        from opentelemetry.metrics import Observation

        with self._lock:
            items = list(self._values.items())
        return [Observation(v, dict(k)) for k, v in items]


class GovernorMetrics:
    """The instruments of one or more governors (see the module docstring).

    ``registry`` is the prometheus_client registry the exposition reads
    (default: its global ``REGISTRY``, which litellm's own ``/metrics`` also
    serves); ``meter_provider`` replaces our provider and reader altogether.
    """

    def __init__(
        self,
        *,
        meter_provider: Any = None,
        registry: Any = None,
        labels: Sequence[str] = (),
        per_scope: bool = False,
    ) -> None:
        self.labels = tuple(labels)
        self.per_scope = per_scope
        self._reader = None
        self._registry = None
        if meter_provider is None:
            provider_cls = _require_otel()
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
            from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
            from opentelemetry.sdk.resources import Resource
            from prometheus_client import REGISTRY

            self._registry = registry if registry is not None else REGISTRY
            self._reader = PrometheusMetricReader(registry=self._registry, disable_target_info=True)
            meter_provider = provider_cls(
                metric_readers=[self._reader],
                resource=Resource.create({"service.name": "budget-governor"}),
                views=[
                    View(
                        instrument_name="gen_ai.client.token.usage",
                        aggregation=ExplicitBucketHistogramAggregation(TOKEN_BUCKETS),
                    )
                ],
            )
        self._provider = meter_provider
        meter = meter_provider.get_meter(METER_NAME)
        self._lock = threading.Lock()
        self._governors: weakref.WeakSet[Governor] = weakref.WeakSet()
        self._counters: OrderedDict[tuple[int, str], tuple[Governor, Counter]] = OrderedDict()
        self._dispatchers: weakref.WeakSet[Any] = weakref.WeakSet()

        # counters are tallied in plain dicts on the call path (a lock and a dict update) and handed
        # to OpenTelemetry as observable counters when a reader collects: a few microseconds a call
        self.calls = self._counter(meter, "governor.calls", "{call}", "Checked calls by verdict and rule")
        self.spend = self._counter(meter, "governor.spend.usd", "{USD}", "Actual cost of recorded calls")
        self.tokens = self._counter(meter, "governor.tokens", "{token}", "Tokens of recorded calls by kind")
        self.budget_spend = self._counter(
            meter, "governor.budget.spend.usd", "{USD}", "Actual cost charged to each budget"
        )
        self.unpriced = self._counter(
            meter, "governor.unpriced_calls", "{call}", "Recorded calls whose cost is unknown (no price)"
        )
        self.ledger_errors = self._counter(
            meter, "governor.ledger.errors", "{error}", "Budget store operations that failed"
        )
        self.overruns = self._counter(
            meter, "governor.overruns", "{call}", "Calls that cost more than the worst case reserved"
        )
        self.overrun_usd = self._counter(meter, "governor.overrun.usd", "{USD}", "Cost above the reserved worst case")
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Number of input and output tokens used."
        )
        # (input, output, attributes) of recorded calls not yet in the histogram (see _in_flight)
        self._token_samples: deque[tuple[int, int, dict[str, Any]]] = deque(maxlen=TOKEN_SAMPLES_MAX)
        meter.create_observable_gauge(
            "governor.reservations.in_flight",
            [self._in_flight],
            unit="{call}",
            description="Allowed calls checked and not yet recorded",
        )
        meter.create_observable_gauge(
            "governor.budget.used.usd",
            [self._budget("used")],
            unit="{USD}",
            description="Spend plus reservations in the budget's current window",
        )
        meter.create_observable_gauge(
            "governor.budget.limit.usd", [self._budget("limit")], unit="{USD}", description="The budget's USD limit"
        )
        meter.create_observable_gauge(
            "governor.budget.remaining.usd",
            [self._budget("remaining")],
            unit="{USD}",
            description="USD left in the budget's current window",
        )
        meter.create_observable_gauge(
            "governor.budget.utilization.ratio",
            [self._budget("ratio")],
            unit="1",
            description="Largest used/limit fraction over the budget's limited metrics",
        )
        for name, what in (
            ("sent", "Alerts delivered"),
            ("failed", "Alerts given up after retries"),
            ("dropped", "Alerts dropped because the queue was full"),
        ):
            meter.create_observable_counter(
                f"governor.alerts.{name}", [self._alerts(name)], unit="{alert}", description=what
            )

    def _counter(self, meter: Any, name: str, unit: str, description: str) -> _Tally:
        tally = _Tally()
        meter.create_observable_counter(name, [tally.observe], unit=unit, description=description)
        return tally

    # -- attaching ----------------------------------------------------------------
    def attach(self, gov: Governor) -> GovernorMetrics:
        """Count ``gov``'s checks and records (idempotent)."""
        with self._lock:
            if gov in self._governors:
                return self
            self._governors.add(gov)
        if getattr(gov, "alerts", None) is not None:
            self.watch_alerts(gov.alerts.dispatcher)
        ref = weakref.ref(gov)
        gov.add_observer(self.on_decision)
        gov.add_record_observer(lambda r: self.on_record(r, ref()))
        return self

    def watch_alerts(self, dispatcher: Any) -> None:
        """Expose an alert dispatcher's sent / failed / dropped counts."""
        self._dispatchers.add(dispatcher)

    # -- the call path: counters only ---------------------------------------------
    def _attrs(self, decision: Decision, **extra: Any) -> dict[str, Any]:
        attrs = {"policy": decision.policy_name, "model": decision.model, **extra}
        for key in self.labels:
            value = decision.metadata.get(key)
            attrs[key] = "" if value is None else str(value)
        return attrs

    def on_decision(self, d: Decision) -> None:
        rule = d.blocked_by if d.blocked else (d.rule_ids[0] if d.rule_ids else "none")
        self.calls.add(1, self._attrs(d, verdict=d.verdict, rule=rule or "none"))
        if store_outage(d):
            self.ledger_errors.add(1, {"policy": d.policy_name, "operation": "reserve"})

    def on_record(self, r: Recorded, gov: Governor | None) -> None:
        d = r.decision
        if r.observed:  # accounted after the fact (a coding-agent hook): never checked, so counted here
            self.calls.add(1, self._attrs(d, verdict="observed", rule="none"))
            base = self._attrs(d, verdict="observed")
        else:
            base = self._attrs(d, verdict=d.verdict)
        if r.cost_usd is None:
            self.unpriced.add(1, base)
        else:
            self.spend.add(r.cost_usd, base)
        kinds = (r.input_tokens, r.output_tokens, r.cache_read_tokens, r.cache_write_tokens, r.reasoning_tokens)
        for kind, n in zip(TOKEN_KINDS, kinds, strict=True):
            if n:
                self.tokens.add(n, {**base, "kind": kind})
        genai = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": d.requested_model or d.model,
            "gen_ai.response.model": d.model,
        }
        provider = _provider_name(d.model)
        if provider:
            genai["gen_ai.provider.name"] = provider
        self._token_samples.append((r.input_tokens, r.output_tokens, genai))
        if r.ledger_error:
            self.ledger_errors.add(1, {"policy": d.policy_name, "operation": "settle"})
        over = r.overrun_usd
        if over > 0:
            self.overruns.add(1, {"policy": d.policy_name, "model": d.model})
            self.overrun_usd.add(over, {"policy": d.policy_name, "model": d.model})
        if r.counters:
            seen = set()
            for c in r.counters:
                if r.cost_usd is not None and c.budget_id not in seen:
                    seen.add(c.budget_id)
                    self.budget_spend.add(r.cost_usd, {"policy": d.policy_name, "budget": c.budget_id})
            if gov is not None:
                self._remember(gov, r.counters)

    def _remember(self, gov: Governor, counters: Iterable[Counter]) -> None:
        with self._lock:
            for c in counters:
                k = (id(gov), c.key)
                if k in self._counters:
                    self._counters.move_to_end(k)
                else:
                    self._counters[k] = (gov, c)
                    if len(self._counters) > COUNTERS_MAX:
                        self._counters.popitem(last=False)

    # -- scrape time: the gauges read the ledger -----------------------------------
    def _in_flight(self, options: Any) -> list[Any]:
        from opentelemetry.metrics import Observation

        # A collection runs every observable callback before it reads the synchronous instruments:
        # the token samples buffered since the last one go into the histogram here, off the call path.
        samples = self._token_samples
        while samples:
            try:
                tin, tout, genai = samples.popleft()
            except IndexError:
                break
            self.token_usage.record(tin, {**genai, "gen_ai.token.type": "input"})
            self.token_usage.record(tout, {**genai, "gen_ai.token.type": "output"})

        return [Observation(g.in_flight(), {"policy": g.policy.name}) for g in list(self._governors)]

    def budget_rows(self) -> list[dict[str, Any]]:
        """One row per budget (or per scope value with ``per_scope``): used, limit, remaining, ratio."""
        with self._lock:
            items = list(self._counters.values())
        rows: dict[tuple[str, str, str], dict[str, Any]] = {}
        for gov, c in items:
            try:
                used = gov.ledger.usage(c, now=gov._clock())
            except LedgerError:
                log.warning("budget %s: store unavailable while scraping metrics", c.budget_id)
                continue
            ratio = c.limit.fraction(used)
            scope = c.key.partition("|")[2] if self.per_scope else ""
            key = (gov.policy.name, c.budget_id, scope)
            if key in rows and rows[key]["ratio"] >= ratio:
                continue
            row = {
                "policy": gov.policy.name,
                "budget": c.budget_id,
                "ratio": ratio,
                "used": used.usd,
                "limit": None,
                "remaining": None,
            }
            if scope:
                row["scope"] = scope
            if c.limit.usd_nano is not None:
                limit = nano_to_usd(c.limit.usd_nano)
                row["limit"], row["remaining"] = limit, max(0.0, limit - used.usd)
            rows[key] = row
        return list(rows.values())

    def _budget(self, field: str) -> Any:
        def observe(options: Any) -> list[Any]:
            from opentelemetry.metrics import Observation

            out = []
            for row in self.budget_rows():
                value = row[field]
                if value is None:
                    continue
                attrs = {"policy": row["policy"], "budget": row["budget"]}
                if "scope" in row:
                    attrs["scope"] = row["scope"]
                out.append(Observation(value, attrs))
            return out

        return observe

    def _alerts(self, field: str) -> Any:
        def observe(options: Any) -> list[Any]:
            from opentelemetry.metrics import Observation

            out = []
            for disp in list(self._dispatchers):
                counts = disp.counts()
                if field == "dropped":
                    out.append(Observation(counts["dropped"], {}))
                    continue
                for sink, n in counts[field].items():
                    out.append(Observation(n, {"sink": sink}))
            return out

        return observe

    # -- exposition ---------------------------------------------------------------
    def exposition(self) -> bytes:
        """The Prometheus text exposition of this registry (what ``/metrics`` answers)."""
        if self._registry is None:
            raise GovernorError("these metrics go to a meter provider of yours: it exports them")
        from prometheus_client import generate_latest

        return bytes(generate_latest(self._registry))

    def serve(self, port: int, addr: str = "127.0.0.1") -> Any:
        """Serve ``/metrics`` on ``addr:port`` from a daemon thread (prometheus_client's server)."""
        if self._registry is None:
            raise GovernorError("these metrics go to a meter provider of yours: it exports them")
        from prometheus_client import start_http_server

        return start_http_server(port, addr=addr, registry=self._registry)

    def close(self) -> None:
        """Shut our provider down (unregisters its collector from the registry)."""
        if self._reader is not None:
            self._provider.shutdown()
            self._reader = None


_default: GovernorMetrics | None = None
_default_lock = threading.Lock()


def default_metrics(**kwargs: Any) -> GovernorMetrics:
    """The process's metrics on prometheus_client's global registry (built on first call with ``kwargs``)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = GovernorMetrics(**kwargs)
        return _default


def instrument(gov: Governor, metrics: GovernorMetrics | None = None, **kwargs: Any) -> GovernorMetrics:
    """Attach metrics to ``gov``: ``metrics``, or the process default (see :func:`default_metrics`)."""
    return (metrics or default_metrics(**kwargs)).attach(gov)
