"""How long loading a policy takes (not on the per-call path, but `governor validate` runs it in CI).

Prints, for each policy in policies/: the first load in a fresh process
(YAML + schema + semantics + compile, price table read once) and the mean of
repeated loads in the same process. Run: python benchmarks/bench_policy_load.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPEAT = 50


def first_load_s(path: Path) -> float:
    code = (
        "import time; t = time.perf_counter(); from governor.policy.loader import load_policy; "
        f"load_policy({str(path)!r}); print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return float(out)


def main() -> None:
    from governor.policy.loader import load_policy

    policies = sorted(p for p in (ROOT / "policies").glob("*.yaml") if not p.name.endswith(".test.yaml"))
    print(f"{'policy':<28} {'first load (fresh process)':>28} {'repeat load (mean)':>20}")
    for path in policies:
        load_policy(path)
        times = []
        for _ in range(REPEAT):
            t = time.perf_counter()
            load_policy(path)
            times.append(time.perf_counter() - t)
        print(f"{path.name:<28} {first_load_s(path) * 1e3:>25.1f} ms {statistics.mean(times) * 1e3:>17.2f} ms")


if __name__ == "__main__":
    main()
