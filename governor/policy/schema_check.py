"""Stage 2: JSON Schema (draft 2020-12), with messages a person can act on.

jsonschema's raw messages name Python reprs and whole schemas; here each error
becomes one located :class:`Finding` saying what was expected. Stop conditions
are discriminated by ``type`` and context caps / soft thresholds by
``action`` (``if``/``then``), so an error comes from the branch the author
meant; for ``anyOf``/``oneOf`` we walk into the one branch whose type fits.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from governor.errors import Finding
from governor.policy.yamlsrc import SourceMap, escape

_DISCRIMINATORS = ("type", "action")
_SECTIONS = ("stop", "context", "budgets")
_JSON_TYPES = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
}


@lru_cache(maxsize=1)
def policy_schema() -> dict[str, Any]:
    """The packaged JSON Schema of policy v1 (``governor/schema/policy-v1.json``)."""
    text = resources.files("governor").joinpath("schema/policy-v1.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    return Draft202012Validator(policy_schema())


def _pointer(path: Iterable[Any]) -> str:
    return "".join(f"/{escape(str(p))}" for p in path)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _hint(value: Any, choices: Iterable[str]) -> str:
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


def _type_names(types: Any) -> str:
    names = {
        "object": "a mapping",
        "array": "a list",
        "string": "a string",
        "number": "a number",
        "integer": "an integer",
        "boolean": "true or false",
        "null": "null",
    }
    items = [types] if isinstance(types, str) else list(types)
    words = [names.get(t, t) for t in items]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _allowed_keys(schema: dict[str, Any], instance: dict[str, Any]) -> set[str]:
    """Keys the schema evaluates for this instance (properties + matching if/then branches)."""
    allowed = set(schema.get("properties", {}))
    for sub in schema.get("allOf", []):
        if "if" in sub:
            branch = sub.get("then", {}) if Draft202012Validator(sub["if"]).is_valid(instance) else sub.get("else", {})
            allowed |= set(branch.get("properties", {}))
        else:
            allowed |= set(sub.get("properties", {}))
    return allowed


class _Converter:
    def __init__(self, smap: SourceMap, file: str) -> None:
        self.smap = smap
        self.file = file
        self.findings: list[Finding] = []
        self.bad_discriminator: set[str] = set()

    def add(self, pointer: str, message: str, code: str, hint: str = "", at_key: bool = False) -> None:
        loc = self.smap.key(pointer) if at_key else self.smap.value(pointer)
        line, col = (loc.line, loc.col) if loc else (0, 0)
        self.findings.append(Finding("error", message, loc.file if loc else self.file, line, col, pointer, code, hint))

    def convert(self, err: ValidationError) -> None:
        ptr = _pointer(err.absolute_path)
        kind = err.validator
        schema = err.schema if isinstance(err.schema, dict) else {}
        expected = schema.get("x-expected")
        inst = err.instance
        if kind in ("anyOf", "oneOf"):
            self._branches(err, ptr, expected)
        elif kind in ("additionalProperties", "unevaluatedProperties"):
            if ptr in self.bad_discriminator or not isinstance(inst, dict):
                return
            allowed = _allowed_keys(schema, inst)
            patterns = schema.get("patternProperties") or {}
            for key in inst:
                if key in allowed or patterns:
                    continue
                self.add(
                    f"{ptr}/{escape(key)}",
                    f"unknown key '{key}' (expected one of: {', '.join(sorted(allowed))})",
                    "unknown-key",
                    _hint(key, allowed),
                    at_key=True,
                )
        elif kind == "required":
            for name in err.validator_value:
                if isinstance(inst, dict) and name not in inst:
                    unknown = [k for k in inst if k not in _allowed_keys(schema, inst)]
                    close = difflib.get_close_matches(name, unknown, n=1, cutoff=0.6)
                    hint = f"'{close[0]}' looks like a misspelling of it" if close else ""
                    self.add(ptr, f"missing required key '{name}'", "missing-key", hint)
        elif kind == "type":
            self.add(
                ptr,
                f"expected {expected or _type_names(err.validator_value)}, got {_kind(inst)} {_short(inst)}",
                "type",
            )
        elif kind in ("enum", "const"):
            options = err.validator_value if kind == "enum" else [err.validator_value]
            listed = ", ".join(_short(o) for o in options)
            text = f"expected {'one of ' if len(options) > 1 else ''}{expected or listed}, got {_short(inst)}"
            self.add(ptr, text, "enum", _hint(inst, [o for o in options if isinstance(o, str)]))
        elif kind == "pattern":
            self.add(
                ptr,
                f"expected {expected or 'a string matching ' + err.validator_value}, got {_short(inst)}",
                "pattern",
                _hint(inst, schema.get("x-choices", ())),
            )
        elif kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
            op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[kind]
            self.add(ptr, f"expected a number {op} {err.validator_value}, got {_short(inst)}", "range")
        elif kind in ("minProperties", "minItems", "minLength"):
            what = {"minProperties": "key(s)", "minItems": "item(s)", "minLength": "character(s)"}[kind]
            self.add(
                ptr, f"expected {expected or f'at least {err.validator_value} {what}'}, got {_short(inst)}", "too-few"
            )
        else:
            self.add(ptr, err.message, kind)

    def _branches(self, err: ValidationError, ptr: str, expected: str | None) -> None:
        by_branch: dict[int, list[ValidationError]] = {}
        for sub in err.context or ():
            by_branch.setdefault(sub.relative_schema_path[0], []).append(sub)
        options = err.validator_value
        if options and all(set(o) == {"required"} for o in options):
            names = ", ".join(o["required"][0] for o in options)
            if err.validator == "oneOf" and not by_branch:
                self.add(ptr, f"expected exactly one of {names}, got several", "one-of")
            else:
                self.add(
                    ptr, f"expected {'at least' if err.validator == 'anyOf' else 'exactly'} one of {names}", "one-of"
                )
            return
        fitting = [
            errs for errs in by_branch.values() if not any(e.validator == "type" and not e.relative_path for e in errs)
        ]
        if len(fitting) == 1:
            for sub in fitting[0]:
                self.convert(sub)
            return
        self.add(
            ptr,
            f"expected {expected or 'a value matching one of the allowed forms'}, got {_short(err.instance)}",
            "one-of",
        )


def check_schema(data: Any, smap: SourceMap, file: str) -> list[Finding]:
    """Every schema error of the merged document, located and explained."""
    errors = list(_validator().iter_errors(data))
    conv = _Converter(smap, file)
    for err in errors:  # a bad discriminator makes the branch's keys look unknown: report only the discriminator
        path = list(err.absolute_path)
        if (
            err.validator in ("enum", "const")
            and len(path) >= 3
            and path[0] in _SECTIONS
            and path[-1] in _DISCRIMINATORS
        ):
            conv.bad_discriminator.add(_pointer(path[:-1]))
    for err in errors:
        conv.convert(err)
    return conv.findings
