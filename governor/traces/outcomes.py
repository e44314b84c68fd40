"""Outcomes known after the fact (a reviewer's verdict, a merged PR), joined into any replay by run id.

An outcomes file is CSV (a header row naming ``run_id`` and ``outcome``,
optionally ``time`` / ``ts`` and ``reviewer``) or JSON Lines (objects with the
same keys; a governor trace's ``outcome`` lines are read as they are). The
outcome is one of ``accepted``, ``edited``, ``rejected``, ``escalated``; a
record with any other value, or without a run id, is reported with its file
and line and skipped. For one run the record with the latest time wins (file
order breaks ties, and a record without a time is older than one with a
time).

Joining (:func:`join_outcomes`) sets the outcome of the run with that id, and
of its child runs (``metadata.parent_run_id``: a Claude Code session's
subagents) unless they have their own record; it replaces an outcome the
trace carried (counted in a note). A record that matches no run is reported.
A run with no outcome stays unknown: it is never counted as accepted.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, replace
from pathlib import Path

from governor.decision import OUTCOMES
from governor.errors import TraceError
from governor.traces import _fields as f
from governor.traces._io import decode, read_bytes
from governor.traces.model import TraceIssue, TraceRun, TraceSet


@dataclass(frozen=True, slots=True, kw_only=True)
class OutcomeRecord:
    """One outcome of one run, read from an outcomes file."""

    run_id: str
    """The run it judges (a session id, a trace id, a tau2 simulation id...)."""
    outcome: str
    """accepted | edited | rejected | escalated."""
    ts: float | None = None
    """When it was decided (epoch seconds), when the file says."""
    reviewer: str | None = None
    """Who decided, when the file says."""
    file: str = ""
    """The outcomes file it came from."""
    line: int = 0
    """Its 1-based line in that file (the header is line 1 of a CSV)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OutcomesFile:
    """The records of one or more outcomes files, with what could not be read."""

    records: tuple[OutcomeRecord, ...]
    """Every valid record, in file order."""
    issues: tuple[TraceIssue, ...] = ()
    """Records skipped, each with its file, line and reason."""


def read_outcomes(paths: list[str | Path]) -> OutcomesFile:
    records: list[OutcomeRecord] = []
    issues: list[TraceIssue] = []
    for path in paths:
        file = str(path)
        text = decode(read_bytes(path), file)
        rows = _jsonl(file, text, issues) if text.lstrip().startswith("{") else _csv(file, text)
        for line, row in rows:
            try:
                records.append(parse_record(file, line, row))
            except ValueError as exc:
                issues.append(TraceIssue(file, line, str(exc)))
    return OutcomesFile(records=tuple(records), issues=tuple(issues))


def _jsonl(file: str, text: str, issues: list[TraceIssue]) -> list[tuple[int, dict[str, object]]]:
    from governor.traces._io import json_lines

    rows = []
    for line, doc, err in json_lines(text):
        if err is not None:
            issues.append(TraceIssue(file, line, err))
        elif not isinstance(doc, dict):
            issues.append(TraceIssue(file, line, "line is not a JSON object"))
        elif doc.get("event") in (None, "outcome"):  # a governor trace's check/record/header lines are not outcomes
            rows.append((line, doc))
    return rows


def _csv(file: str, text: str) -> list[tuple[int, dict[str, object]]]:
    reader = csv.DictReader(io.StringIO(text))
    names = [n.strip().lower() for n in reader.fieldnames or []]
    if "run_id" not in names or "outcome" not in names:
        raise TraceError(
            f"an outcomes CSV needs a header row with run_id and outcome columns, got {names}", file=file, line=1
        )
    reader.fieldnames = names
    return [
        (reader.line_num, {k: (v.strip() if isinstance(v, str) else v) for k, v in row.items()})
        for row in reader
        if any((v or "").strip() for v in row.values() if isinstance(v, str))
    ]


def parse_record(file: str, line: int, row: dict[str, object]) -> OutcomeRecord:
    """One record from its fields (run_id, outcome, time or ts, reviewer), or ValueError saying what is wrong."""
    run_id = row.get("run_id")
    if run_id is None or (isinstance(run_id, str) and not run_id):
        raise ValueError("run_id is missing")
    outcome = row.get("outcome")
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    when = row.get("time", row.get("ts"))
    ts = None
    if when not in (None, ""):
        ts = f.timestamp(float(when) if isinstance(when, str) and _is_number(when) else when, "time")
    reviewer = row.get("reviewer")
    return OutcomeRecord(
        run_id=str(run_id),
        outcome=str(outcome),
        ts=ts,
        reviewer=str(reviewer) if reviewer not in (None, "") else None,
        file=file,
        line=line,
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def latest(records: tuple[OutcomeRecord, ...]) -> dict[str, OutcomeRecord]:
    """The deciding record per run: the latest time, file order breaking ties; untimed records are older."""
    out: dict[str, OutcomeRecord] = {}
    for r in records:
        old = out.get(r.run_id)
        if old is None or (r.ts if r.ts is not None else float("-inf")) >= (
            old.ts if old.ts is not None else float("-inf")
        ):
            out[r.run_id] = r
    return out


def join_outcomes(traces: TraceSet, outcomes: OutcomesFile) -> TraceSet:
    """``traces`` with the outcomes joined in, the unreadable and unmatched records reported."""
    decided = latest(outcomes.records)
    ids = {r.run_id for r in traces.runs}
    runs: list[TraceRun] = []
    replaced = 0
    for run in traces.runs:
        rec = decided.get(run.run_id)
        if rec is None:
            parent = run.metadata.get("parent_run_id")
            rec = decided.get(str(parent)) if parent is not None else None
        if rec is None:
            runs.append(run)
            continue
        if run.outcome is not None and run.outcome != rec.outcome:
            replaced += 1
        meta = {**run.metadata, "outcome_source": f"{rec.file}:{rec.line}"}
        if rec.reviewer:
            meta["reviewer"] = rec.reviewer
        runs.append(replace(run, outcome=rec.outcome, metadata=meta))
    unmatched = [r for run_id, r in decided.items() if run_id not in ids]
    notes = list(traces.notes)
    joined = sum(1 for r in decided if r in ids)
    notes.append(
        f"outcomes: {joined} of {len(decided)} run(s) in the outcomes file(s) matched a run"
        + (f"; {replaced} outcome(s) the traces carried were replaced" if replaced else "")
    )
    if unmatched:
        shown = ", ".join(f"{r.run_id} ({r.file}:{r.line})" for r in unmatched[:10])
        more = f" and {len(unmatched) - 10} more" if len(unmatched) > 10 else ""
        notes.append(f"outcomes: {len(unmatched)} record(s) match no run in the traces: {shown}{more}")
    return replace(traces, runs=tuple(runs), issues=(*traces.issues, *outcomes.issues), notes=tuple(notes))


def unmatched_runs(traces: TraceSet, outcomes: OutcomesFile) -> list[OutcomeRecord]:
    """The deciding records whose run id is in none of the traces' runs."""
    ids = {r.run_id for r in traces.runs}
    return [r for run_id, r in latest(outcomes.records).items() if run_id not in ids]


def outcome_line(record: OutcomeRecord, *, ts: float) -> str:
    """A governor-trace/v1 ``outcome`` line for ``record`` (docs/trace-format.md)."""
    rec: dict[str, object] = {
        "event": "outcome",
        "ts": record.ts if record.ts is not None else ts,
        "policy": "",
        "revision": "",
        "run_id": record.run_id,
        "outcome": record.outcome,
    }
    meta = {"source": "governor outcomes add"}
    if record.reviewer:
        meta["reviewer"] = record.reviewer
    rec["metadata"] = meta
    return json.dumps(rec, ensure_ascii=False, separators=(",", ":"))
