"""Instructions per call of check+record, counted by callgrind: figures that do not move with load.

    python benchmarks/bench_instructions.py          # ~40 s; needs valgrind (Debian: apt-get install valgrind)
    python benchmarks/bench_instructions.py --quick  # a tenth of the calls: a smoke run (~30 s, mostly start-up)
    python benchmarks/bench_instructions.py --policy my.yaml  # rows (a) and (b) on another policy
    python benchmarks/bench_instructions.py --only check_record  # one row (~15 s): while changing the code

``bench_check.py`` times calls, and on a shared VM its p50 moves by +-2% from run
to run: a change worth 0.3 us is lost in it. callgrind counts the instructions
the CPU executes instead, the same from run to run for the same code, inputs and
hash seed (PYTHONHASHSEED=0 here). Instructions are not time (a cache miss costs
more than an add), but for the interpreter the two follow each other closely:
use this to compare two versions of the code, and bench_check.py for the time.

Each scenario runs in its own process under ``valgrind --tool=callgrind`` with
counting off; the process warms up, turns counting on around the measured loop
(``callgrind_control -i on``) and off after it. The count of an empty on/off is
subtracted. Printed: instructions per call, and the ratio issue 3 names.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

HERE = Path(__file__).resolve().parent
POLICY = HERE / "policies" / "thirty-rules.yaml"
MODEL = "gpt-4o"
SCENARIOS = {
    # name: (what, measured calls)
    "empty": ("counting on and off around nothing (subtracted from the others)", 1),
    "check_record": ("(a) governor check+record, input_tokens given", 2000),
    "history_warm": ("(b) the same on a growing 40-message history, token counts cached", 1000),
    "cost_per_token": ("(c) litellm.cost_per_token alone", 200),
}


def _counting(on: bool) -> None:
    subprocess.run(
        ["callgrind_control", "-i", "on" if on else "off", str(os.getpid())], capture_output=True, check=True
    )


def _scenario(name: str, policy: Path) -> tuple[Callable[[int], Any], int]:
    """(one call, warm-up calls) for a scenario, built like bench_check.py's rows."""
    if name == "empty":
        return (lambda i: None), 0
    if name == "cost_per_token":
        from governor._litellm import litellm

        ll = litellm()
        return (lambda i: ll.cost_per_token(model=MODEL, prompt_tokens=1200, completion_tokens=180)), 200

    from bench_check import history, text

    from governor import Governor

    rng = random.Random(7)
    gov = Governor.from_path(policy)
    if name == "check_record":
        tasks = ("code", "classify", "summarize", "chat", "plan")
        system = {"role": "system", "content": "You are a helpful assistant. " + text(rng, 60)}
        calls = []
        for i in range(3000):
            run = i // 50
            md = {
                "run_id": f"run-{run}",
                "user": f"user-{run % 10}",
                "team": f"team-{run % 3}",
                "task": tasks[i % len(tasks)],
                "agent": "coder",
            }
            calls.append(([system, {"role": "user", "content": f"#{i} " + text(rng, 30)}], md))

        def one(i: int) -> None:
            msgs, md = calls[i]
            d = gov.check(model=MODEL, messages=msgs, max_tokens=512, metadata=md, input_tokens=1200)
            gov.record(d, input_tokens=1200, output_tokens=180)

        return one, 500
    if name == "history_warm":
        episodes = [history(rng, e) for e in range(30)]
        steps = [(e, k) for e in range(len(episodes)) for k in range(1, 41)]
        for e, k in steps:  # every count cached: what is left is the governor's own work
            gov._tokens.count(MODEL, episodes[e][:k])

        def step(i: int) -> None:
            e, k = steps[i % len(steps)]
            d = gov.check(
                model=MODEL,
                messages=episodes[e][:k],
                max_tokens=1024,
                metadata={"run_id": f"ep-{e}-{i // len(steps)}", "user": "u", "team": "t", "task": "code"},
            )
            gov.record(d, input_tokens=d.input_tokens, output_tokens=200)

        return step, 200
    raise SystemExit(f"unknown scenario {name!r}")


def child(name: str, scale: float, policy: Path) -> None:
    one, warmup = _scenario(name, policy)
    n = _calls(name, scale)
    for i in range(warmup):
        one(i)
    _counting(True)
    for i in range(warmup, warmup + n):
        one(i)
    _counting(False)


def _calls(name: str, scale: float) -> int:
    return max(1, int(SCENARIOS[name][1] * scale))


def count(name: str, scale: float, policy: Path) -> int:
    """Instructions the scenario's measured loop executed (counting on to off)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        env = {**os.environ, "PYTHONHASHSEED": "0", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--child",
                name,
                "--scale",
                str(scale),
                "--policy",
                str(policy),
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:  # the child's own error (a bad policy, say), without valgrind's lines
            child_err = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("=="))
            raise SystemExit(f"{name}: the measured process failed:\n{child_err.strip()[-3000:]}")
        text = out.read_text()
    m = re.search(r"^totals: (\d+)", text, re.M)
    if m is None:
        raise SystemExit(f"{name}: no instruction total in callgrind's output")
    return int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="a tenth of the calls: a smoke run (its figures differ by a few %%, compare full runs)",
    )
    ap.add_argument(
        "--policy",
        type=Path,
        default=POLICY,
        help="the policy of rows (a) and (b) (default: policies/thirty-rules.yaml)",
    )
    ap.add_argument(
        "--only", choices=[k for k in SCENARIOS if k != "empty"], help="count this scenario only (no ratio printed)"
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--scale", type=float, default=1.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.scale, args.policy)
        return
    scale = 0.1 if args.quick else 1.0
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("bench_instructions.py needs valgrind (Debian/Ubuntu: apt-get install valgrind)")
    policy = args.policy.resolve()
    if not policy.is_file():
        raise SystemExit(f"--policy {args.policy}: no such file")
    base = count("empty", scale, policy)
    per_call: dict[str, float] = {}
    for name, (what, _) in SCENARIOS.items():
        if name == "empty" or (args.only and name != args.only):
            continue
        per_call[name] = (count(name, scale, policy) - base) / _calls(name, scale)
        print(f"  counted: {what}", file=sys.stderr)
    width = max(len(SCENARIOS[k][0]) for k in per_call)
    print(f"| {'scenario':<{width}} | {'instructions / call':>19} |")
    print(f"|{'-' * (width + 2)}|{'-' * 21}|")
    for name, value in per_call.items():
        print(f"| {SCENARIOS[name][0]:<{width}} | {value:>19,.0f} |")
    print()
    print(
        f"policy {policy.name}; python {sys.version.split()[0]}, PYTHONHASHSEED=0; "
        f"the empty on/off ({base:,} instructions) is subtracted"
    )
    if args.only:
        return
    print(
        "check+record / litellm.cost_per_token, in instructions = "
        f"{per_call['check_record'] / per_call['cost_per_token']:.3f}"
    )


if __name__ == "__main__":
    main()
