"""What metrics and alerts add to a call: check+record with and without them, in one run.

    LITELLM_LOCAL_MODEL_COST_MAP=True python benchmarks/bench_operations.py          # ~20 s
    LITELLM_LOCAL_MODEL_COST_MAP=True python benchmarks/bench_operations.py --quick  # smoke run

Rows (p50 / p99 in microseconds of check()+record() on a team budget, in-memory ledger):

* plain -- no observers;
* + metrics -- ``GovernorMetrics`` attached (OpenTelemetry SDK counters, Prometheus exporter);
* + metrics + alerts -- also an ``alerts:`` section (a log sink, thresholds that never fire);
* prometheus-client alone -- the alternative a user would write: plain plus two
  ``prometheus_client.Counter.inc()`` per call (calls and spend);
* scrape -- one ``/metrics`` exposition of the instrumented governor (milliseconds).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter

from governor import Governor
from governor.metrics import GovernorMetrics
from governor.policy.loader import load_policy_text

POLICY = """
apiVersion: governor/v1
kind: Policy
metadata: {name: bench-ops}
models:
  prices:
    m-bench: {input_per_mtok: 1, output_per_mtok: 2}
budgets:
  - {id: team-daily, scope: team, limit: {usd: 1000000}, window: {calendar: day}}
"""
ALERTS = """
alerts:
  sinks:
    ops-log: {type: log}
  rules:
    - {id: grades, on: budget, thresholds: [0.99], to: [ops-log]}
"""


PROM = "prometheus-client alone (2 inc)"


def timed(gov: Governor, n: int, extra: Any = None) -> list[float]:
    out = []
    teams = [f"team-{i}" for i in range(8)]
    for i in range(n):
        t0 = time.perf_counter_ns()
        d = gov.check(model="m-bench", input_tokens=1200, max_tokens=200, metadata={"team": teams[i % 8]})
        cost = gov.record(d, input_tokens=1200, output_tokens=150)
        if extra is not None:
            extra(cost)
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def row(name: str, samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return f"{name:<36} {q[49]:>9.1f} {q[98]:>9.1f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    n = 500 if ap.parse_args().quick else 20_000
    logging.getLogger("governor.alerts").setLevel(logging.ERROR)
    results = {}
    plain = Governor(load_policy_text(POLICY), observers=False, stats=False)
    timed(plain, 200)
    results["plain"] = timed(plain, n)

    metered = Governor(load_policy_text(POLICY), observers=False, stats=False)
    metrics = GovernorMetrics(registry=CollectorRegistry()).attach(metered)
    timed(metered, 200)
    results["+ metrics"] = timed(metered, n)

    alerted = Governor(load_policy_text(POLICY + ALERTS), observers=False, stats=False)
    GovernorMetrics(registry=CollectorRegistry()).attach(alerted)
    timed(alerted, 200)
    results["+ metrics + alerts"] = timed(alerted, n)
    alerted.alerts.flush(30)

    reg = CollectorRegistry()
    calls = PromCounter("bench_calls", "calls", registry=reg)
    spend = PromCounter("bench_spend_usd", "spend", registry=reg)

    def count(cost: Any) -> None:
        calls.inc()
        spend.inc(cost or 0.0)

    timed(plain, 200, count)
    results[PROM] = timed(plain, n, count)

    scrapes = []
    for _ in range(20 if n > 1000 else 3):
        t0 = time.perf_counter_ns()
        metrics.exposition()
        scrapes.append((time.perf_counter_ns() - t0) / 1e6)

    print(f"{'check()+record(), microseconds':<36} {'p50':>9} {'p99':>9}")
    for name, samples in results.items():
        print(row(name, samples))
    base = statistics.median(results["plain"])
    print(
        f"metrics add {statistics.median(results['+ metrics']) - base:.1f} us per call at p50; "
        f"metrics + alerts {statistics.median(results['+ metrics + alerts']) - base:.1f} us; "
        f"prometheus-client's two counters {statistics.median(results[PROM]) - base:.1f} us"
    )
    print(f"scrape (exposition of 8 budget scopes) p50 {statistics.median(scrapes):.2f} ms")
    alerted.close()


if __name__ == "__main__":
    main()
