"""Load a policy: YAML -> structure -> extends -> JSON Schema -> semantics -> compile.

Every stage collects all of its findings; a stage runs only when the ones
before it passed (a schema error would make semantic messages noise). The
result is a frozen :class:`~governor.policy.model.Policy`, or a
:class:`~governor.errors.PolicyError` holding every error (sorted by file,
line, column) and the warnings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from governor.errors import Finding, PolicyError
from governor.policy.build import build_policy
from governor.policy.extends import LIST_SECTIONS, Doc, merge
from governor.policy.model import Policy
from governor.policy.revision import make_revision
from governor.policy.structure import check_structure, extends_targets
from governor.policy.yamlsrc import SourceMap, load_yaml

_FATAL_YAML = ("yaml-syntax", "empty")  # other YAML findings (duplicate keys...) let validation go on
_NON_BLOCKING = ("duplicate-key", "yaml-key", "yaml-value", "yaml-recursion")
PathOrText = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Validation:
    """The outcome of validating one policy (what ``governor validate`` prints)."""

    policy: Policy | None
    errors: tuple[Finding, ...]
    warnings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


def sort_findings(findings: list[Finding]) -> list[Finding]:
    unique = list(dict.fromkeys(findings))
    return sorted(unique, key=lambda f: (f.file, f.line, f.col, f.pointer, f.message))


def _looks_like_path(value: PathOrText) -> bool:
    if isinstance(value, os.PathLike):
        return True
    text = str(value)
    if "\n" in text:
        return False
    return os.path.exists(text) or text.endswith((".yaml", ".yml", ".json"))


MAX_POLICY_BYTES = 1 << 20
"""The largest policy file read (1 MiB; the largest shipped example is a few KB). A larger one is
refused at once with one finding, instead of minutes of parsing and a flood of findings."""


def _too_large(size: int, file: str) -> Finding | None:
    if size <= MAX_POLICY_BYTES:
        return None
    return Finding(
        "error",
        f"policy file is {size:,} bytes; the limit is {MAX_POLICY_BYTES:,} (1 MiB)",
        file,
        0,
        0,
        "",
        "too-large",
    )


def _read(path: Path, file: str) -> str | Finding:
    """The file's text, or the finding that says why not (unreadable, too large)."""
    try:
        big = _too_large(path.stat().st_size, file)
        if big is not None:
            return big
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return Finding("error", f"cannot read policy file: {reason}", file, 0, 0, "", "unreadable")


class _Chain:
    """Reads a policy file and its ``extends`` bases, merging them into one Doc."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def file(self, path: Path, stack: tuple[Path, ...]) -> Doc | None:
        text = _read(path, str(path))
        if isinstance(text, Finding):
            self.findings.append(text)
            return None
        return self.text(text, str(path), path.parent, stack + (path.resolve(),))

    def text(self, text: str, file: str, base_dir: Path, stack: tuple[Path, ...]) -> Doc | None:
        big = _too_large(len(text), file)  # characters: at most the bytes, at most 4x fewer
        if big is not None:
            self.findings.append(big)
            return None
        data, smap, findings = load_yaml(text, file)
        self.findings.extend(findings)
        if any(f.code in _FATAL_YAML for f in findings):
            return None
        structure = check_structure(data, smap, file)
        if structure:
            self.findings.extend(structure)
            return None
        doc = Doc(data, smap, [file])
        merged = Doc({}, SourceMap(), [])
        ok = True
        for target, pointer in extends_targets(data, smap, file, self.findings):
            shown = Path(os.path.normpath(base_dir / target))  # as the user would write it, for messages
            loc = smap.value(pointer)
            try:
                path = shown.resolve()
                is_file = path.is_file()
            except (OSError, ValueError) as exc:  # e.g. a NUL byte, a name too long, a symlink loop
                self.findings.append(
                    Finding(
                        "error",
                        f"extends: cannot use path {target!r}: {exc}",
                        file,
                        loc.line if loc else 0,
                        loc.col if loc else 0,
                        pointer,
                        "extends-missing",
                    )
                )
                ok = False
                continue
            if path in stack:
                cycle = " -> ".join(str(p) for p in (*stack[stack.index(path) :], path))
                self.findings.append(
                    Finding(
                        "error",
                        f"extends cycle: {cycle}",
                        file,
                        loc.line if loc else 0,
                        loc.col if loc else 0,
                        pointer,
                        "extends-cycle",
                    )
                )
                ok = False
                continue
            if not is_file:
                self.findings.append(
                    Finding(
                        "error",
                        f"extends: no such file {target!r} (looked for {path})",
                        file,
                        loc.line if loc else 0,
                        loc.col if loc else 0,
                        pointer,
                        "extends-missing",
                    )
                )
                ok = False
                continue
            base = self.file(shown, stack)
            if base is None:
                ok = False
                continue
            merged = merge(merged, base, self.findings)
        if not ok:
            return None
        if not merged.files and not _has_removals(data):
            return doc  # nothing to merge: skip copying every location
        return merge(merged, doc, self.findings)


def _has_removals(data: dict[str, Any]) -> bool:
    return any(
        isinstance(item, dict) and "remove" in item
        for section in LIST_SECTIONS
        if isinstance(data.get(section), list)
        for item in data[section]
    )


def _validate_doc(doc: Doc, file: str) -> tuple[list[Finding], list[Finding]]:
    """Schema, then semantics. Returns (errors, warnings)."""
    from governor.policy.schema_check import check_schema
    from governor.policy.semantics import check_semantics

    errors = check_schema(doc.data, doc.smap, file)
    if errors:
        return errors, []
    return check_semantics(doc.data, doc.smap, file)


def validate_policy(path_or_text: PathOrText, *, source: str | None = None) -> Validation:
    """Validate without raising: the policy (when valid), its errors and its warnings.

    A ``str`` is a path when it names an existing file, or ends in ``.yaml``/
    ``.yml``/``.json`` and has no newline; otherwise it is YAML text.
    ``source`` names the input in messages (and anchors relative ``extends``).
    """
    if _looks_like_path(path_or_text):
        return validate_file(Path(path_or_text), label=source)
    return validate_text(str(path_or_text), file=source or "<string>")


def validate_file(path: Path, *, label: str | None = None) -> Validation:
    chain = _Chain()
    file = label or str(path)
    text = _read(path, file)
    if isinstance(text, Finding):
        return Validation(None, (text,), ())
    return _finish(chain, chain.text(text, file, path.parent, (path.resolve(),)), file)


def validate_text(text: str, *, file: str = "<string>") -> Validation:
    chain = _Chain()
    base_dir = Path(file).parent if not file.startswith("<") else Path.cwd()
    return _finish(chain, chain.text(text, file, base_dir, ()), file)


def _finish(chain: _Chain, doc: Doc | None, file: str) -> Validation:
    errors = list(chain.findings)
    warnings: list[Finding] = []
    if doc is not None and all(f.code in _NON_BLOCKING for f in errors):
        seen = {(f.file, f.pointer) for f in errors}
        later, warnings = _validate_doc(doc, file)
        errors += [f for f in later if (f.file, f.pointer) not in seen]
    if errors or doc is None:
        return Validation(None, tuple(sort_findings(errors)), tuple(sort_findings(warnings)))
    sorted_warnings = tuple(sort_findings(warnings))
    policy = build_policy(
        doc.data,
        doc.smap,
        file=file,
        revision=make_revision(doc.data, doc.files),
        source_files=tuple(doc.files),
        warnings=sorted_warnings,
    )
    return Validation(policy, (), sorted_warnings)


def load_policy(path_or_text: PathOrText, *, source: str | None = None) -> Policy:
    """Load and compile a policy from a file path or YAML text (see :func:`validate_policy`).

    Raises :class:`PolicyError` with every error found (and the warnings).
    """
    return _raise_or_policy(validate_policy(path_or_text, source=source))


def load_policy_text(text: str, file: str = "<string>") -> Policy:
    """Load a policy from YAML text; ``file`` names it in messages and anchors ``extends``."""
    return _raise_or_policy(validate_text(text, file=file))


def _raise_or_policy(result: Validation) -> Policy:
    if result.policy is None:
        raise PolicyError(result.errors, result.warnings)
    return result.policy
