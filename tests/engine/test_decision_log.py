"""Decision log and trace recorder: JSON lines, no prompt text by default, replayable records."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest
import structlog

from governor.decision import AuditNote, Decision
from governor.engine.decision_log import TRACE_FORMAT, DecisionLog
from governor.errors import GovernorError, TraceError

SECRET = "my SSN is 078-05-1120, please fix the invoice"
MESSAGES = [
    {"role": "system", "content": "You are a billing assistant."},
    {"role": "user", "content": SECRET},
]
TOOLS = [
    {
        "type": "function",
        "function": {"name": "lookup_invoice", "description": "secret schema text", "parameters": {"type": "object"}},
    }
]
META = {
    "run_id": "r-1",
    "user": "ana",
    "team": "billing",
    "task": "classify",
    "agent": "triage",
    "tags": ["beta"],
    "tier": "free",
}


def _decision(verdict: str = "reroute", decision_id: str = "d-1", messages=MESSAGES, **kw) -> Decision:
    fields = dict(
        verdict=verdict,
        model="gpt-4o-mini",
        messages=messages,
        max_tokens=512,
        rule_ids=("classify-cheap",),
        reasons=("route classify-cheap: gpt-4o -> gpt-4o-mini",),
        revision="3f2a9c1b7e4d",
        estimated_cost_usd=0.00042,
        decision_id=decision_id,
        requested_model="gpt-4o",
        input_tokens=37,
        policy_name="billing",
        metadata=META,
    )
    fields.update(kw)
    return Decision(**fields)


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _round(log: DecisionLog, d: Decision | None = None) -> None:
    d = d or _decision()
    log.check(d, ts=100.0, messages=MESSAGES, max_tokens=2048, tools=TOOLS)
    log.record(
        d,
        ts=101.5,
        input_tokens=40,
        output_tokens=9,
        cache_read_tokens=16,
        cache_write_tokens=0,
        reasoning_tokens=3,
        cost_usd=0.0000123,
    )
    log.outcome("r-1", "accepted", ts=102.0, policy="billing", revision="3f2a9c1b7e4d")


def test_one_json_line_per_check_record_and_outcome():
    sink = io.StringIO()
    _round(DecisionLog(sink))
    check, record, outcome = _lines(sink.getvalue())
    assert [check["event"], record["event"], outcome["event"]] == ["check", "record", "outcome"]
    for line in (check, record):
        assert line["decision_id"] == "d-1"
        assert (line["policy"], line["revision"]) == ("billing", "3f2a9c1b7e4d")
        assert line["rule_ids"] == ["classify-cheap"]
        assert line["verdict"] == "reroute"
        assert (line["requested_model"], line["model"]) == ("gpt-4o", "gpt-4o-mini")
        assert (line["run_id"], line["user"], line["team"], line["task"], line["agent"]) == (
            "r-1",
            "ana",
            "billing",
            "classify",
            "triage",
        )
        assert line["metadata"]["tier"] == "free"
        assert line["tools"] == ["lookup_invoice"]
    assert check["ts"] == 100.0 and check["input_tokens"] == 37 and check["estimated_cost_usd"] == 0.00042
    assert check["reasons"] == ["route classify-cheap: gpt-4o -> gpt-4o-mini"]
    assert (outcome["run_id"], outcome["outcome"], outcome["revision"]) == ("r-1", "accepted", "3f2a9c1b7e4d")


def test_record_line_carries_tokens_costs_and_the_request():
    sink = io.StringIO()
    _round(DecisionLog(sink))
    record = _lines(sink.getvalue())[1]
    assert record["ts"] == 101.5 and record["check_ts"] == 100.0
    assert (
        record["input_tokens"],
        record["output_tokens"],
        record["cache_read_tokens"],
        record["cache_write_tokens"],
        record["reasoning_tokens"],
    ) == (40, 9, 16, 0, 3)
    assert record["estimated_input_tokens"] == 37
    assert record["cost_usd"] == 0.0000123 and record["estimated_cost_usd"] == 0.00042
    assert record["requested_max_tokens"] == 2048 and record["max_tokens"] == 512
    assert record["error"] is None and record["message_count"] == 2


@pytest.mark.parametrize("content", [False, True])
def test_prompt_text_only_with_content_logging(tmp_path: Path, content: bool):
    sink = io.StringIO()
    trace = tmp_path / "t.jsonl"
    log = DecisionLog(sink, content=content, record_to=trace)
    _round(log)
    log.close()
    for text in (sink.getvalue(), trace.read_text()):
        assert (SECRET in text) is content
        assert "secret schema text" not in text  # tool schemas never, names only
    if content:
        record = [r for r in _lines(trace.read_text()) if r["event"] == "record"][0]
        assert record["messages"] == MESSAGES


def test_trim_logs_requested_messages_and_sent_count():
    sink = io.StringIO()
    log = DecisionLog(sink, content=True)
    d = _decision("trim", messages=MESSAGES[1:])
    log.check(d, ts=1.0, messages=MESSAGES)
    log.record(d, ts=2.0, input_tokens=20, output_tokens=5, cost_usd=0.001)
    check, record = _lines(sink.getvalue())
    for line in (check, record):
        assert line["message_count"] == 2 and line["sent_message_count"] == 1
        assert line["messages"] == MESSAGES


def test_block_lines_carry_kind_audit_and_warnings():
    sink = io.StringIO()
    log = DecisionLog(sink)
    d = _decision(
        "block",
        rule_ids=("per-run",),
        reasons=("budget per-run: $2.01 > $2.00",),
        block_kind="budget",
        warnings=("team budget at 85%",),
        audit=(AuditNote("max-calls", "block", "60 calls", None),),
        estimated_cost_usd=None,
    )
    log.check(d, ts=5.0)
    (line,) = _lines(sink.getvalue())
    assert line["block_kind"] == "budget" and line["estimated_cost_usd"] is None
    assert line["audit"] == [{"rule_id": "max-calls", "would": "block", "reason": "60 calls", "model": None}]
    assert line["warnings"] == ["team budget at 85%"]


def test_errors_are_recorded_and_capped():
    sink = io.StringIO()
    log = DecisionLog(sink)
    d = _decision()
    log.check(d, ts=1.0)
    log.record(d, ts=2.0, input_tokens=0, output_tokens=0, cost_usd=None, error=TimeoutError("x" * 1000))
    record = _lines(sink.getvalue())[1]
    assert record["error"].startswith("TimeoutError: xxx") and len(record["error"]) == 300
    assert record["cost_usd"] is None


def test_disabled_log_writes_nothing_and_returns_none():
    log = DecisionLog()
    assert log.enabled is False
    assert log.check(_decision(), ts=1.0) is None
    assert log.record(_decision(), ts=1.0, input_tokens=1, output_tokens=1, cost_usd=0.0) is None


def test_unknown_outcome_is_an_error():
    with pytest.raises(GovernorError, match="unknown outcome 'done'"):
        DecisionLog(io.StringIO()).outcome("r-1", "done", ts=1.0)


def test_global_structlog_configuration_is_left_alone():
    structlog.reset_defaults()
    before = structlog.get_config()
    user_sink = io.StringIO()
    structlog.configure(
        processors=[structlog.processors.KeyValueRenderer()], logger_factory=structlog.WriteLoggerFactory(user_sink)
    )
    configured = structlog.get_config()
    ours = io.StringIO()
    _round(DecisionLog(ours))
    assert structlog.get_config() == configured
    structlog.get_logger().info("user-event", a=1)
    assert user_sink.getvalue().strip() == "a=1 event='user-event'"
    assert len(_lines(ours.getvalue())) == 3
    structlog.reset_defaults()
    assert structlog.get_config() == before


def test_sink_may_be_a_path(tmp_path: Path):
    path = tmp_path / "logs" / "decisions.jsonl"
    log = DecisionLog(path)
    _round(log)
    log.close()
    assert [r["event"] for r in _lines(path.read_text())] == ["check", "record", "outcome"]


def test_trace_file_round_trip(tmp_path: Path):
    trace = tmp_path / "calls.jsonl"
    log = DecisionLog(record_to=trace, header={"policy": "billing", "revision": "3f2a9c1b7e4d"})
    _round(log)
    blocked = _decision("block", decision_id="d-2", block_kind="budget")
    log.check(blocked, ts=103.0)
    log.close()
    lines = _lines(trace.read_text())
    header = lines[0]
    assert header["format"] == TRACE_FORMAT and header["event"] == "header" and header["content"] is False
    assert header["policy"] == "billing" and header["governor_version"]
    assert [r["event"] for r in lines[1:]] == ["check", "record", "outcome", "check"]
    records = {r["decision_id"]: r for r in lines if r["event"] == "record"}
    checks = {r["decision_id"]: r for r in lines if r["event"] == "check"}
    assert set(records) == {"d-1"} and set(checks) - set(records) == {"d-2"}  # blocked: check only

    # a second session appends, without a second header
    log2 = DecisionLog(record_to=trace)
    _round(log2, _decision(decision_id="d-3"))
    log2.close()
    lines = _lines(trace.read_text())
    assert sum(1 for r in lines if r.get("format") == TRACE_FORMAT) == 1
    assert [r["decision_id"] for r in lines if r["event"] == "record"] == ["d-1", "d-3"]


def test_recorder_refuses_to_append_to_a_foreign_file(tmp_path: Path):
    other = tmp_path / "other.jsonl"
    other.write_text('{"id": "abc", "model": "gpt-4o"}\n')
    with pytest.raises(TraceError) as err:
        DecisionLog(record_to=other)
    assert str(other) in str(err.value) and ":1:" in str(err.value)
    assert other.read_text() == '{"id": "abc", "model": "gpt-4o"}\n'  # untouched


def test_concurrent_records_are_whole_lines(tmp_path: Path):
    trace = tmp_path / "calls.jsonl"
    log = DecisionLog(record_to=trace)

    def worker(t: int) -> None:
        for i in range(200):
            d = _decision(decision_id=f"d-{t}-{i}")
            log.check(d, ts=float(i))
            log.record(d, ts=float(i) + 0.5, input_tokens=i, output_tokens=1, cost_usd=0.001)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    lines = _lines(trace.read_text())  # every line parses
    records = [r for r in lines if r["event"] == "record"]
    assert len(records) == 16 * 200
    assert len({r["decision_id"] for r in records}) == 16 * 200
    assert all(r["check_ts"] == r["ts"] - 0.5 for r in records)


def test_a_check_kept_past_pending_max_is_dropped_oldest_first(tmp_path: Path):
    trace = tmp_path / "calls.jsonl"
    log = DecisionLog(record_to=trace, pending_max=2)
    first, second, third = (_decision(decision_id=f"d-{i}") for i in range(3))
    for i, d in enumerate((first, second, third)):
        log.check(d, ts=float(i), messages=MESSAGES, max_tokens=100 + i)
    # the oldest check was forgotten: its record line still comes, without what the check saw
    forgotten = log.record(first, ts=5.0, input_tokens=1, output_tokens=1, cost_usd=0.0)
    kept = [log.record(d, ts=5.0, input_tokens=1, output_tokens=1, cost_usd=0.0) for d in (second, third)]
    log.close()
    assert forgotten["requested_max_tokens"] is None and "messages_digest" not in forgotten
    assert [r["requested_max_tokens"] for r in kept] == [101, 102]
    assert all(r["messages_digest"] and r["check_ts"] in (1.0, 2.0) for r in kept)
    assert [r["decision_id"] for r in _lines(trace.read_text()) if r["event"] == "record"] == ["d-0", "d-1", "d-2"]


def test_a_record_orjson_refuses_is_written_by_json_on_its_own_line(tmp_path: Path):
    trace = tmp_path / "calls.jsonl"
    log = DecisionLog(record_to=trace)
    d = _decision(metadata={**META, 7: "an int key", "ratio": 0.25})  # orjson refuses non-str keys
    log.check(d, ts=1.0, messages=MESSAGES)
    log.record(d, ts=2.0, input_tokens=1, output_tokens=1, cost_usd=0.0)
    log.close()
    lines = _lines(trace.read_text())
    assert [r["event"] for r in lines[1:]] == ["check", "record"]
    assert all(r["metadata"]["7"] == "an int key" and r["metadata"]["ratio"] == 0.25 for r in lines[1:])


_APPENDER = """
import sys
from governor.decision import Decision
from governor.engine.decision_log import DecisionLog
log = DecisionLog(record_to=sys.argv[1], content=True)
text = sys.argv[2] * 40_000  # lines far longer than any I/O buffer
for i in range(60):
    d = Decision(verdict="allow", model="gpt-4o", messages=[{"role": "user", "content": text}], max_tokens=8,
                 rule_ids=(), reasons=(), revision="r", estimated_cost_usd=0.1, decision_id=f"{sys.argv[2]}-{i}")
    log.check(d, ts=float(i), messages=d.messages)
    log.record(d, ts=float(i), input_tokens=1, output_tokens=1, cost_usd=0.1)
log.close()
"""


def test_processes_recording_into_one_trace_append_whole_lines(tmp_path: Path):
    import subprocess
    import sys

    trace = tmp_path / "calls.jsonl"
    DecisionLog(record_to=trace).close()  # the header, once
    procs = [subprocess.Popen([sys.executable, "-c", _APPENDER, str(trace), tag]) for tag in "abc"]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    lines = _lines(trace.read_text())  # every line parses: no line is cut into by another process
    records = [r for r in lines if r.get("event") == "record"]
    assert len(records) == 3 * 60 and len(lines) == 1 + 2 * 3 * 60
    assert all(len(r["messages"][0]["content"]) == 40_000 for r in records)


POLICY = """
apiVersion: governor/v1
kind: Policy
metadata: {name: recorder-test}
logging: {content: CONTENT}
models:
  aliases: {cheap: gpt-4o-mini}
routes:
  - id: classify-cheap
    match: {task: classify}
    to: cheap
budgets:
  - id: per-run
    scope: run
    limit: {usd: 0.001}
"""


@pytest.mark.parametrize("content", [False, True])
def test_governor_record_to_writes_a_replayable_trace(tmp_path: Path, content: bool):
    from governor import Governor

    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace("CONTENT", "true" if content else "false"))
    trace = tmp_path / "calls.jsonl"
    clock = iter(float(t) for t in range(1000, 2000))
    gov = Governor.from_path(policy, record_to=trace, clock=lambda: next(clock))
    with gov.run(run_id="r-7", user="ana", task="classify"):
        d = gov.check(model="gpt-4o", messages=MESSAGES, max_tokens=64)
        cost = gov.record(d, input_tokens=40, output_tokens=9, cache_read_tokens=8)
        big = gov.check(model="gpt-4o", messages=MESSAGES, max_tokens=100_000)  # over the run budget
    gov.record_outcome("r-7", "accepted")
    gov.close()

    lines = _lines(trace.read_text())
    assert lines[0]["format"] == TRACE_FORMAT and lines[0]["policy"] == "recorder-test"
    assert lines[0]["revision"] == gov.revision
    by_event: dict[str, list[dict]] = {}
    for line in lines[1:]:
        by_event.setdefault(line["event"], []).append(line)
    assert [c["decision_id"] for c in by_event["check"]] == [d.decision_id, big.decision_id]
    blocked = by_event["check"][1]
    assert blocked["verdict"] == "block" and blocked["rule_ids"][-1] == "per-run" and blocked["block_kind"] == "budget"
    (record,) = by_event["record"]
    assert record["decision_id"] == d.decision_id and record["revision"] == gov.revision
    assert (record["requested_model"], record["model"], record["verdict"]) == ("gpt-4o", "gpt-4o-mini", "reroute")
    assert record["rule_ids"] == ["classify-cheap"]
    assert (record["input_tokens"], record["output_tokens"], record["cache_read_tokens"]) == (40, 9, 8)
    assert cost is not None and cost > 0 and record["cost_usd"] == pytest.approx(cost)
    assert record["check_ts"] < record["ts"]
    assert record["requested_max_tokens"] == 64
    assert (record["run_id"], record["user"], record["task"]) == ("r-7", "ana", "classify")
    (outcome,) = by_event["outcome"]
    assert (outcome["run_id"], outcome["outcome"]) == ("r-7", "accepted")
    assert (SECRET in trace.read_text()) is content
    if content:
        assert record["messages"] == MESSAGES


def test_appending_after_a_cut_line_starts_a_new_line(tmp_path: Path):
    trace = tmp_path / "calls.jsonl"
    log = DecisionLog(record_to=trace)
    _round(log)
    log.close()
    with open(trace, "a") as f:
        f.write('{"event":"record","decision_id":"cut-sh')  # a crash in the middle of a line
    log2 = DecisionLog(record_to=trace)
    _round(log2, _decision(decision_id="d-9"))
    log2.close()
    lines = trace.read_text().splitlines()
    assert lines[4] == '{"event":"record","decision_id":"cut-sh'
    assert [json.loads(line)["event"] for line in lines[5:]] == ["check", "record", "outcome"]


def test_recording_after_close_is_an_error_not_a_silent_loss(tmp_path: Path):
    log = DecisionLog(record_to=tmp_path / "calls.jsonl")
    log.close()
    with pytest.raises(TraceError, match="closed"):
        log.check(_decision(), ts=1.0)


def test_messages_digest_marks_identical_prompts_without_their_text():
    import hashlib

    sink = io.StringIO()
    log = DecisionLog(sink)
    same = json.loads(json.dumps(MESSAGES))  # equal content, new objects
    edited = MESSAGES[:1] + [{"role": "user", "content": SECRET + "!"}]
    for i, msgs in enumerate((MESSAGES, same, edited)):
        log.check(_decision(decision_id=f"d-{i}", messages=msgs), ts=float(i), messages=msgs)
    a, b, c = (line["messages_digest"] for line in _lines(sink.getvalue()))
    assert a == b != c
    # stable across processes and versions: the documented construction
    parts = b"".join(
        hashlib.blake2b(json.dumps(m, sort_keys=True, ensure_ascii=False).encode(), digest_size=16).digest()
        for m in MESSAGES
    )
    assert a == hashlib.blake2b(parts, digest_size=16).hexdigest()
    assert SECRET not in sink.getvalue()


def test_a_counted_check_and_a_check_given_its_tokens_record_the_documented_digest(tmp_path: Path):
    import hashlib

    from governor import Governor

    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace("CONTENT", "false"))
    trace = tmp_path / "calls.jsonl"
    history = MESSAGES + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup_invoice", "arguments": "{}"}}],
        }
    ]
    with Governor.from_path(policy, record_to=trace) as gov:  # counted: the digest reuses the count's hashes
        gov.check(model="gpt-4o", messages=history, max_tokens=8, metadata={"run_id": "a"})
        gov.check(model="gpt-4o", messages=history, max_tokens=8, metadata={"run_id": "b"}, input_tokens=50)
        gov.check(model="gpt-4o", messages=history[:2], max_tokens=8, metadata={"run_id": "c"})  # cached parts
        gov.check(model="gpt-4o", messages=history, max_tokens=8, metadata={"run_id": "d"})
    digests = [r["messages_digest"] for r in _lines(trace.read_text()) if r.get("event") == "check"]

    def documented(msgs: list) -> str:
        parts = b"".join(
            hashlib.blake2b(json.dumps(m, sort_keys=True, ensure_ascii=False).encode(), digest_size=16).digest()
            for m in msgs
        )
        return hashlib.blake2b(parts, digest_size=16).hexdigest()

    assert digests == [documented(history)] * 2 + [documented(history[:2]), documented(history)]


def test_record_line_carries_the_digest_of_the_checked_messages():
    sink = io.StringIO()
    _round(DecisionLog(sink))
    check, record, _ = _lines(sink.getvalue())
    assert record["messages_digest"] == check["messages_digest"]
