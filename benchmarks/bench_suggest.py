"""``governor suggest`` against what a user does without it: one ``governor replay`` per candidate value.

    LITELLM_LOCAL_MODEL_COST_MAP=True /work/venv/bin/python benchmarks/bench_suggest.py \
        [--traces ../shared/traces/tau2] [--match agent=agent] [--jobs 1,2] [--sample K] [--quick]

In one run: ``governor suggest`` end to end (a fresh process: import, every
candidate replayed on the fit and held-out runs, the combination, the report),
once per ``--jobs`` value; then the same candidates, each written as its own
policy file, replayed by separate ``governor replay`` processes over the same
traces (one after the other, as a user's loop would). Both sides replay every
candidate over every call once; the sweep also replays the base and the
combination, which the separate replays do not. ``--sample K`` times K of the
separate replays and extrapolates to all of them (said so in the output);
``--quick`` sweeps one knob and times two separate replays (the smoke test).
Figures, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TRACES = ROOT.parent / "shared" / "traces" / "tau2"
GOVERNOR = [sys.executable, "-m", "governor"]


def timed(argv: list[str]) -> float:
    t = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - t
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--traces", default=str(DEFAULT_TRACES))
    ap.add_argument("--match", default="agent=agent", help="the --match scope of the sweep ('' for none)")
    ap.add_argument("--jobs", default="1,2", help="comma-separated --jobs values of the sweep")
    ap.add_argument("--sample", type=int, default=0, help="time K separate replays and extrapolate (0: all)")
    ap.add_argument("--quick", action="store_true", help="one knob, two separate replays (smoke test)")
    args = ap.parse_args()
    import yaml

    from governor.suggest.knobs import KNOBS
    from governor.suggest.sweep import Frame, policy_document

    scope = ["--match", args.match] if args.match else []
    knob = ["--knob", "run-calls"] if args.quick else []
    sample = 2 if args.quick else args.sample
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpus; traces {args.traces}")
    with tempfile.TemporaryDirectory(prefix="bench-suggest-") as tmp:
        report = Path(tmp) / "report.json"
        sweeps = []
        for jobs in [int(j) for j in args.jobs.split(",") if j]:
            argv = [*GOVERNOR, "suggest", args.traces, *scope, *knob, "--format", "json", "--report", str(report)]
            sweeps.append((jobs, timed([*argv, "--jobs", str(jobs)])))
        data = json.loads(report.read_text(encoding="utf-8"))
        match = dict(data["match"])
        files = []
        for k in data["knobs"]:
            for c in k["candidates"]:
                section = KNOBS[c["knob"]].section
                doc = policy_document([(section, KNOBS[c["knob"]].item(c["value"], match))], Frame())
                path = Path(tmp) / f"candidate-{len(files)}.yaml"
                path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
                files.append(path)
        n = len(files)
        chosen = files if not sample or sample >= n else files[:: max(n // sample, 1)][:sample]
        each = [
            timed([*GOVERNOR, "replay", str(f), args.traces, "--format", "json", "-o", str(Path(tmp) / "r.json")])
            for f in chosen
        ]
    separate = sum(each) / len(each) * n
    runs = data["split"]["fit_runs"] + data["split"]["held_out_runs"]
    print(f"{n} candidates over {runs} runs (every candidate replays every call once on both sides)\n")
    print(f"{'':<44}{'wall s':>10}{'per candidate s':>18}")
    for jobs, t in sweeps:
        print(f"{f'governor suggest --jobs {jobs}':<44}{t:>10.2f}{t / n:>18.3f}")
    how = "measured" if len(chosen) == n else f"{len(chosen)} measured, extrapolated to {n}"
    print(f"{f'{n} x governor replay ({how})':<44}{separate:>10.2f}{separate / n:>18.3f}")
    for jobs, t in sweeps:
        print(f"=> suggest --jobs {jobs} is {separate / t:.1f}x faster than the separate replays")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
