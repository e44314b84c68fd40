"""Replay semantics on a trace recorded by a real Governor: estimated trims, cascades, state, diagnostics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from governor.cli import main
from governor.engine.governor import Governor
from governor.ledger.memory import MemoryLedger
from governor.policy.loader import load_policy_text

OPEN = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: open}
logging: {content: true}
"""


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three runs: one with a 3-call retry storm, one repeating the same call, one with a long context."""
    path = tmp_path_factory.mktemp("rec") / "calls.jsonl"
    now = [1_760_000_000.0]
    gov = Governor(load_policy_text(OPEN), ledger=MemoryLedger(), clock=lambda: now[0], record_to=path)

    def call(run: str, tokens: int, text: str, error: str | None = None, out: int = 20) -> None:
        now[0] += 2
        d = gov.check(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": text}],
            input_tokens=tokens,
            max_tokens=100,
            metadata={"run_id": run, "user": "u1"},
        )
        gov.record(d, input_tokens=tokens, output_tokens=0 if error else out, error=error)

    for i in range(3):
        call("storm", 500, f"attempt {i}", error="RateLimitError: 429")
    call("storm", 500, "attempt ok")
    for _ in range(3):
        call("loop", 800, "same question")
    for i, size in enumerate((4000, 20000, 60000)):
        call("long", size, f"step {i}")
    gov.record_outcome("long", "accepted")
    gov.record_outcome("loop", "accepted")
    gov.close()
    return path


def replay(tmp_path: Path, policy: str, trace: Path, *extra: str) -> dict:
    p = tmp_path / "p.yaml"
    p.write_text(policy)
    out = tmp_path / "r.json"
    assert main(["replay", str(p), str(trace), "--format", "json", "-o", str(out), *extra]) == 0
    return json.loads(out.read_text())


def test_diagnostics_find_the_storm_the_loop_and_the_long_context(tmp_path: Path, trace: Path) -> None:
    rep = replay(tmp_path, OPEN, trace, "--long-context-tokens", "30000")
    d = rep["diagnostics"]
    (storm,) = d["retry_storms"]
    assert storm["kind"] == "consecutive-errors" and storm["run_id"] == "storm" and storm["calls"] == 3
    rc = d["repeated_identical_calls"]
    assert rc["repeated_calls"] == 2 and rc["groups"][0]["run_id"] == "loop"
    lc = d["long_context"]
    assert lc["calls_over_threshold"] == 1 and lc["largest_calls"][0]["input_tokens"] == 60000
    assert [g["run_id"] for g in lc["growing_runs"]] == ["long"]
    assert d["most_expensive_runs"][0]["run_id"] == "long"
    by_model = {r["model"]: r for r in d["cost_per_accepted_by_model"]}
    assert by_model["gpt-4o-mini"]["accepted_runs"] == 2


def test_trim_without_messages_is_estimated_and_labelled(tmp_path: Path, trace: Path) -> None:
    # strip the recorded prompts, as OTel traces without content capture have none
    bare = tmp_path / "bare.jsonl"
    lines = [json.loads(l) for l in trace.read_text().splitlines()]
    for rec in lines:
        rec.pop("messages", None)
    bare.write_text("".join(json.dumps(r) + "\n" for r in lines))
    policy = (
        OPEN
        + """\
context:
  - {id: cap-context, max_input_tokens: 10000, action: trim, keep_last: 2}
"""
    )
    rep = replay(tmp_path, policy, bare)
    t = rep["totals"]
    assert t["calls_trimmed"] == 2 and t["calls_trimmed_estimated"] == 2
    assert t["input_tokens_governed"] == t["input_tokens"] - (20000 - 10000) - (60000 - 10000)
    long = next(r for r in rep["runs"] if r["run_id"] == "long")
    assert long["calls_trimmed"] == 2 and long["stopped_at_call"] is None


def test_a_run_budget_block_ends_the_run(tmp_path: Path, trace: Path) -> None:
    policy = (
        OPEN
        + """\
budgets:
  - {id: run-calls, scope: run, limit: {calls: 2}}
"""
    )
    rep = replay(tmp_path, policy, trace)
    runs = {r["run_id"]: r for r in rep["runs"]}
    assert runs["storm"]["stopped_at_call"] == 3 and runs["storm"]["calls_blocked"] == 2
    assert runs["storm"]["ended_by"] == "run-calls"
    # every run's 3rd call is blocked; only "storm" has a 4th, blocked without a check
    assert rep["totals"]["calls_blocked"] == 4 and rep["totals"]["calls_blocked_after_stop"] == 1
    assert rep["totals"]["runs_stopped"] == rep["totals"]["runs_ended"] == 3
    assert rep["outcomes"]["accepted_runs_stopped"] == 2


def test_starting_state_spends_the_budget_first(tmp_path: Path, trace: Path) -> None:
    policy = (
        OPEN
        + """\
budgets:
  - {id: user-usd, scope: user, limit: {usd: 1.0}}
"""
    )
    state = tmp_path / "state.yaml"
    state.write_text("spend:\n  - {budget: user-usd, value: u1, usd: 1.0}\n")
    rep = replay(tmp_path, policy, trace, "--state", str(state))
    assert rep["totals"]["calls_blocked"] == rep["totals"]["calls"]
    assert {r["id"]: r["blocked"] for r in rep["rules"]}["user-usd"] == rep["totals"]["calls"]
    fresh = replay(tmp_path, policy, trace)
    assert fresh["totals"]["calls_blocked"] == 0


def test_context_grown_by_resending_old_messages_is_found(tmp_path: Path) -> None:
    path = tmp_path / "resend.jsonl"
    now = [1_760_000_000.0]
    gov = Governor(load_policy_text(OPEN), ledger=MemoryLedger(), clock=lambda: now[0], record_to=path)
    q = {"role": "user", "content": "fix the failing test"}
    r = {"role": "tool", "content": "FAILED test_x.py::test_y - AssertionError"}
    new = {"role": "user", "content": "now also update the docs"}
    for msgs, tokens in (([q, r], 900), ([q, r, r], 1300), ([q, r, r, new], 1500)):
        now[0] += 1
        d = gov.check(model="gpt-4o-mini", messages=msgs, input_tokens=tokens, metadata={"run_id": "x"})
        gov.record(d, input_tokens=tokens, output_tokens=10)
    gov.close()
    rep = replay(tmp_path, OPEN, path)
    stale = rep["diagnostics"]["long_context"]["grew_without_new_content"]
    assert stale["calls"] == 1 and stale["input_tokens_added"] == 400  # the re-sent tool result only


@pytest.mark.parametrize("keep_digest", [True, False])
def test_repeated_call_without_prompt_text_uses_the_messages_digest(
    tmp_path: Path, trace: Path, keep_digest: bool
) -> None:
    # a trace recorded without prompt text: every call of a run has messages=(); only the digest tells them apart
    bare = tmp_path / "bare.jsonl"
    lines = [json.loads(l) for l in trace.read_text().splitlines()]
    for rec in lines:
        rec.pop("messages", None)
        if not keep_digest:
            rec.pop("messages_digest", None)
    bare.write_text("".join(json.dumps(r) + "\n" for r in lines))
    policy = OPEN + "stop: [{id: loop, type: repeated_call, max: 3, within: 10m}]\n"
    runs = {r["run_id"]: r for r in replay(tmp_path, policy, bare)["runs"]}
    if keep_digest:  # the "loop" run sent the same prompt 3 times; "storm" and "long" never repeated one
        assert runs["loop"]["stopped_at_call"] == 3 and runs["loop"]["ended_by"] == "loop"
    else:  # nothing to compare: the stop cannot fire (it used to block every run's 3rd call)
        assert runs["loop"]["stopped_at_call"] is None
    assert runs["storm"]["stopped_at_call"] is None and runs["long"]["stopped_at_call"] is None


def test_message_count_conditions_work_on_traces_without_prompt_text(tmp_path: Path) -> None:
    # recorded with content logging off: the trace keeps each call's message_count, not the messages
    path = tmp_path / "bare.jsonl"
    now = [1_760_000_000.0]
    quiet = OPEN.replace("logging: {content: true}\n", "")
    gov = Governor(load_policy_text(quiet), ledger=MemoryLedger(), clock=lambda: now[0], record_to=path)
    history: list[dict] = []
    for i in range(5):
        now[0] += 1
        history.append({"role": "user", "content": f"turn {i}"})
        d = gov.check(model="gpt-4o-mini", messages=list(history), input_tokens=100, metadata={"run_id": "r"})
        gov.record(d, input_tokens=100, output_tokens=10)
        history.append({"role": "assistant", "content": f"answer {i}"})
    gov.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert not any("messages" in rec for rec in lines)
    policy = quiet + "routes: [{id: long-chat-cheap, match: {messages: {gte: 5}}, to: gpt-4.1-nano}]\n"
    report = replay(tmp_path, policy, path)
    # message counts 1, 3, 5, 7, 9: the last three calls have five or more messages
    assert {r["id"]: r["fired"] for r in report["rules"]}["long-chat-cheap"] == 3
    assert report["totals"]["calls_rerouted"] == 3


def test_a_bad_message_count_is_a_located_malformed_record(tmp_path: Path, trace: Path) -> None:
    lines = trace.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if json.loads(line).get("event") == "record")
    rec = json.loads(lines[at])
    rec["message_count"] = "many"
    lines[at] = json.dumps(rec)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    from governor.traces import load_traces

    traces = load_traces([bad])
    assert any(f":{at + 1}:" in str(i) and "message_count" in str(i) for i in traces.issues)
    policy = tmp_path / "open.yaml"
    policy.write_text(OPEN)
    assert main(["replay", str(policy), str(bad), "--strict", "--format", "json", "-o", str(tmp_path / "r.json")]) == 1
