"""Property: whatever a mutated policy looks like, loading it raises PolicyError or succeeds.

Mutations start from the shipped policies (so they reach deep into every
section) and delete keys, change types, rename keys, insert junk, or damage the
YAML text itself. Nothing but PolicyError may escape the loader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governor.errors import PolicyError
from governor.policy.loader import load_policy_text
from governor.policy.model import Policy

POLICIES = sorted((Path(__file__).resolve().parents[2] / "policies").glob("*.yaml"))
POLICIES = [p for p in POLICIES if not p.name.endswith(".test.yaml")]
DOCS = [yaml.safe_load(p.read_text()) for p in POLICIES]

junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["none", "1h", "window", "cheap", "enforce", "run", "trim", "0s", "x/y"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def _parent(doc: Any, path: tuple) -> Any:
    for step in path[:-1]:
        doc = doc[step]
    return doc


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    doc = yaml.safe_load(yaml.safe_dump(draw(st.sampled_from(DOCS))))  # a private deep copy
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _parent(doc, path), path[-1]
        action = draw(st.sampled_from(["delete", "replace", "rename", "insert", "extends"]))
        if action == "delete":
            del parent[key]
        elif action == "replace":
            parent[key] = draw(junk)
        elif action == "rename" and isinstance(parent, dict):
            new = draw(st.sampled_from([str(key)[:-1], str(key) + "s", str(key).upper(), "to", "id", "max", "type"]))
            parent[new] = parent.pop(key)
        elif action == "insert" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(junk)
        elif action == "insert" and isinstance(parent, list):
            parent.insert(key, draw(junk))
        elif action == "extends" and isinstance(doc, dict):  # bases that do not exist, are not files, or are odd
            doc["extends"] = draw(
                junk
                | st.sampled_from(["a\x00b", ".", "..", "/dev/null", "policies", "x" * 300])
                | st.lists(st.sampled_from(["/dev/null", "a\x00b", "mutant.yaml"]), max_size=3)
            )
    return doc


def _load(text: str) -> None:
    try:
        result = load_policy_text(text, file="mutant.yaml")
    except PolicyError as exc:
        assert exc.findings, "a PolicyError must carry at least one finding"
        for f in exc.findings:
            assert f.severity == "error" and f.message
        return
    assert isinstance(result, Policy)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_documents_raise_only_policy_error(doc: Any) -> None:
    _load(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(POLICIES), st.data())
def test_damaged_yaml_text_raises_only_policy_error(path: Path, data: st.DataObject) -> None:
    text = path.read_text()
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 8))
        insert = data.draw(
            st.sampled_from(
                [
                    "",
                    ":",
                    "- ",
                    "  ",
                    "\n",
                    "{",
                    "]",
                    "&a ",
                    "*a",
                    "<<: *a\n",
                    "!!python/object:os.system ",
                    "'",
                    "\t",
                    "? ",
                ]
            )
        )
        text = text[:at] + insert + text[at + cut :]
    _load(text)
