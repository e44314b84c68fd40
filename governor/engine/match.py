"""Compile ``match:`` / ``exclude:`` mappings into closures, once per policy load.

A compiled matcher is split in two so the per-call path stays a few lookups:

* the STATIC part reads only the model under consideration and metadata
  (``model``, ``task``, ``run``, ``metadata``, ``tags`` ...). Its result depends on
  nothing else, so the engine caches it per (model, metadata fingerprint);
* the DYNAMIC part reads what changes per call (``input_tokens``, ``messages``,
  ``tools``, ``last_user_message``, run state). A combinator (``any``/``all``/
  ``not``) that contains a dynamic condition is dynamic as a whole.

Every closure takes one :class:`CallContext`. The meaning of each condition is
documented in ``docs/policy-format.md``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from governor.policy.regex import PolicyRegex

Pred = Callable[["CallContext"], bool]

META_KEYS = {"task": "task", "agent": "agent", "user": "user", "team": "team", "workflow": "workflow", "run": "run_id"}
RUN_KEYS = {
    "run_calls": "calls",
    "run_cost_usd": "cost_usd",
    "run_errors": "consecutive_errors",
    "run_overruns": "overruns",
}
DYNAMIC_KEYS = frozenset({"input_tokens", "messages", "tools", "last_user_message", *RUN_KEYS})
TEXT_LIMIT = 4096  # last_user_message looks at this many characters at most


class CallContext:
    """What matchers may read about one call. Built once per check."""

    __slots__ = ("model", "metadata", "input_tokens", "messages", "message_count", "tools", "run", "_last_user")

    def __init__(
        self,
        model: str,
        metadata: Mapping[str, Any],
        input_tokens: int = 0,
        messages: Sequence[Mapping[str, Any]] = (),
        tools: Sequence[Any] | None = None,
        run: Any = None,
        message_count: int | None = None,
    ) -> None:
        self.model = model
        self.metadata = metadata
        self.input_tokens = input_tokens
        self.messages = messages
        # the caller's count stands in when the messages themselves are not given (replay of
        # traces recorded without prompt text)
        self.message_count = len(messages) if messages or message_count is None else message_count
        self.tools = tools
        self.run = run  # governor.engine.runstate.RunState | None
        self._last_user: str | None = None

    def last_user_text(self) -> str:
        """The first TEXT_LIMIT characters of the last user message (computed once)."""
        if self._last_user is None:
            self._last_user = last_user_text(self.messages)
        return self._last_user


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for msg in reversed(messages):
        if msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content[:TEXT_LIMIT]
            if isinstance(content, list):
                parts: list[str] = []
                size = 0
                for part in content:
                    text = part.get("text") if isinstance(part, Mapping) else part if isinstance(part, str) else None
                    if isinstance(text, str):
                        parts.append(text)
                        size += len(text)
                        if size >= TEXT_LIMIT:
                            break
                return " ".join(parts)[:TEXT_LIMIT]
            return ""
    return ""


def tool_names(tools: Sequence[Any] | None) -> list[str]:
    names: list[str] = []
    for tool in tools or ():
        if isinstance(tool, Mapping):
            fn = tool.get("function")
            name = fn.get("name") if isinstance(fn, Mapping) else tool.get("name")
            if isinstance(name, str):
                names.append(name)
        elif isinstance(tool, str):
            names.append(tool)
        else:
            name = getattr(tool, "name", None) or getattr(tool, "__name__", None)
            if isinstance(name, str):
                names.append(name)
    return names


# -- building blocks ---------------------------------------------------------------
def _globs(patterns: str | Iterable[str]) -> Callable[[str], bool]:
    pats = [patterns] if isinstance(patterns, str) else list(patterns)
    rx = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in pats))
    return lambda text: rx.match(text) is not None


def compile_value(cond: Any) -> Callable[[Any], bool]:
    """A value condition: scalar (equals), list (in), or an operator mapping (all must hold)."""
    if isinstance(cond, Mapping):
        tests = [_value_op(op, arg) for op, arg in cond.items()]
        if len(tests) == 1:
            return tests[0]
        return lambda v: all(t(v) for t in tests)
    if isinstance(cond, (list, tuple)):
        allowed = frozenset(_hashable(x) for x in cond)
        return lambda v: v is not None and _hashable(v) in allowed
    return lambda v: v is not None and v == cond


def _value_op(op: str, arg: Any) -> Callable[[Any], bool]:
    if op == "eq":
        return lambda v: v is not None and v == arg
    if op == "ne":
        return lambda v: v != arg
    if op == "in":
        allowed = frozenset(_hashable(x) for x in arg)
        return lambda v: v is not None and _hashable(v) in allowed
    if op == "not_in":
        denied = frozenset(_hashable(x) for x in arg)
        return lambda v: v is None or _hashable(v) not in denied
    if op == "glob":
        test = _globs(arg)
        return lambda v: v is not None and test(str(v))
    if op == "regex":
        rx = PolicyRegex(arg)
        return lambda v: v is not None and rx.search(v if type(v) is str else str(v))
    if op == "exists":
        want = bool(arg)
        return lambda v: (v is not None) == want
    raise ValueError(f"unknown value operator {op!r}")


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


_NUM_OPS: dict[str, Callable[[float, float], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
}


def compile_number(cond: Any) -> Callable[[float], bool]:
    """A numeric condition: a number (equals) or {gt, gte, lt, lte, eq, ne} (a range when combined)."""
    if not isinstance(cond, Mapping):
        return lambda v: v == cond
    lo = hi = None
    lo_incl = hi_incl = True
    others: list[tuple[Callable[[float, float], bool], float]] = []
    for op, arg in cond.items():
        if op not in _NUM_OPS:
            raise ValueError(f"unknown numeric operator {op!r}")
        if op in ("gt", "gte"):
            lo, lo_incl = arg, op == "gte"
        elif op in ("lt", "lte"):
            hi, hi_incl = arg, op == "lte"
        else:
            others.append((_NUM_OPS[op], arg))

    def test(v: float) -> bool:
        if lo is not None and (v < lo or (v == lo and not lo_incl)):
            return False
        if hi is not None and (v > hi or (v == hi and not hi_incl)):
            return False
        return all(f(v, a) for f, a in others)

    return test


def _tag_test(test: Callable[[frozenset[Any], Any], bool]) -> Callable[[frozenset[Any]], Callable[[Any], bool]]:
    return lambda want: lambda tags: test(want, tags)


_TAG_TESTS = {
    "any": _tag_test(lambda want, tags: not want.isdisjoint(tags)),
    "all": _tag_test(lambda want, tags: want <= tags),
    "none": _tag_test(lambda want, tags: want.isdisjoint(tags)),
}


def _tags_cond(cond: Any) -> Callable[[Any], bool]:
    if isinstance(cond, Mapping):
        tests = []
        for op, arg in cond.items():
            want = frozenset([arg] if isinstance(arg, str) else arg)
            if op in _TAG_TESTS:
                tests.append(_TAG_TESTS[op](want))
            else:
                raise ValueError(f"unknown tags operator {op!r}")
        return lambda tags: all(t(tags) for t in tests)
    want = frozenset([cond] if isinstance(cond, str) else cond)
    return lambda tags: not want.isdisjoint(tags)


def _tag_set(metadata: Mapping[str, Any]) -> frozenset[str]:
    tags = metadata.get("tags")
    if not tags:
        return frozenset()
    if isinstance(tags, str):
        return frozenset((tags,))
    return frozenset(str(t) for t in tags)


def _text_cond(cond: Mapping[str, Any]) -> Callable[[str], bool]:
    sensitive = cond.get("case_sensitive", True)
    if "regex" in cond:
        rx = PolicyRegex(cond["regex"], ignore_case=not sensitive)
        return rx.search
    needle = str(cond.get("contains", ""))
    if sensitive:
        return lambda text: needle in text
    low = needle.lower()
    return lambda text: low in text.lower()


def _tools_cond(cond: Any) -> Pred:
    if isinstance(cond, bool):
        return lambda ctx: bool(ctx.tools) == cond
    test = _globs(cond)
    return lambda ctx: any(test(name) for name in tool_names(ctx.tools))


# -- one condition, one mapping ----------------------------------------------------
def _condition(key: str, cond: Any) -> tuple[Pred, bool]:
    """(predicate, is_dynamic) for one key of a match mapping."""
    if key == "model":
        test = _globs(cond)
        return (lambda ctx: test(ctx.model)), False
    if key in META_KEYS:
        meta_key = META_KEYS[key]
        vtest = compile_value(cond)
        return (lambda ctx: vtest(ctx.metadata.get(meta_key))), False
    if key == "metadata":
        pairs = [(k, compile_value(v)) for k, v in cond.items()]
        return (lambda ctx: all(t(ctx.metadata.get(k)) for k, t in pairs)), False
    if key == "tags":
        ttest = _tags_cond(cond)
        return (lambda ctx: ttest(_tag_set(ctx.metadata))), False
    if key == "input_tokens":
        ntest = compile_number(cond)
        return (lambda ctx: ntest(ctx.input_tokens)), True
    if key == "messages":
        ntest = compile_number(cond)
        return (lambda ctx: ntest(ctx.message_count)), True
    if key == "tools":
        return _tools_cond(cond), True
    if key == "last_user_message":
        text_test = _text_cond(cond)
        return (lambda ctx: text_test(ctx.last_user_text())), True
    if key in RUN_KEYS:
        attr = RUN_KEYS[key]
        ntest = compile_number(cond)
        return (lambda ctx: ctx.run is not None and ntest(getattr(ctx.run, attr))), True
    if key in ("any", "all"):
        subs = [compile_whole(m) for m in cond]
        dyn = any(d for _, d in subs)
        preds = [p for p, _ in subs]
        if key == "any":
            return (lambda ctx: any(p(ctx) for p in preds)), dyn
        return (lambda ctx: all(p(ctx) for p in preds)), dyn
    if key == "not":
        pred, dyn = compile_whole(cond)
        return (lambda ctx: not pred(ctx)), dyn
    raise ValueError(f"unknown match key {key!r}")


def _conjunction(preds: list[Pred]) -> Pred | None:
    if not preds:
        return None
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda ctx: a(ctx) and b(ctx)
    return lambda ctx: all(p(ctx) for p in preds)


def compile_whole(spec: Mapping[str, Any]) -> tuple[Pred, bool]:
    """One predicate for a whole mapping, and whether any part of it is dynamic."""
    static, dynamic = compile_split(spec)
    parts = [p for p in (static, dynamic) if p is not None]
    return (_conjunction(parts) or (lambda ctx: True)), dynamic is not None


def compile_split(spec: Mapping[str, Any] | None) -> tuple[Pred | None, Pred | None]:
    """(static, dynamic) predicates of a match mapping; None means "always holds"."""
    static: list[Pred] = []
    dynamic: list[Pred] = []
    for key, cond in (spec or {}).items():
        pred, dyn = _condition(key, cond)
        (dynamic if dyn else static).append(pred)
    return _conjunction(static), _conjunction(dynamic)


def compile_rule_match(
    match: Mapping[str, Any] | None, exclude: Mapping[str, Any] | None
) -> tuple[Pred | None, Pred | None]:
    """(static, dynamic) for `match` and not `exclude`.

    An exclude that is wholly static folds into the static part; otherwise the
    whole exclude is evaluated per call.
    """
    static, dynamic = compile_split(match)
    if not exclude:
        return static, dynamic
    ex_pred, ex_dyn = compile_whole(exclude)
    if ex_dyn:
        dynamic = _conjunction([p for p in (dynamic, lambda ctx: not ex_pred(ctx)) if p is not None])
    else:
        static = _conjunction([p for p in (static, lambda ctx: not ex_pred(ctx)) if p is not None])
    return static, dynamic


def referenced_metadata_keys(spec: Any) -> set[str]:
    """Metadata keys a match mapping reads: the static cache keys on their values."""
    keys: set[str] = set()
    if not isinstance(spec, Mapping):
        return keys
    for key, cond in spec.items():
        if key in META_KEYS:
            keys.add(META_KEYS[key])
        elif key == "metadata" and isinstance(cond, Mapping):
            keys.update(cond.keys())
        elif key == "tags":
            keys.add("tags")
        elif key in ("any", "all"):
            for sub in cond:
                keys |= referenced_metadata_keys(sub)
        elif key == "not":
            keys |= referenced_metadata_keys(cond)
    return keys


def uses_run_state(spec: Any) -> bool:
    """Whether a match mapping reads run state (run_calls, run_cost_usd, run_errors)."""
    if not isinstance(spec, Mapping):
        return False
    for key, cond in spec.items():
        if key in RUN_KEYS:
            return True
        if key in ("any", "all") and any(uses_run_state(sub) for sub in cond):
            return True
        if key == "not" and uses_run_state(cond):
            return True
    return False
