"""The governor's own recorded JSONL (decision log written with ``record_to=``).

Shape: docs/trace-format.md. Placeholder until that format is fixed.
"""

from __future__ import annotations

from typing import Iterator

from governor.traces.model import TraceRun
from governor.traces.registry import ImportContext, register


class RecordedImporter:
    name = "governor"
    description = "budget-governor recorded JSONL (record_to=)"

    def sniff(self, head: str) -> bool:
        first = head.lstrip().split("\n", 1)[0]
        return '"decision_id"' in first and '"revision"' in first

    def read(self, file: str, text: str, ctx: ImportContext) -> Iterator[TraceRun]:
        ctx.issue(file, 0, "the governor's recorded format is not readable yet")
        return iter(())


register(RecordedImporter())
