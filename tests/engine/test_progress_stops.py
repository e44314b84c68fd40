"""The no_progress and max_tool_calls stops, on each message shape an agent loop sends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from governor import Governor
from governor.engine.progress import content_digest, tail
from governor.errors import PolicyError
from governor.policy.loader import load_policy, load_policy_text

POLICY = """apiVersion: governor/v1
kind: Policy
metadata: {name: loops}
stop:
  - {id: stalled, type: no_progress, max: 3}
  - {id: bash-cap, type: max_tool_calls, tool: [Bash, "shell*"], max: 2}
"""


def _gov(tmp_path: Path, text: str = POLICY) -> Governor:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    return Governor(load_policy(path), stats=False, observers=False)


def anthropic_turn(i: int, name: str, args: dict[str, Any], result: str) -> list[dict[str, Any]]:
    return [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "again"},
                {"type": "tool_use", "id": f"toolu_{i}", "name": name, "input": args},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": f"toolu_{i}",
                    "content": result,
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        },
    ]


def chat_turn(i: int, name: str, args: dict[str, Any], result: str) -> list[dict[str, Any]]:
    return [
        {
            "role": "assistant",
            "tool_calls": [{"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": str(args)}}],
        },
        {"role": "tool", "tool_call_id": f"call_{i}", "content": result},
    ]


def responses_turn(i: int, name: str, args: dict[str, Any], result: str) -> list[dict[str, Any]]:
    return [
        {"type": "function_call", "call_id": f"call_{i}", "id": f"fc_{i}", "name": name, "arguments": str(args)},
        {"type": "function_call_output", "call_id": f"call_{i}", "output": result},
    ]


SHAPES = [anthropic_turn, chat_turn, responses_turn]


def _loop(gov: Governor, turn, steps: list[tuple[str, dict[str, Any], str]], run: str = "r") -> list[str | None]:
    """Check each call of a tool loop; the ids of the rules that blocked (None: allowed)."""
    msgs: list[dict[str, Any]] = [{"role": "user", "content": "fix the build"}]
    out = [gov.check(model="gpt-4o-mini", messages=list(msgs), max_tokens=10, metadata={"run_id": run}).blocked_by]
    for i, (name, args, result) in enumerate(steps):
        msgs += turn(i, name, args, result)
        out.append(
            gov.check(model="gpt-4o-mini", messages=list(msgs), max_tokens=10, metadata={"run_id": run}).blocked_by
        )
    return out


@pytest.mark.parametrize("turn", SHAPES, ids=["anthropic", "chat", "responses"])
def test_the_same_tool_call_and_result_again_and_again_stops_at_no_progress(tmp_path: Path, turn) -> None:
    gov = _gov(tmp_path)
    same = ("Read", {"path": "a.py"}, "contents")
    # call 2 is the first with this turn (new); calls 3, 4 add nothing; call 5 would be the 3rd such call
    assert _loop(gov, turn, [same] * 5) == [None, None, None, None, "stalled", "stalled"]


@pytest.mark.parametrize("turn", SHAPES, ids=["anthropic", "chat", "responses"])
def test_a_new_result_is_progress(tmp_path: Path, turn) -> None:
    gov = _gov(tmp_path)
    steps = [("Read", {"path": "a.py"}, f"contents v{i % 2}") for i in range(3)] + [
        ("Read", {"path": "a.py"}, "contents v9")
    ] * 2
    assert _loop(gov, turn, steps)[:5] == [None] * 5


@pytest.mark.parametrize("turn", SHAPES, ids=["anthropic", "chat", "responses"])
def test_calls_past_a_tool_cap_are_blocked_and_other_tools_are_not_counted(tmp_path: Path, turn) -> None:
    gov = _gov(tmp_path)
    name = "shell" if turn is responses_turn else "Bash"
    steps = [
        ("Read", {"n": 1}, "r1"),
        (name, {"n": 1}, "b1"),
        ("Read", {"n": 2}, "r2"),
        (name, {"n": 2}, "b2"),
        (name, {"n": 3}, "b3"),
    ]
    assert _loop(gov, turn, steps) == [None, None, None, None, None, "bash-cap"]


def test_runs_are_counted_apart(tmp_path: Path) -> None:
    gov = _gov(tmp_path)
    same = [("Read", {"p": 1}, "x")] * 3
    assert _loop(gov, anthropic_turn, same, run="a") == [None] * 4
    assert _loop(gov, anthropic_turn, same, run="b") == [None] * 4


def test_audit_mode_notes_and_allows(tmp_path: Path) -> None:
    gov = _gov(tmp_path, POLICY.replace("max: 3}", "max: 2, mode: audit}"))
    msgs: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    decisions = []
    for i in range(4):
        msgs += anthropic_turn(i, "Read", {}, "same")
        decisions.append(gov.check(model="gpt-4o-mini", messages=list(msgs), max_tokens=10, metadata={"run_id": "r"}))
    assert all(d.verdict == "allow" for d in decisions)
    notes = [(i, a.rule_id, a.would) for i, d in enumerate(decisions) for a in d.audit]
    assert notes == [(2, "stalled", "block"), (3, "stalled", "block")]  # the 2nd and 3rd calls adding nothing


@settings(max_examples=100, deadline=None)
@given(
    ids=st.lists(st.text(min_size=1, max_size=8), min_size=2, max_size=2),
    body=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=4),
)
def test_a_digest_ignores_call_ids_and_cache_markers_only(ids: list[str], body: dict[str, Any]) -> None:
    a = {"type": "tool_use", "id": ids[0], "name": "Bash", "input": body}
    b = {"type": "tool_use", "id": ids[1], "name": "Bash", "input": body, "cache_control": {"type": "ephemeral"}}
    assert content_digest(a) == content_digest(b)
    assert content_digest(a) != content_digest({**a, "name": "Read"})


@settings(max_examples=100, deadline=None)
@given(n=st.integers(0, 6), seen=st.integers(0, 8))
def test_a_tail_is_what_the_previous_call_did_not_have(n: int, seen: int) -> None:
    msgs = [{"role": "user", "content": str(i)} for i in range(n)]
    t = tail(msgs, seen)
    assert t.size == n
    assert len(t.digests) == (n - seen if n >= seen else n)  # a shrunk history is all new to compare


@pytest.mark.parametrize(
    "item, message",
    [
        ("{id: s, type: no_progress}", "max"),
        ("{id: s, type: no_progress, max: 0}", "max"),
        ("{id: s, type: max_tool_calls, max: 3}", "tool"),
        ("{id: s, type: max_tool_calls, tool: [], max: 3}", "tool"),
    ],
)
def test_bad_stops_are_located(item: str, message: str) -> None:
    with pytest.raises(PolicyError) as err:
        load_policy_text(
            f"apiVersion: governor/v1\nkind: Policy\nmetadata: {{name: x}}\nstop:\n  - {item}\n", "bad.yaml"
        )
    assert "bad.yaml:5" in str(err.value) and message in str(err.value)


@settings(max_examples=50, deadline=None)
@given(
    st.text("0123456789abcdef", min_size=6, max_size=6),
    st.text("0123456789abcdef", min_size=6, max_size=6),
    st.floats(0, 100, allow_nan=False),
    st.floats(0, 100, allow_nan=False),
    st.text(max_size=40),
)
def test_two_runs_of_one_codex_command_look_alike_and_another_output_does_not(
    chunk_a: str, chunk_b: str, wall_a: float, wall_b: float, output: str
) -> None:
    """Codex heads every command output with a random chunk id and the wall time (codex 0.171 rollouts)."""

    def item(chunk: str, wall: float, out: str) -> dict[str, Any]:
        text = f"Chunk ID: {chunk}\nWall time: {wall:.4f} seconds\nProcess exited with code 0\nOutput:\n{out}\n"
        return {"type": "function_call_output", "call_id": f"call_{chunk}", "output": text}

    assert content_digest(item(chunk_a, wall_a, output)) == content_digest(item(chunk_b, wall_b, output))
    assert content_digest(item(chunk_a, wall_a, output)) != content_digest(item(chunk_a, wall_a, output + "x"))
