"""``governor budget raise|reset`` and ``governor run resume``: operator actions, written to the shared ledger.

Each writes one adjustment record (who, when, why, by how much) through the
ledger protocol and prints it; running governors apply it without a restart
(:mod:`governor.actions` says what each does). Nothing edits the policy file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from governor.cli import EXIT_FINDINGS, EXIT_INVALID, EXIT_OK, EXIT_USAGE


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--policy",
        "-p",
        default=os.environ.get("GOVERNOR_POLICY"),
        help="the policy file; its ledger: section names the shared store (default: $GOVERNOR_POLICY)",
    )
    p.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    p.add_argument("--by-user", metavar="NAME", help="who is acting (default: the OS user)")
    p.add_argument("--format", choices=("text", "json"), default="text")


def register(sub: Any) -> None:
    budget = sub.add_parser(
        "budget",
        help="raise or reset a budget scope in the shared ledger (audited; the policy file is not edited)",
        description="Operator actions on a budget scope, written to the policy's shared ledger as adjustment "
        "records. Running governors apply them without a restart.",
    )
    actions = budget.add_subparsers(dest="action", metavar="ACTION")
    raise_ = actions.add_parser(
        "raise",
        help="raise a budget scope's limit (the current window only, unless --until)",
        description="Raise one budget scope's limit. It applies to the current window only unless --until says "
        "otherwise; a raise never lowers a limit.",
    )
    raise_.add_argument("budget", help="the budget id")
    raise_.add_argument("--scope", help="the scope value, e.g. team=platform (leave out for a global budget)")
    how = raise_.add_mutually_exclusive_group(required=True)
    how.add_argument("--by", type=float, metavar="AMOUNT", help="add AMOUNT to the limit (USD unless --metric)")
    how.add_argument("--to", type=float, metavar="LIMIT", help="raise the limit to LIMIT (USD unless --metric)")
    raise_.add_argument("--metric", choices=("usd", "tokens", "calls"), help="which limit (default: usd)")
    raise_.add_argument(
        "--until",
        metavar="WHEN",
        help="END_OF_WINDOW (default), never, a duration from now (7d, 12h) or an ISO-8601 time",
    )
    _common(raise_)
    raise_.set_defaults(func=_run(_raise))
    reset = actions.add_parser(
        "reset",
        help="set a budget scope's spend in the current window aside (recorded, nothing deleted)",
        description="Reset one budget scope: its spend in the current window is set aside (status shows it from "
        "zero, governors admit up to the full limit again); the ledger keeps every settled call.",
    )
    reset.add_argument("budget", help="the budget id")
    reset.add_argument("--scope", help="the scope value, e.g. team=platform (leave out for a global budget)")
    _common(reset)
    reset.set_defaults(func=_run(_reset))
    budget.set_defaults(func=lambda args: _usage(budget))

    run = sub.add_parser(
        "run",
        help="resume a run a stop condition stopped (audited)",
        description="Operator actions on a run, written to the policy's shared ledger as adjustment records.",
    )
    run_actions = run.add_subparsers(dest="action", metavar="ACTION")
    resume = run_actions.add_parser(
        "resume",
        help="clear a stopped run's stop conditions in every governor sharing the ledger",
        description="Resume a run: the governors sharing the ledger that know the run clear its stop "
        "conditions the next time one would stop it (for a day).",
    )
    resume.add_argument("run_id", help="the run's run_id")
    _common(resume)
    resume.set_defaults(func=_run(_resume))
    run.set_defaults(func=lambda args: _usage(run))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return EXIT_USAGE


def _raise(args: argparse.Namespace, policy: Any, ledger: Any, operator: str, now: float) -> Any:
    from governor.actions import raise_budget

    return raise_budget(
        policy,
        ledger,
        args.budget,
        args.scope,
        by=args.by,
        to=args.to,
        metric=args.metric,
        until=args.until,
        reason=args.reason,
        operator=operator,
        now=now,
    )


def _reset(args: argparse.Namespace, policy: Any, ledger: Any, operator: str, now: float) -> Any:
    from governor.actions import reset_budget

    return reset_budget(policy, ledger, args.budget, args.scope, reason=args.reason, operator=operator, now=now)


def _resume(args: argparse.Namespace, policy: Any, ledger: Any, operator: str, now: float) -> Any:
    from governor.actions import resume_run

    return resume_run(ledger, args.run_id, reason=args.reason, operator=operator, now=now)


def _run(action: Callable[..., Any]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from governor.actions import who
        from governor.engine.adjust import describe
        from governor.errors import LedgerError, OperatorError, PolicyError
        from governor.ledger.factory import open_ledger
        from governor.policy.loader import load_policy

        name = f"governor {args.command} {args.action}"
        if not args.policy:
            print(f"{name}: no policy: pass --policy FILE or set GOVERNOR_POLICY", file=sys.stderr)
            return EXIT_USAGE
        try:
            policy = load_policy(args.policy)
        except PolicyError as exc:
            print(exc, file=sys.stderr)
            return EXIT_INVALID
        except OSError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if policy.ledger.type == "memory":
            print(
                f"{name}: {args.policy}: the policy's ledger is memory (each process's own): no other process "
                "would see the adjustment; name a sqlite or redis ledger to share budgets",
                file=sys.stderr,
            )
            return EXIT_USAGE
        try:
            ledger = open_ledger(policy.ledger, base_dir=os.path.dirname(os.path.abspath(args.policy)))
        except LedgerError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            return EXIT_FINDINGS
        try:
            adj = action(args, policy, ledger, who(args.by_user), time.time())
        except OperatorError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except LedgerError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            return EXIT_FINDINGS
        finally:
            ledger.close()
        if args.format == "json":
            print(json.dumps(adj.as_dict(), indent=2))
        else:
            print(f"written to the {policy.ledger.type} ledger: {describe(adj)}")
        return EXIT_OK

    return run
