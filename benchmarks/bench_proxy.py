"""litellm proxy latency with and without the governor hook: same run, same requests.

    LITELLM_LOCAL_MODEL_COST_MAP=True python benchmarks/bench_proxy.py [--requests 400] [--quick]

Starts two real litellm proxies on 127.0.0.1 from one config (deployments with
``mock_response``, no database): one plain, one with
``governor.integrations.litellm_proxy.proxy_handler_instance`` and a policy
with a route, a context cap, a call cap and two budgets (none of which blocks).
Each request is sent to both, in alternating order, with the real OpenAI
client over keep-alive connections; the table gives p50 / p99 / mean in
milliseconds and the governed-minus-plain difference. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import openai

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integrations"))
from litellm_proxy_proc import MASTER_KEY, start_proxy, write_config  # noqa: E402

POLICY = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: bench-proxy}
stop:
  - id: max-calls
    type: max_calls
    max: 100000
routes:
  - id: classify-cheap
    match: {task: classify}
    to: gpt-4o-mini
context:
  - id: big-context
    max_input_tokens: 100000
    action: block
calls:
  - id: out-cap
    max_output_tokens: 1024
budgets:
  - id: per-run
    scope: run
    limit: {usd: 1000}
  - id: per-user
    scope: user
    limit: {usd: 1000}
    window: 24h
"""

MESSAGES = [
    {"role": "system", "content": "You are a support assistant. Answer briefly."},
    {"role": "user", "content": "My order #1234 arrived damaged. What are my options for a refund or a replacement?"},
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def one(client: openai.OpenAI, i: int) -> float:
    start = time.perf_counter()
    client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, extra_headers={"x-litellm-trace-id": f"bench-run-{i // 50}"}
    )
    return (time.perf_counter() - start) * 1000.0


def hook_alone(policy_path: Path, n: int) -> list[float]:
    """The pre-call hook plus the success hook in-process, in microseconds per request."""
    import asyncio
    import os

    from litellm.proxy._types import UserAPIKeyAuth

    os.environ["GOVERNOR_POLICY"] = str(policy_path)
    from governor.integrations.litellm_proxy import GovernorProxyHandler

    handler = GovernorProxyHandler.from_env()
    key = UserAPIKeyAuth(user_id="bench-user", team_id="bench-team")

    async def run() -> list[float]:
        out = []
        for i in range(n):
            data = {"model": "gpt-4o", "messages": [dict(m) for m in MESSAGES], "litellm_trace_id": f"run-{i // 50}",
                    "metadata": {"requester_metadata": {"task": "support"}}}
            slo = {"prompt_tokens": 40, "completion_tokens": 12, "metadata": {"usage_object": None}}
            start = time.perf_counter_ns()
            data = await handler.async_pre_call_hook(key, None, data, "acompletion")
            await handler.async_log_success_event(
                {"litellm_params": {"metadata": data["metadata"]}, "standard_logging_object": slo}, None, None, None
            )
            out.append((time.perf_counter_ns() - start) / 1000.0)
        return out

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="measured requests per proxy (default 400)")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="smoke run: 40 requests")
    args = parser.parse_args()
    n = 40 if args.quick else args.requests

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "policy.yaml").write_text(POLICY)
        print("starting two litellm proxies (plain, governed)...", file=sys.stderr)
        plain = start_proxy(write_config(directory, governed=False, probe=False), {}, directory / "plain.log")
        try:
            governed = start_proxy(
                write_config(directory, governed=True, probe=False),
                {"GOVERNOR_POLICY": str(directory / "policy.yaml")},
                directory / "governed.log",
            )
            try:
                clients = {
                    "plain": openai.OpenAI(base_url=plain.base_url, api_key=MASTER_KEY, max_retries=0),
                    "governed": openai.OpenAI(base_url=governed.base_url, api_key=MASTER_KEY, max_retries=0),
                }
                for i in range(args.warmup):
                    for client in clients.values():
                        one(client, i)
                times: dict[str, list[float]] = {"plain": [], "governed": []}
                for i in range(n):
                    order = ("plain", "governed") if i % 2 == 0 else ("governed", "plain")
                    for name in order:
                        times[name].append(one(clients[name], i))
            finally:
                governed.stop()
        finally:
            plain.stop()

    print(f"litellm proxy latency, {n} chat requests per proxy, alternating, one run")
    print(f"litellm {version('litellm')}, openai {version('openai')}, python {sys.version.split()[0]}")
    print(f"{'proxy':<22}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
    for name, values in times.items():
        label = "without governor" if name == "plain" else "with governor hook"
        print(f"{label:<22}{percentile(values, .5):>9.2f}{percentile(values, .99):>9.2f}{statistics.fmean(values):>9.2f}")
    d50 = percentile(times["governed"], 0.5) - percentile(times["plain"], 0.5)
    d99 = percentile(times["governed"], 0.99) - percentile(times["plain"], 0.99)
    dmean = statistics.fmean(times["governed"]) - statistics.fmean(times["plain"])
    print(f"{'difference':<22}{d50:>+9.2f}{d99:>+9.2f}{dmean:>+9.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(POLICY)
        hook = hook_alone(policy, 200 if args.quick else 5000)[100:]
    print()
    print(f"the hook alone, in-process (pre-call check + success record), {len(hook)} requests")
    print(f"{'':<22}{'p50 us':>9}{'p99 us':>9}{'mean us':>9}")
    print(f"{'governor hook':<22}{percentile(hook, .5):>9.1f}{percentile(hook, .99):>9.1f}{statistics.fmean(hook):>9.1f}")


if __name__ == "__main__":
    main()
