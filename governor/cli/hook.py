"""``governor hook claude-code`` / ``governor hook codex``: the command the agents' hooks run.

Reads one hook event on stdin (governor.hooks.claude_code, governor.hooks.codex:
both agents speak the same hook protocol, governor.hooks.protocol), prints the
hook's JSON answer on stdout and exits 0; problems with the transcript or
rollout go to stderr with file and line. A policy that cannot be loaded is
reported to the user (``systemMessage``) and the event proceeds: a broken
policy file must not lock a developer out of their editor.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

from governor.cli import EXIT_OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "hook",
        help="answer a coding agent's hook event (Claude Code, Codex)",
        description="Answer one hook event of a coding agent, read on stdin.",
    )
    parser.add_argument("agent", choices=("claude-code", "codex"), help="the agent whose hook runs this")
    parser.add_argument(
        "--policy", default=os.environ.get("GOVERNOR_POLICY"), help="policy file (default: $GOVERNOR_POLICY)"
    )
    parser.add_argument("--user", default=None, help="the developer (default: $GOVERNOR_USER, else the login name)")
    parser.add_argument("--team", default=os.environ.get("GOVERNOR_TEAM"), help="the team (default: $GOVERNOR_TEAM)")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where per-session state is kept (default: $GOVERNOR_HOOK_STATE_DIR, else ~/.cache/budget-governor/hooks)",
    )
    parser.set_defaults(func=run)


def _user(given: str | None) -> str | None:
    if given:
        return given
    if os.environ.get("GOVERNOR_USER"):
        return os.environ["GOVERNOR_USER"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def _emit(output: dict[str, Any] | None) -> None:
    if output is not None:
        sys.stdout.write(json.dumps(output) + "\n")
        sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    raw = sys.stdin.buffer.read()
    if not args.policy:
        _emit({"systemMessage": "budget-governor: no policy: pass --policy or set GOVERNOR_POLICY"})
        return EXIT_OK
    from governor.engine.governor import Governor
    from governor.errors import GovernorError

    if args.agent == "codex":
        from governor.hooks.codex import handle
    else:
        from governor.hooks.claude_code import handle
    from governor.hooks.policy_cache import load_cached
    from governor.hooks.price_rows import price_rows
    from governor.hooks.state import default_dir
    from governor.pricing import PriceTable

    state_dir = args.state_dir or default_dir()
    try:
        policy = load_cached(args.policy, state_dir)
    except (GovernorError, OSError) as exc:
        _emit({"systemMessage": f"budget-governor: policy {args.policy} not loaded, session not governed: {exc}"})
        return EXIT_OK
    rows = price_rows(state_dir)  # litellm's price rows this machine's hooks looked up, not the whole table
    prices = (
        None
        if rows is None
        else PriceTable(policy.prices, table=rows, table_version=rows.version, genai_dates=rows.dates)
    )
    gov = Governor(policy, path=args.policy, stats=False, observers=False, prices=prices)
    try:
        answer = handle(raw, gov, user=_user(args.user), team=args.team, state_dir=state_dir)
    except GovernorError as exc:  # a ledger that is down, with fail_closed: the policy's own on_error
        _emit({"systemMessage": f"budget-governor: {exc}"})
        return EXIT_OK
    finally:
        gov.close()
        if rows is not None:
            rows.save()
    for note in answer.notes:
        print(f"governor hook: {note}", file=sys.stderr)
    _emit(answer.output)
    return answer.exit_code
