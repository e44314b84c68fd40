"""Replay speed: all tau2 traces through a shipped policy, against plain json.load of the same files.

    LITELLM_LOCAL_MODEL_COST_MAP=True /work/venv/bin/python benchmarks/bench_replay.py \
        [--policy policies/tau2-airline.yaml] [--traces ../shared/traces/tau2] [--repeat 7] [--all-policies]

Prints, in one run: json.load(gzip) of the files, the import (parse + normalise),
the replay through Governor.check/record, the report with diagnostics, and the
ratios to json.load. Best of ``--repeat`` runs each, after one warm-up (the
one-off cost of importing litellm's price table is printed separately). Figures,
not assertions: speed is never a timed test.

At scale (``--calls 10000,100000[,1000000]``): a governor-trace/v1 file of N
record lines built from the tau2 calls (their models, token counts and run
sizes, times spread over 30 days), then, each in a fresh process so peak RSS is
its own: ``json.loads`` of every line, ``orjson.loads`` of every line, and
``governor replay`` of the file (import + replay + report, as the command does),
with wall time, CPU time, calls per CPU second and peak RSS for each.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    ap.add_argument("--calls", metavar="N,N,...", help="scale mode: replay synthetic traces of these sizes")
    ap.add_argument("--child", nargs=3, metavar=("MODE", "FILE", "POLICY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(*args.child)
    if args.calls:
        return scale(args)

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
    policies = (
        sorted(p for p in (ROOT / "policies").glob("*.yaml") if not p.name.endswith(".test.yaml"))
        if args.all_policies
        else [args.policy]
    )

    print(f"budget-governor replay benchmark  (python {platform.python_version()}, {platform.machine()})")
    print(f"traces: {len(files)} files, {n_runs} runs, {traces.calls} calls  ({args.traces})")
    print(
        f"one-off per process (not in the figures below): importing litellm's price table "
        f"{litellm_s * 1000:.0f} ms, loading tokenizer files {bpe_s * 1000:.0f} ms"
    )
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
        print(
            f"{'replay, ' + name + ' (first: no message counted yet)':<52}{t_cold * 1000:>9.1f}{t_cold / t_json:>13.2f}"
        )
        print(f"{'replay, ' + name + ' (check+record per call)':<52}{t_replay * 1000:>9.1f}{t_replay / t_json:>13.2f}")
        print(f"{'report + diagnostics, ' + name:<52}{t_report * 1000:>9.1f}{t_report / t_json:>13.2f}")
        first = t_import + t_cold
        print(f"{'=> import + first replay, ' + name:<52}{first * 1000:>9.1f}{first / t_json:>13.2f}")
        print(f"{'=> import + replay, ' + name:<52}{total * 1000:>9.1f}{total / t_json:>13.2f}")
        print(
            f"{'=> import + replay + report, ' + name:<52}{(total + t_report) * 1000:>9.1f}"
            f"{(total + t_report) / t_json:>13.2f}"
        )
        print(f"{'   per call (replay only)':<52}{t_replay / traces.calls * 1e6:>8.1f}us")
    print()
    print("target: import + replay <= 3x json.load (goal 1.5x)")
    return 0


def synthetic_trace(path: Path, n: int, tau2: Path) -> None:
    """N governor-trace/v1 record lines shaped like the tau2 calls (models, tokens, run sizes), over 30 days."""
    from governor.traces import load_traces

    calls = [c for r in load_traces([tau2]).runs for c in r.calls]
    runs = load_traces([tau2]).runs
    start, span = 1_793_000_000.0, 30 * 86400.0
    with path.open("w", encoding="utf-8") as out:
        out.write(json.dumps({"format": "governor-trace/v1", "event": "header", "content": False}) + "\n")
        written, run_no = 0, 0
        while written < n:
            shape = runs[run_no % len(runs)]
            run_id = f"run-{run_no:07d}"
            t0 = start + span * written / n
            for k, c in enumerate(shape.calls):
                if written >= n:
                    break
                src = calls[(written * 7) % len(calls)]
                rec = {
                    "event": "record",
                    "ts": t0 + k * 3.0 + 1.0,
                    "decision_id": f"d{written:08d}",
                    "policy": "bench",
                    "revision": "0",
                    "verdict": "allow",
                    "rule_ids": [],
                    "requested_model": c.model,
                    "model": c.model,
                    "max_tokens": 4096,
                    "run_id": run_id,
                    "metadata": {
                        "run_id": run_id,
                        "agent": c.metadata.get("agent"),
                        "user": f"u{run_no % 50}",
                        "team": f"t{run_no % 5}",
                    },
                    "check_ts": t0 + k * 3.0,
                    "requested_max_tokens": 4096,
                    "input_tokens": src.input_tokens,
                    "output_tokens": src.output_tokens,
                    "cache_read_tokens": src.cache_read_tokens,
                    "cache_write_tokens": src.cache_write_tokens,
                    "reasoning_tokens": 0,
                    "cost_usd": src.cost_usd,
                    "error": None,
                    "message_count": k + 2,
                    "messages_digest": f"{run_no:x}-{k}",
                }
                out.write(json.dumps(rec, separators=(",", ":")) + "\n")
                written += 1
            if shape.outcome:
                out.write(
                    json.dumps({"event": "outcome", "ts": t0 + 600, "run_id": run_id, "outcome": shape.outcome}) + "\n"
                )
            run_no += 1


def child(mode: str, file: str, policy_path: str) -> int:
    """One measurement in this process: prints 'seconds peak_rss_bytes'."""
    import resource

    t, cpu = time.perf_counter(), time.process_time()
    if mode == "json":
        loads = json.loads
        with open(file, encoding="utf-8") as fh:
            for line in fh:
                loads(line)
    elif mode == "orjson":
        import orjson

        with open(file, "rb") as fh:
            for line in fh:
                orjson.loads(line)
    else:
        from governor.policy.loader import load_policy
        from governor.replay.engine import Replayer
        from governor.replay.report import build_report
        from governor.traces import load_traces

        policy = load_policy(policy_path)
        t, cpu = time.perf_counter(), time.process_time()  # the policy load is not replay
        traces = load_traces([file])
        result = Replayer(policy).replay(traces)
        build_report(result, policy)
    seconds, cpu_seconds = time.perf_counter() - t, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(f"{seconds} {cpu_seconds} {peak}")
    return 0


def scale(args: argparse.Namespace) -> int:
    import subprocess
    import tempfile

    sizes = [int(x) for x in args.calls.split(",")]
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    print(
        f"budget-governor replay at scale  (python {platform.python_version()}, {platform.machine()}); "
        f"policy {args.policy.name}; each row a fresh process"
    )
    print("wall time, and CPU time of the process (what one core spends: steady when the machine is busy)")
    print(f"{'calls':>9}  {'step':<40}{'wall s':>8}{'CPU s':>8}{'calls/CPU s':>13}{'peak RSS MB':>13}{'x json':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"calls-{n}.jsonl"
            synthetic_trace(path, n, args.traces)
            base = None
            for mode, label in (
                ("json", "json.loads per line"),
                ("orjson", "orjson.loads per line"),
                ("replay", "governor replay (import+replay+report)"),
            ):
                done = subprocess.run(
                    [sys.executable, __file__, "--child", mode, str(path), str(args.policy)],
                    capture_output=True,
                    text=True,
                    env=env,
                )
                if done.returncode != 0:
                    print(f"{n:>9,}  {label:<40}failed: {done.stderr.strip().splitlines()[-1:]}")
                    continue
                seconds, cpu_s, peak = done.stdout.split()[-3:]
                sec, cpu = float(seconds), float(cpu_s)
                base = cpu if mode == "json" else base
                ratio = f"{cpu / base:>8.2f}" if base else ""
                print(f"{n:>9,}  {label:<40}{sec:>8.2f}{cpu:>8.2f}{n / cpu:>13,.0f}{int(peak) / 1e6:>13,.0f}{ratio}")
    print("goal: 1M calls under 500 MB peak and >= 15,000 calls/s on one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
