"""Importer registry: pick a trace format by name or by sniffing, read files into a TraceSet.

An importer is a small object with ``name``, ``description``, ``sniff(head)``
and ``read(file, text, ctx)``. New formats register with :func:`register`;
``--format-in`` forces one by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from governor.errors import TraceError
from governor.inputs import trace_call_problem
from governor.traces._io import decode, expand, read_bytes
from governor.traces.model import TraceCall, TraceIssue, TraceRun, TraceSet

SNIFF_CHARS = 65536


class MalformedRecord(TraceError):
    """A record that could not be read, raised instead of skipped under ``strict``."""


@dataclass
class ImportContext:
    """Options and the issue sink shared by importers during one load."""

    strict: bool = False
    run_key: str | None = None
    issues: list[TraceIssue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)  # per-importer state across the files of one load

    def seen(self, scope: str) -> set[Any]:
        """Keys an importer has counted in this load (calls deduplicated across files: forks, replays)."""
        found: set[Any] = self.state.setdefault(scope, set())
        return found

    def note(self, text: str) -> None:
        """Something worth telling the user that is not a malformed record."""
        self.notes.append(text)

    def issue(self, file: str, line: int, message: str, where: str = "") -> None:
        """Record a malformed record (skipped and counted), or fail at once under ``strict``."""
        found = TraceIssue(file, line, message, where)
        if self.strict:
            raise MalformedRecord(f"{where}: {message}" if where else message, file=file, line=line)
        self.issues.append(found)


class Importer(Protocol):
    name: str
    description: str
    streams: bool  # True: a run may continue in another file (merged by run id)

    def sniff(self, head: str) -> bool: ...

    def read(self, file: str, text: str, ctx: ImportContext) -> Iterable[TraceRun]: ...


def owner_of(path: Path) -> Path | None:
    """The file whose importer reads ``path`` along with it, when one does (by path, not content).

    A Claude Code subagent transcript (``<session>/subagents/agent-*.jsonl``)
    belongs to ``<session>.jsonl``: read with it, its calls are the session's
    child runs and replays of the parent's messages are counted once. Every
    file of a Harbor trial directory belongs to its ``result.json``: the trial
    holds the same calls in several files and is read once.
    """
    for imp in importers().values():
        find = getattr(imp, "owner_of", None)
        if find is not None:
            owner = find(path)
            if owner is not None:
                return Path(owner)
    return None


def without_owned(files: list[Path]) -> list[Path]:
    """``files`` less those whose owner (see :func:`owner_of`) is also in the list."""
    present = {p.resolve() for p in files}
    out = []
    for p in files:
        owner = owner_of(p)
        if owner is not None and owner.resolve() != p.resolve() and owner.resolve() in present:
            continue
        out.append(p)
    return out


_REGISTRY: dict[str, Importer] = {}


def register(importer: Importer) -> Importer:
    _REGISTRY[importer.name] = importer
    return importer


def importers() -> dict[str, Importer]:
    _load_builtin()
    return dict(_REGISTRY)


def _load_builtin() -> None:
    # importing a module registers its importer; order is the sniffing order
    import governor.traces.recorded  # noqa: F401, I001
    import governor.traces.otel  # noqa: F401
    import governor.traces.litellm_payload  # noqa: F401
    import governor.traces.tau2  # noqa: F401
    import governor.traces.claude_code  # noqa: F401
    import governor.traces.codex  # noqa: F401
    import governor.traces.harbor  # noqa: F401
    import governor.traces.openai_agents  # noqa: F401
    import governor.traces.langfuse  # noqa: F401


def detect(head: str, file: str) -> Importer:
    for imp in importers().values():
        if imp.sniff(head):
            return imp
    names = ", ".join(importers())
    raise TraceError(f"cannot tell the trace format; pass --format-in (one of: {names})", file=file)


def load_traces(
    paths: Iterable[str | Path],
    *,
    format_in: str | None = None,
    strict: bool = False,
    run_key: str | None = None,
    on_file: Callable[[int, int, str], None] | None = None,
    since: float | None = None,
    until: float | None = None,
    format_of: Callable[[Path], str | None] | None = None,
) -> TraceSet:
    """Read every trace file (directories expanded, gzip transparent) into one TraceSet.

    Logs that stream calls (governor, otel, litellm: ``importer.streams``) may
    split one run over several files (daily rotation), so a run id seen again
    merges into the earlier run, in time order. For whole-result formats (tau2)
    a repeated run id is another run: it gets the file name appended.

    ``since`` / ``until`` (epoch seconds) keep the calls made in
    ``[since, until)``; a run left with no call is dropped. ``format_of(path)``
    may name the format of a file known by where it was found (a Codex
    session directory), instead of sniffing it.
    """
    table = importers()
    forced = None
    if format_in is not None:
        forced = table.get(format_in)
        if forced is None:
            raise TraceError(f"unknown trace format {format_in!r}; known: {', '.join(table)}")
    ctx = ImportContext(strict=strict, run_key=run_key)
    files = without_owned(expand(list(paths)))
    runs: list[TraceRun] = []
    seen: dict[str, tuple[int, bool]] = {}  # run id -> (position in runs, from a streaming format)
    formats: dict[str, str] = {}
    skipped: list[str] = []

    def add(run: TraceRun, streams: bool, file_name: str) -> None:
        if since is not None or until is not None:
            run = within(run, since, until)
            if not run.calls:
                return
        earlier = seen.get(run.run_id)
        if earlier is not None and streams and earlier[1]:
            runs[earlier[0]] = merge_runs(runs[earlier[0]], run)
            return
        if earlier is not None:
            run = rename_run(run, f"{run.run_id}@{file_name}")
        seen[run.run_id] = (len(runs), streams)
        runs.append(run)

    for n, path in enumerate(files, start=1):
        file = str(path)
        if on_file is not None:
            on_file(n, len(files), file)

        def bad_line(line: int, message: str, f: str = file) -> None:
            ctx.issue(f, line, message)

        try:
            text = decode(read_bytes(path), file, None if strict else bad_line)
        except TraceError as exc:
            if strict:
                raise
            ctx.issue(file, exc.line or 0, f"file skipped: {exc.message}")
            skipped.append(file)
            continue
        if not text.strip():
            ctx.issue(file, 0, "empty trace file")
            continue
        known = format_of(path) if format_of is not None else None
        imp = forced or (table[known] if known in table else None) or detect(text[:SNIFF_CHARS], file)
        formats[file] = imp.name
        streams = bool(getattr(imp, "streams", False))
        file_runs: list[TraceRun] = []
        try:
            file_runs.extend(_checked(imp.read(file, text, ctx), ctx, file, imp.name))
        except TraceError as exc:
            if strict:  # a file that cannot be parsed is malformed input, as a malformed record is
                raise (
                    exc if isinstance(exc, MalformedRecord) else MalformedRecord(exc.message, file=file, line=exc.line)
                ) from exc
            # a file that cannot be parsed (truncated, not JSON) is reported and skipped; the others are replayed
            ctx.issue(file, exc.line or 0, f"file skipped: {exc.message}")
            skipped.append(file)
            continue
        for run in file_runs:
            add(run, streams, path.name)
    for name in dict.fromkeys(formats.values()):
        finish = getattr(table[name], "finish", None)  # what an importer held back until every file was read
        for run in _checked(finish(ctx) if finish is not None else (), ctx, "", name):
            add(run, bool(getattr(table[name], "streams", False)), Path(run.file).name)
    adjustments = tuple(ctx.state.get("adjustments", {}).values())
    return TraceSet(tuple(runs), tuple(ctx.issues), formats, tuple(ctx.notes), tuple(skipped), adjustments)


def _checked(found: Iterable[TraceRun], ctx: ImportContext, file: str, reader: str) -> Iterator[TraceRun]:
    """An importer's runs with every call replay cannot take reported (located) and left out.

    Every importer's calls pass the same check (:func:`governor.inputs.trace_call_problem`). An
    importer that fails part-way (a bug, not a bad record: those it reports itself) is reported for
    the file instead of aborting the whole load; what it read before is kept.
    """
    try:
        for run in found:
            kept = []
            for call in run.calls:
                problem = trace_call_problem(call)
                if problem is None:
                    kept.append(call)
                else:
                    ctx.issue(call.file, call.line, problem, call.where)
            if len(kept) == len(run.calls):
                yield run
            elif kept:
                yield replace(run, calls=tuple(c if c.index == i else replace(c, index=i) for i, c in enumerate(kept)))
    except (TraceError, GeneratorExit):
        raise
    except Exception as exc:  # noqa: BLE001 - reported, located at the file, never a crash of the whole replay
        ctx.issue(file, 0, f"the {reader} reader stopped: {type(exc).__name__}: {exc}")


def within(run: TraceRun, since: float | None, until: float | None) -> TraceRun:
    """The run's calls made in ``[since, until)``, renumbered."""
    lo = float("-inf") if since is None else since
    hi = float("inf") if until is None else until
    kept = [c for c in run.calls if lo <= c.timestamp < hi]
    if len(kept) == len(run.calls):
        return run
    return replace(run, calls=tuple(c if c.index == i else replace(c, index=i) for i, c in enumerate(kept)))


def rename_run(run: TraceRun, run_id: str) -> TraceRun:
    calls = tuple(replace(c, run_id=run_id, metadata={**c.metadata, "run_id": run_id}) for c in run.calls)
    return replace(run, run_id=run_id, calls=calls)


def merge_runs(a: TraceRun, b: TraceRun) -> TraceRun:
    """One run from two parts read from different files: calls in time order, the later outcome wins."""
    calls = sorted((*a.calls, *b.calls), key=lambda c: c.timestamp)  # stable: file order breaks ties
    ordered = tuple(c if c.index == i else replace(c, index=i) for i, c in enumerate(calls))
    return replace(a, calls=ordered, outcome=b.outcome or a.outcome, metadata={**a.metadata, **b.metadata})


def group_calls(calls: Iterable[TraceCall], outcomes: dict[str, str] | None = None) -> list[TraceRun]:
    """Runs from loose calls: grouped by run id (first-seen order), ordered by time then line."""
    by_run: dict[str, list[TraceCall]] = {}
    for c in calls:
        by_run.setdefault(c.run_id, []).append(c)
    runs = []
    for run_id, items in by_run.items():
        items.sort(key=lambda c: (c.timestamp, c.line))
        ordered = tuple(c if c.index == i else replace(c, index=i) for i, c in enumerate(items))
        runs.append(TraceRun(run_id, ordered, (outcomes or {}).get(run_id), {}, items[0].file))
    return runs
