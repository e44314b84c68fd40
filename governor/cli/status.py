"""``governor status POLICY``: every budget scope in the policy's ledger (or, ``--trace``, in what a governor's
trace says), once or live (``--watch``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

from governor.cli import EXIT_FINDINGS, EXIT_INVALID, EXIT_OK, EXIT_USAGE


def register(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help="spend, limit, remaining and reservations of every budget scope in the ledger",
        description="Read the policy's ledger (SQLite or Redis) and show every budget scope. A memory ledger "
        "lives in its process: read the governor's trace (record_to=) or JSON decision log with --trace.",
    )
    p.add_argument("policy", help="the policy file (its ledger: section names the store)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--log", metavar="FILE", help="a decision log (JSONL): also list the runs a stop condition stopped")
    p.add_argument(
        "--trace",
        metavar="FILE",
        action="append",
        help="read budgets from a governor trace (record_to=) or JSON decision log instead of the ledger: "
        "how a memory ledger is seen from outside (repeatable; --watch re-reads it)",
    )
    p.add_argument(
        "--watch",
        nargs="?",
        const=2.0,
        type=float,
        metavar="SECONDS",
        help="redraw every SECONDS (default 2) until interrupted",
    )
    p.set_defaults(func=run)


def _when(ts: float | None) -> str:
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _money(v: float | None) -> str:
    return "-" if v is None else f"${v:,.4f}"


def _limit(s: Any) -> str:
    parts = []
    if s.limit_usd is not None:
        parts.append(f"${s.limit_usd:,.2f}")
    if s.limit_tokens is not None:
        parts.append(f"{s.limit_tokens:,} tok")
    if s.limit_calls is not None:
        parts.append(f"{s.limit_calls:,} calls")
    return " / ".join(parts)


def render_text(data: dict[str, Any]) -> str:
    head = ["BUDGET", "SCOPE", "SPEND", "LIMIT", "REMAINING", "USED", "IN FLIGHT", "RESETS"]
    rows = []
    for s in data["scopes"]:
        ns = SimpleNamespace(**s)
        raised = "*" if ns.adjustments else ""
        spend = (
            _money(ns.spend_usd)
            if ns.limit_usd is not None or not (ns.limit_tokens or ns.limit_calls)
            else (f"{ns.spend_tokens:,} tok" if ns.limit_tokens else f"{ns.spend_calls:,} calls")
        )
        rows.append(
            [
                ns.budget,
                ns.scope,
                spend,
                _limit(ns) + raised,
                _money(ns.remaining_usd),
                f"{ns.utilization:.0%}",
                f"{ns.in_flight} ({_money(ns.in_flight_usd)})" if ns.in_flight else "0",
                _when(ns.resets_at),
            ]
        )
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = [f"policy {data['policy']} ({data['revision']}), {data['ledger']} ledger, at {_when(data['ts'])}"]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [head, *rows]]
    if not rows:
        lines.append("(no budget scope has spend or reservations in this ledger)")
    if data["stopped_runs"]:
        lines.append("")
        lines.append("stopped runs:")
        for r in data["stopped_runs"]:
            resumed = f"  (resumed by {r['resumed_by']})" if r.get("resumed_by") else ""
            lines.append(f"  {r['run_id']}  {r['stop']}  {_when(r['ts'])}  {r['reason']}{resumed}")
    if data.get("adjustments"):
        from governor.engine.adjust import describe
        from governor.ledger.base import Adjustment

        lines.append("")
        lines.append("adjustments in force (governor budget raise|reset, governor run resume):")
        for doc in data["adjustments"]:
            a = Adjustment.from_dict(doc)
            lines.append(f"  {_when(a.at)}  {describe(a)}  (until {_when(a.until)})")
    return "\n".join(lines)


def snapshot(policy: Any, ledger: Any, log: str | None, traces: list[str] | None = None) -> dict[str, Any]:
    from governor.status import as_json, budget_status, ledger_from_trace, read_log, read_trace, stopped_runs

    now = time.time()
    records: list[dict[str, Any]] = []
    where = None
    if traces:
        problems: list[str] = []
        for path in traces:
            found, bad = read_trace(path)
            records += found
            problems += bad
        ledger = ledger_from_trace(policy, records, problems=problems)
        for problem in problems[:20]:
            print(f"governor status: {problem}", file=sys.stderr)
        if len(problems) > 20:
            print(f"governor status: ... and {len(problems) - 20} more lines skipped", file=sys.stderr)
        where = f"memory (from the trace {', '.join(traces)})"
    adjustments = ledger.adjustments(now=now)
    if log:
        records += read_log(log)
    stopped = stopped_runs(records, adjustments) if records else []
    return as_json(budget_status(policy, ledger, now=now), stopped, policy, now, adjustments, where)


def run(args: argparse.Namespace) -> int:
    from governor.errors import LedgerError, PolicyError
    from governor.ledger.factory import open_ledger
    from governor.policy.loader import load_policy

    try:
        policy = load_policy(args.policy)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    except OSError as exc:
        print(f"governor status: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for path in args.trace or ():
        if not os.path.isfile(path):
            print(f"governor status: --trace {path}: no such file", file=sys.stderr)
            return EXIT_USAGE
    ledger: Any = None
    if args.trace:
        pass  # read from the trace on every snapshot
    elif policy.ledger.type == "memory":
        print(
            f"governor status: {args.policy}: the policy's ledger is memory (each process's own): nothing to "
            "read from outside; pass the governor's trace (record_to=) or decision log with --trace FILE, or "
            "name a sqlite or redis ledger to share and inspect budgets",
            file=sys.stderr,
        )
        return EXIT_USAGE
    else:
        try:
            ledger = open_ledger(policy.ledger, base_dir=os.path.dirname(os.path.abspath(args.policy)))
        except LedgerError as exc:
            print(f"governor status: {exc}", file=sys.stderr)
            return EXIT_FINDINGS
    try:
        while True:
            try:
                data = snapshot(policy, ledger, args.log, args.trace)
            except (LedgerError, OSError) as exc:
                print(f"governor status: {exc}", file=sys.stderr)
                if not args.watch:
                    return EXIT_FINDINGS
                data = None
            if data is not None:
                text = json.dumps(data, indent=2) if args.format == "json" else render_text(data)
                if args.watch and sys.stdout.isatty():
                    sys.stdout.write("\x1b[H\x1b[2J")  # clear the screen: a live view
                print(text, flush=True)
            if not args.watch:
                return EXIT_OK
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        if ledger is not None:
            ledger.close()
