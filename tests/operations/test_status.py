"""``governor status``: budget scopes of a shared SQLite / Redis ledger written by other processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from governor.status import budget_status

HERE = Path(__file__).parent
GOVERNOR = str(Path(sys.executable).parent / "governor")

POLICY = """
apiVersion: governor/v1
kind: Policy
metadata: {{name: status-test}}
ledger: {ledger}
models:
  prices:
    m-cheap: {{input_per_mtok: 1, output_per_mtok: 2}}
stop:
  - {{id: loop-guard, type: max_calls, max: 2, match: {{run: loopy}}}}
budgets:
  - id: team-daily
    scope: team
    limit: {{usd: 1}}
    window: {{calendar: day}}
  - id: all-calls
    scope: global
    limit: {{calls: 100}}
"""


@pytest.fixture(params=["sqlite", "redis"])
def policy(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "sqlite":
        ledger = f"{{type: sqlite, path: {tmp_path / 'shared.db'}}}"
    else:
        server = request.getfixturevalue("redis_server")
        ledger = f"{{type: redis, url: '{server.url}', key_prefix: status-{tmp_path.name}}}"
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(ledger=ledger))
    return path


def worker(policy: Path, team: str, settled: int, held: int, log: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(HERE / "status_worker.py"), str(policy), team, str(settled), str(held), str(log)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr


def status(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GOVERNOR, "status", *args], capture_output=True, text=True, timeout=60)


def test_status_shows_every_scope_written_by_other_processes(policy: Path, tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    worker(policy, "platform", 3, 2, log)
    worker(policy, "search", 1, 0, log)
    out = status(str(policy), "--format", "json", "--log", str(log))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["policy"] == "status-test"
    rows = {(s["budget"], s["scope"]): s for s in data["scopes"]}
    assert set(rows) == {("team-daily", "team=platform"), ("team-daily", "team=search"), ("all-calls", "global")}
    platform = rows[("team-daily", "team=platform")]
    assert platform["spend_usd"] == pytest.approx(0.3)  # 3 calls settled
    # held: 2 calls checked and never recorded, and the stopped run's 2 allowed calls (not recorded either)
    assert platform["in_flight"] == 4 and platform["in_flight_usd"] == pytest.approx(2 * 0.050002 + 2 * 12e-6)
    assert platform["remaining_usd"] == pytest.approx(1 - platform["spend_usd"] - platform["in_flight_usd"])
    assert platform["resets_at"] is not None and platform["window"] == "calendar day (UTC)"
    assert rows[("team-daily", "team=search")]["spend_usd"] == pytest.approx(0.1)
    calls = rows[("all-calls", "global")]
    assert calls["spend_calls"] == 4 and calls["in_flight"] == 6
    assert calls["utilization"] == pytest.approx(10 / 100)
    [stopped] = data["stopped_runs"]
    assert (stopped["run_id"], stopped["stop"]) == ("loopy", "loop-guard")
    assert "already made 2 matching calls" in stopped["reason"]
    text = status(str(policy))
    assert text.returncode == 0 and "team=platform" in text.stdout and "BUDGET" in text.stdout


def test_status_watch_redraws_until_stopped(policy: Path, tmp_path: Path) -> None:
    worker(policy, "platform", 1, 0, tmp_path / "log.jsonl")
    proc = subprocess.Popen([GOVERNOR, "status", str(policy), "--watch", "0.2"], stdout=subprocess.PIPE, text=True)
    try:
        seen: list[str] = []
        assert proc.stdout is not None
        while sum(line.startswith("policy status-test") for line in seen) < 2:
            seen.append(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert any("team=platform" in line for line in seen)


def test_a_memory_ledger_has_nothing_to_show_from_outside(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY.format(ledger="{type: memory}"))
    out = status(str(path))
    assert out.returncode == 2 and "memory" in out.stderr


def test_budget_status_reads_through_the_ledger_protocol(tmp_path: Path) -> None:
    from governor import Governor
    from governor.policy.loader import load_policy

    path = tmp_path / "p.yaml"
    path.write_text(POLICY.format(ledger="{type: memory}"))
    gov = Governor(load_policy(path))
    d = gov.check(model="m-cheap", input_tokens=200_000, max_tokens=1, metadata={"team": "a"})
    gov.record(d, input_tokens=200_000, output_tokens=0)
    rows: Any = {(s.budget, s.scope): s for s in budget_status(gov.policy, gov.ledger, now=__import__("time").time())}
    assert rows[("team-daily", "team=a")].spend_usd == pytest.approx(0.2)
    assert rows[("all-calls", "global")].spend_calls == 1


def test_a_memory_ledger_is_seen_through_its_governors_trace(tmp_path: Path) -> None:
    """Another process with a memory ledger writes its decision log; status rebuilds its budgets from it."""
    path = tmp_path / "p.yaml"
    path.write_text(POLICY.format(ledger="{type: memory}"))
    log = tmp_path / "decisions.jsonl"
    worker(path, "platform", 3, 2, log)
    worker(path, "search", 1, 0, log)
    out = status(str(path), "--trace", str(log), "--format", "json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["ledger"].startswith("memory (from the trace")
    rows = {(s["budget"], s["scope"]): s for s in data["scopes"]}
    platform = rows[("team-daily", "team=platform")]
    assert platform["spend_usd"] == pytest.approx(0.3) and platform["spend_calls"] == 3
    assert platform["in_flight"] == 4 and platform["in_flight_usd"] == pytest.approx(2 * 0.050002 + 2 * 12e-6)
    assert rows[("team-daily", "team=search")]["spend_usd"] == pytest.approx(0.1)
    assert rows[("all-calls", "global")]["spend_calls"] == 4
    [stopped] = data["stopped_runs"]
    assert (stopped["run_id"], stopped["stop"]) == ("loopy", "loop-guard")
    with log.open("a") as fh:
        fh.write("{not json\n")
    out = status(str(path), "--trace", str(log))
    assert out.returncode == 0 and "team=platform" in out.stdout
    assert f"{log}:{len(log.read_text().splitlines())}: not JSON" in out.stderr
    missing = status(str(path), "--trace", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_status_watch_rereads_the_trace_as_it_grows(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY.format(ledger="{type: memory}"))
    trace = tmp_path / "calls.jsonl"
    worker(path, "platform", 1, 0, trace)
    proc = subprocess.Popen(
        [GOVERNOR, "status", str(path), "--trace", str(trace), "--watch", "0.2", "--format", "json"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        spends: list[float] = []
        grown = False
        buf = ""
        while not spends or spends[-1] < 0.2 - 1e-9:
            line = proc.stdout.readline()
            buf += line
            if line.rstrip() == "}":  # one snapshot's JSON ends at a closing brace in column 0
                doc = json.loads(buf)
                buf = ""
                spends.append(next(s["spend_usd"] for s in doc["scopes"] if s["scope"] == "team=platform"))
                if not grown:
                    worker(path, "platform", 1, 0, trace)  # another process appends while status watches
                    grown = True
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert spends[0] == pytest.approx(0.1) and spends[-1] == pytest.approx(0.2)


TRACE_POLICY = POLICY.format(ledger="{type: memory}")


@settings(max_examples=40, deadline=None)
@given(
    calls=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", None]),  # team
            st.integers(1, 300_000),  # input tokens
            st.sampled_from(["record", "hold", "fail"]),
            st.sampled_from(["r1", "loopy", None]),
        ),
        max_size=25,
    )
)
def test_the_trace_rebuilds_what_the_processs_memory_ledger_holds(calls: list[Any]) -> None:
    """Whatever the calls (recorded, held, failed, blocked by a budget or a stop), the ledger rebuilt from the
    governor's own trace holds for every scope what the governor's memory ledger holds: spend and in flight."""
    import io
    import time as _time

    from governor import Governor
    from governor.policy.loader import load_policy_text
    from governor.status import ledger_from_trace

    buf = io.StringIO()
    clock = [_time.time()]
    gov = Governor(load_policy_text(TRACE_POLICY), log=buf, clock=lambda: clock[0], observers=False)
    for team, tokens, how, run in calls:
        clock[0] += 0.5
        md = {k: v for k, v in (("team", team), ("run_id", run)) if v is not None}
        d = gov.check(model="m-cheap", input_tokens=tokens, max_tokens=10, metadata=md)
        if d.allowed and how == "record":
            gov.record(d, input_tokens=tokens, output_tokens=7)
        elif d.allowed and how == "fail":
            gov.record(d, input_tokens=0, output_tokens=0, error="boom")
    records = [json.loads(line) for line in buf.getvalue().splitlines()]
    problems: list[str] = []
    rebuilt = ledger_from_trace(gov.policy, records, problems=problems)
    assert problems == []
    now = clock[0]

    def held(ledger: Any) -> dict[tuple[str, str], Any]:  # scopes holding something (memory keeps empty ones too)
        rows = budget_status(gov.policy, ledger, now=now)
        return {(s.budget, s.scope): s for s in rows if s.spend_calls or s.in_flight}

    assert held(gov.ledger) == held(rebuilt)
