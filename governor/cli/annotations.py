"""Validation findings for CI: GitHub workflow annotations and SARIF 2.1.0.

``governor validate --format github`` prints one ``::error``/``::warning``
workflow command per finding, so GitHub shows it on the file and line of the
pull request; ``--format sarif`` prints a SARIF 2.1.0 log, for code scanning
(``github/codeql-action/upload-sarif``) and other SARIF viewers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from governor.errors import Finding

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
INFO_URI = "https://pypi.org/project/budget-governor/"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _text(f: Finding) -> str:
    text = f.message
    if f.pointer:
        text += f" (at {f.pointer})"
    if f.hint:
        text += f"; {f.hint}"
    return text


def github_annotation(f: Finding) -> str:
    """``::error file=F,line=L,col=C,title=...::message`` (a GitHub Actions workflow command)."""
    kind = "error" if f.severity == "error" else "warning"
    props = [f"file={_escape_property(f.file)}"]
    if f.line:
        props.append(f"line={f.line}")
        props.append(f"col={f.col or 1}")
    props.append(f"title={_escape_property('governor validate' + (f' ({f.code})' if f.code else ''))}")
    return f"::{kind} {','.join(props)}::{_escape_data(_text(f))}"


def sarif_log(findings: Iterable[Finding], version: str) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run of ``governor validate``; one result per finding, one rule per code."""
    items = list(findings)
    codes = sorted({f.code or "policy" for f in items})
    results = []
    for f in items:
        location: dict[str, Any] = {"artifactLocation": {"uri": f.file.replace("\\", "/")}}
        if f.line:
            location["region"] = {"startLine": f.line, "startColumn": f.col or 1}
        result: dict[str, Any] = {
            "ruleId": f.code or "policy",
            "ruleIndex": codes.index(f.code or "policy"),
            "level": "error" if f.severity == "error" else "warning",
            "message": {"text": _text(f)},
            "locations": [{"physicalLocation": location}],
        }
        if f.pointer:
            result["properties"] = {"jsonPointer": f.pointer}
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "governor validate",
                        "informationUri": INFO_URI,
                        "version": version,
                        "rules": [
                            {"id": code, "name": code, "shortDescription": {"text": f"policy finding: {code}"}}
                            for code in codes
                        ],
                    }
                },
                "results": results,
            }
        ],
    }
