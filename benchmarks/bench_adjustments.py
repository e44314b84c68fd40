"""What operators' adjustments cost a call, and a raise against the alternative (edit the policy, reload), in one run.

    python benchmarks/bench_adjustments.py          # ~20 s
    python benchmarks/bench_adjustments.py --quick  # smoke run

Rows (p50 / p99 in microseconds of one check() on a shared SQLite ledger, the store a fleet on one host shares):

* admitted -- a call its budget admits: adjustments are never read;
* refused, no adjustment -- the budget denies; the governor looks for adjustments once (one more read);
* refused, 200 adjustments of other scopes -- the same, with a ledger holding 200 records for other teams;
* of which ledger.adjustments() -- that read alone: what a refusal pays for adjustments;
* admitted by a raise -- the budget denies at its policy limit, the raise in force admits it (check+record).

And per raise (milliseconds): ``raise_budget`` writing one record (what ``governor budget raise`` does, without
the process start), against the alternative a user has without it: rewrite the policy file with a higher
limit and ``Governor.reload()`` it (in every process of the fleet, and the file is no longer what git says).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from governor import Governor
from governor.actions import raise_budget
from governor.ledger.sqlite import SqliteLedger
from governor.policy.loader import load_policy

POLICY = """
apiVersion: governor/v1
kind: Policy
metadata: {{name: bench-adjust}}
models:
  prices:
    m-bench: {{input_per_mtok: 1, output_per_mtok: 2}}
budgets:
  - {{id: team-daily, scope: team, limit: {{usd: {limit}}}, window: {{calendar: day}}}}
"""


def timed_checks(gov: Governor, team: str, n: int, record: bool = False) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        d = gov.check(model="m-bench", input_tokens=1000, max_tokens=10, metadata={"team": team})
        if record and d.allowed:
            gov.record(d, input_tokens=1000, output_tokens=10)
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def timed_reads(ledger: SqliteLedger, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        ledger.adjustments(now=time.time())
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def row(name: str, samples: list[float], unit: str = "") -> str:
    q = statistics.quantiles(samples, n=100) if len(samples) > 1 else samples * 99
    return f"{name:<44} {q[49]:>10.1f} {q[98]:>10.1f}{unit}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    quick = ap.parse_args().quick
    n = 200 if quick else 3000
    raises = 10 if quick else 100
    tmp = Path(tempfile.mkdtemp())
    policy_path = tmp / "policy.yaml"
    policy_path.write_text(POLICY.format(limit=1000) + f"ledger: {{type: sqlite, path: {tmp / 'ledger.db'}}}\n")
    gov = Governor.from_path(policy_path)
    ledger = gov.ledger
    assert isinstance(ledger, SqliteLedger)
    results: dict[str, list[float]] = {}
    timed_checks(gov, "rich", 50, record=True)
    results["admitted"] = timed_checks(gov, "rich", n, record=True)

    exhausted = tmp / "exhausted.yaml"  # a second governor on the same file whose team budget is spent
    exhausted.write_text(POLICY.format(limit=0.00002) + f"ledger: {{type: sqlite, path: {tmp / 'ledger.db'}}}\n")
    poor = Governor.from_path(exhausted)
    timed_checks(poor, "poor", 20, record=True)
    results["refused, no adjustment"] = timed_checks(poor, "poor", n)
    results["  of which ledger.adjustments(), none"] = timed_reads(ledger, n)
    now = time.time()
    for i in range(200):
        raise_budget(poor.policy, ledger, "team-daily", f"team=t{i}", by=1, reason="bench", operator="b", now=now)
    results["refused, 200 adjustments of other scopes"] = timed_checks(poor, "poor", n)
    results["  of which ledger.adjustments(), 200"] = timed_reads(ledger, n)
    raise_budget(poor.policy, ledger, "team-daily", "team=poor", by=1000, reason="bench", operator="b", now=now)
    results["admitted by a raise (check+record)"] = timed_checks(poor, "poor", n, record=True)

    writes = []
    for _ in range(raises):
        t0 = time.perf_counter_ns()
        raise_budget(
            poor.policy, ledger, "team-daily", "team=poor", by=1, reason="bench", operator="b", now=time.time()
        )
        writes.append((time.perf_counter_ns() - t0) / 1e6)
    reloads = []
    for i in range(raises):
        t0 = time.perf_counter_ns()
        exhausted.write_text(
            POLICY.format(limit=1 + i) + f"ledger: {{type: sqlite, path: {tmp / 'ledger.db'}}}\n", encoding="utf-8"
        )
        assert poor.reload()
        reloads.append((time.perf_counter_ns() - t0) / 1e6)
    load_policy(exhausted)  # (warm)

    print(f"{'check() on a shared SQLite ledger, microseconds':<44} {'p50':>10} {'p99':>10}")
    for name, samples in results.items():
        print(row(name, samples))
    print(f"{'one raise, milliseconds':<44} {'p50':>10} {'p99':>10}")
    print(row("raise_budget (governor budget raise)", writes))
    print(row("edit the policy file + Governor.reload()", reloads, "  (per process)"))
    base = statistics.median(results["refused, no adjustment"])
    print(
        f"a refusal looks for adjustments: {base:.0f} us at p50 with none, "
        f"{statistics.median(results['refused, 200 adjustments of other scopes']):.0f} us with 200 records"
    )
    gov.close()
    poor.close()


if __name__ == "__main__":
    main()
