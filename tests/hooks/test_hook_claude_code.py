"""``governor hook claude-code`` in process, on transcripts the real CLI wrote (tests/data/coding_agents).

The importer's count of those files (itself checked against the upstream's
own log in tests/traces) is what the hook must settle, however the file grows
between events; any hook input gets an answer or a located error.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governor.engine.compiled import CompiledPolicy
from governor.engine.governor import Governor
from governor.hooks.claude_code import handle, parse_event
from governor.policy.loader import load_policy
from governor.traces import load_traces

DATA = (
    Path(__file__).resolve().parent.parent
    / "data"
    / "coding_agents"
    / "claude"
    / "projects"
    / "-tmp-budget-governor-record-proj"
)
WITH_SUBAGENT = "b53d6fe4-81e9-40d3-b085-4665d73e60ca"
TOOL_SESSION = "a3e2b169-8489-4446-9bdf-2e9e5e890536"  # a Bash tool call
FORK = "f29b67de-845d-4ed4-961c-35370a3a6540"  # TOOL_SESSION resumed with --fork-session: its history, then one call
API_ERROR = "d9a1f3d1-0439-4316-9b16-a85d447247c6"  # one call that failed (HTTP 500), no usage
POLICY = """apiVersion: governor/v1
kind: Policy
metadata: {name: hook-test}
ledger: {type: sqlite, path: ledger.db}
models:
  prices:
    claude-sonnet-4-5: {input_per_mtok: 3, output_per_mtok: 15, cache_read_per_mtok: 0.3, cache_write_per_mtok: 3.75}
budgets:
  - {id: session, scope: run, limit: {calls: 1000}}
  - {id: dev-daily, scope: user, limit: {calls: LIMIT}, window: {calendar: day}}
"""


def _policy(tmp: Path, daily_calls: int = 1000) -> Path:
    path = tmp / "policy.yaml"
    path.write_text(POLICY.replace("LIMIT", str(daily_calls)), encoding="utf-8")
    return path


def _used(policy: Path, budget: str, value: str) -> tuple[int, int]:
    gov = Governor(load_policy(policy), path=policy, stats=False, observers=False)
    try:
        cb = next(b for b in CompiledPolicy(gov.policy).budgets if b.id == budget)
        a = gov.ledger.usage(cb.counter(value), now=time.time())
        return a.tokens, a.calls
    finally:
        gov.close()


def _event(session: str, transcript: Path, name: str = "PreToolUse", **extra: object) -> bytes:
    doc = {
        "session_id": session,
        "transcript_path": str(transcript),
        "cwd": "/tmp/proj",
        "hook_event_name": name,
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


def _importer_count(files: list[Path]) -> tuple[int, int]:
    ts = load_traces(files)
    calls = [c for r in ts.runs for c in r.calls]
    return sum(c.input_tokens + c.output_tokens for c in calls), len(calls)


def _session_files(session: str) -> list[Path]:
    main = DATA / f"{session}.jsonl"
    sub = DATA / session / "subagents"
    return [main, *(sorted(sub.glob("agent-*.jsonl")) if sub.is_dir() else [])]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.floats(0, 1), max_size=6), session=st.sampled_from([WITH_SUBAGENT, TOOL_SESSION, API_ERROR]))
def test_a_transcript_read_in_any_pieces_is_counted_once(tmp_path_factory, cuts: list[float], session: str) -> None:
    tmp = tmp_path_factory.mktemp("hook")
    policy, state = _policy(tmp), tmp / "state"
    sources = _session_files(session)
    targets = [tmp / "proj" / src.relative_to(DATA) for src in sources]
    for t in targets:
        t.parent.mkdir(parents=True, exist_ok=True)
        t.write_bytes(b"")
    shutil.copy(DATA / session / "subagents" / "agent-a6e828f9e6f202f65.meta.json", targets[1].parent) if len(
        targets
    ) > 1 else None
    datas = [s.read_bytes() for s in sources]
    for frac in sorted(cuts) + [1.0]:  # each event sees the files grown to this fraction (mid-line cuts too)
        for data, target in zip(datas, targets, strict=True):
            target.write_bytes(data[: int(len(data) * frac)])
        answer = _hook(policy, _event(session, targets[0]), state)
        assert answer.exit_code == 0
    again = _hook(policy, _event(session, targets[0], "Stop"), state)
    assert again.new_calls == 0
    expected = _importer_count(sources)
    assert _used(policy, "session", session) == expected
    assert _used(policy, "dev-daily", "dev1") == expected
    # the state file lost: the ledger's settled ids still keep every call counted once
    shutil.rmtree(state)
    _hook(policy, _event(session, targets[0]), state)
    assert _used(policy, "dev-daily", "dev1") == expected


def test_a_fork_counts_only_its_own_calls(tmp_path: Path) -> None:
    policy, state = _policy(tmp_path), tmp_path / "state"
    _hook(policy, _event(TOOL_SESSION, DATA / f"{TOOL_SESSION}.jsonl"), state)
    _hook(policy, _event(FORK, DATA / f"{FORK}.jsonl"), state)
    both = _importer_count([DATA / f"{TOOL_SESSION}.jsonl", DATA / f"{FORK}.jsonl"])
    assert _used(policy, "dev-daily", "dev1") == both
    assert _used(policy, "session", FORK)[1] == both[1] - _importer_count([DATA / f"{TOOL_SESSION}.jsonl"])[1] == 1


def test_two_sessions_of_one_developer_share_the_daily_budget(tmp_path: Path) -> None:
    tokens_a, calls_a = _importer_count(_session_files(TOOL_SESSION))
    policy, state = _policy(tmp_path, daily_calls=calls_a + 1), tmp_path / "state"
    first = _hook(policy, _event(TOOL_SESSION, DATA / f"{TOOL_SESSION}.jsonl"), state)
    assert first.decision is not None and first.decision.verdict == "allow"
    second = _hook(policy, _event(WITH_SUBAGENT, DATA / f"{WITH_SUBAGENT}.jsonl"), state)
    assert second.decision is not None and second.decision.blocked_by == "dev-daily"
    out = second.output["hookSpecificOutput"]
    assert out["permissionDecision"] == "deny" and "rule dev-daily" in out["permissionDecisionReason"]


def test_a_bad_transcript_line_is_located_and_the_rest_counted(tmp_path: Path) -> None:
    src = DATA / f"{TOOL_SESSION}.jsonl"
    lines = src.read_bytes().splitlines(keepends=True)
    bad = tmp_path / f"{TOOL_SESSION}.jsonl"
    bad.write_bytes(
        b"".join(lines[:2]) + b"{not json\n" + b'{"type":"assistant","message":{"usage":7}}\n' + b"".join(lines[2:])
    )
    policy = _policy(tmp_path)
    answer = _hook(policy, _event(TOOL_SESSION, bad, "Stop"), tmp_path / "state")
    assert any(n.startswith(f"{bad}:3: ") for n in answer.notes), answer.notes
    assert any(n.startswith(f"{bad}:4: ") and "usage" in n for n in answer.notes), answer.notes
    assert _used(policy, "session", TOOL_SESSION) == _importer_count([src])


def test_stop_and_prompt_events_stop_the_session_naming_the_rule(tmp_path: Path) -> None:
    policy, state = _policy(tmp_path, daily_calls=1), tmp_path / "state"
    transcript = DATA / f"{WITH_SUBAGENT}.jsonl"
    for name in ("Stop", "UserPromptSubmit", "PostToolUse"):
        answer = _hook(policy, _event(WITH_SUBAGENT, transcript, name), state)
        assert answer.output is not None and answer.output["continue"] is False
        assert "rule dev-daily" in answer.output["stopReason"]
    answer = _hook(policy, _event(WITH_SUBAGENT, transcript, "SessionStart"), state)
    assert answer.output is not None and set(answer.output) == {"systemMessage"}


HOOK_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=10), kids, max_size=3),
    max_leaves=8,
)
FIELDS = ("session_id", "transcript_path", "hook_event_name", "tool_name", "tool_input", "tool_use_id", "cwd")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    doc=st.dictionaries(st.sampled_from(FIELDS), HOOK_VALUES, max_size=7) | HOOK_VALUES,
    junk=st.binary(max_size=40),
    as_bytes=st.booleans(),
)
def test_any_hook_input_gets_an_answer_or_a_located_error(
    tmp_path_factory, doc: object, junk: bytes, as_bytes: bool
) -> None:
    tmp = tmp_path_factory.mktemp("in")
    raw = junk if as_bytes else json.dumps(doc).encode()
    answer = _hook(_policy(tmp), raw, tmp / "state")
    assert answer.exit_code == 0
    if answer.decision is None:  # not an event: the answer names what is wrong
        assert answer.output is not None and answer.output["systemMessage"].startswith("budget-governor: hook input")
    else:
        parse_event(raw)  # it was a valid event


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.binary(max_size=60) | st.builds(lambda v: json.dumps(v).encode(), HOOK_VALUES), max_size=8))
def test_any_transcript_bytes_get_an_answer_and_located_notes(tmp_path_factory, lines: list[bytes]) -> None:
    tmp = tmp_path_factory.mktemp("tr")
    transcript = tmp / "s.jsonl"
    transcript.write_bytes(b"\n".join(x.replace(b"\n", b" ") for x in lines) + b"\n")
    answer = _hook(_policy(tmp), _event("s", transcript), tmp / "state")
    assert answer.exit_code == 0 and answer.decision is not None
    assert all(n.startswith(f"{transcript}:") for n in answer.notes)
