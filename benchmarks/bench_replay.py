"""Replay speed: all tau2 traces through a shipped policy, against plain json.load of the same files.

    LITELLM_LOCAL_MODEL_COST_MAP=True /work/venv/bin/python benchmarks/bench_replay.py \
        [--policy policies/tau2-airline.yaml] [--traces ../shared/traces/tau2] [--repeat 7] [--all-policies]

Prints, in one run: json.load(gzip) of the files, the import (parse + normalise),
the replay through Governor.check/record, the report with diagnostics, and the
ratios to json.load. Best of ``--repeat`` runs each, after one warm-up (the
one-off cost of importing litellm's price table is printed separately). Figures,
not assertions: speed is never a timed test.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TRACES = ROOT.parent / "shared" / "traces" / "tau2"
DEFAULT_POLICY = ROOT / "policies" / "tau2-airline.yaml"


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    fn()  # warm-up
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", type=Path, default=DEFAULT_POLICY)
    ap.add_argument("--traces", type=Path, default=DEFAULT_TRACES)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--all-policies", action="store_true", help="one replay row per shipped policy")
    args = ap.parse_args()

    from governor.policy.loader import load_policy
    from governor.replay import engine
    from governor.replay.engine import Replayer
    from governor.replay.report import build_report
    from governor.traces import load_traces

    files = sorted(args.traces.glob("*.json.gz"))
    if not files:
        print(f"no *.json.gz under {args.traces}", file=sys.stderr)
        return 2

    def plain() -> int:
        n = 0
        for f in files:
            with gzip.open(f, "rb") as fh:
                n += len(json.load(fh)["simulations"])
        return n

    t = time.perf_counter()
    from governor._litellm import model_cost_table

    model_cost_table()
    litellm_s = time.perf_counter() - t

    t_json, n_runs = best(plain, args.repeat)
    t_import, traces = best(lambda: load_traces([args.traces]), args.repeat)
    # one-off per process: the tokenizer files (BPE) of the encodings these models use
    t = time.perf_counter()
    counter = engine.shared_token_counter()
    for model in {c.model for r in traces.runs for c in r.calls}:
        counter.tokenizer(model)
    bpe_s = time.perf_counter() - t
    policies = sorted(p for p in (ROOT / "policies").glob("*.yaml") if not p.name.endswith(".test.yaml")) \
        if args.all_policies else [args.policy]

    print(f"budget-governor replay benchmark  (python {platform.python_version()}, {platform.machine()})")
    print(f"traces: {len(files)} files, {n_runs} runs, {traces.calls} calls  ({args.traces})")
    print(f"one-off per process (not in the figures below): importing litellm's price table "
          f"{litellm_s * 1000:.0f} ms, loading tokenizer files {bpe_s * 1000:.0f} ms")
    print()
    print(f"{'step':<52}{'ms':>9}{'x json.load':>13}")
    print(f"{'json.load(gzip) of the files':<52}{t_json * 1000:>9.1f}{1.0:>13.2f}")
    print(f"{'import (parse + normalise to TraceCall)':<52}{t_import * 1000:>9.1f}{t_import / t_json:>13.2f}")
    for path in policies:
        policy = load_policy(str(path))

        def replay() -> Any:
            return Replayer(policy).replay(traces)

        counter.clear()  # no message counted yet, as in a fresh `governor replay` process
        t = time.perf_counter()
        replay()
        t_cold = time.perf_counter() - t
        t_replay, result = best(replay, args.repeat)
        t_report, _ = best(lambda: build_report(result, policy), args.repeat)
        total = t_import + t_replay
        name = path.stem
        print(f"{'replay, ' + name + ' (first: no message counted yet)':<52}{t_cold * 1000:>9.1f}{t_cold / t_json:>13.2f}")
        print(f"{'replay, ' + name + ' (check+record per call)':<52}{t_replay * 1000:>9.1f}{t_replay / t_json:>13.2f}")
        print(f"{'report + diagnostics, ' + name:<52}{t_report * 1000:>9.1f}{t_report / t_json:>13.2f}")
        first = t_import + t_cold
        print(f"{'=> import + first replay, ' + name:<52}{first * 1000:>9.1f}{first / t_json:>13.2f}")
        print(f"{'=> import + replay, ' + name:<52}{total * 1000:>9.1f}{total / t_json:>13.2f}")
        print(f"{'=> import + replay + report, ' + name:<52}{(total + t_report) * 1000:>9.1f}"
              f"{(total + t_report) / t_json:>13.2f}")
        print(f"{'   per call (replay only)':<52}{t_replay / traces.calls * 1e6:>8.1f}us")
    print()
    print("target: import + replay <= 3x json.load (goal 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
