"""``governor hook codex`` in real ``codex exec`` sessions (the pinned CLI), offline.

Codex talks to the scripted upstream directly (a Responses API provider in
``$CODEX_HOME/config.toml``): the hook is the only governor in the loop. Its
``hooks.json`` runs the hook on every event; the hook reads the real rollout
Codex writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.hooks.test_hook_claude_code_cli import Upstream, _policy, _used
from tests.support.agents import codex_home, rollouts, run_codex
from tests.support.upstream import Received, Reply, Tokens, ToolCall

GOVERNOR = str(Path(sys.executable).parent / "governor")
EVENTS = ("SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "Stop")


def _last_output(received: Received) -> str:
    for item in reversed(received.body.get("input") or []):
        if isinstance(item, dict) and item.get("type") == "function_call_output":
            out = item.get("output")
            return out if isinstance(out, str) else json.dumps(out)
    return ""


def _hook(tmp: Path, policy: Path, user: str = "dev1") -> str:
    return f"{GOVERNOR} hook codex --policy {policy} --user {user} --state-dir {tmp / 'st'}"


def test_a_spent_session_budget_blocks_the_tool_and_the_spend_is_the_upstreams(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        "budgets:\n  - {id: session-calls, scope: run, limit: {calls: 1}}\n"
        "  - {id: dev-daily, scope: user, limit: {tokens: 100000}, window: {calendar: day}}\n",
    )
    marker = tmp_path / "tool-ran"

    def answer(received: Received) -> Reply:
        if "budget-governor" in _last_output(received):
            return Reply(text="I stop here.", usage=Tokens(input=130, output=6, cache_read=40))
        return Reply(
            tool_calls=[ToolCall("exec_command", {"cmd": f"touch {marker}"})],
            usage=Tokens(input=120, output=22, cache_read=40),
        )

    up = Upstream(answer)
    with up.server:
        home = codex_home(tmp_path / "codex", up.server.base_url, hook=_hook(tmp_path, policy), events=EVENTS)
        run = run_codex("run the step", cwd=tmp_path, home=home)
        calls = up.server.requests_to("responses")
    assert run.returncode == 0, run.stderr[-3000:]
    # the tool the first call asked for was blocked: the session had spent its one call
    assert not marker.exists()
    assert "Command blocked by PreToolUse hook: budget-governor" in run.stderr, run.stderr[-3000:]
    assert "rule session-calls" in run.stderr and "budget session-calls" in run.stderr
    # the model was told why (the blocked tool's output), in the one more call a denial costs
    assert "rule session-calls" in _last_output(calls[-1])
    # the rollout-based spend is the upstream's own count of what it served
    served = [r.usage for r in up.replies]
    assert len(served) == len(calls) == 2
    tokens = sum(t.input + t.cache_read + t.output for t in served)  # Codex's input includes the cached part
    session = json.loads(next(x for x in run.stdout.splitlines() if '"thread.started"' in x))["thread_id"]
    assert _used(policy, "session-calls", session) == (tokens, 2)
    assert _used(policy, "dev-daily", "dev1") == (tokens, 2)
    assert len(rollouts(home)) == 1


def test_a_developer_over_the_daily_budget_is_stopped_before_the_next_session_calls(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path, "budgets:\n  - {id: dev-daily, scope: user, limit: {calls: 1}, window: {calendar: day}}\n"
    )
    answers = tmp_path / "answers.jsonl"  # what the hook answered Codex (codex exec does not print hook output)
    hook = f"{_hook(tmp_path, policy)} | tee -a {answers}"
    up = Upstream(lambda received: Reply(text="hello", usage=Tokens(input=40, output=5)))
    with up.server:
        home = codex_home(tmp_path / "codex", up.server.base_url, hook=hook, events=EVENTS)
        first = run_codex("say hello", cwd=tmp_path, home=home)
        assert first.returncode == 0, first.stderr[-3000:]
        assert len(up.server.requests_to("responses")) == 1
        second = run_codex("say hello again", cwd=tmp_path, home=home)
        served = up.server.requests_to("responses")
    # the second session's prompt is refused by its UserPromptSubmit hook: it makes no call at all
    assert len(served) == 1, [r.body.get("input") for r in served]
    assert second.returncode == 0 and second.seconds < 30
    done = [json.loads(x) for x in second.stdout.splitlines() if '"turn.completed"' in x]
    assert done and not any(done[-1]["usage"].values())
    refusals = [json.loads(x) for x in answers.read_text().splitlines() if '"continue": false' in x]
    assert refusals and all("rule dev-daily" in r["stopReason"] for r in refusals), refusals


def _outputs(received: Received) -> list[str]:
    items = received.body.get("input") or []
    return [str(i.get("output")) for i in items if isinstance(i, dict) and i.get("type") == "function_call_output"]


def test_a_repeated_identical_tool_loop_stops_at_no_progress(tmp_path: Path) -> None:
    policy = _policy(tmp_path, "stop:\n  - {id: stalled, type: no_progress, max: 3}\n")

    def answer(received: Received) -> Reply:
        if "budget-governor" in _last_output(received):
            return Reply(text="Giving up.", usage=Tokens(input=50, output=3))
        return Reply(
            text="Checking again.",
            usage=Tokens(input=50, output=10),
            tool_calls=[ToolCall("exec_command", {"cmd": "echo same"})],
        )

    up = Upstream(answer)
    with up.server:
        home = codex_home(tmp_path / "codex", up.server.base_url, hook=_hook(tmp_path, policy), events=EVENTS)
        run = run_codex("check it", cwd=tmp_path, home=home)
        last = up.server.requests_to("responses")[-1]
    assert run.returncode == 0, run.stderr[-3000:]
    outputs = _outputs(last)
    # the tool runs after the first three calls; the session's next call would be the third in a row that
    # adds nothing new (the same command with the same output), so the fourth call's tool is blocked
    assert sum("budget-governor" not in o for o in outputs) == 3, outputs
    assert "rule stalled" in outputs[-1] and "add no new content" in outputs[-1], outputs
