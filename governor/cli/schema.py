"""``governor schema [policy|test-file]``: print a packaged JSON Schema (for editors and CI).

``policy`` (default): policy files, apiVersion governor/v1
(``governor/schema/policy-v1.json``). ``test-file``: policy test files,
``*.test.yaml`` (``governor/schema/policy-test-v1.json``).
"""

from __future__ import annotations

import argparse
import json

from governor.cli import EXIT_OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of the policy format (or of policy test files)",
        description="Print a JSON Schema (draft 2020-12): of policy files (apiVersion governor/v1, the default) "
        "or of policy test files (*.test.yaml).",
    )
    parser.add_argument(
        "which", nargs="?", choices=("policy", "test-file"), default="policy", help="policy (default) or test-file"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.which == "test-file":
        from governor.replay.policytest import test_file_schema

        print(json.dumps(test_file_schema(), indent=2, ensure_ascii=False))
        return EXIT_OK
    from governor.policy.schema_check import policy_schema

    print(json.dumps(policy_schema(), indent=2, ensure_ascii=False))
    return EXIT_OK
