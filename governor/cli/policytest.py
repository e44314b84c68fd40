"""``governor test [PATH...]``: run the policy test files (``*.test.yaml``) beside the policies.

Exit codes: 0 every case passed, 1 a case failed or no case ran, 2 a test
file or policy could not be read, 3 invalid policy.
"""

from __future__ import annotations

import argparse
import json
import sys

from governor.cli import EXIT_FINDINGS, EXIT_INVALID, EXIT_OK, EXIT_USAGE


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("test", help="run policy test files (*.test.yaml)",
                                   description="Run the expected decisions in policy test files.")
    parser.add_argument("paths", nargs="*", default=["policies"], metavar="PATH",
                        help="test files or directories (default: policies)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    parser.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from governor.errors import GovernorError, PolicyError
    from governor.replay.policytest import TestFileError, find_test_files, run_file

    try:
        files = find_test_files(args.paths)
    except TestFileError as exc:
        print(f"governor test: {exc}", file=sys.stderr)
        return EXIT_USAGE
    results = []
    code = EXIT_OK
    for path in files:
        try:
            results.extend(run_file(path))
        except PolicyError as exc:
            print(f"governor test: {path}: invalid policy:\n  {exc}", file=sys.stderr)
            code = EXIT_INVALID
        except GovernorError as exc:  # a malformed test file or starting state
            print(f"governor test: {exc}", file=sys.stderr)
            code = max(code, EXIT_USAGE)
    failed = [r for r in results if not r.ok]
    if args.format == "json":
        print(json.dumps({"files": [str(f) for f in files], "passed": len(results) - len(failed),
                          "failed": len(failed), "cases": [{"file": r.file, "name": r.name, "ok": r.ok,
                                                            "failures": r.failures} for r in results]}, indent=2))
    else:
        for r in results:
            if not r.ok:
                print(f"FAIL {r.file}: {r.name}")
                for line in r.failures:
                    print(f"     {line}")
            elif args.verbose:
                print(f"ok   {r.file}: {r.name}")
        print(f"{len(results) - len(failed)} passed, {len(failed)} failed, {len(files)} test file(s)")
    if code != EXIT_OK:
        return code
    if not results:
        print("governor test: no test case ran (a run without tests fails)", file=sys.stderr)
        return EXIT_FINDINGS
    return EXIT_FINDINGS if failed else EXIT_OK
