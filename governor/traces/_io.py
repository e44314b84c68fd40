"""Reading trace files: gzip transparently, text as UTF-8, JSON Lines with line numbers."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from governor.errors import TraceError

GZIP_MAGIC = b"\x1f\x8b"
TRACE_SUFFIXES = (".json", ".jsonl", ".ndjson")


def read_bytes(path: str | Path) -> bytes:
    """The file's content, decompressed when it is gzip (by magic bytes, not by name)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise TraceError(f"cannot read trace file: {exc.strerror or exc}", file=str(p)) from exc
    if raw[:2] == GZIP_MAGIC:
        try:
            return gunzip(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise TraceError(f"corrupt gzip data: {exc}", file=str(p)) from exc
    return raw


def gunzip(data: bytes) -> bytes:
    """``gzip.decompress``, with header and CRC checks done by zlib (wbits=31) instead of Python:
    ~20% less time on a trace file. Every member of a multi-member file; NUL padding between
    members is skipped, as gzip does; a truncated member is an EOFError."""
    out = []
    while data:
        d = zlib.decompressobj(31)
        out.append(d.decompress(data))
        if not d.eof:
            raise EOFError("compressed file ended before the end-of-stream marker was reached")
        data = d.unused_data.lstrip(b"\x00")
    return b"".join(out)


def decode(data: bytes, file: str, on_bad_line: Callable[[int, str], None] | None = None) -> str:
    """UTF-8 text. With ``on_bad_line``, a line that is not UTF-8 is reported there (line number,
    message) and left blank, so the rest of the file is still read; without it, a TraceError."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        if on_bad_line is None:
            raise TraceError(f"not UTF-8 text (byte {exc.start})", file=file, line=line) from exc
    lines = data.split(b"\n")
    if lines and lines[0].startswith(b"\xef\xbb\xbf"):
        lines[0] = lines[0][3:]
    out = []
    for number, raw in enumerate(lines, start=1):
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            on_bad_line(number, f"not UTF-8 text (byte {exc.start} of the line)")
            out.append("")
    return "\n".join(out)


def is_trace_file(path: Path) -> bool:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return name.endswith(TRACE_SUFFIXES)


def expand(paths: list[str | Path]) -> list[Path]:
    """Files named directly, plus the trace files (.json/.jsonl/.ndjson[.gz]) inside directories, sorted."""
    out: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and is_trace_file(f)))
        elif p.exists():
            out.append(p)
        else:
            raise TraceError("no such trace file or directory", file=str(p))
    return out


def json_lines(text: str) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, parsed value or None, error message or None) for every non-blank line.

    Lines end at ``\n`` only (a ``\r`` before it is JSON whitespace): ``str.splitlines`` also
    splits at U+2028, U+2029, U+0085 and other characters JSON strings may hold raw, which cut a
    record in two and shifted every later line number.
    """
    loads = json.loads
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield number, loads(line), None
        except json.JSONDecodeError as exc:
            yield number, None, f"invalid JSON: {exc.msg} (column {exc.colno})"
        except (ValueError, RecursionError) as exc:  # a 5,000-digit integer, nesting deeper than the stack
            yield number, None, f"invalid JSON: {exc}"


_fast_loads: Callable[[str], Any] | None
try:  # orjson, when installed (the `fast` extra), parses a large results file ~1.7x faster than json
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - depends on the environment
    _fast_loads = None


def load_document(text: str, file: str, *, fast: bool = False) -> Any:
    """A whole-file JSON document, or a TraceError naming the line and column.

    ``fast=True`` parses with orjson when it is installed. It gives the same
    values as json except integers beyond 64 bits, which it reads as floats:
    only for callers that validate their integers below that (tau2's token
    counts). Whatever orjson refuses (NaN, lone surrogates, deep nesting) is
    parsed again by json, so what is accepted and every error are json's.
    """
    if fast and _fast_loads is not None:
        try:
            return _fast_loads(text)
        except ValueError:
            pass
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TraceError(f"invalid JSON: {exc.msg} (column {exc.colno})", file=file, line=exc.lineno) from exc
    except (ValueError, RecursionError) as exc:
        raise TraceError(f"invalid JSON: {exc}", file=file) from exc
