"""``extends:``: merge base policies under an overlay, keeping every location.

Precedence (docs/policy-format.md): bases are merged first, in order, then the
extending file. Mappings merge key by key with the extending file winning;
the rule lists merge by id (same id replaces in place, new ids are appended,
``{id: x, remove: true}`` deletes). ``metadata.name`` is never inherited.
Each merged node keeps the file, line and column it came from, so a schema
error in an inherited rule points into the base file.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from governor.errors import Finding
from governor.policy.yamlsrc import Loc, SourceMap, escape

LIST_SECTIONS = ("stop", "routes", "context", "calls", "budgets")
KEYED_MAPPINGS = {"metadata": ("labels",), "models": ("aliases", "prices"), "defaults": (), "logging": (), "ledger": ()}


@dataclass
class Doc:
    """A policy document with its locations and the files it came from."""

    data: dict[str, Any]
    smap: SourceMap
    files: list[str] = field(default_factory=list)


def _finding(loc: Loc | None, file: str, pointer: str, message: str, code: str, hint: str = "") -> Finding:
    if loc is None:
        return Finding("error", message, file, 0, 0, pointer, code, hint)
    return Finding("error", message, loc.file, loc.line, loc.col, pointer, code, hint)


def _merge_mapping(base: Doc, over: Doc, out: SourceMap, key: str, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """Merge the top-level mapping ``key`` key by key; nested KEYED_MAPPINGS one level deeper."""
    ptr = f"/{escape(key)}"
    b = {k: v for k, v in base.data[key].items() if k not in drop}
    o = over.data[key]
    nested = KEYED_MAPPINGS[key]
    merged: dict[str, Any] = {}
    for sub in [*b, *(k for k in o if k not in b)]:
        child = f"{ptr}/{escape(sub)}"
        if sub in nested and isinstance(b.get(sub), dict) and isinstance(o.get(sub), dict):
            merged[sub] = {**b[sub], **o[sub]}
            out.values[child] = over.smap.values[child]
            out.keys[child] = over.smap.keys[child]
            for name in merged[sub]:
                src = over if name in o[sub] else base
                out.copy_subtree(src.smap, f"{child}/{escape(name)}", f"{child}/{escape(name)}")
        elif sub in o:
            merged[sub] = o[sub]
            out.copy_subtree(over.smap, child, child)
        else:
            merged[sub] = b[sub]
            out.copy_subtree(base.smap, child, child)
    out.values[ptr] = over.smap.values[ptr]
    out.keys[ptr] = over.smap.keys[ptr]
    return merged


def _item_id(item: Any) -> str | None:
    return item.get("id") if isinstance(item, dict) and isinstance(item.get("id"), str) else None


def _merge_list(base: Doc, over: Doc, out: SourceMap, section: str, findings: list[Finding]) -> list[Any]:
    ptr = f"/{section}"
    items: list[tuple[Any, Doc, str]] = [(it, base, f"{ptr}/{i}") for i, it in enumerate(base.data.get(section) or [])]
    for i, item in enumerate(over.data[section]):
        src_ptr = f"{ptr}/{i}"
        ident = _item_id(item)
        # only the base's items are replaced: a repeated id within one file stays (and is reported as a duplicate)
        index = next(
            (n for n, (it, src, _) in enumerate(items) if src is base and ident is not None and _item_id(it) == ident),
            None,
        )
        if isinstance(item, dict) and "remove" in item:
            loc = over.smap.key(f"{src_ptr}/remove")
            extra = sorted(set(item) - {"id", "remove"})
            if item.get("remove") is not True or ident is None or extra:
                findings.append(
                    _finding(
                        loc,
                        over.files[0],
                        f"{src_ptr}/remove",
                        "a removal takes exactly {id: <id>, remove: true}",
                        "bad-remove",
                    )
                )
            elif index is None:
                known = [i for i in (_item_id(it) for it, _, _ in items) if i]
                close = difflib.get_close_matches(ident, known, n=1)
                where = f"the base {section}" if base.files else f"any base policy ({over.files[0]} extends nothing)"
                findings.append(
                    _finding(
                        over.smap.value(f"{src_ptr}/id"),
                        over.files[0],
                        f"{src_ptr}/id",
                        f"remove: no item '{ident}' in {where}",
                        "remove-unknown",
                        f"did you mean '{close[0]}'?" if close else "",
                    )
                )
            else:
                del items[index]
            continue
        if index is None:
            items.append((item, over, src_ptr))
        else:
            items[index] = (item, over, src_ptr)
    out.values[ptr] = over.smap.values.get(ptr) or base.smap.values.get(ptr) or Loc(over.files[0], 0, 0)
    if ptr in over.smap.keys:
        out.keys[ptr] = over.smap.keys[ptr]
    for j, (_, src, src_ptr) in enumerate(items):
        out.copy_subtree(src.smap, src_ptr, f"{ptr}/{j}")
    return [it for it, _, _ in items]


def merge(base: Doc, over: Doc, findings: list[Finding]) -> Doc:
    """``over`` applied on top of ``base`` (an empty base: just removals checked)."""
    out = SourceMap()
    out.values[""] = over.smap.values.get("", Loc(over.files[0], 1, 1))
    data: dict[str, Any] = {}
    keys = [*(k for k in base.data if k != "extends"), *(k for k in over.data if k not in base.data)]
    for key in keys:
        ptr = f"/{escape(key)}"
        in_over = key in over.data
        if (
            key in LIST_SECTIONS
            and in_over
            and isinstance(over.data[key], list)
            and isinstance(base.data.get(key, []), list)
        ):
            data[key] = _merge_list(base, over, out, key, findings)
        elif (
            key in KEYED_MAPPINGS
            and in_over
            and isinstance(over.data[key], dict)
            and isinstance(base.data.get(key), dict)
        ):
            data[key] = _merge_mapping(base, over, out, key, ("name",) if key == "metadata" else ())
        elif in_over:
            data[key] = over.data[key]
            out.copy_subtree(over.smap, ptr, ptr)
        elif key == "metadata" and isinstance(base.data[key], dict):
            data[key] = {k: v for k, v in base.data[key].items() if k != "name"}
            out.copy_subtree(base.smap, ptr, ptr)
        else:
            data[key] = base.data[key]
            out.copy_subtree(base.smap, ptr, ptr)
    return Doc(data, out, [*over.files, *(f for f in base.files if f not in over.files)])
