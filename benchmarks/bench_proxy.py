"""litellm proxy latency per API shape with and without the governor hook: same run, same requests.

    LITELLM_LOCAL_MODEL_COST_MAP=True python benchmarks/bench_proxy.py [--requests 400] [--quick]

Starts two real litellm proxies on 127.0.0.1 from one config whose deployments
answer from the scripted upstream of the tests (tests/support/upstream.py, on
127.0.0.1, no database): one plain, one with
``governor.integrations.litellm_proxy.proxy_handler_instance`` and a policy
with a route, a context cap, a call cap and two budgets (none of which blocks).
Each request of each shape (Chat Completions, Responses, Anthropic Messages,
Embeddings) is sent to both, in alternating order, with the real OpenAI and
Anthropic clients over keep-alive connections; the table gives p50 / p99 / mean
in milliseconds and the governed-minus-plain difference per shape, with the
machine's load average before and after (on a shared machine the figures move
with it: compare the rows of one run). Figures, not assertions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anthropic
import openai

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integrations"))
sys.path.insert(0, str(ROOT / "tests"))
from litellm_proxy_proc import MASTER_KEY, start_proxy, write_upstream_config  # noqa: E402
from support.upstream import Reply, ScriptedUpstream, Tokens  # noqa: E402

SHAPES = ("chat", "responses", "messages", "embeddings")

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


def senders(base_url: str) -> dict[str, Callable[[int], Any]]:
    """One request of each shape against the proxy at ``base_url``."""
    oai = openai.OpenAI(base_url=base_url + "/v1", api_key=MASTER_KEY, max_retries=0)
    claude = anthropic.Anthropic(base_url=base_url, api_key=MASTER_KEY, max_retries=0)
    run = {"x-governor-run-id": "bench"}
    return {
        "chat": lambda i: oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=run),
        "responses": lambda i: oai.responses.create(
            model="gpt-4o", instructions=MESSAGES[0]["content"], input=MESSAGES[1]["content"], extra_headers=run
        ),
        "messages": lambda i: claude.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=256,
            system=MESSAGES[0]["content"],
            messages=MESSAGES[1:],
            extra_headers=run,
        ),
        "embeddings": lambda i: oai.embeddings.create(
            model="text-embedding-3-small", input=MESSAGES[1]["content"], extra_headers=run
        ),
    }


def timed(send: Callable[[int], Any], i: int) -> float:
    start = time.perf_counter()
    send(i)
    return (time.perf_counter() - start) * 1000.0


HOOK_REQUESTS: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    "chat": ("acompletion", lambda: {"model": "gpt-4o", "messages": [dict(m) for m in MESSAGES]}),
    "responses": (
        "aresponses",
        lambda: {"model": "gpt-4o", "instructions": MESSAGES[0]["content"], "input": MESSAGES[1]["content"]},
    ),
    "messages": (
        "anthropic_messages",
        lambda: {
            "model": "claude-sonnet-4-5",
            "max_tokens": 256,
            "system": MESSAGES[0]["content"],
            "messages": [dict(MESSAGES[1])],
        },
    ),
    "embeddings": ("aembedding", lambda: {"model": "text-embedding-3-small", "input": MESSAGES[1]["content"]}),
}


def hook_alone(policy_path: Path, n: int, shape: str = "chat") -> list[float]:
    """The pre-call hook plus the success hook in-process, in microseconds per request."""
    import asyncio

    from litellm.proxy._types import UserAPIKeyAuth

    os.environ["GOVERNOR_POLICY"] = str(policy_path)
    from governor.integrations.litellm_proxy import GovernorProxyHandler

    handler = GovernorProxyHandler.from_env()
    key = UserAPIKeyAuth(user_id="bench-user", team_id="bench-team")

    async def run() -> list[float]:
        out = []
        for i in range(n):
            call_type, build = HOOK_REQUESTS[shape]
            data = {
                **build(),
                "litellm_trace_id": f"run-{i // 50}",
                "metadata": {"requester_metadata": {"task": "support"}},
            }
            output = 0 if shape == "embeddings" else 12  # an embedding has no output tokens
            slo = {"prompt_tokens": 40, "completion_tokens": output, "metadata": {"usage_object": None}}
            start = time.perf_counter_ns()
            data = await handler.async_pre_call_hook(key, None, data, call_type)
            await handler.async_log_success_event(
                {"litellm_params": {"metadata": data["metadata"]}, "standard_logging_object": slo}, None, None, None
            )
            out.append((time.perf_counter_ns() - start) / 1000.0)
        return out

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="measured requests per shape and proxy (default 400)")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="smoke run: 40 requests")
    args = parser.parse_args()
    n = 40 if args.quick else args.requests

    times: dict[tuple[str, str], list[float]] = {(s, p): [] for s in SHAPES for p in ("plain", "governed")}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, ScriptedUpstream(default=Reply(text="ok", usage=Tokens(output=5))) as up:
        directory = Path(tmp)
        (directory / "policy.yaml").write_text(POLICY)
        print("starting two litellm proxies (plain, governed)...", file=sys.stderr)
        plain = start_proxy(
            write_upstream_config(directory, up.base_url, governed=False), {}, directory / "plain.log", timeout=240
        )
        try:
            governed = start_proxy(
                write_upstream_config(directory, up.base_url, governed=True),
                {"GOVERNOR_POLICY": str(directory / "policy.yaml")},
                directory / "governed.log",
                timeout=600,
            )
            try:
                send = {"plain": senders(plain.base_url), "governed": senders(governed.base_url)}
                for i in range(args.warmup):
                    for proxy in send.values():
                        for shape in SHAPES:
                            proxy[shape](i)
                for i in range(n):
                    order = ("plain", "governed") if i % 2 == 0 else ("governed", "plain")
                    for shape in SHAPES:
                        for name in order:
                            times[(shape, name)].append(timed(send[name][shape], i))
            finally:
                governed.stop()
        finally:
            plain.stop()

    load_after = os.getloadavg()
    print(f"litellm proxy latency per API shape, {n} requests per shape and proxy, alternating, one run")
    print(
        f"load average (1/5/15 min) before {' / '.join(f'{x:.2f}' for x in load_before)}, "
        f"after {' / '.join(f'{x:.2f}' for x in load_after)}; {os.cpu_count()} CPUs"
    )
    print(
        f"litellm {version('litellm')}, openai {version('openai')}, anthropic {version('anthropic')}, "
        f"python {sys.version.split()[0]}; upstream: the scripted provider on 127.0.0.1"
    )
    print(f"{'shape':<11}{'proxy':<22}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
    for shape in SHAPES:
        for name in ("plain", "governed"):
            values = times[(shape, name)]
            label = "without governor" if name == "plain" else "with governor hook"
            print(
                f"{shape:<11}{label:<22}{percentile(values, 0.5):>9.2f}{percentile(values, 0.99):>9.2f}"
                f"{statistics.fmean(values):>9.2f}"
            )
        g, p = times[(shape, "governed")], times[(shape, "plain")]
        d50 = percentile(g, 0.5) - percentile(p, 0.5)
        d99 = percentile(g, 0.99) - percentile(p, 0.99)
        print(
            f"{shape:<11}{'difference':<22}{d50:>+9.2f}{d99:>+9.2f}{statistics.fmean(g) - statistics.fmean(p):>+9.2f}"
        )

    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(POLICY)
        hooks = {shape: hook_alone(policy, 200 if args.quick else 5000, shape)[100:] for shape in SHAPES}
    print()
    print(f"the hook alone, in-process (pre-call check + success record), {len(hooks['chat'])} requests per shape")
    print(f"{'':<22}{'p50 us':>9}{'p99 us':>9}{'mean us':>9}")
    for shape, hook in hooks.items():
        label = f"governor hook, {shape}"
        print(f"{label:<22}{percentile(hook, 0.5):>9.1f}{percentile(hook, 0.99):>9.1f}{statistics.fmean(hook):>9.1f}")


if __name__ == "__main__":
    main()
