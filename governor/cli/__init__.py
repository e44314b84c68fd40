"""The ``governor`` command. Each subcommand lives in its own module.

Exit codes: 0 ok, 1 findings (or failed tests / changed decisions), 2 usage
error, 3 invalid policy, 4 internal error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INVALID, EXIT_INTERNAL = 0, 1, 2, 3, 4

# subcommand name -> module under governor.cli; each module has
# register(subparsers) -> None, and sets `func` (args -> int) on its parser.
COMMANDS: dict[str, str] = {
    "validate": "governor.cli.validate",
    "schema": "governor.cli.schema",
    "explain": "governor.cli.explain",
    "replay": "governor.cli.replay",
    "diff": "governor.cli.diff",
    "test": "governor.cli.policytest",
    "suggest": "governor.cli.suggest",
    "reconcile": "governor.cli.reconcile",
    "outcomes": "governor.cli.outcomes",
    "status": "governor.cli.status",
    "budget": "governor.cli.adjust",
    "run": "governor.cli.adjust",  # the same module registers both
    "hook": "governor.cli.hook",
}


def build_parser(commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The command's parser, with the subcommands ``commands`` (default: all)."""
    parser = argparse.ArgumentParser(prog="governor", description="Policy-as-code budget governor for LLM calls.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = COMMANDS.values() if commands is None else (COMMANDS[c] for c in commands)
    for module_name in dict.fromkeys(wanted):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # not built yet
        module.register(sub)
    return parser


def _version() -> str:
    from governor import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # a named subcommand needs only its own module (``governor hook`` runs on every tool call of an agent)
    parser = build_parser([argv[0]] if argv and argv[0] in COMMANDS else None)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the last line of defence: say what broke
        print(f"governor: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL


def run() -> None:
    sys.exit(main())
