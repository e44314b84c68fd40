"""Which tokenizer counts a model's tokens, loaded without the network.

tiktoken's encodings are built from the BPE files that litellm ships
(``litellm/litellm_core_utils/tokenizers``): nothing is downloaded, litellm is
never imported, no environment variable is changed and tiktoken's cache is
not written. OpenAI models get their own encoding (exact counts); every other
model (claude-*, gemini-*, xai/*, ...) is counted with ``cl100k_base`` --
litellm's own default for unknown models -- and labelled an estimate. If no
bundled BPE file is found at all, one token per 4 characters is used, also
labelled an estimate.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import math
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


class Tokenizers:
    """model name -> :class:`Tokenizer`, each encoding loaded once (per process)."""

    def __init__(self, directory: Path | None | str = "bundled") -> None:
        self.directory = bundled_tokenizer_dir() if directory == "bundled" else (Path(directory) if directory else None)
        self._models: dict[str, Tokenizer] = {}
        self._encodings: dict[str, Tokenizer] = {}
        self._lock = threading.Lock()

    def for_model(self, model: str) -> Tokenizer:
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
        d = self.directory
        enc = _load_offline(name, d) if d is not None and name in _BUNDLED else None
        if enc is None and name != ESTIMATE_ENCODING and d is not None:
            enc = _load_offline(ESTIMATE_ENCODING, d)
            name_used, exact = ESTIMATE_ENCODING, False
        else:
            name_used, exact = name, True
        if enc is None:
            tok = Tokenizer(f"chars/{CHARS_PER_TOKEN}", False, _char_estimate)
        else:
            encode = enc.encode_ordinary

            def count(text: str) -> int:
                return len(encode(text))

            tok = Tokenizer(name_used, exact, count)
        with self._lock:
            self._encodings[name] = tok
        return tok


def _char_estimate(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)
