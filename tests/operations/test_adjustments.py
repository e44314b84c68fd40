"""Operator actions across processes: ``governor budget raise|reset`` and ``governor run resume`` run as CLI
subprocesses write to a real SQLite file or redis-server, and a governor in this process, refused a moment
before, admits its next call; status, the decision log and replay show the records."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governor import Governor
from governor.actions import raise_budget, reset_budget
from governor.errors import OperatorError
from governor.ledger.base import NANO, Adjustment
from governor.ledger.memory import MemoryLedger
from governor.ledger.sqlite import SqliteLedger
from governor.policy.loader import load_policy_text
from governor.status import budget_status, read_log

GOVERNOR = str(Path(sys.executable).parent / "governor")

POLICY = """
apiVersion: governor/v1
kind: Policy
metadata: {{name: ops-test}}
ledger: {ledger}
models:
  prices:
    m-cheap: {{input_per_mtok: 1, output_per_mtok: 2}}
stop:
  - {{id: loop-guard, type: repeated_call, max: 2, within: 10m}}
budgets:
  - id: team-daily
    scope: team
    limit: {{usd: 1}}
    window: {{calendar: day}}
  - id: hourly
    scope: global
    limit: {{calls: 1000}}
    window: 1h
"""
QUARTER = 250_000  # input tokens: $0.25 a call; the worst case adds max_tokens=1 ($0.000002)


@pytest.fixture(params=["sqlite", "redis"])
def policy(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "sqlite":
        ledger = f"{{type: sqlite, path: {tmp_path / 'shared.db'}}}"
    else:
        server = request.getfixturevalue("redis_server")
        ledger = f"{{type: redis, url: '{server.url}', key_prefix: ops-{tmp_path.name}}}"
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(ledger=ledger))
    return path


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GOVERNOR, *args], capture_output=True, text=True, timeout=60)


def act(*args: str) -> dict[str, Any]:
    out = cli(*args, "--format", "json")
    assert out.returncode == 0, out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def call(gov: Governor, team: str = "platform", run: str = "r-1", digest: str | None = None) -> Any:
    d = gov.check(
        model="m-cheap",
        input_tokens=QUARTER,
        max_tokens=1,
        metadata={"team": team, "run_id": run},
        fingerprint=digest if digest is not None else f"{time.monotonic_ns()}",
    )
    if d.allowed:
        gov.record(d, input_tokens=QUARTER, output_tokens=0)
    return d


def until_blocked(gov: Governor, team: str = "platform") -> int:
    for n in range(100):
        d = call(gov, team)
        if d.blocked:
            assert d.blocked_by == "team-daily"
            return n
    raise AssertionError("never blocked")


def status_json(policy: Path, *extra: str) -> dict[str, Any]:
    out = cli("status", str(policy), "--format", "json", *extra)
    assert out.returncode == 0, out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def test_a_raise_written_by_another_process_admits_the_next_call(policy: Path, tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    gov = Governor.from_path(policy, log=str(log))
    try:
        assert until_blocked(gov) == 3  # $0.75 spent; a fourth worst case passes $1
        adj = act(
            "budget", "raise", "team-daily", "--scope", "team=platform", "--by", "0.5",
            "--reason", "launch day", "--by-user", "alice", "--policy", str(policy),
        )  # fmt: skip
        assert (adj["kind"], adj["by"], adj["reason"], adj["usd"]) == ("raise", "alice", "launch day", 0.5)
        assert adj["until"] is not None and adj["until"] > time.time()  # the end of today's window
        d = call(gov)
        assert d.allowed and d.adjustments == (adj["id"],)
        assert any(adj["id"] in w and "alice" in w for w in d.warnings)
        assert call(gov).allowed  # $1.25 of $1.50
        d = call(gov)
        assert d.blocked and "$1.5000 (the policy's $1.0000, raised" in d.reasons[0]
        assert until_blocked(gov, "search") == 3  # another scope keeps the policy's limit
    finally:
        gov.close()
    records = read_log(log)
    [line] = [r for r in records if r["event"] == "adjustment"]  # written once, before the first call it admitted
    assert line["adjustment"]["id"] == adj["id"] and line["adjustment"]["by"] == "alice"
    admitted = [r for r in records if r["event"] == "check" and r.get("adjustments")]
    assert len(admitted) == 2 and records.index(line) < records.index(admitted[0])
    data = status_json(policy)
    rows = {(s["budget"], s["scope"]): s for s in data["scopes"]}
    platform = rows[("team-daily", "team=platform")]
    assert (platform["limit_usd"], platform["policy_limit_usd"]) == (1.5, 1.0)
    assert platform["spend_usd"] == pytest.approx(1.25) and platform["adjustments"] == [adj["id"]]
    assert rows[("team-daily", "team=search")]["limit_usd"] == 1.0
    assert [a["id"] for a in data["adjustments"]] == [adj["id"]]
    text = cli("status", str(policy)).stdout
    assert "adjustments in force" in text and "alice: launch day" in text and "$1.50*" in text


def test_a_raise_to_a_limit_and_a_raise_until_later(policy: Path) -> None:
    gov = Governor.from_path(policy)
    try:
        until_blocked(gov)
        common = ("--policy", str(policy), "--reason", "quarter end")
        first = act("budget", "raise", "team-daily", "--scope", "team=platform", "--to", "1.5", *common)
        assert first["usd"] == 0.5
        second = act(
            "budget", "raise", "team-daily", "--scope", "team=platform", "--to", "2", "--until", "7d", *common
        )  # fmt: skip
        assert second["usd"] == 0.5 and second["until"] > time.time() + 6 * 86400
        lower = cli("budget", "raise", "team-daily", "--scope", "team=platform", "--to", "1.2", *common)
        assert lower.returncode == 2 and "would lower it" in lower.stderr
        assert sum(call(gov).allowed for _ in range(6)) == 4  # $2 in all: four more calls
    finally:
        gov.close()


def test_a_reset_sets_the_windows_spend_aside_and_deletes_nothing(policy: Path) -> None:
    gov = Governor.from_path(policy)
    try:
        assert until_blocked(gov) == 3
        adj = act(
            "budget", "reset", "team-daily", "--scope", "team=platform", "--reason", "test run", "-p", str(policy)
        )
        assert adj["kind"] == "reset" and adj["usd"] == pytest.approx(0.75) and adj["calls"] == 3
        row = next(s for s in status_json(policy)["scopes"] if s["scope"] == "team=platform")
        assert row["spend_usd"] == 0 and row["remaining_usd"] == 1.0 and row["limit_usd"] == 1.0
        assert until_blocked(gov) == 3  # the full limit again
        counter = next(b for b in gov._compiled.budgets if b.id == "team-daily").counter("platform")
        assert gov.ledger.usage(counter, now=time.time()).usd_nano == 6 * QUARTER * 1000  # every call still there
        again = act("budget", "reset", "team-daily", "--scope", "team=platform", "--reason", "again", "-p", str(policy))
        assert again["usd"] == pytest.approx(0.75)  # only what was spent since the first reset
        assert until_blocked(gov) == 3
    finally:
        gov.close()


def test_a_resume_written_by_another_process_lets_a_stopped_run_go_on(policy: Path, tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    gov = Governor.from_path(policy, log=str(log))
    try:
        assert call(gov, run="agent-7", digest="same").allowed
        stopped = call(gov, run="agent-7", digest="same")
        assert stopped.blocked and stopped.blocked_by == "loop-guard"
        assert call(gov, run="agent-7", digest="same").blocked  # stays stopped
        before = status_json(policy, "--log", str(log))["stopped_runs"]
        assert [(r["run_id"], r["resumed_by"]) for r in before] == [("agent-7", None)]
        adj = act("run", "resume", "agent-7", "--reason", "fixed the tool", "--by-user", "bob", "-p", str(policy))
        assert (adj["kind"], adj["run_id"], adj["by"]) == ("resume", "agent-7", "bob")
        d = call(gov, run="agent-7", digest="same")
        assert d.allowed and d.adjustments == (adj["id"],)
        again = call(gov, run="agent-7", digest="same")  # the stop works again: the resume applied once
        assert again.blocked and again.blocked_by == "loop-guard" and again.adjustments == ()
        assert call(gov, run="other", digest="same").allowed  # another run was never stopped
    finally:
        gov.close()
    after = status_json(policy, "--log", str(log))
    [run] = after["stopped_runs"]
    assert run["run_id"] == "agent-7" and run["resumed_by"] is None  # stopped again after the resume
    assert any(a["id"] == adj["id"] and a["reason"] == "fixed the tool" for a in after["adjustments"])
    assert [r["adjustment"]["id"] for r in read_log(log) if r["event"] == "adjustment"] == [adj["id"]]


def test_a_governor_that_never_knew_the_run_does_not_take_an_old_resume(policy: Path) -> None:
    act("run", "resume", "agent-9", "--reason", "early", "-p", str(policy))
    time.sleep(0.01)
    gov = Governor.from_path(policy)
    try:
        assert call(gov, run="agent-9", digest="x").allowed
        assert call(gov, run="agent-9", digest="x").blocked  # the resume was for a stop before this run began here
    finally:
        gov.close()


def test_operator_mistakes_are_refused_with_what_to_do(policy: Path, tmp_path: Path) -> None:
    p = ("--policy", str(policy), "--reason", "r")
    cases = [
        (("budget", "raise", "nope", "--by", "1", *p), "no budget 'nope' (its budgets: team-daily, hourly)"),
        (("budget", "raise", "team-daily", "--by", "1", *p), "--scope team=VALUE"),
        (("budget", "raise", "team-daily", "--scope", "user=x", "--by", "1", *p), "per team, not per user"),
        (("budget", "raise", "team-daily", "--scope", "team=x", "--by", "-1", *p), "never lowers"),
        (("budget", "raise", "team-daily", "--scope", "team=x", "--by", "1", "--metric", "calls", *p), "no calls"),
        (("budget", "raise", "team-daily", "--scope", "team=x", "--by", "1", "--until", "soon", *p), "--until"),
        (("budget", "raise", "hourly", "--scope", "team=x", "--by", "1", *p), "global"),
        (("budget", "raise", "hourly", "--by", "1.5", *p), "whole numbers"),
        (("budget", "reset", "hourly", *p), "rolling window"),
        (("budget", "raise", "team-daily", "--scope", "team=x", "--by", "1", "--policy", str(policy), "--reason", " "),
         "--reason is required"),
    ]  # fmt: skip
    for args, message in cases:
        out = cli(*args)
        assert out.returncode == 2 and message in out.stderr, (args, out.stderr)
    assert status_json(policy)["adjustments"] == []  # nothing was written
    memory = tmp_path / "memory.yaml"
    memory.write_text(POLICY.format(ledger="{type: memory}"))
    out = cli("run", "resume", "r", "--reason", "x", "--policy", str(memory))
    assert out.returncode == 2 and "memory" in out.stderr
    out = subprocess.run(
        [GOVERNOR, "budget", "reset", "team-daily", "--reason", "x"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin"},
    )
    assert out.returncode == 2 and "GOVERNOR_POLICY" in out.stderr


def test_the_operator_is_the_os_user_unless_named(policy: Path) -> None:
    import getpass

    adj = act("run", "resume", "r", "--reason", "x", "-p", str(policy))
    assert adj["by"] == getpass.getuser()


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("call"), st.integers(1, 400)),  # a call of n thousandths of a dollar
        st.tuples(st.just("raise"), st.integers(1, 500)),
        st.tuples(st.just("retry"), st.just(0)),  # the last adjustment written again (a retried CLI)
        st.tuples(st.just("reset"), st.just(0)),
    ),
    max_size=40,
)
HYP_POLICY = POLICY.format(ledger="{type: memory}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, kind=st.sampled_from(["memory", "sqlite", "redis"]))
def test_admissions_follow_limit_plus_adjustments_each_applied_once(
    tmp_path: Path, redis_server: Any, ops: list, kind: str
) -> None:
    """Whatever the order of calls, raises, resets and retried writes: the ledger's total is the sum of the settled
    calls (a reset deletes nothing), and a call is admitted exactly when it fits the policy's limit plus the
    distinct adjustments (a retried write never adds room twice)."""
    from governor.ledger.redis import RedisLedger

    if kind == "memory":
        ledger: Any = MemoryLedger()
    elif kind == "sqlite":
        ledger = SqliteLedger(tmp_path / f"{time.monotonic_ns()}.db")
    else:
        ledger = RedisLedger(redis_server.url, key_prefix=f"hyp-{time.monotonic_ns()}", socket_timeout_s=5.0)
    clock = [1_800_000_000.0]
    gov = Governor(load_policy_text(HYP_POLICY), ledger=ledger, clock=lambda: clock[0], observers=False)
    counter = next(b for b in gov._compiled.budgets if b.id == "team-daily").counter("platform")
    settled = 0  # nano-USD
    room = 0
    last: Adjustment | None = None
    try:
        for op, n in ops:
            clock[0] += 1.0
            if op == "call":
                usd = n * 1_000_000  # nano-USD
                d = gov.check(model="m-cheap", input_tokens=n * 1000, max_tokens=0, metadata={"team": "platform"})
                assert d.allowed == (settled + usd <= NANO + room), (settled, usd, room)
                if d.allowed:
                    gov.record(d, input_tokens=n * 1000, output_tokens=0)
                    settled += usd
            elif op == "raise":
                last = raise_budget(
                    gov.policy, ledger, "team-daily", "team=platform", by=n / 1000, reason="r", operator="o",
                    now=clock[0], until="never",
                )  # fmt: skip
                room += last.amount.usd_nano
            elif op == "reset":
                last = reset_budget(gov.policy, ledger, "team-daily", "team=platform", reason="r", operator="o",
                                    now=clock[0])  # fmt: skip
                assert last.amount.usd_nano == max(0, settled - (room - _raised(ledger, clock[0])))
                room += last.amount.usd_nano
            elif last is not None:
                assert ledger.adjust(last) is False
            assert ledger.usage(counter, now=clock[0]).usd_nano == settled
            [row] = [s for s in budget_status(gov.policy, ledger, now=clock[0]) if s.scope == "team=platform"] or [None]
            if row is not None:
                assert row.limit_usd == pytest.approx((NANO + _raised(ledger, clock[0])) / NANO)
    finally:
        gov.close()
        ledger.close()


def _raised(ledger: Any, now: float) -> int:
    return sum(a.amount.usd_nano for a in ledger.adjustments(now=now) if a.kind == "raise")


def test_actions_are_functions_too() -> None:
    from governor.policy.loader import load_policy_text

    policy = load_policy_text(HYP_POLICY)
    with pytest.raises(OperatorError, match="per call|no budget"):
        raise_budget(policy, MemoryLedger(), "x", None, by=1, reason="r", operator="o", now=0.0)


def test_replay_shows_and_applies_the_adjustments_a_governor_trace_recorded(policy: Path, tmp_path: Path) -> None:
    trace = tmp_path / "calls.jsonl"
    gov = Governor.from_path(policy, record_to=str(trace))
    try:
        verdicts = [call(gov).verdict for _ in range(4)]  # three allowed, the fourth refused
        raised = act(
            "budget", "raise", "team-daily", "--scope", "team=platform", "--by", "0.5", "--reason", "launch",
            "-p", str(policy),
        )  # fmt: skip
        verdicts += [call(gov).verdict for _ in range(3)]  # two admitted by the raise, then refused
        loop = {"team": "agents", "run": "loop", "digest": "d"}
        assert call(gov, **loop).allowed and call(gov, **loop).blocked
        resumed = act("run", "resume", "loop", "--reason", "fixed", "-p", str(policy))
        assert call(gov, **loop).allowed
    finally:
        gov.close()
    assert verdicts == ["allow"] * 3 + ["block"] + ["allow"] * 2 + ["block"]
    out = cli("replay", str(policy), str(trace), "--format", "json", "--no-progress")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert [a["id"] for a in report["adjustments"]] == [raised["id"], resumed["id"]]
    assert report["adjustments"][0]["reason"] == "launch"
    # replayed with the adjustments at their time: every recorded (settled) call is allowed again
    totals = report["totals"]
    assert (totals["calls"], totals["calls_allowed"], totals["calls_blocked"]) == (7, 7, 0), totals
    text = cli("replay", str(policy), str(trace), "--no-progress").stdout
    assert "Operators' adjustments in the traces" in text and "resume run loop" in text
    # a damaged adjustment line is reported with its file and line; the calls are still replayed
    lines = trace.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if '"event":"adjustment"' in line.replace(" ", ""))
    lines[at] = lines[at].replace('"kind":"raise"', '"kind":"grow"').replace('"kind": "raise"', '"kind": "grow"')
    trace.write_text("\n".join(lines) + "\n")
    report = json.loads(cli("replay", str(policy), str(trace), "--format", "json", "--no-progress").stdout)
    assert [(s["line"], "'kind'" in s["message"]) for s in report["skipped"]] == [(at + 1, True)]
    assert [a["id"] for a in report["adjustments"]] == [resumed["id"]]
