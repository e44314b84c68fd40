"""Latency of ``governor hook claude-code`` per hook event, cold and warm, against hand-written hooks.

    python benchmarks/bench_hook.py [--calls 300] [--events 15] [--quick]

A Claude Code transcript of ``--calls`` model calls is built from a session the
real CLI recorded (tests/data/coding_agents: one line per content block, usage
repeated on each, tool results between). Then, in one run:

- ``governor hook`` cold: a new state directory (the first event ever on the
  machine, of a session that already has the transcript: the policy validated,
  the price table read, every call read and settled into SQLite);
- ``governor hook`` on a new session of a machine whose hooks ran before (the
  state directory keeps the validated policy and the price rows): every call
  of the transcript read and settled;
- ``governor hook`` warm: the transcript gains one turn (a call with a tool
  use and its result) before each event: what every tool call of a session pays;
- the same warm events answered in process (``handle``, no interpreter start);
- the alternative people write by hand: a Python hook that re-reads the whole
  transcript each event (dedupe by message.id + requestId, sum the tokens,
  compare with a limit), and a jq one-liner that sums output tokens (no dedupe).

Figures are milliseconds per event (p50 / mean); nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SESSION = (
    REPO
    / "tests"
    / "data"
    / "coding_agents"
    / "claude"
    / "projects"
    / "-tmp-budget-governor-record-proj"
    / "a3e2b169-8489-4446-9bdf-2e9e5e890536.jsonl"
)
GOVERNOR = str(Path(sys.executable).parent / "governor")
POLICY = """apiVersion: governor/v1
kind: Policy
metadata: {name: bench-hook}
ledger: {type: sqlite, path: ledger.db}
stop:
  - {id: stalled, type: no_progress, max: 5}
  - {id: bash-cap, type: max_tool_calls, tool: Bash, max: 100000}
budgets:
  - {id: session, scope: run, limit: {usd: 1000}}
  - {id: dev-daily, scope: user, limit: {usd: 1000}, window: {calendar: day}}
"""
HAND_HOOK = r"""
import json, sys
event = json.load(sys.stdin)
seen, tokens = set(), 0
with open(event["transcript_path"], encoding="utf-8") as fh:
    for line in fh:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        msg = rec.get("message") if isinstance(rec, dict) else None
        if rec.get("type") != "assistant" or not isinstance(msg, dict) or "usage" not in msg:
            continue
        key = (msg.get("id"), rec.get("requestId"))
        if key in seen:
            continue
        seen.add(key)
        u = msg["usage"]
        tokens += sum(u.get(k) or 0 for k in ("input_tokens", "cache_read_input_tokens",
                                             "cache_creation_input_tokens", "output_tokens"))
if tokens > 10**12:
    print(json.dumps({"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                             "permissionDecisionReason": "over budget"}}))
"""
JQ = (
    '[inputs | select(.type == "assistant") | .message.usage.output_tokens // 0] | add '
    '| if . > 1000000000 then {decision: "block"} else empty end'
)


def turn_lines(template: list[dict], i: int) -> list[str]:
    """One call (its content-block lines, usage repeated) and the tool result after it, with fresh ids."""
    out = []
    for rec in template:
        rec = json.loads(json.dumps(rec))
        if rec.get("type") == "assistant":
            rec["message"]["id"] = f"msg_bench_{i}"
            rec["requestId"] = f"req_bench_{i}"
            for block in rec["message"].get("content") or []:
                if block.get("type") == "tool_use":
                    block["id"] = f"toolu_bench_{i}"
                    block["input"] = {"command": f"echo {i}", "description": "step"}
        elif rec.get("type") == "user" and isinstance(rec.get("message", {}).get("content"), list):
            for block in rec["message"]["content"]:
                if block.get("type") == "tool_result":
                    block["tool_use_id"] = f"toolu_bench_{i}"
                    block["content"] = f"{i}"
        rec["uuid"] = f"u-{i}-{len(out)}"
        out.append(json.dumps(rec))
    return out


def build(path: Path, calls: int) -> list[dict]:
    recs = [json.loads(x) for x in SESSION.read_text(encoding="utf-8").splitlines() if x.strip()]
    first_call = next(i for i, r in enumerate(recs) if r.get("type") == "assistant")
    head, template = recs[:first_call], [r for r in recs[first_call:] if r.get("type") in ("assistant", "user")][:3]
    lines = [json.dumps(r) for r in head]
    for i in range(calls):
        lines += turn_lines(template, i)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return template


def event(transcript: Path, session: str = "bench-session") -> bytes:
    return json.dumps(
        {
            "session_id": session,
            "transcript_path": str(transcript),
            "cwd": "/tmp/proj",
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": "ls"},
        }
    ).encode()


def timed(cmd: list[str], stdin: bytes, env: dict[str, str]) -> float:
    t = time.perf_counter()
    done = subprocess.run(cmd, input=stdin, capture_output=True, env=env)
    ms = (time.perf_counter() - t) * 1000
    if done.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=300, help="model calls already in the transcript")
    ap.add_argument("--events", type=int, default=15, help="events measured per row")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 40 calls, 3 events")
    args = ap.parse_args()
    calls, events = (40, 3) if args.quick else (args.calls, args.events)
    tmp = Path(tempfile.mkdtemp(prefix="bench-hook-"))
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    try:
        policy = tmp / "policy.yaml"
        policy.write_text(POLICY, encoding="utf-8")
        transcript = tmp / "bench-session.jsonl"
        template = build(transcript, calls)
        hook = [GOVERNOR, "hook", "claude-code", "--policy", str(policy), "--user", "dev1"]
        hand = tmp / "hand_hook.py"
        hand.write_text(HAND_HOOK, encoding="utf-8")
        rows: dict[str, list[float]] = {
            "governor hook, cold (new state directory)": [],
            "governor hook, new session (machine warm)": [],
            "governor hook, warm (+1 call per event)": [],
            "  the same, in process (handle())": [],
            "hand-written python hook (re-reads all)": [],
            "jq one-liner (re-reads all, no dedupe)": [],
        }
        for k in range(events):
            state = tmp / f"cold-{k}"
            rows["governor hook, cold (new state directory)"].append(
                timed([*hook, "--state-dir", str(state)], event(transcript), env)
            )
        warm_state = tmp / "warm"
        timed([*hook, "--state-dir", str(warm_state)], event(transcript), env)  # the session's first event
        for k in range(events):
            rows["governor hook, new session (machine warm)"].append(
                timed([*hook, "--state-dir", str(warm_state)], event(transcript, f"bench-new-{k}"), env)
            )
        from governor.engine.governor import Governor
        from governor.hooks.claude_code import handle
        from governor.policy.loader import load_policy

        n = calls
        for _ in range(events):
            with open(transcript, "a", encoding="utf-8") as fh:
                fh.write("\n".join(turn_lines(template, n)) + "\n")
            n += 1
            rows["governor hook, warm (+1 call per event)"].append(
                timed([*hook, "--state-dir", str(warm_state)], event(transcript), env)
            )
            with open(transcript, "a", encoding="utf-8") as fh:
                fh.write("\n".join(turn_lines(template, n)) + "\n")
            n += 1
            t = time.perf_counter()
            gov = Governor(load_policy(policy), path=policy, stats=False, observers=False)
            answer = handle(event(transcript), gov, user="dev1", state_dir=warm_state)
            gov.close()
            rows["  the same, in process (handle())"].append((time.perf_counter() - t) * 1000)
            assert answer.new_calls == 1, answer
            rows["hand-written python hook (re-reads all)"].append(
                timed([sys.executable, str(hand)], event(transcript), env)
            )
            if shutil.which("jq"):
                rows["jq one-liner (re-reads all, no dedupe)"].append(
                    timed(["jq", "-n", JQ, str(transcript)], b"", env)
                )
        size = transcript.stat().st_size
        print(
            f"Claude Code hook latency per event: transcript of {calls}..{n} calls ({size / 1e6:.2f} MB), "
            f"{events} events per row, python {sys.version.split()[0]}"
        )
        print(f"{'':44} {'p50 ms':>9} {'mean ms':>9}")
        for name, values in rows.items():
            if values:
                print(f"{name:44} {statistics.median(values):9.1f} {statistics.fmean(values):9.1f}")
            else:
                print(f"{name:44} {'(jq not installed)':>19}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
