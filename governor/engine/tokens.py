"""Input-token counting for checks, incremental across an agent loop's history.

Agent loops resend a growing history, so counts are cached per message: a
check on a 50-message history tokenizes only the messages it has not seen.
The cache key is a cheap fingerprint (the hash of the message's fields, in a
cache per encoding), never the text itself, so the cache does not keep prompts
alive. Each cache is bounded (:class:`MessageCache`, near-LRU). A caller that
has the messages' hashes already (the governor shares them with the
repeated-call fingerprint) passes them in, so a check hashes each message once.

Tokenizers (which one per model, loaded offline, exact or estimate) live in
:mod:`governor.engine.tokenizers`.

Message accounting follows OpenAI's published recipe (and litellm's
``token_counter``): 3 tokens per message, +1 per ``name``, 3 to prime the
reply; the tools list adds its rendered definitions plus 9 tokens, 4 fewer
with a system message (counted
once per distinct tools list; :mod:`governor.engine.tool_schema`). Providers
do not publish how they tokenize tool schemas, so a count with tools is
labelled an estimate.
"""

from __future__ import annotations

import json
import marshal
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from cachetools import LRUCache

from governor.engine.tokenizers import (  # re-exported: part of this module's interface
    ESTIMATE_ENCODING,
    Tokenizer,
    Tokenizers,
    bundled_tokenizer_dir,
    encoding_name_for,
)
from governor.engine.tool_schema import render_tools

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
TOOLS_OVERHEAD = 9
TOOLS_WITH_SYSTEM_SAVING = 4
IMAGE_TOKENS = 765  # one high-detail 1024x1024 image part (85 + 4 * 170); an estimate

__all__ = [
    "ESTIMATE_ENCODING", "IMAGE_TOKENS", "REPLY_PRIMING", "TOKENS_PER_MESSAGE", "TOKENS_PER_NAME", "TOOLS_OVERHEAD",
    "MessageCache", "TokenCounter", "Tokenizer", "bundled_tokenizer_dir", "encoding_name_for", "message_hash",
]  # fmt: skip


class MessageCache:
    """A bounded key -> value map (here: message fingerprint -> count) with near-LRU
    eviction and C-speed lookups.

    Two generations of plain dicts: inserts go to the young one; a hit in the
    old one is promoted; when the young one holds ``maxsize // 2`` entries it
    becomes the old one and the previous old one is dropped. Entries read at
    least once per generation (an agent loop's resent history) survive, like
    an LRU, while lookups stay single dict gets: cachetools' LRUCache costs
    ~1.5 us per lookup here, which for a 40-message history was more than the
    rest of the counting. Lock-free reads are safe: a lookup racing a
    generation swap can only miss, and a miss only recounts.
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 2:
            raise ValueError("MessageCache maxsize must be at least 2")
        self._half = maxsize // 2
        self._young: dict[Any, Any] = {}
        self._old: dict[Any, Any] = {}
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[Any]) -> list[Any]:
        """The value of each key, None where absent (hits in the old generation are promoted)."""
        get = self._young.get
        found = [get(k) for k in keys]
        if None in found:
            old = self._old
            for i, k in enumerate(keys):
                if found[i] is None:
                    n = old.get(k)
                    if n is not None:
                        found[i] = n
                        self.put(k, n)
        return found

    def put(self, key: Any, n: Any) -> None:
        with self._lock:
            self._young[key] = n
            if len(self._young) >= self._half:
                self._old, self._young = self._young, {}

    def __len__(self) -> int:
        return len(self._young) + len(self._old)

    def keys(self) -> list[Any]:
        return list(self._young) + list(self._old)

    def clear(self) -> None:
        with self._lock:
            self._young, self._old = {}, {}


class TokenCounter:
    """Counts a call's input tokens per message, caching each message's count.

    Thread-safe: inserts take a lock, lookups are plain dict reads, and
    tokenizing happens outside any lock (two threads may count the same new
    message once each, which is harmless).
    """

    def __init__(self, maxsize: int = 65536, tokenizer_dir: Path | None | str = "bundled") -> None:
        self._tokenizers = Tokenizers(tokenizer_dir)
        self._maxsize = maxsize
        self._by_encoding: dict[str, MessageCache] = {}  # one message cache per encoding
        self._tools: LRUCache[Any, Any] = LRUCache(maxsize=256)
        self._tools_by_id: dict[int, tuple[Any, int, str, int]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def tokenizer(self, model: str) -> Tokenizer:
        """The tokenizer used for ``model`` (loaded once per encoding)."""
        return self._tokenizers.for_model(model)

    @property
    def cached_messages(self) -> int:
        """How many message counts are cached (at most ``maxsize`` per encoding)."""
        return sum(len(cache) for cache in list(self._by_encoding.values()))

    def _cache(self, encoding: str) -> MessageCache:
        cache = self._by_encoding.get(encoding)
        if cache is None:
            with self._lock:
                cache = self._by_encoding.setdefault(encoding, MessageCache(self._maxsize))
        return cache

    # -- counting ---------------------------------------------------------
    def count(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        hashes: Sequence[int] | None = None,
    ) -> tuple[int, bool]:
        """(input tokens, is_estimate) of a chat call, reply priming and tools included.

        ``hashes``: ``[message_hash(m) for m in messages]``, when the caller has them."""
        tok = self.tokenizer(model)
        counts, approx = self._each(tok, messages, hashes)
        total = REPLY_PRIMING + sum(counts)
        if tools:
            total += self._tools_tokens(tok, tools)
            if any(_role(m) == "system" for m in messages):
                total -= TOOLS_WITH_SYSTEM_SAVING  # the tools preamble merges into the system message
            approx = True  # providers do not publish how tool schemas are tokenized
        return total, approx or not tok.exact

    def count_each(self, model: str, messages: Sequence[Mapping[str, Any]]) -> list[int]:
        """Tokens of each message (its overhead included), for trimming oldest turns.

        ``sum(count_each(...)) + REPLY_PRIMING`` equals ``count(...)[0]`` without tools.
        """
        return self._each(self.tokenizer(model), messages)[0]

    tokens_of = count_each

    def message_counter(self, model: str) -> Callable[[Mapping[str, Any]], int]:
        """``count(message)``: tokens of one message, its overhead included, cached like every
        message count (for a caller that counts messages one at a time, e.g. trimming)."""
        tok = self.tokenizer(model)
        cache = self._cache(tok.name)
        get = cache.get_many

        def count(message: Mapping[str, Any]) -> int:
            key = message_hash(message)
            n = get((key,))[0]
            if n is None:
                n = _message_tokens(tok, message)
                cache.put(key, n)
                self.misses += 1
            else:
                self.hits += 1
            return abs(int(n))

        return count

    def count_text(self, model: str, text: str) -> int:
        return self.tokenizer(model).count(text)

    def _each(
        self, tok: Tokenizer, messages: Sequence[Mapping[str, Any]], hashes: Sequence[int] | None = None
    ) -> tuple[list[int], bool]:
        """Per-message counts, and whether any is an estimate (an image part)."""
        cache = self._cache(tok.name)
        keys = hashes if hashes is not None else [message_hash(m) for m in messages]
        found = cache.get_many(keys)
        missing = [i for i, n in enumerate(found) if n is None]
        if missing:
            for i in missing:
                n = found[i] = _message_tokens(tok, messages[i])
                cache.put(keys[i], n)
        with self._lock:
            self.hits += len(keys) - len(missing)
            self.misses += len(missing)
        # a negative count marks a message with image parts (estimated)
        if found and min(found) < 0:
            return [abs(n) for n in found], True
        return found, False

    def _tools_tokens(self, tok: Tokenizer, tools: Sequence[Mapping[str, Any]]) -> int:
        """Tokens of the tools list, rendered and tokenized once per distinct list.

        Agent loops pass the same list object on every call, so the last few
        lists are also remembered by identity (and length), which skips even
        the canonical JSON that keys the distinct-list cache; a list edited in
        place after its first use keeps its first count (tools lists are not
        usually edited in place).
        """
        memo = self._tools_by_id.get(id(tools))
        if memo is not None and memo[0] is tools and memo[1] == len(tools) and memo[2] == tok.name:
            return memo[3]
        text = json.dumps(list(tools), sort_keys=True, default=str)
        key = (tok.name, len(text), hash(text))
        with self._lock:
            n = self._tools.get(key)
        if n is None:
            n = tok.count(render_tools(tools)) + TOOLS_OVERHEAD
            with self._lock:
                self._tools[key] = n
        with self._lock:
            if len(self._tools_by_id) >= 64:
                self._tools_by_id.clear()
            self._tools_by_id[id(tools)] = (tools, len(tools), tok.name, n)
        return n

    def clear(self) -> None:
        with self._lock:
            self._by_encoding.clear()
            self._tools.clear()
            self._tools_by_id.clear()
            self.hits = self.misses = 0


def message_hash(message: Mapping[str, Any]) -> int:
    """A 64-bit hash of a message's (field, value) pairs: cheap for a resent message.

    ``hash(str)`` is computed once per string object and cached by Python, so
    re-hashing a resent message is a tuple hash, not a pass over its text.
    Lists and dicts (content parts, tool_calls) go through ``marshal``
    (``repr`` for other types) first, several times cheaper than canonical
    JSON; the hash is per process anyway, and an equal value built in another
    key order only costs a cache miss. A mapping whose values are all hashable
    hashes as ``hash(tuple(message.items()))``, whichever branch computes it
    (:func:`governor.engine.runstate.call_fingerprint` relies on that).

    The key of a message's count in the token cache: no text is kept, only
    the hash. A 64-bit collision (~1e-10 for a full cache) would only misstate
    one message's count.
    """
    if message.__class__ is not dict and not isinstance(message, Mapping):
        message = _as_dict(message)  # a message object (e.g. litellm's Message)
    elif "tool_calls" not in message and message.get("content").__class__ is not list:
        try:
            return hash(tuple(message.items()))  # plain text: no exception to pay for
        except TypeError:
            pass
    parts = [(k, _frozen(v) if v.__class__ is list or v.__class__ is dict else v) for k, v in message.items()]
    try:
        return hash(tuple(parts))
    except TypeError:  # an unhashable value of another type (a tuple holding a list, a set...)
        return hash(
            tuple((k, v if v is None or v.__class__ is str or v.__class__ is bytes else _frozen(v)) for k, v in parts)
        )


def _frozen(value: Any) -> bytes | str:
    try:  # lists and dicts of str/int/float/None: marshal (format 0: no refs, no interning
        return marshal.dumps(value, 0)  # flags, so equal values give equal bytes) is 2x repr
    except ValueError:  # another type inside
        return repr(value)


def _role(message: Any) -> Any:
    get = getattr(message, "get", None)
    return get("role") if get is not None else getattr(message, "role", None)


def _as_dict(message: Any) -> Mapping[str, Any]:
    dump = getattr(message, "model_dump", None)
    if callable(dump):
        return cast(Mapping[str, Any], dump(exclude_none=True))
    return dict(message)


def _message_tokens(tok: Tokenizer, message: Mapping[str, Any]) -> int:
    """Tokens of one message; negative when part of it (an image) is estimated."""
    if not hasattr(message, "items"):
        message = _as_dict(message)
    n = TOKENS_PER_MESSAGE
    approx = False
    for key, value in message.items():
        if value is None:
            continue
        if isinstance(value, str):
            n += tok.count(value)
            if key == "name":
                n += TOKENS_PER_NAME
        elif key == "content" and isinstance(value, list):
            parts, images = _content_parts_tokens(tok, value)
            n += parts
            approx = approx or images
        elif key == "tool_calls" and isinstance(value, list):
            for call in value:
                fn = call.get("function") if isinstance(call, Mapping) else None
                if isinstance(fn, Mapping):
                    n += tok.count(str(fn.get("name") or "")) + tok.count(str(fn.get("arguments") or ""))
        elif key == "function_call" and isinstance(value, Mapping):
            n += tok.count(str(value.get("name") or "")) + tok.count(str(value.get("arguments") or ""))
    return -n if approx else n


def _content_parts_tokens(tok: Tokenizer, parts: list[Any]) -> tuple[int, bool]:
    n = 0
    images = False
    for part in parts:
        if isinstance(part, str):
            n += tok.count(part)
        elif isinstance(part, Mapping):
            text = part.get("text")
            if isinstance(text, str):
                n += tok.count(text)
            elif part.get("type") in ("image_url", "image", "input_image"):
                n += IMAGE_TOKENS
                images = True
    return n, images
