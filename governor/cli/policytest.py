"""``governor test [PATH...]``: run the policy test files (``*.test.yaml``) beside the policies.

``-k PATTERN`` runs only the matching cases, ``-x`` stops at the first failure,
``--junit FILE`` also writes a JUnit XML report for CI. Exit codes: 0 every
case passed, 1 a case failed or no case ran, 2 a test file or policy could not
be read, 3 invalid policy.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from governor.cli import EXIT_FINDINGS, EXIT_INVALID, EXIT_OK, EXIT_USAGE


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "test",
        help="run policy test files (*.test.yaml)",
        description="Run the expected decisions in policy test files.",
    )
    parser.add_argument(
        "paths", nargs="*", default=["policies"], metavar="PATH", help="test files or directories (default: policies)"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    parser.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")
    parser.add_argument(
        "-k",
        dest="select",
        action="append",
        metavar="PATTERN",
        help="run only cases whose FILE::NAME contains PATTERN (case-insensitive) "
        "or matches it as a glob; repeat to select more",
    )
    parser.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failing case")
    parser.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report to FILE")
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
    errors: dict[str, str] = {}  # test file -> why it could not run
    code = EXIT_OK
    for path in files:
        try:
            results.extend(run_file(path, select=args.select, stop_at_failure=args.exitfirst))
        except PolicyError as exc:
            errors[str(path)] = f"{path}: invalid policy:\n  {exc}"
            print(f"governor test: {errors[str(path)]}", file=sys.stderr)
            code = EXIT_INVALID
        except GovernorError as exc:  # a malformed test file or starting state
            errors[str(path)] = str(exc)
            print(f"governor test: {exc}", file=sys.stderr)
            code = max(code, EXIT_USAGE)
        if args.exitfirst and (errors or any(not r.ok for r in results)):
            break
    failed = [r for r in results if not r.ok]
    if args.junit:
        from governor.cli.junit import junit_xml

        Path(args.junit).write_text(junit_xml(files, results, errors), encoding="utf-8")
    if args.format == "json":
        print(
            json.dumps(
                {
                    "files": [str(f) for f in files],
                    "passed": len(results) - len(failed),
                    "failed": len(failed),
                    "errors": errors,
                    "cases": [
                        {
                            "file": r.file,
                            "name": r.name,
                            "ok": r.ok,
                            "failures": r.failures,
                            "seconds": round(r.seconds, 6),
                        }
                        for r in results
                    ],
                },
                indent=2,
            )
        )
    else:
        for r in results:
            if not r.ok:
                print(f"FAIL {r.file}: {r.name}")
                for line in r.failures:
                    print(f"     {line}")
            elif args.verbose:
                print(f"ok   {r.file}: {r.name}")
        stopped = " (stopped at the first failure: -x)" if args.exitfirst and (failed or errors) else ""
        print(f"{len(results) - len(failed)} passed, {len(failed)} failed, {len(files)} test file(s){stopped}")
    if code != EXIT_OK:
        return code
    if not results:
        what = " selected by -k" if args.select else ""
        print(f"governor test: no test case{what} ran (a run without tests fails)", file=sys.stderr)
        return EXIT_FINDINGS
    return EXIT_FINDINGS if failed else EXIT_OK
