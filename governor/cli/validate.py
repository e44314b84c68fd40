"""``governor validate FILE...``: every error and warning, located, with a stable exit code.

``--format text`` (default) prints ``file:line:col: severity: message``; ``json``
one object per file; ``github`` GitHub Actions annotations (shown on the pull
request's lines); ``sarif`` a SARIF 2.1.0 log for code scanning.

Exit codes: 0 all valid, 1 warnings under ``--strict``, 2 a file could not be
read, 3 at least one policy is invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from governor.cli import EXIT_FINDINGS, EXIT_INVALID, EXIT_OK, EXIT_USAGE
from governor.errors import Finding, show_findings

if TYPE_CHECKING:  # pragma: no cover
    from governor.policy.loader import Validation


TEST_SUFFIXES = (".test.yaml", ".test.yml")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="validate policy files",
        description="Validate policy files: structure, JSON Schema, semantics.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="policy YAML files")
    parser.add_argument(
        "--format",
        choices=("text", "json", "github", "sarif"),
        default="text",
        help="output format: text (default), json, github (workflow annotations), sarif (SARIF 2.1.0)",
    )
    parser.add_argument("--strict", action="store_true", help="treat warnings as failures (exit 1)")
    parser.set_defaults(func=run)


def _finding_json(f: Finding) -> dict[str, Any]:
    return {
        "severity": f.severity,
        "file": f.file,
        "line": f.line,
        "col": f.col,
        "pointer": f.pointer,
        "code": f.code,
        "message": f.message,
        "hint": f.hint,
    }


def _result_json(name: str, r: Validation | None) -> dict[str, Any]:
    return {
        "file": name,
        "skipped": r is None,  # a policy test file
        "valid": None if r is None else r.ok,
        "revision": str(r.policy.revision) if r is not None and r.policy else None,
        "errors": [_finding_json(f) for f in r.errors] if r is not None else [],
        "warnings": [_finding_json(f) for f in r.warnings] if r is not None else [],
    }


def run(args: argparse.Namespace) -> int:
    from governor.policy.loader import validate_file

    results: list[tuple[str, Validation | None]] = []  # None: skipped
    code = EXIT_OK
    for name in args.files:
        path = Path(name)
        if name.endswith(TEST_SUFFIXES):  # policies/*.yaml globs catch the policy test files beside them
            results.append((name, None))
            continue
        if not path.is_file():
            print(f"governor validate: {name}: no such file", file=sys.stderr)
            code = max(code, EXIT_USAGE)
            continue
        result = validate_file(path, label=name)
        results.append((name, result))
        if result.errors:
            code = max(code, EXIT_INVALID)
        elif result.warnings and args.strict and code == EXIT_OK:
            code = EXIT_FINDINGS
    if args.format == "json":
        print(json.dumps([_result_json(name, r) for name, r in results], indent=2))
        return code
    findings = [f for _name, r in results if r is not None for f in (*r.errors, *r.warnings)]
    if args.format == "github":
        from governor.cli.annotations import github_annotation

        for finding in findings:
            print(github_annotation(finding))
        invalid = sum(1 for _n, r in results if r is not None and r.errors)
        print(
            f"governor validate: {len(results)} file(s), {invalid} invalid, "
            f"{sum(1 for f in findings if f.severity != 'error')} warning(s)"
        )
        return code
    if args.format == "sarif":
        from governor import __version__
        from governor.cli.annotations import sarif_log

        print(json.dumps(sarif_log(findings, __version__), indent=2))
        return code
    for name, r in results:
        if r is None:
            print(f"{name}: skipped: a policy test file (run `governor test`)")
            continue
        for line in show_findings((*r.errors, *r.warnings)):
            print(line)
        if r.policy is not None:
            note = f", {len(r.warnings)} warning(s)" if r.warnings else ""
            print(f"{name}: ok: policy '{r.policy.name}' revision {r.policy.revision}{note}")
        else:
            print(f"{name}: invalid: {len(r.errors)} error(s), {len(r.warnings)} warning(s)")
    return code
