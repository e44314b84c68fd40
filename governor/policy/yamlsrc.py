"""Safe YAML loading that remembers where every node was written.

PyYAML composes a node graph (with marks) before building Python values; we
walk that graph ourselves so that every JSON pointer in the result maps back
to ``file:line:col``. The walk also catches what ``yaml.safe_load`` lets
through silently: duplicate keys, non-string keys, non-finite numbers.

Scalars follow YAML 1.2 (core schema) where it matters for policies: only
``true``/``false`` are booleans (``mode: off`` stays the string ``"off"``),
and dates stay strings.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from governor.errors import Finding


@dataclass(frozen=True)
class Loc:
    """A place in a source file; line and col are 1-based."""

    file: str
    line: int
    col: int


@dataclass
class SourceMap:
    """JSON pointer -> where the value (and, for mapping entries, the key) was written."""

    values: dict[str, Loc] = field(default_factory=dict)
    keys: dict[str, Loc] = field(default_factory=dict)

    def value(self, pointer: str) -> Loc | None:
        """The closest located node at or above ``pointer``."""
        while True:
            loc = self.values.get(pointer)
            if loc is not None or not pointer:
                return loc
            pointer = pointer.rsplit("/", 1)[0]

    def key(self, pointer: str) -> Loc | None:
        return self.keys.get(pointer) or self.value(pointer)

    def copy_subtree(self, src: SourceMap, src_ptr: str, dst_ptr: str) -> None:
        """Copy every location under ``src_ptr`` in ``src`` to ``dst_ptr`` here."""
        for table, dst_table in ((src.values, self.values), (src.keys, self.keys)):
            for ptr, loc in table.items():
                if ptr == src_ptr or ptr.startswith(src_ptr + "/"):
                    dst_table[dst_ptr + ptr[len(src_ptr) :]] = loc


def escape(token: str) -> str:
    """RFC 6901 escaping of one pointer token."""
    return token.replace("~", "~0").replace("/", "~1")


if getattr(yaml, "__with_libyaml__", False):  # libyaml's parser: ~10x faster, same nodes and marks

    class _PolicyLoader(yaml.cyaml.CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):  # type: ignore[misc, name-defined]
        """A safe loader with YAML 1.2-style booleans and no implicit timestamps."""

        def __init__(self, stream: str) -> None:
            yaml.cyaml.CParser.__init__(self, stream)  # type: ignore[attr-defined]
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

else:  # pragma: no cover - PyYAML built without libyaml

    class _PolicyLoader(yaml.SafeLoader):  # type: ignore[no-redef]
        """A safe loader with YAML 1.2-style booleans and no implicit timestamps."""


_PolicyLoader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:float")
    ]
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}
# YAML 1.2 core-schema floats: `1e3` and `2.5E-4` are numbers (YAML 1.1 wanted a dot: `1.0e+3`).
# Integers still resolve first: their resolver comes earlier in each list.
_PolicyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
_PolicyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)

_MAX_DEPTH = 64
_MAX_NODES = 100_000
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


class _Walker:
    def __init__(self, loader: _PolicyLoader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.smap = SourceMap()
        self.findings: list[Finding] = []
        self._active: set[int] = set()
        self.nodes = 0

    def loc(self, node: yaml.Node) -> Loc:
        return Loc(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def error(self, node: yaml.Node, pointer: str, message: str, code: str) -> None:
        loc = self.loc(node)
        self.findings.append(Finding("error", message, loc.file, loc.line, loc.col, pointer, code))

    def build(self, node: yaml.Node, pointer: str, depth: int = 0) -> Any:
        self.nodes += 1
        if self.nodes > _MAX_NODES:  # aliases can expand exponentially ("billion laughs")
            if self.nodes == _MAX_NODES + 1:
                self.error(
                    node,
                    pointer,
                    f"document expands to more than {_MAX_NODES} values (aliases of aliases?)",
                    "yaml-recursion",
                )
            return None
        self.smap.values[pointer] = self.loc(node)
        if depth > _MAX_DEPTH or id(node) in self._active:
            self.error(node, pointer, "document nests too deeply (or an alias refers to itself)", "yaml-recursion")
            return None
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
            self.error(node, pointer, f"cannot read value: unsupported YAML tag {node.tag}", "yaml-value")
            return None
        if isinstance(node, yaml.MappingNode):
            self._active.add(id(node))
            try:
                return self._mapping(node, pointer, depth)
            finally:
                self._active.discard(id(node))
        if isinstance(node, yaml.SequenceNode):
            self._active.add(id(node))
            try:
                return [self.build(item, f"{pointer}/{i}", depth + 1) for i, item in enumerate(node.value)]
            finally:
                self._active.discard(id(node))
        return self._scalar(node, pointer)

    def _scalar(self, node: yaml.Node, pointer: str) -> Any:
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.error(node, pointer, f"cannot read value: {getattr(exc, 'problem', exc)}", "yaml-value")
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self.error(node, pointer, f"expected a finite number, got {node.value}", "yaml-value")
            return None
        if isinstance(value, (bytes, set)) or not isinstance(value, (str, int, float, bool, type(None))):
            self.error(node, pointer, f"unsupported YAML value of tag {node.tag}", "yaml-value")
            return None
        return value

    def _mapping(self, node: yaml.MappingNode, pointer: str, depth: int) -> dict[str, Any]:
        seen: dict[str, yaml.Node] = {}
        for key_node, _ in node.value:  # duplicates among the mapping's own keys (merge keys excluded)
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self._key(key_node, pointer)
            if key is None:
                continue
            if key in seen:
                first = self.loc(seen[key])
                self.error(
                    key_node,
                    f"{pointer}/{escape(key)}",
                    f"duplicate key '{key}' (first defined at line {first.line}, column {first.col})",
                    "duplicate-key",
                )
            else:
                seen[key] = key_node
        try:
            self.loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys in place
        except yaml.YAMLError as exc:
            self.error(node, pointer, f"bad merge key: {getattr(exc, 'problem', exc)}", "yaml-merge")
            return {}
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, pointer, report=False)
            if key is None:
                continue
            child = f"{pointer}/{escape(key)}"
            self.smap.keys[child] = self.loc(key_node)
            result[key] = self.build(value_node, child, depth + 1)
        return result

    def _key(self, key_node: yaml.Node, pointer: str, report: bool = True) -> str | None:
        if isinstance(key_node, yaml.ScalarNode):
            try:
                value = self.loader.construct_object(key_node)
            except yaml.YAMLError:
                value = key_node.value
            if isinstance(value, str):
                return value
            if isinstance(value, (int, float, bool)) or value is None:
                if report:
                    self.error(key_node, pointer, f"keys must be strings, got {key_node.value!r}", "yaml-key")
                return None
        if report:
            self.error(key_node, pointer, "keys must be plain strings", "yaml-key")
        return None


def load_yaml(text: str, file: str) -> tuple[Any, SourceMap, list[Finding]]:
    """Parse one YAML document: (value, locations, findings). Never raises on bad input."""
    loader = _PolicyLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
            problem = exc.problem or exc.context or "invalid YAML"
            if "expected a single document" in str(exc.context or ""):
                problem = "expected one YAML document, found more (remove the extra '---')"
            return (
                None,
                SourceMap(),
                [Finding("error", f"YAML syntax error: {problem}", file, line, col, "", "yaml-syntax")],
            )
        except yaml.YAMLError as exc:
            return None, SourceMap(), [Finding("error", f"YAML error: {exc}", file, 0, 0, "", "yaml-syntax")]
        if node is None:
            return None, SourceMap(), [Finding("error", "the policy file is empty", file, 1, 1, "", "empty")]
        walker = _Walker(loader, file)
        value = walker.build(node, "")
        return value, walker.smap, walker.findings
    finally:
        loader.dispose()
