"""JUnit XML for ``governor test --junit FILE``: what CI systems (GitHub, GitLab, Jenkins) show as test reports.

One ``<testsuite>`` per test file, one ``<testcase>`` per case run; a failed
case carries a ``<failure>`` (its first line as the message, every line as the
text); a test file that could not be run (malformed, or its policy invalid)
is a suite with one ``<error>``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol


class _Case(Protocol):
    file: str
    name: str
    failures: list[str]
    seconds: float


def junit_xml(files: Sequence[Path | str], results: Iterable[_Case], errors: Mapping[str, str]) -> str:
    """The report as a string (UTF-8 XML with declaration)."""
    by_file: dict[str, list[_Case]] = {str(f): [] for f in files}
    for r in results:
        by_file.setdefault(r.file, []).append(r)
    root = ET.Element("testsuites", name="governor test")
    totals = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
    for file, cases in by_file.items():
        error = errors.get(file)
        failed = sum(1 for c in cases if c.failures)
        seconds = sum(c.seconds for c in cases)
        suite = ET.SubElement(root, "testsuite", name=file, tests=str(len(cases) + (1 if error else 0)),
                              failures=str(failed), errors=str(1 if error else 0), skipped="0",
                              time=f"{seconds:.6f}", file=file)
        for c in cases:
            case = ET.SubElement(suite, "testcase", name=c.name, classname=_classname(file), file=file,
                                 time=f"{c.seconds:.6f}")
            if c.failures:
                failure = ET.SubElement(case, "failure", message=c.failures[0], type="policy-test-failure")
                failure.text = "\n".join(c.failures)
        if error:
            case = ET.SubElement(suite, "testcase", name="(test file)", classname=_classname(file), file=file,
                                 time="0")
            element = ET.SubElement(case, "error", message=error.splitlines()[0], type="test-file-error")
            element.text = error
        totals["tests"] += len(cases) + (1 if error else 0)
        totals["failures"] += failed
        totals["errors"] += 1 if error else 0
        totals["time"] += seconds
    root.set("tests", str(totals["tests"]))
    root.set("failures", str(totals["failures"]))
    root.set("errors", str(totals["errors"]))
    root.set("time", f"{totals['time']:.6f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _classname(file: str) -> str:
    """``policies/coding-agent.test.yaml`` -> ``policies.coding-agent`` (how CI UIs group cases)."""
    name = file[: -len(".test.yaml")] if file.endswith(".test.yaml") else file.rsplit(".", 1)[0]
    return name.replace("\\", "/").strip("/").replace("/", ".")
