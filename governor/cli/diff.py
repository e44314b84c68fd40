"""``governor diff OLD NEW --traces ...``: what changes between two policy versions.

OLD and NEW are policy files or ``REV:path`` git revisions. Exit codes: 0 done
(or no decision changed, with ``--exit-code``), 1 decisions changed under
``--exit-code``, 2 usage error, 3 invalid policy.
"""

from __future__ import annotations

import argparse
import json
import sys

from governor.cli import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE
from governor.cli.replay import add_trace_options, emit, load_inputs


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "diff",
        help="compare two policy versions, rule by rule and on recorded traces",
        description="Rule-level diff of two policies, and the decisions that change when both replay the same traces.",
    )
    parser.add_argument("old", metavar="OLD", help="policy file or REV:path (e.g. HEAD~1:policies/agent.yaml)")
    parser.add_argument("new", metavar="NEW", help="policy file or REV:path")
    add_trace_options(parser)
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text", help="output format")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the diff here instead of stdout")
    parser.add_argument("--exit-code", action="store_true", help="exit 1 when any decision changes")
    parser.set_defaults(func=run, paths=[])


def run(args: argparse.Namespace) -> int:
    from governor.errors import GovernorError
    from governor.replay.diff import build_diff
    from governor.replay.diff_render import render_diff_markdown, render_diff_text
    from governor.replay.policyref import load_policy_ref

    if not (args.traces or args.claude_code or args.codex):
        try:
            old_p, new_p = load_policy_ref(args.old), load_policy_ref(args.new)
        except GovernorError as exc:
            print(f"governor: {exc}", file=sys.stderr)
            return EXIT_USAGE if type(exc) is GovernorError else 3
        d = build_diff(old_p, new_p, None, None, old_ref=args.old, new_ref=args.new)
    else:
        loaded = load_inputs(args, [args.old, args.new])
        if isinstance(loaded, int):
            return loaded
        (old_p, new_p), traces = loaded
        from governor.cli.replay import replay_report

        try:
            old_r, _ = replay_report(old_p, args, traces)
            new_r, _ = replay_report(new_p, args, traces)
        except GovernorError as exc:
            print(f"governor: {exc}", file=sys.stderr)
            return EXIT_USAGE
        d = build_diff(old_p, new_p, old_r, new_r, old_ref=args.old, new_ref=args.new)
    if args.format == "json":
        emit(json.dumps(d, indent=2, ensure_ascii=False, default=str) + "\n", args.output)
    elif args.format == "markdown":
        emit(render_diff_markdown(d), args.output)
    else:
        emit(render_diff_text(d), args.output)
    if args.exit_code and d.get("replay", {}).get("changed_calls"):
        return EXIT_FINDINGS
    return EXIT_OK
