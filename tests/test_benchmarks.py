"""The benchmark scripts still run: each in its smoke mode, checked for the table it prints.

Figures are never asserted (speed is measured by the scripts, not tested); this
only keeps a refactoring of the package from breaking a script nobody runs in CI
otherwise. ``bench_instructions.py`` needs valgrind and minutes of start-up under
it, so it is left out.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

BENCH = REPO_ROOT / "benchmarks"

RUNS = {
    "bench_check.py": (["--quick"], "check+record p50 / litellm.cost_per_token p50"),
    "bench_replay.py": (["--repeat", "1"], "=> import + replay, tau2-airline"),
    "bench_ledger.py": (["--quick"], "redis"),
    "bench_policy_load.py": ([], "coding-agent.yaml"),
    "bench_proxy.py": (["--quick"], "governor hook"),
    "bench_hook.py": (["--quick"], "hand-written python hook"),
    "bench_pricing.py": (["--quick"], "PriceTable.cost (engine: Governor.record)"),
    "bench_operations.py": (["--quick"], "metrics add"),
    "bench_suggest.py": (["--quick"], "faster than the separate replays"),
    "bench_adjustments.py": (["--quick"], "a refusal looks for adjustments"),
}


@pytest.mark.parametrize("script", sorted(RUNS))
def test_benchmark_runs_and_prints_its_table(script: str, tau2_dir) -> None:  # type: ignore[no-untyped-def]
    args, marker = RUNS[script]
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert marker in done.stdout, done.stdout[-3000:]


def test_every_benchmark_script_is_run_here_or_named_as_left_out() -> None:
    scripts = {p.name for p in BENCH.glob("bench_*.py")}
    assert scripts == set(RUNS) | {"bench_instructions.py"}
