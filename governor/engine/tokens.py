"""Input-token counting for checks, incremental across an agent loop's history.

Agent loops resend a growing history, so counts are cached per message: a
check on a 50-message history tokenizes only the messages it has not seen.
The cache key is a cheap fingerprint (the encoding name and the hash of the
message's fields), never the text itself, so the cache does not keep prompts
alive. The cache is bounded (:class:`MessageCache`, near-LRU).

Tokenizers: tiktoken's encodings, loaded from the BPE files that litellm ships
(``litellm/litellm_core_utils/tokenizers``), so nothing ever touches the
network and litellm itself is never imported. OpenAI models get their own
encoding (exact count); every other model (claude-*, gemini-*, xai/*, ...) is
counted with ``cl100k_base`` -- litellm's own default for unknown models -- and
labelled an estimate. If no bundled BPE file is found at all, a count of one
token per 4 characters is used, also labelled an estimate.

Message accounting follows OpenAI's published recipe (and litellm's
``token_counter``): 3 tokens per message, +1 per ``name``, 3 to prime the
reply; the tools list adds its formatted definition plus 9 tokens (counted
once per distinct tools list).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import math
import threading
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from cachetools import LRUCache

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
TOOLS_OVERHEAD = 9
IMAGE_TOKENS = 765  # one high-detail 1024x1024 image part (85 + 4 * 170); an estimate
ESTIMATE_ENCODING = "cl100k_base"
CHARS_PER_TOKEN = 4  # the last-resort heuristic when no BPE file is available

_BUNDLED = ("cl100k_base", "o200k_base", "p50k_base", "r50k_base")
_EXACT_PROVIDERS = ("", "openai", "azure", "text-completion-openai")


@dataclass(frozen=True, slots=True)
class Tokenizer:
    """One text tokenizer: its name, whether its counts are exact, and the counter."""

    name: str
    exact: bool
    count: Callable[[str], int]


def bundled_tokenizer_dir() -> Path | None:
    """Where litellm keeps its tiktoken BPE files, found without importing litellm."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "litellm_core_utils" / "tokenizers"
        if path.is_dir():
            return path
    return None


_ENCODINGS: dict[tuple[str, str], Any] = {}  # (directory, name) -> tiktoken.Encoding, per process
_ENCODINGS_LOCK = threading.Lock()


def _load_offline(name: str, directory: Path) -> Any | None:
    """tiktoken encoding ``name`` built from a local BPE file (cached per process), or None.

    tiktoken's constructors (``tiktoken_ext.openai_public``) name a URL and a
    sha256; we run the constructor with a loader that maps the URL to the file
    name tiktoken's own cache uses (sha1 of the URL) in ``directory``, checks
    the same sha256 and parses it. Nothing is downloaded, no environment
    variable is changed and nothing is written to tiktoken's cache.
    """
    key = (str(directory), name)
    with _ENCODINGS_LOCK:  # one load per encoding, even when threads race for it
        if key not in _ENCODINGS:
            _ENCODINGS[key] = _build_offline(name, directory)
        return _ENCODINGS[key]


def _build_offline(name: str, directory: Path) -> Any | None:
    import tiktoken
    from tiktoken.load import check_hash
    from tiktoken_ext import openai_public

    ctor = openai_public.ENCODING_CONSTRUCTORS.get(name)
    if ctor is None:
        return None
    missing: list[str] = []

    def local_loader(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        path = directory / hashlib.sha1(url.encode()).hexdigest()
        data = path.read_bytes() if path.is_file() else b""
        if not data or (expected_hash and not check_hash(data, expected_hash)):
            missing.append(url)
            return {}
        ranks: dict[bytes, int] = {}
        for line in data.splitlines():
            if line:
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
        return ranks

    scope = dict(ctor.__globals__, load_tiktoken_bpe=local_loader)
    params = types.FunctionType(ctor.__code__, scope, ctor.__name__)()
    if missing:
        return None
    return tiktoken.Encoding(**params)


def encoding_name_for(model: str) -> tuple[str, bool]:
    """(tiktoken encoding name, exact) for a model name, provider prefix allowed."""
    from tiktoken.model import encoding_name_for_model

    provider, _, bare = model.rpartition("/")
    provider = provider.split("/", 1)[0]
    if provider in _EXACT_PROVIDERS:
        try:
            name = encoding_name_for_model(bare)
        except KeyError:
            pass
        else:
            # o200k_harmony (gpt-oss) only adds special tokens: same counts as o200k_base
            return ("o200k_base" if name == "o200k_harmony" else name), True
    return ESTIMATE_ENCODING, False


class MessageCache:
    """A bounded fingerprint -> count map with near-LRU eviction and C-speed lookups.

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
        self._young: dict[Any, int] = {}
        self._old: dict[Any, int] = {}
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[Any]) -> list[int | None]:
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

    def put(self, key: Any, n: int) -> None:
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
        self._dir = bundled_tokenizer_dir() if tokenizer_dir == "bundled" else (Path(tokenizer_dir) if tokenizer_dir else None)
        self._messages = MessageCache(maxsize)
        self._tools: LRUCache = LRUCache(maxsize=256)
        self._models: dict[str, Tokenizer] = {}
        self._encodings: dict[str, Tokenizer] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    # -- tokenizers -------------------------------------------------------
    def tokenizer(self, model: str) -> Tokenizer:
        """The tokenizer used for ``model`` (loaded once per encoding)."""
        tok = self._models.get(model)
        if tok is not None:
            return tok
        name, exact = encoding_name_for(model)
        base = self._encoding(name)
        tok = base if exact or not base.exact else Tokenizer(base.name, False, base.count)
        with self._lock:
            self._models[model] = tok
        return tok

    def _encoding(self, name: str) -> Tokenizer:
        tok = self._encodings.get(name)
        if tok is not None:
            return tok
        enc = _load_offline(name, self._dir) if self._dir is not None and name in _BUNDLED else None
        if enc is None and name != ESTIMATE_ENCODING and self._dir is not None:
            enc = _load_offline(ESTIMATE_ENCODING, self._dir)
            name_used, exact = ESTIMATE_ENCODING, False
        else:
            name_used, exact = name, True
        if enc is None:
            tok = Tokenizer(f"chars/{CHARS_PER_TOKEN}", False, _char_estimate)
        else:
            tok = Tokenizer(name_used, exact, lambda text, _enc=enc: len(_enc.encode_ordinary(text)))
        with self._lock:
            self._encodings[name] = tok
        return tok

    # -- counting ---------------------------------------------------------
    def count(
        self, model: str, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None
    ) -> tuple[int, bool]:
        """(input tokens, is_estimate) of a chat call, reply priming and tools included."""
        tok = self.tokenizer(model)
        counts, approx = self._each(tok, messages)
        total = REPLY_PRIMING + sum(counts)
        if tools:
            total += self._tools_tokens(tok, tools)
        return total, approx or not tok.exact

    def count_each(self, model: str, messages: Sequence[Mapping[str, Any]]) -> list[int]:
        """Tokens of each message (its overhead included), for trimming oldest turns.

        ``sum(count_each(...)) + REPLY_PRIMING`` equals ``count(...)[0]`` without tools.
        """
        return self._each(self.tokenizer(model), messages)[0]

    tokens_of = count_each

    def count_text(self, model: str, text: str) -> int:
        return self.tokenizer(model).count(text)

    def _each(self, tok: Tokenizer, messages: Sequence[Mapping[str, Any]]) -> tuple[list[int], bool]:
        """Per-message counts, and whether any is an estimate (an image part)."""
        enc = tok.name
        keys = [_fingerprint(enc, m) for m in messages]
        found = self._messages.get_many(keys)
        missing = [i for i, n in enumerate(found) if n is None]
        if missing:
            for i in missing:
                n = found[i] = _message_tokens(tok, messages[i])
                self._messages.put(keys[i], n)
        with self._lock:
            self.hits += len(keys) - len(missing)
            self.misses += len(missing)
        # a negative count marks a message with image parts (estimated)
        if any(n < 0 for n in found):  # type: ignore[operator]
            return [abs(n) for n in found], True  # type: ignore[arg-type]
        return found, False  # type: ignore[return-value]

    def _tools_tokens(self, tok: Tokenizer, tools: Sequence[Mapping[str, Any]]) -> int:
        text = json.dumps(list(tools), sort_keys=True, default=str)
        key = (tok.name, len(text), hash(text))
        with self._lock:
            n = self._tools.get(key)
        if n is None:
            n = tok.count(text) + TOOLS_OVERHEAD
            with self._lock:
                self._tools[key] = n
        return n

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._tools.clear()
            self.hits = self.misses = 0


def _char_estimate(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def message_hash(message: Mapping[str, Any]) -> int:
    """A 64-bit hash of a message's (field, value) pairs: cheap for a resent message.

    ``hash(str)`` is computed once per string object and cached by Python, so
    re-hashing a resent message is a tuple hash, not a pass over its text.
    Fields that are not hashable (content parts, tool_calls) go through
    canonical JSON first. Usable by other per-message caches (e.g. a
    repeated-call fingerprint) so a check hashes each message once.
    """
    try:
        return hash(tuple(message.items()))
    except TypeError:
        pass
    except AttributeError:  # a message object (e.g. litellm's Message), not a dict
        message = _as_dict(message)
    parts = []
    for key, value in message.items():
        if value is not None and value.__class__ is not str:
            value = json.dumps(value, sort_keys=True, default=str)
        parts.append((key, value))
    return hash(tuple(parts))


def _fingerprint(encoding: str, message: Mapping[str, Any]) -> tuple:
    """The cache key of a message's count: no text is kept, only a hash.

    A 64-bit collision (~1e-10 for a full cache) would only misstate one
    message's count.
    """
    return (encoding, message_hash(message))


def _as_dict(message: Any) -> Mapping[str, Any]:
    dump = getattr(message, "model_dump", None)
    if callable(dump):
        return dump(exclude_none=True)
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


def _content_parts_tokens(tok: Tokenizer, parts: list) -> tuple[int, bool]:
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
