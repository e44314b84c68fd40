"""``governor suggest TRACES... [--base POLICY] [-o suggested.yaml]``: caps and stops fitted on recorded runs.

Exit codes: 0 done, 1 no policy suggested (no accepted outcomes in the fit
runs) or a trace file that could not be parsed (reported and skipped), 2 usage
error, 3 invalid base policy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from governor.cli import EXIT_FINDINGS, EXIT_INVALID, EXIT_OK, EXIT_USAGE


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from governor.cli.replay import add_trace_options
    from governor.suggest.knobs import KNOBS

    parser = subparsers.add_parser(
        "suggest",
        help="suggest caps and stops from recorded runs and their outcomes",
        description=(
            "Sweep per-run caps (USD, tokens, calls), repeated_call, no_progress, consecutive_errors and context "
            "caps over recorded runs through the replay path; suggest the values that save the most without "
            "stopping accepted work, fitted on the earlier runs and reported on the held-out rest."
        ),
    )
    parser.add_argument("paths", nargs="*", metavar="TRACES", help="trace files or directories (or use --traces)")
    add_trace_options(parser)
    parser.add_argument("--base", metavar="POLICY", help="the policy the suggestions extend (a file)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the suggested policy here, and FILE.test.yaml")
    parser.add_argument("--name", default="suggested", help="metadata.name of the suggested policy")
    parser.add_argument(
        "--match",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="scope every suggested rule to calls whose metadata KEY is VALUE (repeatable), e.g. agent=agent",
    )
    parser.add_argument("--holdout", type=float, default=0.3, metavar="F", help="fraction of runs held out (0.3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split when the runs carry no times")
    parser.add_argument(
        "--knob", action="append", choices=sorted(KNOBS), metavar="NAME", help=f"sweep only these: {', '.join(KNOBS)}"
    )
    parser.add_argument(
        "--route-to", action="append", default=[], metavar="MODEL", help="price short calls rerouted to MODEL"
    )
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text", help="report format")
    parser.add_argument("--report", metavar="FILE", help="write the report here instead of stdout")
    parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    parser.set_defaults(func=run)


def _scope(pairs: list[str]) -> dict[str, str] | str:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            return f"--match {pair!r}: expected KEY=VALUE"
        out[key] = value
    return out


def run(args: argparse.Namespace) -> int:
    from governor.cli.replay import emit, load_inputs, skipped_exit
    from governor.errors import GovernorError, NoAcceptedRuns
    from governor.replay.policyref import split_ref
    from governor.suggest.build import suggest
    from governor.suggest.emit import check_policy, policy_yaml, test_cases, test_yaml, verify_cases
    from governor.suggest.render import render_html, render_markdown, render_text, to_json

    scope = _scope(args.match)
    if isinstance(scope, str):
        print(f"governor: {scope}", file=sys.stderr)
        return EXIT_USAGE
    if args.state:
        print(
            "governor: --state is not used by suggest (every candidate replays from an empty ledger)", file=sys.stderr
        )
        return EXIT_USAGE
    if not 0.0 <= args.holdout < 1.0:
        print(f"governor: --holdout must be at least 0 and below 1, got {args.holdout}", file=sys.stderr)
        return EXIT_USAGE
    if args.base and split_ref(args.base) is not None:
        print(f"governor: --base {args.base}: give a policy file (the suggestion extends it)", file=sys.stderr)
        return EXIT_USAGE
    if args.output and not Path(args.output).parent.is_dir():
        print(f"governor: -o {args.output}: no such directory {Path(args.output).parent}", file=sys.stderr)
        return EXIT_USAGE
    loaded = load_inputs(args, [args.base] if args.base else [])
    if isinstance(loaded, int):
        return loaded
    policies, traces = loaded
    base_path = Path(os.path.abspath(args.base)) if args.base else None  # symlinks kept: extends as the user sees it
    try:
        s = suggest(
            traces,
            base=policies[0] if policies else None,
            base_path=base_path,
            match=scope,
            holdout=args.holdout,
            seed=args.seed,
            jobs=max(args.jobs or 1, 1),
            knobs=args.knob,
            route_to=args.route_to,
        )
    except NoAcceptedRuns as exc:
        print(f"governor: no policy suggested: {exc}", file=sys.stderr)
        return EXIT_FINDINGS
    except GovernorError as exc:
        print(f"governor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    report = to_json(s)
    notes = list(traces.notes)
    if args.output:
        out = Path(args.output)
        sources = [str(p) for p in [*args.paths, *args.traces]] or ["local logs"]
        text = policy_yaml(s, output=out, name=args.name, sources=sources)
        from governor.errors import PolicyError

        try:
            policy = check_policy(text, out)
        except PolicyError as exc:  # a bug, never the user's input: say so, write nothing
            print(f"governor: internal error: the suggested policy does not validate:\n  {exc}", file=sys.stderr)
            return EXIT_INVALID
        test_file = out.with_name(out.name.removesuffix(".yaml").removesuffix(".yml") + ".test.yaml")
        cases, left_out = verify_cases(policy, test_cases(s, s.base_fit), str(test_file)) if s.base_fit else ([], [])
        notes += left_out
        out.write_text(text, encoding="utf-8")
        test_file.write_text(test_yaml(cases, out.name), encoding="utf-8")
        report["written"] = {"policy": str(out), "tests": str(test_file), "cases": len(cases)}
        print(f"governor: wrote {out} and {test_file} ({len(cases)} cases)", file=sys.stderr)
    report["notes"] += notes
    if args.format == "json":
        emit(json.dumps(report, indent=2, ensure_ascii=False) + "\n", args.report)
    elif args.format == "markdown":
        emit(render_markdown(report), args.report)
    else:
        emit(render_text(report), args.report)
    if args.html:
        Path(args.html).write_text(render_html(report), encoding="utf-8")
    return skipped_exit(traces) if traces.skipped_files else EXIT_OK
