"""``governor schema``: print the packaged JSON Schema of policy v1 (for editors and CI)."""

from __future__ import annotations

import argparse
import json

from governor.cli import EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "schema", help="print the JSON Schema of the policy format",
        description="Print the JSON Schema (draft 2020-12) of policy files (apiVersion governor/v1).")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from governor.policy.schema_check import policy_schema

    print(json.dumps(policy_schema(), indent=2))
    return EXIT_OK
