"""``governor hook claude-code`` in real ``claude -p`` sessions (the pinned CLI), offline.

Claude Code talks to the scripted upstream directly (ANTHROPIC_BASE_URL): the
hook is the only governor in the loop. Its project settings run the hook on
every event; the hook reads the real transcript Claude Code writes.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from governor.engine.compiled import CompiledPolicy
from governor.ledger.factory import open_ledger
from governor.policy.loader import load_policy
from tests.support.agents import claude_env, hook_settings, run_claude, transcripts
from tests.support.upstream import Received, Reply, ScriptedUpstream, Tokens, ToolCall

GOVERNOR = str(Path(sys.executable).parent / "governor")


def _policy(tmp: Path, body: str) -> Path:
    path = tmp / "policy.yaml"
    path.write_text(
        "apiVersion: governor/v1\nkind: Policy\nmetadata: {name: coding-agents}\n"
        "ledger: {type: sqlite, path: ledger.db}\n" + body,
        encoding="utf-8",
    )
    return path


def _used(policy: Path, budget: str, value: str) -> tuple[int, int]:
    """(tokens, calls) the policy's ledger holds for one budget and scope value."""
    pol = load_policy(policy)
    cb = next(b for b in CompiledPolicy(pol).budgets if b.id == budget)
    ledger = open_ledger(pol.ledger, base_dir=str(policy.parent))
    try:
        import time

        amount = ledger.usage(cb.counter(value), now=time.time())
        return amount.tokens, amount.calls
    finally:
        ledger.close()


def _transcript_texts(home: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in transcripts(home))


class Upstream:
    """The scripted provider with a responder that keeps the replies it gave."""

    def __init__(self, answer) -> None:
        self.server = ScriptedUpstream()
        self.replies: list[Reply] = []
        self._lock = threading.Lock()

        def responder(received: Received) -> Reply:
            reply = answer(received)
            with self._lock:
                self.replies.append(reply)
            return reply

        self.server.responder = responder


def _last_tool_result(received: Received) -> str:
    for msg in reversed(received.body.get("messages") or []):
        content = msg.get("content")
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    inner = block.get("content")
                    return inner if isinstance(inner, str) else json.dumps(inner)
    return ""


def test_a_spent_session_budget_denies_the_tool_and_the_spend_is_the_upstreams(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        "budgets:\n  - {id: session-calls, scope: run, limit: {calls: 1}}\n"
        "  - {id: dev-daily, scope: user, limit: {tokens: 100000}, window: {calendar: day}}\n",
    )
    project, home = tmp_path / "proj", tmp_path / "home"
    project.mkdir()
    marker = tmp_path / "bash-ran"
    hook_settings(
        project,
        f"{GOVERNOR} hook claude-code --policy {policy} --user dev1 --state-dir {tmp_path / 'st'}",
        events=("SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "Stop", "SessionEnd"),
    )

    def answer(received: Received) -> Reply:
        if "budget-governor" in _last_tool_result(received):
            return Reply(text="I stop here.", usage=Tokens(input=130, output=6, cache_read=40))
        return Reply(
            tool_calls=[ToolCall("Bash", {"command": f"touch {marker}", "description": "mark"})],
            usage=Tokens(input=120, output=22, cache_read=40, cache_write_1h=10),
        )

    up = Upstream(answer)
    with up.server:
        run = run_claude("run the step", cwd=project, env=claude_env(home, up.server.base_url))
        calls = up.server.requests_to("messages")
    assert run.returncode == 0, run.stderr
    result = run.json()
    # the first Bash call was denied: the session had spent its one call; the tool never ran
    assert [d["tool_name"] for d in result["permission_denials"]][:1] == ["Bash"]
    assert not marker.exists()
    text = _transcript_texts(home)
    assert "rule session-calls" in text and "budget session-calls" in text
    # the transcript-based spend is the upstream's own count of what it served
    served = [r.usage for r in up.replies]
    assert len(served) == len(calls) >= 2
    expected_tokens = sum(t.input + t.cache_read + t.cache_write + t.output for t in served)
    session = result["session_id"]
    assert _used(policy, "session-calls", session) == (expected_tokens, len(served))
    assert _used(policy, "dev-daily", "dev1") == (expected_tokens, len(served))


def test_a_repeated_identical_tool_loop_stops_at_no_progress(tmp_path: Path) -> None:
    policy = _policy(tmp_path, "stop:\n  - {id: stalled, type: no_progress, max: 3}\n")
    project, home = tmp_path / "proj", tmp_path / "home"
    project.mkdir()
    hook_settings(project, f"{GOVERNOR} hook claude-code --policy {policy} --user dev1 --state-dir {tmp_path / 'st'}")

    def answer(received: Received) -> Reply:
        if "budget-governor" in _last_tool_result(received):
            return Reply(text="Giving up.", usage=Tokens(input=50, output=3))
        return Reply(
            text="Checking again.",
            usage=Tokens(input=50, output=10),
            tool_calls=[ToolCall("Bash", {"command": "echo same", "description": "x"})],
        )

    up = Upstream(answer)
    with up.server:
        run = run_claude("check it", cwd=project, env=claude_env(home, up.server.base_url))
    assert run.returncode == 0, run.stderr
    result = run.json()
    text = _transcript_texts(home)
    ran = text.count('"content":"same"')  # tool results of Bash runs (each written once in the transcript)
    assert ran == 3, text[-2000:]
    assert [d["tool_name"] for d in result["permission_denials"]] == ["Bash"]
    assert "rule stalled" in text and "add no new content" in text


def test_a_tool_cap_denies_the_call_past_it(tmp_path: Path) -> None:
    policy = _policy(tmp_path, "stop:\n  - {id: bash-cap, type: max_tool_calls, tool: Bash, max: 2}\n")
    project, home = tmp_path / "proj", tmp_path / "home"
    project.mkdir()
    hook_settings(
        project,
        f"{GOVERNOR} hook claude-code --policy {policy} --user dev1 --state-dir {tmp_path / 'st'}",
        events=("PreToolUse",),
    )
    step = iter(range(100))

    def answer(received: Received) -> Reply:
        if "budget-governor" in _last_tool_result(received):
            return Reply(text="Stopped.", usage=Tokens(input=50, output=3))
        return Reply(
            tool_calls=[ToolCall("Bash", {"command": f"echo step{next(step)}", "description": "x"})],
            usage=Tokens(input=50, output=10),
        )

    up = Upstream(answer)
    with up.server:
        run = run_claude("do the steps", cwd=project, env=claude_env(home, up.server.base_url))
    assert run.returncode == 0, run.stderr
    text = _transcript_texts(home)
    assert text.count('"content":"step') == 2  # two Bash runs, the third denied
    assert "rule bash-cap" in text and "3 calls of Bash (max 2)" in text
