"""Writing ``governor-trace/v1`` files, and the JSON helpers the decision log shares.

:class:`TraceRecorder` appends one JSON line per record under a lock, behind a
header line that names the format (docs/trace-format.md); it never appends to
a file that is not such a trace. :class:`MessagesDigest` gives a stable digest
of a call's messages, so a trace without prompt text still shows which calls
sent identical messages.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from governor.errors import TraceError

TRACE_FORMAT = "governor-trace/v1"


def jsonable(obj: Any) -> Any:
    """JSON fallback: pydantic models, dataclasses, sets, mappings; else ``str(obj)``."""
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    return str(obj)


def _json_dumps(record: Any, **_: Any) -> str:
    return json.dumps(record, default=jsonable, ensure_ascii=False, separators=(",", ":"))


# Characters JSON strings may hold raw but line-splitting tools (Python's str.splitlines, many
# editors and log shippers) take for line ends: written escaped, so a trace is one record per line
# for every reader. In UTF-8 these byte sequences only ever encode those characters.
_LINE_BREAKS = ((b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"), (b"\xc2\x85", b"\\u0085"))


def _escape_breaks(line: bytes) -> bytes:
    if b"\xe2\x80" in line or b"\xc2\x85" in line:
        for raw, escaped in _LINE_BREAKS:
            line = line.replace(raw, escaped)
    return line


def _json_line(record: Any) -> bytes:
    # a lone surrogate (client text) is written as its JSON escape \udXXX, which reads back the same
    return _escape_breaks((_json_dumps(record) + "\n").encode("utf-8", "backslashreplace"))


try:  # orjson, when installed, serialises a record ~10x faster than json
    import orjson as _orjson

    _APPEND_NEWLINE = _orjson.OPT_APPEND_NEWLINE

    def dumps(record: Any, **_: Any) -> str:
        """One record as compact JSON text (orjson when installed, else json)."""
        try:
            return _orjson.dumps(record, default=jsonable).decode()
        except TypeError:  # e.g. non-string keys in free-form metadata
            return _json_dumps(record)

    def dumps_line(record: Any) -> bytes:
        """One record as a compact JSON line, UTF-8 bytes ending in a newline."""
        try:
            return _escape_breaks(_orjson.dumps(record, default=jsonable, option=_APPEND_NEWLINE))
        except TypeError:
            return _json_line(record)

except ImportError:  # pragma: no cover - depends on the environment
    dumps = _json_dumps
    dumps_line = _json_line


class TraceRecorder:
    """Appends records to a ``governor-trace/v1`` JSONL file, one line each.

    A new (or empty) file gets the header line first. An existing file is
    appended to only if its first line is a ``governor-trace/v1`` header, so
    another file is never mixed into.

    Each line goes to the OS in one ``write`` on an ``O_APPEND`` descriptor,
    as soon as it is recorded (no buffer to lose in a crash): several
    processes recording into one file (proxy workers, say) append whole lines
    and never interleave parts of them, however long a line is.
    """

    def __init__(self, path: str | os.PathLike[str], header: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        first, ends_cleanly = _inspect(self.path)
        if first is not None:
            try:
                fmt = json.loads(first).get("format")
            except (ValueError, AttributeError):
                fmt = None
            if fmt != TRACE_FORMAT:
                raise TraceError(
                    f"refusing to append: line 1 is not a {TRACE_FORMAT} header "
                    "(record_to must name a new file or an earlier governor trace)",
                    file=str(self.path),
                    line=1,
                )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(
            self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644
        )
        if first is None:
            self.write({"format": TRACE_FORMAT, "event": "header", **header})
        elif not ends_cleanly:  # a line cut short by a crash stays on its own line
            self._write(b"\n")

    def write(self, record: Mapping[str, Any]) -> None:
        self._write(dumps_line(record))

    def _write(self, line: bytes) -> None:
        with self._lock:
            fd = self._fd
            if fd is None:
                raise TraceError(
                    "the trace recorder was closed (Governor.close()); nothing more is recorded", file=str(self.path)
                )
            written = os.write(fd, line)
            while written < len(line):  # a short write (a full disk, a signal): write the rest
                written += os.write(fd, memoryview(line)[written:])

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _inspect(path: Path) -> tuple[str | None, bool]:
    """(first line, whether the file ends with a newline); (None, True) for a new or empty file."""
    try:
        with open(path, "rb") as f:
            first = f.readline()
            if not first:
                return None, True
            f.seek(-1, os.SEEK_END)
            return first.decode("utf-8", "replace").strip(), f.read(1) == b"\n"
    except FileNotFoundError:
        return None, True


class MessagesDigest:
    """A stable digest of a message list, so traces without prompt text can still show
    that two calls sent the same messages (repeated-call detection in replay).

    blake2b-128 over the per-message blake2b-128 of canonical JSON. Each
    message is digested once (cached by its in-process hash), so an agent
    loop's growing history costs one new message's digest per call.
    """

    def __init__(self, maxsize: int = 16384) -> None:
        from governor.engine.tokens import MessageCache, message_hash

        self._cache = MessageCache(maxsize)
        self._hash = message_hash
        # json.dumps(m, sort_keys=True, ensure_ascii=False) builds this encoder on every call
        self._canonical = json.JSONEncoder(sort_keys=True, ensure_ascii=False, default=jsonable).encode

    def __call__(self, messages: Sequence[Mapping[str, Any]], hashes: Sequence[int] | None = None) -> str:
        """The digest of ``messages``; ``hashes`` are their ``message_hash`` values, when known."""
        keys = hashes if hashes is not None else [self._hash(m) for m in messages]
        parts = self._cache.get_many(keys)
        for i, part in enumerate(parts):
            if part is None:
                canonical = self._canonical(messages[i])
                part = parts[i] = hashlib.blake2b(canonical.encode(), digest_size=16).digest()
                self._cache.put(keys[i], part)
        return hashlib.blake2b(b"".join(parts), digest_size=16).hexdigest()
