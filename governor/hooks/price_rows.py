"""The rows of litellm's price table a hook has looked up, kept between hook processes.

A hook is a new process per event, and litellm's bundled price table is a
JSON file of thousands of models: parsing it and asking ``importlib.metadata``
for litellm's version cost a quarter of a second per event, and importing
genai-prices (to know whether a call predates a dated price change it knows)
about a second. :class:`PriceRows` is the
table as :class:`governor.pricing.PriceTable` reads it (a mapping), answered
from ``prices-<stamp>.json`` in the state directory: each name a lookup asked
for, with its row or ``null`` (not in the table). A name not asked before reads
the whole table once, and the answer is added to the file. The stamp is the
bundled file's path, size and mtime: another litellm, or an upgrade in place,
starts a new file, and so does another genai-prices. The file also keeps, per
model, genai-prices' latest dated change (``dates``): a call after it is priced
by litellm's row without importing genai-prices. Rows are copied as they are:
prices and provenance are the tables' own.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

VERSION = 1


class PriceRows(Mapping[str, Any]):
    """litellm's bundled price table, answered from the rows kept in ``cache`` when they are there."""

    def __init__(self, cache: Path, stamp: str) -> None:
        self._cache, self._stamp = cache, stamp
        self._rows: dict[str, Any] = {}
        self.version = ""
        """``litellm <version>`` of the table (empty: not known yet)."""
        self.dates: dict[str, float | None] = {}
        """genai-prices' latest dated price change per model (PriceTable's ``genai_dates``)."""
        self._full: Mapping[str, Any] | None = None
        self._dirty = False
        try:
            doc = json.loads(cache.read_bytes())
            if isinstance(doc, dict) and doc.get("version") == VERSION and doc.get("stamp") == stamp:
                self._rows = doc["rows"] if isinstance(doc.get("rows"), dict) else {}
                self.version = doc["litellm"] if isinstance(doc.get("litellm"), str) else ""
                dates = doc.get("dates")
                if isinstance(dates, dict):
                    self.dates = {
                        k: float(v) if isinstance(v, (int, float)) else None
                        for k, v in dates.items()
                        if v is None or isinstance(v, (int, float))
                    }
        except (OSError, ValueError):
            pass
        self._dates_seen = len(self.dates)
        if not self.version:
            from governor.pricing import litellm_version

            self.version, self._dirty = litellm_version(), True

    def _table(self) -> Mapping[str, Any]:
        if self._full is None:
            from governor.policy.bundled_prices import litellm_price_table

            self._full = litellm_price_table()
        return self._full

    def _row(self, key: str) -> Any:
        try:
            return self._rows[key]
        except KeyError:
            pass
        row = self._table().get(key)
        self._rows[key] = row
        self._dirty = True
        return row

    def __getitem__(self, key: str) -> Any:
        row = self._row(key)
        if row is None:
            raise KeyError(key)
        return row

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._row(key) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def save(self) -> None:
        """Write the rows asked for so far (nothing when none was new); a failure only costs speed."""
        if not self._dirty and len(self.dates) == self._dates_seen:
            return
        doc = {
            "version": VERSION,
            "stamp": self._stamp,
            "litellm": self.version,
            "rows": self._rows,
            "dates": self.dates,
        }
        try:
            self._cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._cache.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
            os.replace(tmp, self._cache)
            self._dirty, self._dates_seen = False, len(self.dates)
        except OSError:
            pass


def price_rows(state_dir: Path) -> PriceRows | None:
    """The cached rows for the installed litellm's bundled table; None when the governor would not read
    that file (litellm already imported, or ``LITELLM_LOCAL_MODEL_COST_MAP`` asks for the remote map)."""
    from governor.policy.bundled_prices import bundled_file, uses_bundled_file

    if not uses_bundled_file():
        return None
    try:
        source = bundled_file()
        st = source.stat()
    except (OSError, ModuleNotFoundError):
        return None
    stamp = f"{source}|{st.st_size}|{st.st_mtime_ns}|{_genai_stamp()}"
    key = hashlib.sha256(stamp.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return PriceRows(state_dir / f"prices-{key}.json", stamp)


def _genai_stamp() -> str:
    """The installed genai-prices, found without importing it (its import costs about a second)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("genai_prices")
    except (ImportError, ValueError):
        return "-"
    if spec is None or not spec.origin:
        return "-"
    try:
        st = os.stat(spec.origin)
    except OSError:
        return "-"
    return f"{spec.origin}|{st.st_size}|{st.st_mtime_ns}"
