"""JUnit XML for ``governor test --junit FILE``: what CI systems (GitHub, GitLab, Jenkins) show as test reports.

One ``<testsuite>`` per test file, one ``<testcase>`` per case run; a failed
case carries a ``<failure>`` (its first line as the message, every line as the
text); a test file that could not be run (malformed, or its policy invalid)
is a suite with one ``<error>``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol


class _Case(Protocol):
    file: str
    name: str
    failures: list[str]
    seconds: float


# characters XML 1.0 cannot carry, even escaped: they become U+FFFD
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


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
        suite = ET.SubElement(
            root,
            "testsuite",
            name=_x(file),
            tests=str(len(cases) + (1 if error else 0)),
            failures=str(failed),
            errors=str(1 if error else 0),
            skipped="0",
            time=f"{seconds:.6f}",
            file=_x(file),
        )
        for c in cases:
            case = ET.SubElement(
                suite,
                "testcase",
                name=_x(c.name),
                classname=_x(_classname(file)),
                file=_x(file),
                time=f"{c.seconds:.6f}",
            )
            if c.failures:
                failure = ET.SubElement(case, "failure", message=_x(c.failures[0]), type="policy-test-failure")
                failure.text = _x("\n".join(c.failures))
        if error:
            case = ET.SubElement(
                suite, "testcase", name="(test file)", classname=_x(_classname(file)), file=_x(file), time="0"
            )
            element = ET.SubElement(case, "error", message=_x((error.splitlines() or [""])[0]), type="test-file-error")
            element.text = _x(error)
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
