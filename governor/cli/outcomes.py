"""``governor outcomes add TRACE ...``: append outcomes known after the fact to a governor trace.

Either one outcome (``--run R --outcome accepted [--reviewer NAME] [--time T]``)
or every record of outcomes files (``--from FILE...``, CSV or JSONL, as
``replay --outcomes`` reads them). The trace must be a governor-trace/v1
file (its first line the header); each record becomes an ``outcome`` line,
so a later replay of that trace reads it as the run's outcome. Exit codes: 0
done, 1 some records were skipped (each reported), 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from governor.cli import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "outcomes", help="outcomes known after the fact", description="Record the outcomes of runs after the fact."
    )
    sub = parser.add_subparsers(dest="outcomes_command", metavar="ACTION")
    add = sub.add_parser(
        "add",
        help="append outcome lines to a governor trace",
        description="Append outcome lines (accepted | edited | rejected | escalated) to a governor-trace/v1 file.",
    )
    add.add_argument("trace", metavar="TRACE", help="a governor trace (record_to=) to append to")
    add.add_argument("--run", metavar="RUN_ID", help="the run the outcome is for")
    add.add_argument("--outcome", metavar="OUTCOME", help="accepted, edited, rejected or escalated")
    add.add_argument("--reviewer", metavar="NAME", help="who decided")
    add.add_argument("--time", metavar="TIME", help="when it was decided (ISO-8601 or epoch seconds; default now)")
    add.add_argument(
        "--from",
        dest="sources",
        nargs="+",
        metavar="FILE",
        default=[],
        help="outcomes files (CSV or JSONL: run_id, outcome, time, reviewer)",
    )
    add.set_defaults(func=run_add)

    def usage(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    parser.set_defaults(func=usage)


def run_add(args: argparse.Namespace) -> int:
    from governor.errors import TraceError
    from governor.traces.model import TraceIssue
    from governor.traces.outcomes import OutcomeRecord, outcome_line, parse_record, read_outcomes

    trace = Path(args.trace)
    try:
        first = trace.open(encoding="utf-8").readline() if trace.exists() else ""
    except OSError as exc:
        print(f"governor: {trace}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    if '"governor-trace/v1"' not in first:
        print(
            f"governor: {trace}:1: not a governor trace (its first line must be the governor-trace/v1 header)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    records: list[OutcomeRecord] = []
    issues: list[TraceIssue] = []
    if args.sources:
        try:
            found = read_outcomes(args.sources)
        except TraceError as exc:
            print(f"governor: {exc}", file=sys.stderr)
            return EXIT_USAGE
        records += found.records
        issues += found.issues
    if args.run is not None or args.outcome is not None:
        row = {"run_id": args.run, "outcome": args.outcome, "time": args.time, "reviewer": args.reviewer}
        try:
            records.append(parse_record("command line", 0, row))
        except ValueError as exc:
            print(f"governor: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if not records and not issues:
        print("governor: nothing to add: pass --run and --outcome, or --from FILE", file=sys.stderr)
        return EXIT_USAGE
    now = time.time()
    ends_open = trace.stat().st_size > 0 and trace.read_bytes()[-1:] != b"\n"
    with trace.open("a", encoding="utf-8") as out:
        if ends_open:
            out.write("\n")  # never glue an outcome onto a last line written without its newline
        for r in records:
            out.write(outcome_line(r, ts=now) + "\n")
    for issue in issues:
        print(f"governor: skipped {issue}", file=sys.stderr)
    print(f"governor: added {len(records)} outcome(s) to {trace}", file=sys.stderr)
    return EXIT_FINDINGS if issues else EXIT_OK
