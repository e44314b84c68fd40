"""Per-call overhead of the governor, against the naive alternatives, in one run.

    LITELLM_LOCAL_MODEL_COST_MAP=True /work/venv/bin/python benchmarks/bench_check.py [--quick]

Prints a table (p50 / p99 in microseconds, calls/s from the mean) and the two
ratios issue 3 asks for. Runs offline (litellm's bundled price map, mock
responses, tokenizer files shipped with litellm) in well under a minute.
Figures, not assertions: speed is never a timed test.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

HERE = Path(__file__).resolve().parent
POLICY = HERE / "policies" / "thirty-rules.yaml"
MODEL = "gpt-4o"
WORDS = (
    "the agent reads file config parser returns error value when input list is empty we should "
    "check bounds before indexing then retry with a smaller batch size and log the failure order "
    "customer refund invoice shipping address update ticket priority escalate summary function "
    "class module import test fails assert expected actual diff patch commit branch merge review"
).split()


def text(rng: random.Random, n_words: int) -> str:
    out = []
    for i in range(n_words):
        out.append(rng.choice(WORDS))
        if i % 17 == 16:
            out.append(f"`x{rng.randrange(1000)}` = {rng.randrange(10**6)};\n")
    return " ".join(out)


def history(rng: random.Random, episode: int, n: int = 40) -> list[dict[str, Any]]:
    """An agent loop's history: system prompt, then user / assistant / tool turns (~200 tokens each)."""
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": f"[episode {episode}] You are a coding agent. " + text(rng, 120)}
    ]
    for i in range(1, n):
        kind = i % 3
        if kind == 1:
            msgs.append({"role": "user", "content": text(rng, rng.randrange(60, 260))})
        elif kind == 2:
            msgs.append({"role": "assistant", "content": text(rng, rng.randrange(40, 200))})
        else:
            msgs.append(
                {"role": "tool", "tool_call_id": f"call_{episode}_{i}", "content": text(rng, rng.randrange(80, 300))}
            )
    return msgs


def measure(fn: Callable[[int], Any], n: int, warmup: int) -> list[int]:
    for i in range(warmup):
        fn(i)
    samples = [0] * n
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        fn(warmup + i)
        samples[i] = clock() - t0
    return samples


def pct(samples: list[int], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))] / 1000.0


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, int, float, float, float]] = []

    def add(self, name: str, samples: list[int]) -> float:
        p50 = pct(samples, 0.50)
        self.rows.append((name, len(samples), p50, pct(samples, 0.99), 1e9 / statistics.fmean(samples)))
        print(f"  measured: {name} (p50 {p50:,.1f} us)", file=sys.stderr)
        return p50

    def print(self) -> None:
        width = max(len(r[0]) for r in self.rows)
        print(f"| {'scenario':<{width}} | {'n':>6} | {'p50 us':>9} | {'p99 us':>9} | {'calls/s':>9} |")
        print(f"|{'-' * (width + 2)}|{'-' * 8}|{'-' * 11}|{'-' * 11}|{'-' * 11}|")
        for name, n, p50, p99, rate in self.rows:
            print(f"| {name:<{width}} | {n:>6} | {p50:>9,.1f} | {p99:>9,.1f} | {rate:>9,.0f} |")


SCALE_POLICY = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: near-limit}
defaults: {lease: 10m}
models:
  prices:
    acme/m: {input_per_mtok: 2.5, output_per_mtok: 10.0}
stop:
  - {id: loop, type: repeated_call, max: 3, within: 10m}
  - {id: cap, type: max_calls, max: 500}
budgets:
  - {id: per-run, scope: run, limit: {usd: 1.0}}
  - {id: per-user, scope: user, limit: {usd: 100.0}, window: {calendar: day, timezone: UTC}}
  - {id: per-team, scope: team, limit: {usd: 1000.0}, window: 1h}
  - {id: global, scope: global, limit: {usd: %s}}
"""


def _scale_gov(tmp: Path, global_usd: float, freeze_gc: bool = False) -> Any:
    from governor import Governor
    from governor.policy.loader import load_policy

    path = tmp / f"near-limit-{global_usd:g}.yaml"
    path.write_text(SCALE_POLICY % global_usd, encoding="utf-8")
    return Governor(load_policy(path), observers=False, freeze_gc=freeze_gc)


class GcPauses:
    """The garbage collector's pauses while installed (gc.callbacks): count and longest per generation."""

    def __init__(self) -> None:
        import gc

        self.longest = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self._t0 = 0.0
        self._gc = gc
        gc.callbacks.append(self._on)

    def _on(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
            return
        g = info["generation"]
        self.count[g] += 1
        self.longest[g] = max(self.longest[g], time.perf_counter() - self._t0)

    def stop(self) -> str:
        self._gc.callbacks.remove(self._on)
        return "; ".join(f"gen{g} {self.count[g]}x, max {self.longest[g] * 1e3:,.1f} ms" for g in (0, 1, 2))


def _scale_call(gov: Any, run: int, i: int) -> Any:
    md = {"run_id": f"run-{run}", "user": f"user-{run % 100}", "team": f"team-{run % 7}"}
    d = gov.check(
        model="acme/m",
        messages=[{"role": "user", "content": f"step {i}"}],
        input_tokens=800,
        max_tokens=200,
        metadata=md,
        fingerprint=i,
    )
    if d.allowed:
        gov.record(d, input_tokens=800, output_tokens=150)
    return d


def scale_rows(tmp: Path, n: Callable[[int], int]) -> list[tuple[str, str]]:
    """Issue 19's scenarios: the slowest calls near a limit (GC pauses, rebuilds), and the mean
    cost per call with 1,000 against 100,000 active runs, plus the memory an active run holds."""
    import gc
    import tracemalloc

    rows: list[tuple[str, str]] = []
    calls = n(30000)
    for freeze in (False, True):
        # a global limit the load reaches: each call costs $0.0035, so it ends about 72% of the way
        gov = _scale_gov(tmp, round(calls * 0.0035 * 0.72, 2), freeze_gc=freeze)
        label = "(e) near the limit" + (", freeze_gc=True" if freeze else "")
        blocked = 0
        samples = [0] * calls
        clock = time.perf_counter_ns
        pauses = GcPauses()
        for i in range(calls):
            t0 = clock()
            d = _scale_call(gov, i % 2000, i)
            samples[i] = clock() - t0
            blocked += d.blocked
        collections = pauses.stop()
        if not freeze:
            rows.append((f"{label}: 2,000 runs, 4 budgets, calls blocked", f"{blocked / calls:.0%} of {calls:,}"))
        rows.append(
            (
                f"{label}: p50 / p99 / p99.9 us",
                f"{pct(samples, 0.5):,.1f} / {pct(samples, 0.99):,.1f} / {pct(samples, 0.999):,.1f}",
            )
        )
        rows.append((f"{label}: slowest single check+record", f"{max(samples) / 1e6:,.2f} ms"))
        rows.append((f"{label}: garbage collections (wall)", collections))
        gov.close()
        if freeze:
            gc.unfreeze()  # the rows below measure a governor without it

    per_call = {}
    for active in (1000, n(100_000)):
        gov = _scale_gov(tmp, 1e9)
        for r in range(active):  # every run has state, a budget plan and counters
            _scale_call(gov, r, 0)
        gc.collect()
        t0 = time.perf_counter()
        passes = max(1, 200_000 // active) if active < 10_000 else 1
        for k in range(passes):
            for r in range(active):
                _scale_call(gov, r, k + 1)
        per_call[active] = (time.perf_counter() - t0) / (passes * active) * 1e6
        rows.append((f"(e) {active:,} active runs: mean check+record us", f"{per_call[active]:,.1f}"))
        gov.close()
    small, big = sorted(per_call)
    rows.append((f"(e) {big:,} / {small:,} active runs, mean per call", f"{per_call[big] / per_call[small]:.2f}x"))

    gov = _scale_gov(tmp, 1e9)
    _scale_call(gov, 0, 0)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for r in range(1, 5001):
        _scale_call(gov, r, 0)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rows.append(
        ("(e) memory per active run (run state, plan, 3 counters, pending)", f"{(after - before) / 5000:,.0f} bytes")
    )
    gov.close()
    return rows


def print_pauses(rows: list[tuple[str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    vwidth = max(28, *(len(r[1]) for r in rows))
    print(f"| {'pauses and scale':<{width}} | {'figure':>{vwidth}} |")
    print(f"|{'-' * (width + 2)}|{'-' * (vwidth + 2)}|")
    for name, value in rows:
        print(f"| {name:<{width}} | {value:>{vwidth}} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run, noisier figures)")
    ap.add_argument("--pauses-only", action="store_true", help="only section (e): pauses, scale, memory per run")
    args = ap.parse_args()
    scale = 0.2 if args.quick else 1.0

    def n(x: int) -> int:
        return max(50, int(x * scale))

    from governor import Governor
    from governor._litellm import litellm
    from governor.engine.tokens import TokenCounter

    ll = litellm()  # imported before (e) in every mode: its objects are part of the heap a collection scans
    if args.pauses_only:
        print_pauses(scale_rows(Path(tempfile.mkdtemp(prefix="bench-governor-")), n))
        return
    rng = random.Random(7)
    table = Table()
    tmp = Path(tempfile.mkdtemp(prefix="bench-governor-"))

    # (a) check+record on a 30-rule policy, input tokens given ------------------------------------
    tasks = ("code", "classify", "summarize", "chat", "plan")
    system = {"role": "system", "content": "You are a helpful assistant. " + text(rng, 60)}
    n_a = n(20000)
    calls = []
    for i in range(n_a + 2000):
        msgs = [system, {"role": "user", "content": f"#{i} " + text(rng, 30)}]
        run = i // 50  # a run of 50 calls by one user of one team; the task varies per call
        md = {
            "run_id": f"run-{run}",
            "user": f"user-{run % 10}",
            "team": f"team-{run % 3}",
            "task": tasks[i % len(tasks)],
            "agent": "coder",
        }
        calls.append((msgs, md))

    def bench_gov(gov: Any) -> Callable[[int], Any]:
        def one(i: int) -> None:
            msgs, md = calls[i]
            d = gov.check(model=MODEL, messages=msgs, max_tokens=512, metadata=md, input_tokens=1200)
            gov.record(d, input_tokens=1200, output_tokens=180)

        return one

    gov = Governor.from_path(POLICY)
    samples_a = measure(bench_gov(gov), n_a, 2000)
    p50_gov = table.add("(a) governor check+record, 30 rules, input_tokens given", samples_a)
    # the first call of each (run, task) is its budget plan's first: calls 0-4 of a run's 50
    first = [t for j, t in enumerate(samples_a) if (2000 + j) % 50 < len(tasks)]
    table.add("(a) of which the first call of a new budget plan", first)
    table.add("(a) of which the other calls", [t for j, t in enumerate(samples_a) if (2000 + j) % 50 >= len(tasks)])
    gov_rec = Governor.from_path(POLICY, record_to=tmp / "trace.jsonl")
    table.add("(a') same, recording a governor-trace/v1 file", measure(bench_gov(gov_rec), n(10000), 1000))
    gov_rec.close()

    # (a'') many runs at once: each call from the next of 4,000 runs in turn (a busy proxy), so
    # every call needs its run's plan and lane from earlier -- what the caches must hold
    active = 4000
    gov_many = Governor.from_path(POLICY)

    def many(i: int) -> None:
        msgs, _ = calls[i % len(calls)]
        run = i % active
        md = {
            "run_id": f"many-{run}",
            "user": f"user-{run % 10}",
            "team": f"team-{run % 3}",
            "task": "code",
            "agent": "coder",
        }
        d = gov_many.check(model=MODEL, messages=msgs, max_tokens=512, metadata=md, input_tokens=1200)
        gov_many.record(d, input_tokens=1200, output_tokens=180)

    table.add(f"(a'') same, {active:,} runs active at once, calls interleaved", measure(many, n(20000), 3 * active))

    # (b) a 40-message growing agent history, with token counting -----------------------------------
    episodes = [history(rng, e) for e in range(max(4, int(60 * scale)))]
    steps = [(e, k) for e in range(len(episodes)) for k in range(1, 41)]
    gov_b = Governor.from_path(POLICY)

    def gov_history(i: int) -> None:
        e, k = steps[i % len(steps)]
        d = gov_b.check(
            model=MODEL,
            messages=episodes[e][:k],
            max_tokens=1024,
            metadata={"run_id": f"ep-{e}-{i // len(steps)}", "user": "u", "team": "t", "task": "code"},
        )
        gov_b.record(d, input_tokens=d.input_tokens, output_tokens=200)

    table.add("(b) governor check+record, 40-msg growing history, counting", measure(gov_history, len(steps) - 80, 80))

    inc = TokenCounter()

    def incremental(i: int) -> None:
        e, k = steps[i % len(steps)]
        inc.count(MODEL, episodes[e][:k])

    # warm up on two episodes, then measure episodes the counter has not seen
    p50_inc = table.add(
        "(b) token counting, incremental (TokenCounter cache)", measure(incremental, len(steps) - 80, 80)
    )

    whole = TokenCounter()

    def whole_tiktoken(i: int) -> None:
        e, k = steps[i % len(steps)]
        whole.clear()
        whole.count(MODEL, episodes[e][:k])

    table.add("(b) token counting, whole history each time (same tiktoken)", measure(whole_tiktoken, n(800), 40))

    def whole_litellm(i: int) -> None:
        e, k = steps[i % len(steps)]
        ll.token_counter(model=MODEL, messages=episodes[e][:k])

    p50_whole = table.add(
        "(b) token counting, whole history (litellm.token_counter)", measure(whole_litellm, n(800), 40)
    )

    # (e) pauses near a limit, and cost with many active runs ---------------------------------------
    pauses = scale_rows(tmp, n)

    # (c) the naive alternative ----------------------------------------------------------------------
    def cost_per_token(i: int) -> None:
        ll.cost_per_token(model=MODEL, prompt_tokens=1200, completion_tokens=180)

    p50_cpt = table.add("(c) litellm.cost_per_token alone", measure(cost_per_token, n(4000), 300))

    def naive(i: int) -> None:
        msgs, _ = calls[i % len(calls)]
        t = ll.token_counter(model=MODEL, messages=msgs)
        ll.cost_per_token(model=MODEL, prompt_tokens=t, completion_tokens=180)

    table.add("(c) naive: litellm.token_counter + cost_per_token", measure(naive, n(3000), 200))

    def naive_history(i: int) -> None:
        e, k = steps[i % len(steps)]
        t = ll.token_counter(model=MODEL, messages=episodes[e][:k])
        ll.cost_per_token(model=MODEL, prompt_tokens=t, completion_tokens=200)

    table.add("(c) naive on the 40-msg growing history", measure(naive_history, n(800), 40))

    # (d) Shekel's budget(): per-call overhead on a real litellm call (mock_response) -----------------
    shekel_rows(table, ll, n(1500))

    print()
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"litellm {version('litellm')}, "
        f"tiktoken {version('tiktoken')}, shekel {version('shekel')}"
    )
    print()
    table.print()
    print()
    print_pauses(pauses)
    print()
    r1 = p50_gov / p50_cpt
    r2 = p50_inc / p50_whole
    print(
        f"check+record p50 / litellm.cost_per_token p50      = {r1:.3f}  "
        f"(target <= 0.100: {'met' if r1 <= 0.1 else 'NOT met'})"
    )
    print(
        f"incremental counting p50 / whole-history p50       = {r2:.3f}  "
        f"(target <= 0.100: {'met' if r2 <= 0.1 else 'NOT met'})"
    )


def shekel_rows(table: Table, ll: Any, n_calls: int) -> None:
    """litellm.completion(mock_response=...) with and without Shekel's per-call work.

    Inside one ``shekel.budget()``, ``litellm.completion`` is Shekel's patched
    wrapper and the original function is kept in ``shekel._patch._originals``.
    Each iteration calls both, back to back, alternating which goes first (a
    call right after another is slower: litellm's logging threads of the
    previous call are still running), so drift and order hit both alike; the
    median of the paired differences is Shekel's per-call overhead (its
    wrapper plus its cost bookkeeping). Because a mock call's own jitter is
    larger than that overhead on a busy machine, the wrapper is also timed
    alone, around an original that returns a finished litellm response.
    """
    import shekel
    from shekel import _patch

    msgs = [{"role": "user", "content": "Classify: my invoice was charged twice."}]
    clock = time.perf_counter_ns
    plain: list[int] = []
    wrapped: list[int] = []
    with shekel.budget(max_usd=1e9, name="bench"):
        original = _patch._originals["litellm_sync"]
        patched = ll.completion
        if patched is original:
            raise RuntimeError("shekel did not patch litellm.completion; cannot measure its overhead")
        for i in range(100 + n_calls):  # the first 100 pairs warm litellm's mock path
            first, second = (original, patched) if i % 2 == 0 else (patched, original)  # ABBA: no order bias
            t0 = clock()
            first(model="gpt-4o-mini", messages=msgs, mock_response="billing")
            t1 = clock()
            second(model="gpt-4o-mini", messages=msgs, mock_response="billing")
            t2 = clock()
            if i >= 100:
                a, b = (t1 - t0, t2 - t1) if i % 2 == 0 else (t2 - t1, t1 - t0)
                plain.append(a)
                wrapped.append(b)
    table.add("(d) litellm.completion(mock_response), plain", plain)
    table.add("(d) the same through shekel's budget() wrapper", wrapped)
    diffs = sorted(w - p for w, p in zip(wrapped, plain, strict=True))
    table.rows.append(
        (
            "(d) shekel per-call overhead (median paired difference)",
            len(diffs),
            diffs[len(diffs) // 2] / 1000.0,
            float("nan"),
            float("nan"),
        )
    )

    # Shekel's whole per-call path without the call's own noise: its wrapper around an
    # original that returns a response litellm already produced (a real ModelResponse).
    response = ll.completion(model="gpt-4o-mini", messages=msgs, mock_response="billing")
    with shekel.budget(max_usd=1e9, name="bench-wrapper"):
        saved = _patch._originals["litellm_sync"]
        _patch._originals["litellm_sync"] = lambda *a, **k: response
        try:
            wrapper = ll.completion
            table.add(
                "(d) shekel wrapper per call, around a finished response",
                measure(lambda i: wrapper(model="gpt-4o-mini", messages=msgs), 20000, 1000),
            )
        finally:
            _patch._originals["litellm_sync"] = saved


if __name__ == "__main__":
    main()
