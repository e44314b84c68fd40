"""Hypothesis strategies for request bodies that are valid by the real SDKs' own request types.

The ``openai`` and ``anthropic`` packages type every request as TypedDicts
(``MessageCreateParams``, ``ResponseCreateParams``, ``CompletionCreateParams``):
which keys are required, each field's literal values and unions, every content
block and input item the API accepts. :func:`body` walks those types and draws a
JSON body from them, so "valid" means what the installed SDK says, and a block
or item type added in a new SDK version is generated without anyone listing it.

Wire names follow the SDK's ``PropertyInfo(alias=...)``; types that are not
JSON (file objects, ``httpx`` values) are left out of their unions; optional
keys are drawn or not; ``Iterable``/``List``/``Sequence`` are lists; an SDK
response model that a param accepts (a ``message.content`` block passed back)
is an instance of that model, as a user of the SDK would pass it. The API's
rules that the types do not carry are the caller's (``required``: a non-empty
``messages``, a model name).
"""

from __future__ import annotations

import collections.abc
import types
import typing
from typing import Any

import pydantic
import typing_extensions
from hypothesis import strategies as st

_MAX_DEPTH = 7
_NOT_JSON = object()  # a type with no JSON form (a file, a path): left out of its union
SKIPPED: set[str] = set()  # the types left out, for a test to show

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 10_000), st.text(max_size=12))
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
text = st.text(max_size=40)


def _strip(tp: Any) -> tuple[Any, bool, str | None]:
    """(the type, whether it is ``Required``, its wire alias) of one TypedDict field annotation."""
    required, alias = False, None
    while True:
        origin = typing_extensions.get_origin(tp)
        if origin in (typing_extensions.Required, typing.Required):
            required, tp = True, typing_extensions.get_args(tp)[0]
        elif origin in (typing_extensions.NotRequired, typing.NotRequired, typing_extensions.ReadOnly):
            tp = typing_extensions.get_args(tp)[0]
        elif origin is typing_extensions.Annotated:
            for meta in getattr(tp, "__metadata__", ()):
                alias = getattr(meta, "alias", None) or alias
            tp = tp.__origin__
        else:
            return tp, required, alias


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__annotations__") and tp is not dict


def strategy(tp: Any, depth: int = 0) -> Any:
    """A strategy for values of ``tp`` as JSON, or ``_NOT_JSON``."""
    tp, _, _ = _strip(tp)
    origin = typing_extensions.get_origin(tp)
    args = typing_extensions.get_args(tp)
    if tp is typing.Any or tp is object:
        return json_value
    if tp is type(None) or tp is None:
        return st.none()
    if tp is str:
        return text
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(0, 100_000)
    if tp is float:
        return st.floats(0, 1000, allow_nan=False)
    if origin in (typing.Literal, typing_extensions.Literal):
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        options = [s for s in (strategy(a, depth) for a in args) if s is not _NOT_JSON]
        return st.one_of(options) if options else _NOT_JSON
    if origin in (dict, collections.abc.Mapping):
        value = strategy(args[1], depth + 1) if args else json_value
        return _NOT_JSON if value is _NOT_JSON else st.dictionaries(st.text(max_size=6), value, max_size=2)
    if origin in (list, collections.abc.Iterable, collections.abc.Sequence) or (
        origin is not None and getattr(origin, "__name__", "") == "SequenceNotStr"
    ):
        item = strategy(args[0], depth + 1) if args else json_value
        if item is _NOT_JSON:
            return _NOT_JSON
        return st.lists(item, max_size=0 if depth >= _MAX_DEPTH else 2)
    if getattr(tp, "__name__", "") == "SequenceNotStr" or isinstance(tp, typing.TypeVar):
        return json_value
    if _is_typeddict(tp):
        return typed_dict(tp, depth + 1)
    if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
        return _model(tp, depth + 1)
    SKIPPED.add(repr(tp))
    return _NOT_JSON


def typed_dict(cls: Any, depth: int = 0, required: dict[str, Any] | None = None) -> Any:
    """Dicts of TypedDict ``cls``: every required key, each optional one drawn or not; ``required`` overrides."""
    hints = typing_extensions.get_type_hints(cls, include_extras=True)
    fixed: dict[str, Any] = {}
    optional: dict[str, Any] = {}
    for name, annotation in hints.items():
        tp, is_required, alias = _strip(annotation)
        key = alias or name
        if required is not None and key in required:
            fixed[key] = required[key]
            continue
        if depth >= _MAX_DEPTH and not is_required:
            continue
        value = strategy(tp, depth)
        if value is _NOT_JSON:
            if is_required:
                return st.nothing()
            continue
        (fixed if is_required else optional)[key] = value
    return st.fixed_dictionaries(fixed, optional=optional)


def _model(cls: type[pydantic.BaseModel], depth: int) -> Any:
    """Instances of an SDK response model (``message.content`` blocks passed back as an assistant turn)."""
    fixed: dict[str, Any] = {}
    optional: dict[str, Any] = {}
    for name, info in cls.model_fields.items():
        value = strategy(info.annotation, depth)
        if value is _NOT_JSON:
            if info.is_required():
                return st.nothing()
            continue
        (fixed if info.is_required() else optional)[name] = value
    return st.fixed_dictionaries(fixed, optional=optional).map(lambda fields: cls.model_construct(**fields))


def body(cls: Any, **required: Any) -> Any:
    """Valid request bodies of SDK params type ``cls``; ``required`` pins fields to strategies of their own."""
    return typed_dict(cls, 0, required)
