"""``governor reconcile TRACES... [--policy POLICY]``: computed vs recorded cost, per model and day.

Prices every recorded call with a recorded cost (tau2 ``cost``, litellm
``response_cost``, OTel ``gen_ai.usage.cost``, the governor's own records) at
the price tables (and the policy's ``models.prices`` when ``--policy`` is
given), and compares. Drift above 1% is flagged with its likely cause.

Exit codes: 0 done, 1 drift flagged under ``--fail-on-drift`` or a trace file
that could not be parsed, 2 usage error, 3 invalid policy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from governor.cli import EXIT_FINDINGS, EXIT_USAGE

OBSERVE = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: reconcile}
defaults: {allow_unpriced: true}
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from governor.cli.replay import add_trace_options

    parser = subparsers.add_parser(
        "reconcile",
        help="compare computed cost with the cost the traces recorded",
        description="Computed (price table) vs recorded cost per model and per model and day; drift above 1% "
        "is flagged with its likely cause (cache split missing, price changed, tier).",
    )
    parser.add_argument("paths", nargs="*", metavar="TRACES", help="trace files or directories (or use --traces)")
    parser.add_argument("--policy", metavar="POLICY", help="price with this policy's models.prices as well")
    add_trace_options(parser)
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text", help="output format")
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    parser.add_argument("--fail-on-drift", action="store_true", help="exit 1 when any model drifts above 1%%")
    parser.set_defaults(func=run)


def render(recon: dict[str, Any], md: bool) -> str:
    from governor.replay.render import reconciliation_text

    title = "Reconciliation: computed at list price vs recorded"
    head = f"## {title}" if md else f"{title}\n{'=' * len(title)}"
    missing = recon["calls_without_recorded_cost"]
    tail = ""
    if missing:
        tail = "\n\nCalls without a recorded cost (not compared): " + ", ".join(
            f"{m} {n:,}" for m, n in missing.items()
        )
    body = reconciliation_text(recon, md) if recon["by_model"] else "No call has a recorded cost to compare."
    return f"{head}\n\n{body}{tail}\n"


def run(args: argparse.Namespace) -> int:
    from governor.cli.replay import emit, load_inputs, skipped_exit
    from governor.errors import GovernorError
    from governor.policy.loader import load_policy_text
    from governor.replay.engine import Replayer
    from governor.replay.reconcile import reconcile

    if args.policy:
        loaded = load_inputs(args, [args.policy])
        if isinstance(loaded, int):
            return loaded
        (policy,), traces = loaded
        # only its prices: no rule may change a call whose cost is reconciled
        policy = dataclasses.replace(load_policy_text(OBSERVE), prices=policy.prices)
    else:
        loaded = load_inputs(args, [])
        if isinstance(loaded, int):
            return loaded
        _, traces = loaded
        policy = load_policy_text(OBSERVE)
    try:
        replayer = Replayer(policy)
        result = replayer.replay(traces)
    except GovernorError as exc:
        print(f"governor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    recon = reconcile(result, replayer.prices)
    recon["skipped"] = [{"file": i.file, "line": i.line, "where": i.where, "message": i.message} for i in traces.issues]
    if args.format == "json":
        emit(json.dumps(recon, indent=2, ensure_ascii=False) + "\n", args.output)
    else:
        emit(render(recon, args.format == "markdown"), args.output)
    code = skipped_exit(traces)
    if args.fail_on_drift and any(r["flagged"] for r in recon["by_model"]):
        return EXIT_FINDINGS
    return code
