"""``governor replay POLICY --traces PATH...``: what the policy would have done to recorded traffic.

Exit codes: 0 done, 1 a malformed record under ``--strict`` (no report) or a
trace file that could not be parsed (reported and skipped, the others
replayed), 2 usage error (missing file, unknown format), 3 invalid policy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from governor.cli import EXIT_FINDINGS, EXIT_INVALID, EXIT_OK, EXIT_USAGE


def add_trace_options(parser: argparse.ArgumentParser) -> None:
    """Trace-reading options shared by ``replay`` and ``diff``."""
    parser.add_argument(
        "--traces", nargs="+", metavar="PATH", default=[], help="trace files or directories (gzip read transparently)"
    )
    parser.add_argument(
        "--format-in",
        metavar="NAME",
        help="force a trace format: governor, otel, litellm, tau2, claude-code, codex, ...",
    )
    parser.add_argument(
        "--claude-code",
        action="store_true",
        help="read this machine's Claude Code sessions ($CLAUDE_CONFIG_DIR or ~/.claude)",
    )
    parser.add_argument(
        "--codex", action="store_true", help="read this machine's Codex rollouts ($CODEX_HOME or ~/.codex)"
    )
    parser.add_argument("--since", metavar="TIME", help="only calls at or after TIME (2026-11-01, ISO time, or 7d)")
    parser.add_argument("--until", metavar="TIME", help="only calls before TIME")
    parser.add_argument(
        "--outcomes",
        nargs="+",
        metavar="FILE",
        default=[],
        help="outcomes known after the fact (CSV or JSONL: run_id, outcome, time, reviewer)",
    )
    parser.add_argument("--run-key", metavar="KEY", help="metadata key that groups calls into runs (litellm)")
    parser.add_argument("--strict", action="store_true", help="fail on the first malformed record")
    parser.add_argument("--state", metavar="FILE", help="starting budget state (YAML/JSON 'spend' list)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="replay independent runs in N processes (only when no budget couples runs)",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="dry-run a policy on recorded traces",
        description="Replay recorded LLM calls through a policy: what it would block, reroute, trim and save.",
    )
    parser.add_argument("policy", metavar="POLICY", help="policy file, or REV:path in this git repository")
    parser.add_argument("paths", nargs="*", metavar="TRACES", help="trace files or directories (or use --traces)")
    add_trace_options(parser)
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text", help="report format")
    parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the report here instead of stdout")
    parser.add_argument(
        "--long-context-tokens",
        type=int,
        default=32000,
        metavar="N",
        help="input tokens above which a call counts as long context (default 32000)",
    )
    parser.set_defaults(func=run)


class Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal (never in CI logs or pipes).

    ``replaying [#########.....] 1200/1974 calls  2,350 calls/s  ETA 0:00``: the rate is
    calls replayed per second since the bar started, the ETA the calls left at that rate.
    """

    def __init__(
        self, enabled: bool, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.clock = clock
        self.start = clock()
        self.width = 0

    def line(self, done: int, total: int) -> str:
        bar = 30
        filled = int(bar * done / total)
        elapsed = self.clock() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = _clock_time((total - done) / rate) if rate > 0 else "-:--"
        return f"replaying [{'#' * filled}{'.' * (bar - filled)}] {done}/{total} calls  {rate:,.0f} calls/s  ETA {eta}"

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or not total:
            return
        text = self.line(done, total)
        self.width = max(self.width, len(text))
        self.stream.write("\r" + text.ljust(self.width))
        if done >= total:
            self.stream.write("\r" + " " * self.width + "\r")
        self.stream.flush()


def _clock_time(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def replay_report(
    policy: Any, args: argparse.Namespace, traces: Any, progress: Callable[[int, int], None] | None = None
) -> tuple[Any, dict[str, Any]]:
    """(ReplayResult, report dict) of one policy over already-loaded traces."""
    from governor.replay.engine import Replayer
    from governor.replay.report import build_report
    from governor.replay.state import apply_spend, load_state

    notes = list(traces.notes)
    jobs = getattr(args, "jobs", 1) or 1
    parallel = False
    if jobs > 1:
        from governor.replay.parallel import coupling_budgets

        coupled = coupling_budgets(policy)
        if coupled or getattr(args, "state", None):
            why = (
                f"budget(s) {', '.join(coupled)} add up calls across runs"
                if coupled
                else "--state seeds budgets shared by the runs"
            )
            notes.append(f"--jobs {jobs}: replayed in one process: {why}, so the runs are not independent")
        else:
            parallel = len(traces.runs) > 1
    if parallel:
        from governor.replay.parallel import replay_parallel

        result = replay_parallel(policy, traces, jobs)
    else:
        replayer = Replayer(policy)
        if getattr(args, "state", None):
            state = load_state(args.state)
            first = min((c.timestamp for r in traces.runs for c in r.calls), default=0.0)
            apply_spend(policy, replayer.ledger, state.get("spend"), now=first, source=args.state)
        result = replayer.replay(traces, progress)
    report = build_report(
        result,
        policy,
        long_context_tokens=getattr(args, "long_context_tokens", 32000),
        prices=None if parallel else replayer.prices,
    )
    report["notes"] = notes
    found = getattr(args, "outcomes_read", None)
    if found is not None:
        from governor.traces.outcomes import latest

        ids = {r.run_id for r in traces.runs}
        decided = latest(found.records)
        report["outcomes"]["joined"] = {
            "files": list(args.outcomes),
            "records": len(found.records),
            "runs_matched": sum(1 for run_id in decided if run_id in ids),
            "unmatched": [
                {"run_id": r.run_id, "file": r.file, "line": r.line}
                for run_id, r in decided.items()
                if run_id not in ids
            ],
            "skipped": len(found.issues),
        }
    return result, report


def load_inputs(args: argparse.Namespace, policy_refs: list[str]) -> tuple[list[Any], Any] | int:
    """Policies and traces, or an exit code after printing the error."""
    from governor.errors import GovernorError, PolicyError, TraceError
    from governor.replay.policyref import load_policy_ref
    from governor.traces import load_traces
    from governor.traces.registry import MalformedRecord

    policies = []
    for ref in policy_refs:
        try:
            policies.append(load_policy_ref(ref))
        except PolicyError as exc:
            print(f"governor: invalid policy {ref}:\n  {exc}", file=sys.stderr)
            return EXIT_INVALID
        except GovernorError as exc:
            print(f"governor: {exc}", file=sys.stderr)
            return EXIT_USAGE
    from governor.traces.discovery import local_logs, parse_time

    paths: list[Any] = list(getattr(args, "paths", []) or []) + list(args.traces)
    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
        local: dict[Any, str] = {}
        if args.claude_code or args.codex:
            local = local_logs(claude_code=args.claude_code, codex=args.codex, since=since)
            paths += list(local)
    except TraceError as exc:
        print(f"governor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not paths:
        print(
            "governor: no traces given (pass files or directories, --traces PATH..., --claude-code or --codex)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        traces = load_traces(
            paths,
            format_in=args.format_in,
            strict=args.strict,
            run_key=args.run_key,
            since=since,
            until=until,
            format_of=local.get if local else None,
        )
        if args.outcomes:
            from governor.traces.outcomes import join_outcomes, read_outcomes

            found = read_outcomes(args.outcomes)
            if args.strict and found.issues:
                raise MalformedRecord(found.issues[0].message, file=found.issues[0].file, line=found.issues[0].line)
            traces = join_outcomes(traces, found)
            args.outcomes_read = found
    except TraceError as exc:
        print(f"governor: {exc}", file=sys.stderr)
        return EXIT_FINDINGS if isinstance(exc, MalformedRecord) else EXIT_USAGE
    return policies, traces


def emit(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def run(args: argparse.Namespace) -> int:
    from governor.errors import GovernorError
    from governor.replay.render import render_markdown, render_text

    loaded = load_inputs(args, [args.policy])
    if isinstance(loaded, int):
        return loaded
    (policy,), traces = loaded
    try:
        result, report = replay_report(policy, args, traces, Progress(not args.no_progress))
    except GovernorError as exc:
        print(f"governor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.format == "json":
        emit(json.dumps(report, indent=2, ensure_ascii=False) + "\n", args.output)
    elif args.format == "markdown":
        emit(render_markdown(report), args.output)
    else:
        emit(render_text(report), args.output)
    if args.html:
        from governor.replay.html import render_html

        Path(args.html).write_text(render_html(report, result), encoding="utf-8")
    for note in report["notes"]:
        print(f"governor: note: {note}", file=sys.stderr)
    return skipped_exit(traces)


def skipped_exit(traces: Any) -> int:
    """EXIT_FINDINGS when a trace file could not be parsed (reported and skipped), else EXIT_OK."""
    for file in traces.skipped_files:
        print(
            f"governor: {file}: could not be parsed and was skipped (see the report's skipped records; "
            "--strict fails instead)",
            file=sys.stderr,
        )
    return EXIT_FINDINGS if traces.skipped_files else EXIT_OK
