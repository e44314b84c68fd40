"""Claude Code session transcripts (``~/.claude/projects/<project>/<session>.jsonl``).

Counting rules (docs/replay.md):

- A call is an ``assistant`` line whose ``message`` has ``usage``. Claude Code
  writes one line per content block of a response, each repeating the
  message's usage: lines with the same ``message.id`` + ``requestId`` are one
  call (the line with the most output tokens wins, for versions that wrote
  partial usage while streaming). The key is counted once per load, across
  files: a session resumed with ``--fork-session`` and a subagent sidechain
  replay the parent's messages, and those replays are not new calls. A
  forked file copies the parent's lines with their original times, earlier
  than the file's own first line: such a call belongs to the file that holds
  it at its time, and counts in the fork only when that file is not read.
- An API error line (``isApiErrorMessage``; model ``<synthetic>``) is an
  errored call with no usage, on the session's last model (its request never
  names one). Other ``<synthetic>`` messages (an interruption, a reply Claude
  Code wrote itself) made no API call and are not calls.
- Tokens: Anthropic's ``input_tokens`` excludes the cache, so input is
  ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``;
  cache writes are ``cache_creation_input_tokens``, of which
  ``cache_creation.ephemeral_1h_input_tokens`` have the 1-hour TTL;
  ``service_tier`` and ``speed`` are kept for pricing. Old versions'
  ``costUSD`` is the recorded cost.
- The run is the ``sessionId``. Subagent transcripts
  (``<session>/subagents/agent-<id>.jsonl``) are read with their session, as
  child runs ``<session>/agent-<id>`` (metadata ``parent_run_id``, ``subagent``
  from ``agent-<id>.meta.json``). Metadata: ``project`` (cwd), ``git_branch``,
  ``entrypoint``, ``client_version``, ``agent: claude-code``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from governor.traces import _fields as f
from governor.traces._io import decode, json_lines, read_bytes
from governor.traces.model import TraceCall, TraceRun
from governor.traces.registry import ImportContext, register

AGENT = "claude-code"
ERROR_MODEL = "<synthetic>"
SEEN = "claude-code.calls"  # ImportContext.seen scope: (message id, request id) counted in this load
HELD = "claude-code.replayed"  # calls a fork copied, waiting to see if their original session is read


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".jsonl"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def session_file_of(path: Path) -> Path | None:
    """``<session>.jsonl`` for a file under ``<session>/subagents/``, when it exists."""
    if path.parent.name != "subagents" or not path.name.startswith("agent-"):
        return None
    session_dir = path.parent.parent
    for name in (f"{session_dir.name}.jsonl", f"{session_dir.name}.jsonl.gz"):
        candidate = session_dir.parent / name
        if candidate.exists():
            return candidate
    return None


class ClaudeCodeImporter:
    name = "claude-code"
    streams = True  # a session resumed later appends to its file, or continues in another
    description = "Claude Code session transcripts (~/.claude/projects/<project>/<session>.jsonl)"

    def sniff(self, head: str) -> bool:
        return '"sessionId"' in head and ('"parentUuid"' in head or '"leafUuid"' in head or '"queue-operation"' in head)

    def owner_of(self, path: Path) -> Path | None:
        if path.name.endswith(".meta.json") and path.parent.name == "subagents":  # read with its transcript
            stem = path.name[: -len(".meta.json")]
            return next(
                (p for p in (path.with_name(stem + ".jsonl"), path.with_name(stem + ".jsonl.gz")) if p.exists()), None
            )
        return session_file_of(path)

    def read(self, file: str, text: str, ctx: ImportContext) -> Iterator[TraceRun]:
        path = Path(file)
        parent = session_file_of(path)
        if parent is not None or path.parent.name == "subagents":  # a subagent transcript read on its own
            yield from self._file(file, text, ctx, parent_session=None, agent_file=path)
            return
        runs = list(self._file(file, text, ctx, parent_session=None, agent_file=None))
        yield from runs
        session = runs[0].run_id if runs else _stem(path)
        sub_dir = path.parent / _stem(path) / "subagents"
        if sub_dir.is_dir():
            for sub in sorted(sub_dir.iterdir()):
                if sub.name.startswith("agent-") and sub.name.endswith((".jsonl", ".jsonl.gz")):
                    sub_text = decode(read_bytes(sub), str(sub))
                    yield from self._file(str(sub), sub_text, ctx, parent_session=session, agent_file=sub)

    def _file(
        self, file: str, text: str, ctx: ImportContext, *, parent_session: str | None, agent_file: Path | None
    ) -> Iterator[TraceRun]:
        seen = ctx.seen(SEEN)
        here: dict[tuple[Any, Any], tuple[list[dict[str, Any]], int]] = {}  # key -> where (repeats of one message)
        calls: list[dict[str, Any]] = []
        parser = TranscriptParser()
        replayed: list[dict[str, Any]] = []
        for line, rec, err in json_lines(text):
            if err is not None:
                ctx.issue(file, line, err)
                continue
            try:
                call = parser.feed(rec, line)
            except ValueError as exc:
                ctx.issue(file, line, str(exc))
                continue
            if call is None:
                continue
            key = (call["message_id"], call["request_id"])
            if key in here:
                bucket, k = here[key]
                earlier = bucket[k]
                if call["output_tokens"] > earlier["output_tokens"]:
                    bucket[k] = {**call, "line": earlier["line"], "timestamp": earlier["timestamp"]}
                continue
            if key in seen:
                continue  # a replay of a message counted in another file (fork, sidechain)
            # a call older than its file's first line is history a fork copied: counted here only if
            # no other file of this load holds it (see finish)
            bucket = replayed if parser.is_history(call) else calls
            here[key] = (bucket, len(bucket))
            bucket.append(call)
            if bucket is calls:
                seen.add(key)
        if not calls and not replayed:
            return
        session = parser.session
        if session is None:
            ctx.issue(file, 0, "no line names a sessionId; the file's calls are skipped")
            return
        run_id, run_meta = session, dict(parser.meta)
        if agent_file is not None:
            agent_id = _stem(agent_file)
            run_id = f"{session}/{agent_id}"
            run_meta["parent_run_id"] = parent_session or session
            run_meta["subagent"] = _subagent_type(agent_file) or next(
                (c["attribution"] for c in calls if c["attribution"]), None
            )
        held = ctx.state.setdefault(HELD, {})
        for call in replayed:
            held.setdefault((call["message_id"], call["request_id"]), (file, run_id, run_meta, call))
        if calls:
            yield TraceRun(run_id, tuple(self._calls(file, run_id, calls, run_meta)), None, run_meta, file)

    def finish(self, ctx: ImportContext) -> Iterator[TraceRun]:
        """History copied by a fork whose original session was not in this load: counted in the fork."""
        seen = ctx.seen(SEEN)
        orphans: dict[str, list[Any]] = {}
        for key, (file, run_id, run_meta, call) in ctx.state.pop(HELD, {}).items():
            if key not in seen:
                seen.add(key)
                orphans.setdefault(run_id, [file, run_meta, []])[2].append(call)
        for run_id, (file, run_meta, calls) in orphans.items():
            yield TraceRun(run_id, tuple(self._calls(file, run_id, calls, run_meta)), None, run_meta, file)

    @staticmethod
    def _calls(file: str, run_id: str, calls: list[dict[str, Any]], run_meta: dict[str, Any]) -> Iterator[TraceCall]:
        calls.sort(key=lambda c: (c["timestamp"], c["line"]))
        base = {"run_id": run_id, "agent": AGENT, **{k: v for k, v in run_meta.items() if v is not None}}
        for i, c in enumerate(calls):
            yield TraceCall(
                call_id=c["request_id"] or c["message_id"] or f"{run_id}#{i + 1}",
                file=file,
                line=c["line"],
                run_id=run_id,
                index=i,
                timestamp=c["timestamp"],
                model=c["model"],
                input_tokens=c["input_tokens"],
                output_tokens=c["output_tokens"],
                cache_read_tokens=c["cache_read_tokens"],
                cache_write_tokens=c["cache_write_tokens"],
                cache_write_1h_tokens=c["cache_write_1h_tokens"],
                cost_usd=c["cost_usd"],
                error=c["error"],
                service_tier=c["service_tier"],
                speed=c["speed"],
                metadata=base,
            )


class TranscriptParser:
    """One transcript file's lines, in order, to its calls: the one parser of the importer and the
    hook (``governor hook claude-code``, which feeds it the lines appended since its last run and
    keeps :meth:`state` between runs). :meth:`feed` returns the call a line reports (repeats of one
    message included: the caller dedupes by ``(message_id, request_id)``) or None; a bad line
    raises ValueError with the reason."""

    META = (
        ("cwd", "project"),
        ("gitBranch", "git_branch"),
        ("entrypoint", "entrypoint"),
        ("version", "client_version"),
    )

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        state = state or {}
        self.session: str | None = f.text(state.get("session"))
        self.last_model: str | None = f.text(state.get("last_model"))
        started = state.get("started")
        self.started: float | None = float(started) if isinstance(started, (int, float)) else None
        meta = state.get("meta")
        self.meta: dict[str, Any] = (
            {str(k): v for k, v in meta.items() if isinstance(v, str)} if isinstance(meta, dict) else {}
        )

    def state(self) -> dict[str, Any]:
        """What :meth:`__init__` needs to go on reading the same file later."""
        return {"session": self.session, "last_model": self.last_model, "started": self.started, "meta": self.meta}

    def is_history(self, call: dict[str, Any]) -> bool:
        """A call older than the file's first line: history a fork copied from its parent session."""
        return self.started is not None and call["timestamp"] < self.started

    def feed(self, rec: Any, line: int) -> dict[str, Any] | None:
        if not isinstance(rec, dict):
            raise ValueError("line is not a JSON object")
        if self.session is None and f.text(rec.get("sessionId")):
            self.session = rec["sessionId"]
        for field, name in self.META:
            value = f.text(rec.get(field))
            if value is not None and name not in self.meta:
                self.meta[name] = value
        if self.started is None and isinstance(rec.get("timestamp"), str):
            try:
                self.started = f.timestamp(rec["timestamp"])
            except ValueError:
                pass
        if rec.get("type") != "assistant":
            return None
        call = call_of(rec, line, self.last_model)
        if call is not None and call["model"] != ERROR_MODEL and not call["error"]:
            self.last_model = call["model"]
        return call


def call_of(rec: dict[str, Any], line: int, last_model: str | None) -> dict[str, Any] | None:
    """The call an ``assistant`` line reports, None for a line without usage; ValueError if malformed."""
    msg = rec.get("message")
    if not isinstance(msg, dict):
        raise ValueError("assistant line has no 'message' object")
    usage = msg.get("usage")
    api_error = bool(rec.get("isApiErrorMessage"))
    if usage is None and not api_error:
        return None  # a line without usage is not a call (very old versions, hand-made lines)
    if not isinstance(usage, dict):
        raise ValueError("message.usage must be an object")
    model = f.text(msg.get("model"))
    if model is None:
        raise ValueError("message.model is missing")
    if model == ERROR_MODEL and not api_error:
        return None  # a message Claude Code wrote itself (an interruption, a canned reply): no API call
    error = None
    if api_error:
        status = rec.get("apiErrorStatus")
        error = f.text(rec.get("error")) or "api_error"
        error = f"{error} (HTTP {status})" if isinstance(status, int) else error
        model = last_model or model
    fresh, cr, cw, out = f.counts(
        usage,
        "message.usage",
        "input_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "output_tokens",
    )
    creation = usage.get("cache_creation")
    w1 = 0
    if isinstance(creation, dict):
        w5, w1 = f.counts(
            creation, "message.usage.cache_creation", "ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"
        )
        if w5 + w1 > cw:
            raise ValueError(f"message.usage.cache_creation ({w5 + w1}) exceeds cache_creation_input_tokens ({cw})")
    return {
        "message_id": f.text(msg.get("id")) or f.text(rec.get("uuid")),
        "request_id": f.text(rec.get("requestId")),
        "line": line,
        "timestamp": f.timestamp(rec.get("timestamp")),
        "model": model,
        "input_tokens": fresh + cr + cw,
        "cache_read_tokens": cr,
        "cache_write_tokens": cw,
        "cache_write_1h_tokens": w1,
        "output_tokens": out,
        "service_tier": f.text(usage.get("service_tier")),
        "speed": f.text(usage.get("speed")),
        "cost_usd": f.cost(rec.get("costUSD"), "costUSD"),
        "error": error,
        "attribution": f.text(rec.get("attributionAgent")),
    }


def _subagent_type(agent_file: Path) -> str | None:
    meta = agent_file.with_name(_stem(agent_file) + ".meta.json")
    try:
        doc = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return f.text(doc.get("agentType")) if isinstance(doc, dict) else None


register(ClaudeCodeImporter())
