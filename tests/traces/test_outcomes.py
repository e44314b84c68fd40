"""Outcomes after the fact: --outcomes FILE joined into replays of real traces, and `governor outcomes add`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from governor.cli import main
from governor.decision import OUTCOMES
from governor.engine.governor import Governor
from governor.ledger.memory import MemoryLedger
from governor.policy.loader import load_policy_text
from governor.traces import load_traces
from governor.traces.outcomes import join_outcomes, read_outcomes

DATA = Path(__file__).resolve().parent.parent / "data"
CLAUDE = DATA / "coding_agents" / "claude" / "projects"
TRIALS = DATA / "harbor" / "trials"
POLICY = (
    "apiVersion: governor/v1\nkind: Policy\nmetadata:\n  name: observe\ndefaults:\n  allow_unpriced: true\n"
    "budgets:\n  - {id: per-run, scope: run, limit: {usd: 0.01}, window: none}\n"
)


def sessions() -> list[str]:
    return sorted({r.run_id.split("/")[0] for r in load_traces([CLAUDE]).runs})


def replay(tmp_path: Path, *args: str) -> dict[str, Any]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    out = tmp_path / "report.json"
    assert main(["replay", str(policy), "--format", "json", "-o", str(out), "--no-progress", *args]) == 0
    return json.loads(out.read_text())


def test_csv_outcomes_join_a_coding_agent_replay(tmp_path: Path) -> None:
    a, b, c, *_ = sessions()
    csv = tmp_path / "reviews.csv"
    csv.write_text(
        "run_id,outcome,time,reviewer\n"
        f"{a},accepted,2026-12-03T17:00:00Z,dana\n"
        f"{b},great,2026-12-03T17:00:00Z,dana\n"  # line 3: not an outcome
        f"{c},edited,,lee\n"
        "no-such-session,accepted,,dana\n"
    )  # line 5: matches no run
    report = replay(tmp_path, "--traces", str(CLAUDE), "--outcomes", str(csv))
    o = report["outcomes"]
    assert o["accepted"] == 1 + sum(1 for r in load_traces([CLAUDE]).runs if r.metadata.get("parent_run_id") == a)
    assert o["edited"] == 1 + sum(1 for r in load_traces([CLAUDE]).runs if r.metadata.get("parent_run_id") == c)
    assert o["unknown"] == report["totals"]["runs"] - o["accepted"] - o["edited"]  # never counted as accepted
    assert o["joined"]["unmatched"] == [{"run_id": "no-such-session", "file": str(csv), "line": 5}]
    assert o["joined"]["skipped"] == 1
    assert [(s["line"], "great" in s["message"]) for s in report["skipped"]] == [(3, True)]
    rows = {r["run_id"]: r["outcome"] for r in report["runs"]}
    assert rows[a] == "accepted" and rows[b] is None and rows[c] == "edited"
    assert any("match no run" in n and "no-such-session" in n for n in report["notes"])


def test_jsonl_outcomes_replace_what_the_trace_carried(tmp_path: Path) -> None:
    ts = load_traces([TRIALS])
    was = {r.run_id: r.outcome for r in ts.runs}
    flipped = {run_id: "rejected" if outcome == "accepted" else "escalated" for run_id, outcome in was.items()}
    path = tmp_path / "o.jsonl"
    path.write_text("".join(json.dumps({"run_id": k, "outcome": v, "ts": 1}) + "\n" for k, v in flipped.items()))
    joined = join_outcomes(ts, read_outcomes([path]))
    assert {r.run_id: r.outcome for r in joined.runs} == flipped
    assert any(f"{len(flipped)} outcome(s) the traces carried were replaced" in n for n in joined.notes)
    assert all(r.metadata["outcome_source"].startswith(str(path)) for r in joined.runs)


def test_the_latest_record_wins_and_an_untimed_one_is_older(tmp_path: Path) -> None:
    a = sessions()[0]
    path = tmp_path / "o.csv"
    path.write_text(
        f"run_id,outcome,time\n{a},accepted,2026-12-03T10:00:00Z\n{a},rejected,2026-12-03T09:00:00Z\n{a},escalated,\n"
    )
    joined = join_outcomes(load_traces([CLAUDE]), read_outcomes([path]))
    assert next(r for r in joined.runs if r.run_id == a).outcome == "accepted"


def _governor_trace(path: Path) -> None:
    now = [1_760_000_000.0]
    gov = Governor(load_policy_text(POLICY), ledger=MemoryLedger(), clock=lambda: now[0], record_to=path)
    for run in ("r1", "r2"):
        now[0] += 1
        d = gov.check(model="gpt-4o-mini", input_tokens=100, max_tokens=50, metadata={"run_id": run})
        gov.record(d, input_tokens=100, output_tokens=10)
    close = getattr(gov, "close", None)
    if close is not None:
        close()


def test_outcomes_add_appends_lines_a_replay_reads(tmp_path: Path) -> None:
    trace = tmp_path / "calls.jsonl"
    _governor_trace(trace)
    assert main(["outcomes", "add", str(trace), "--run", "r1", "--outcome", "accepted", "--reviewer", "dana"]) == 0
    reviews = tmp_path / "later.csv"
    reviews.write_text("run_id,outcome\nr2,rejected\nr3,maybe\n")
    assert main(["outcomes", "add", str(trace), "--from", str(reviews)]) == 1  # r3's line is reported, r2 added
    lines = [json.loads(x) for x in trace.read_text().splitlines()]
    added = [x for x in lines if x["event"] == "outcome"]
    assert [(x["run_id"], x["outcome"]) for x in added] == [("r1", "accepted"), ("r2", "rejected")]
    assert added[0]["metadata"]["reviewer"] == "dana"
    assert {r.run_id: r.outcome for r in load_traces([trace]).runs} == {"r1": "accepted", "r2": "rejected"}
    assert main(["outcomes", "add", str(trace), "--run", "r1", "--outcome", "shipped"]) == 2
    other = tmp_path / "not-a-trace.jsonl"
    other.write_text('{"hello": 1}\n')
    assert main(["outcomes", "add", str(other), "--run", "r1", "--outcome", "accepted"]) == 2
    assert other.read_text() == '{"hello": 1}\n'


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 7), st.sampled_from([*OUTCOMES, "nope"]), st.one_of(st.none(), st.integers(0, 5))),
        max_size=25,
    )
)
def test_join_is_the_latest_valid_record_per_run(rows: list[tuple[int, str, int | None]]) -> None:
    import tempfile

    ids = sessions()
    names = [ids[i] if i < len(ids) else f"ghost-{i}" for i in range(8)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "o.csv"
        path.write_text(
            "run_id,outcome,ts\n" + "".join(f"{names[i]},{o},{'' if t is None else t}\n" for i, o, t in rows)
        )
        found = read_outcomes([path])
        joined = join_outcomes(load_traces([CLAUDE]), found)
    assert sorted(i.line for i in found.issues) == [k + 2 for k, (_, o, _) in enumerate(rows) if o == "nope"]
    want: dict[str, tuple[float, int, str]] = {}
    for k, (i, o, t) in enumerate(rows):
        if o == "nope":
            continue
        key = (float("-inf") if t is None else float(t), k, o)
        if names[i] not in want or key[:2] >= want[names[i]][:2]:
            want[names[i]] = key
    for run in joined.runs:
        own = want.get(run.run_id) or want.get(str(run.metadata.get("parent_run_id")))
        assert run.outcome == (own[2] if own else None)
    unmatched = sum(1 for n in want if n.startswith("ghost-"))
    assert any(f"{unmatched} record(s) match no run" in n for n in joined.notes) == (unmatched > 0)
