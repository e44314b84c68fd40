"""``governor hook codex`` in process, on rollouts the real CLI wrote (tests/data/coding_agents/codex).

The upstream's own log of what it served (tests/data/coding_agents/upstream.jsonl)
is what the hook must settle, however the rollout grows between events; a
rollout of an older Codex (no ``token_usage_record`` lines) is counted as the
importer counts it; any rollout bytes get an answer and located notes.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governor.engine.governor import Governor
from governor.hooks.codex import handle
from governor.policy.loader import load_policy
from governor.traces import load_traces
from tests.hooks.test_hook_claude_code import HOOK_VALUES, _policy, _used

DATA = Path(__file__).resolve().parent.parent / "data" / "coding_agents"
ROLLOUTS = DATA / "codex" / "sessions" / "2026" / "12" / "03"
PARENT = "01a23ca8-939f-7fd1-85d8-4a1652aff8c3"  # three calls
FORK = "01a23ca8-9c69-7512-a7a5-17b84275d812"  # PARENT forked: the parent's history, then one call


def _rollout(session: str) -> Path:
    return next(ROLLOUTS.glob(f"rollout-*-{session}.jsonl"))


def _served(session: str) -> tuple[int, int]:
    """(tokens, calls) the scripted upstream served the session, from its own log."""
    rows = [json.loads(x) for x in (DATA / "upstream.jsonl").read_text().splitlines() if x.strip()]
    mine = [r for r in rows if r["api"] == "responses" and r.get("session") == session]
    return sum(r["usage"]["input_tokens"] + r["usage"]["output_tokens"] for r in mine), len(mine)


def _event(session: str, rollout: Path, name: str = "PreToolUse", **extra: object) -> bytes:
    doc = {
        "session_id": session,
        "transcript_path": str(rollout),
        "cwd": "/tmp/proj",
        "hook_event_name": name,
        "model": "gpt-5.1-codex",
        "tool_name": "Bash",
        "tool_input": {"command": "ls"},
        **extra,
    }
    return json.dumps(doc).encode()


def _hook(policy: Path, raw: bytes, state: Path):
    gov = Governor(load_policy(policy), path=policy, stats=False, observers=False)
    try:
        return handle(raw, gov, user="dev1", team="core", state_dir=state)
    finally:
        gov.close()


def _priced(tmp: Path, daily_calls: int = 1000) -> Path:
    policy = _policy(tmp, daily_calls)
    text = policy.read_text().replace(
        "  prices:\n",
        "  prices:\n    gpt-5.1-codex: {input_per_mtok: 1.25, output_per_mtok: 10, cache_read_per_mtok: 0.125}\n",
    )
    policy.write_text(text, encoding="utf-8")
    return policy


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.floats(0, 1), max_size=6), session=st.sampled_from([PARENT, FORK]))
def test_a_rollout_read_in_any_pieces_is_counted_once_as_the_upstream_served_it(
    tmp_path_factory, cuts: list[float], session: str
) -> None:
    tmp = tmp_path_factory.mktemp("codex")
    policy, state = _priced(tmp), tmp / "state"
    data = _rollout(session).read_bytes()
    target = tmp / _rollout(session).name
    for frac in sorted(cuts) + [1.0]:  # each event sees the rollout grown to this fraction (mid-line cuts too)
        target.write_bytes(data[: int(len(data) * frac)])
        assert _hook(policy, _event(session, target), state).exit_code == 0
    assert _hook(policy, _event(session, target, "Stop"), state).new_calls == 0
    assert _used(policy, "session", session) == _served(session)
    assert _used(policy, "dev-daily", "dev1") == _served(session)


def test_a_rollout_without_usage_records_is_counted_as_the_importer_counts_it(tmp_path: Path) -> None:
    old = tmp_path / _rollout(PARENT).name  # what a Codex before token_usage_record lines writes
    kept = [x for x in _rollout(PARENT).read_text().splitlines() if '"type":"token_usage_record"' not in x]
    old.write_text("\n".join(kept) + "\n", encoding="utf-8")
    policy = _priced(tmp_path)
    answer = _hook(policy, _event(PARENT, old, "Stop"), tmp_path / "state")
    calls = [c for r in load_traces([old]).runs for c in r.calls]
    assert answer.new_calls == len(calls) == _served(PARENT)[1]
    assert _used(policy, "session", PARENT) == (sum(c.input_tokens + c.output_tokens for c in calls), len(calls))


def test_a_spent_daily_budget_denies_the_tool_and_stops_the_session_naming_the_rule(tmp_path: Path) -> None:
    policy, state = _priced(tmp_path, daily_calls=_served(PARENT)[1]), tmp_path / "state"
    answer = _hook(policy, _event(PARENT, _rollout(PARENT)), state)
    out = answer.output["hookSpecificOutput"]
    assert out["permissionDecision"] == "deny" and "rule dev-daily" in out["permissionDecisionReason"]
    assert "continue" not in answer.output  # Codex 0.171 calls continue:false in a PreToolUse answer invalid
    for name in ("Stop", "UserPromptSubmit", "PostToolUse"):
        answer = _hook(policy, _event(PARENT, _rollout(PARENT), name), state)
        assert answer.output["continue"] is False and "rule dev-daily" in answer.output["stopReason"]


def test_a_bad_rollout_line_is_located_and_the_rest_counted(tmp_path: Path) -> None:
    lines = _rollout(PARENT).read_text().splitlines()
    at = next(i for i, x in enumerate(lines) if '"type":"token_usage_record"' in x)
    bad = list(lines)
    bad[at] = bad[at].replace('"output_tokens":', '"output_tokens":-', 1)
    bad.insert(2, "{not json")
    path = tmp_path / "rollout.jsonl"
    path.write_text("\n".join(bad) + "\n", encoding="utf-8")
    policy = _priced(tmp_path)
    answer = _hook(policy, _event(PARENT, path, "Stop"), tmp_path / "state")
    assert [n.split(": ", 1)[0] for n in answer.notes] == [f"{path}:3", f"{path}:{at + 2}"], answer.notes
    assert "usage.output_tokens" in answer.notes[1]
    # the first call's record is unreadable, so no record came before its token_count: counted from that
    assert _used(policy, "session", PARENT) == _served(PARENT)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.binary(max_size=60) | st.builds(lambda v: json.dumps(v).encode(), HOOK_VALUES), max_size=8))
def test_any_rollout_bytes_get_an_answer_and_located_notes(tmp_path_factory, lines: list[bytes]) -> None:
    tmp = tmp_path_factory.mktemp("ro")
    rollout = tmp / "rollout.jsonl"
    rollout.write_bytes(b"\n".join(x.replace(b"\n", b" ") for x in lines) + b"\n")
    answer = _hook(_priced(tmp), _event("s", rollout), tmp / "state")
    assert answer.exit_code == 0 and answer.decision is not None
    assert all(n.startswith(f"{rollout}:") for n in answer.notes)
