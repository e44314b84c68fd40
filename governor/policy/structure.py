"""Stage 1: the header. ``apiVersion`` is gated first, then ``kind``.

An unknown ``apiVersion`` yields exactly one error: a policy written for
another version would otherwise drown in schema messages that do not apply.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from governor.errors import Finding
from governor.policy.yamlsrc import SourceMap

API_VERSION = "governor/v1"
KIND = "Policy"


def _at(
    smap: SourceMap, file: str, pointer: str, message: str, code: str, hint: str = "", key: bool = False
) -> Finding:
    loc = smap.key(pointer) if key else smap.value(pointer)
    line, col = (loc.line, loc.col) if loc else (1, 1)
    return Finding("error", message, file, line, col, pointer, code, hint)


def _did_you_mean(value: object, choices: list[str]) -> str:
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


def check_structure(data: Any, smap: SourceMap, file: str) -> list[Finding]:
    """Errors of the header; empty when the rest of the file may be validated."""
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "null"
        return [
            _at(smap, file, "", f"expected a mapping with apiVersion, kind and metadata, got a {kind}", "not-a-mapping")
        ]
    if "apiVersion" not in data:
        close = difflib.get_close_matches("apiVersion", list(data), n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else ""
        ptr = f"/{close[0]}" if close else ""
        return [
            _at(smap, file, ptr, f"missing apiVersion (expected '{API_VERSION}')", "api-version", hint, key=bool(close))
        ]
    api = data["apiVersion"]
    if api != API_VERSION:
        return [
            _at(
                smap,
                file,
                "/apiVersion",
                f"unsupported apiVersion {api!r}: this governor reads '{API_VERSION}'",
                "api-version",
                _did_you_mean(api, [API_VERSION]),
            )
        ]
    if data.get("kind") != KIND:
        if "kind" not in data:
            return [_at(smap, file, "", f"missing kind (expected '{KIND}')", "kind")]
        return [
            _at(
                smap,
                file,
                "/kind",
                f"expected kind '{KIND}', got {data['kind']!r}",
                "kind",
                _did_you_mean(data["kind"], [KIND]),
            )
        ]
    return []


def extends_targets(
    data: dict[str, Any], smap: SourceMap, file: str, findings: list[Finding]
) -> Iterator[tuple[str, str]]:
    """(relative path, JSON pointer) of each base named by ``extends``, in order."""
    spec = data.get("extends")
    if spec is None:
        return
    if isinstance(spec, str) and spec:
        yield spec, "/extends"
        return
    if isinstance(spec, list) and spec and all(isinstance(s, str) and s for s in spec):
        for i, target in enumerate(spec):
            yield target, f"/extends/{i}"
        return
    findings.append(
        _at(smap, file, "/extends", "extends: expected a file path or a non-empty list of file paths", "extends-type")
    )
