"""Claude Code and Codex importers on session files written by the real CLIs (tests/data/coding_agents).

The scripted upstream those CLIs ran against logged every call it answered
(upstream.jsonl, with the usage it returned): that log is the independent
count every importer result here is compared with.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from governor.cli import main
from governor.traces import load_traces

DATA = Path(__file__).resolve().parent.parent / "data" / "coding_agents"
CLAUDE = DATA / "claude" / "projects"
CODEX = DATA / "codex" / "sessions"


def upstream(api: str) -> list[dict[str, Any]]:
    rows = [json.loads(x) for x in (DATA / "upstream.jsonl").read_text().splitlines() if x.strip()]
    return [r for r in rows if r["api"] == api]


def claude_files() -> list[Path]:
    return sorted(p for p in CLAUDE.rglob("*.jsonl"))


def codex_files() -> list[Path]:
    return sorted(CODEX.rglob("rollout-*.jsonl"))


def test_the_recording_names_the_cli_versions() -> None:
    versions = (DATA / "VERSIONS").read_text()
    assert "2.1.197 (Claude Code)" in versions and "codex-cli 0.171.0" in versions


def test_claude_code_counts_each_upstream_call_once_with_its_tokens() -> None:
    ts = load_traces([CLAUDE])
    assert not ts.issues and set(ts.formats.values()) == {"claude-code"}
    calls = {c.call_id: c for r in ts.runs for c in r.calls}
    served = upstream("anthropic")
    ok = [s for s in served if s["status"] == 200]
    assert len(calls) == len(served)  # every call the upstream saw, once; nothing else
    for s in ok:
        c, u = calls[s["request_id"]], s["usage"]
        assert c.model == s["model"]
        assert c.input_tokens == u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
        assert c.cache_read_tokens == u["cache_read_input_tokens"]
        assert c.cache_write_tokens == u["cache_creation_input_tokens"]
        assert c.cache_write_1h_tokens == u["cache_creation"]["ephemeral_1h_input_tokens"]
        assert c.output_tokens == u["output_tokens"]
        assert c.service_tier == "standard" and c.error is None
        assert c.metadata["run_id"] == c.run_id.split("/")[0] or c.run_id.startswith(s["session"])
    # the transcript repeats a message's usage on each content-block line: more lines than calls
    usage_lines = sum(
        1 for p in claude_files() for x in p.read_text().splitlines() if '"usage"' in x and '"type":"assistant"' in x
    )
    assert usage_lines > len(calls)


def test_claude_code_api_error_is_an_errored_call() -> None:
    ts = load_traces([CLAUDE])
    errors = [c for r in ts.runs for c in r.calls if c.error]
    assert len(errors) == sum(1 for s in upstream("anthropic") if s["status"] == 400) == 1
    assert "HTTP 400" in errors[0].error and errors[0].input_tokens == errors[0].output_tokens == 0


def test_claude_code_fork_replays_count_in_the_original_session() -> None:
    ts = load_traces([CLAUDE])
    by_session = {s["request_id"]: s["session"] for s in upstream("anthropic") if s["status"] == 200}
    for r in ts.runs:
        for c in r.calls:
            if c.call_id in by_session:  # the session the upstream saw the call in (header x-claude-code-session-id)
                assert r.run_id.split("/")[0] == by_session[c.call_id], c.call_id
    # the fork alone: the history it copied counts in it, once, since its original is not read
    fork = next(r for r in ts.runs if len(r.calls) == 1 and r.calls[0].call_id == "req_scripted0007")
    alone = load_traces([fork.file])
    assert [c.call_id for r in alone.runs for c in r.calls] == [
        "req_scripted0001",
        "req_scripted0002",
        "req_scripted0007",
    ]


def test_claude_code_subagent_is_a_child_run_counted_once() -> None:
    ts = load_traces([CLAUDE])
    child = next(r for r in ts.runs if "/agent-" in r.run_id)
    parent_id = child.run_id.split("/")[0]
    assert child.metadata["parent_run_id"] == parent_id and child.metadata["subagent"] == "general-purpose"
    assert any(r.run_id == parent_id for r in ts.runs)
    meta = child.calls[0].metadata
    assert meta["agent"] == "claude-code" and meta["git_branch"] == "feature/replay"
    assert meta["client_version"] == "2.1.197" and meta["project"].endswith("/proj")
    # the subagent file named on its own (its session beside it) is read with its session, not twice
    sub = next(CLAUDE.rglob("agent-*.jsonl"))
    both = load_traces([sub, *claude_files()])
    assert both.calls == ts.calls


def test_codex_calls_are_the_growth_of_total_usage() -> None:
    ts = load_traces([CODEX])
    assert not ts.issues and set(ts.formats.values()) == {"codex"}
    served = upstream("responses")
    calls = sorted((c for r in ts.runs for c in r.calls), key=lambda c: c.timestamp)
    assert len(calls) == len(served)
    for c, s in zip(calls, served, strict=True):
        u = s["usage"]
        assert c.model == s["model"]
        assert c.input_tokens == u["input_tokens"]  # includes the cached part
        assert c.cache_read_tokens == u["input_tokens_details"]["cached_tokens"]
        assert c.output_tokens == u["output_tokens"]
        assert c.reasoning_tokens == u["output_tokens_details"]["reasoning_tokens"]
        assert c.run_id == s["session"]
    # summing each file's final total (what a naive reader does) counts the fork's inherited history again
    finals = []
    for p in codex_files():
        events = [json.loads(x) for x in p.read_text().splitlines() if '"token_count"' in x and '"info":{' in x]
        finals.append(events[-1]["payload"]["info"]["total_token_usage"]["input_tokens"])
    assert sum(finals) > sum(c.input_tokens for c in calls) == sum(s["usage"]["input_tokens"] for s in served)


def test_codex_fork_is_its_own_run_without_the_parents_usage() -> None:
    ts = load_traces([CODEX])
    fork = next(r for r in ts.runs if r.metadata.get("parent_run_id"))
    assert any(r.run_id == fork.metadata["parent_run_id"] for r in ts.runs)
    assert [c.input_tokens for c in fork.calls] == [
        s["usage"]["input_tokens"] for s in upstream("responses") if s["session"] == fork.run_id
    ]


def test_gzip_and_formats_detected_together(tmp_path: Path) -> None:
    for src in (CLAUDE, CODEX):
        for p in src.rglob("*"):
            if p.is_file():
                out = tmp_path / src.name / p.relative_to(src)
                out.parent.mkdir(parents=True, exist_ok=True)
                if p.suffix == ".jsonl":
                    out.with_name(out.name + ".gz").write_bytes(gzip.compress(p.read_bytes()))
                else:
                    shutil.copy(p, out)
    plain, packed = load_traces([CLAUDE, CODEX]), load_traces([tmp_path])
    assert not packed.issues
    key = lambda ts: sorted((c.call_id, c.input_tokens, c.output_tokens) for r in ts.runs for c in r.calls)  # noqa: E731
    assert key(packed) == key(plain)


def _corrupt(lines: list[str], at: int, how: str) -> list[str]:
    out = list(lines)
    if how == "json":
        out[at] = out[at][: len(out[at]) // 2]
    elif how == "count":
        out[at] = out[at].replace('"output_tokens":', '"output_tokens":-', 1)
    return out


def test_malformed_lines_are_located_and_the_rest_counted(tmp_path: Path) -> None:
    src = max(claude_files(), key=lambda p: p.stat().st_size)
    lines = src.read_text().splitlines()
    usage_at = [i for i, x in enumerate(lines) if '"usage"' in x and '"type":"assistant"' in x]
    bad = _corrupt(_corrupt(lines, 0, "json"), usage_at[-1], "count")
    out = tmp_path / src.name
    out.write_text("\n".join(bad) + "\n")
    ts = load_traces([out])
    located = sorted((i.line, i.message) for i in ts.issues)
    assert [line for line, _ in located] == [1, usage_at[-1] + 1]
    assert "invalid JSON" in located[0][1] and "output_tokens" in located[1][1]
    assert all(i.file == str(out) for i in ts.issues)
    whole = load_traces([src])
    lost = {json.loads(lines[usage_at[-1]])["requestId"]}
    assert {c.call_id for r in ts.runs for c in r.calls} == {c.call_id for r in whole.runs for c in r.calls} - lost

    rollout = codex_files()[0]
    rl = rollout.read_text().splitlines()
    tc = [i for i, x in enumerate(rl) if '"token_count"' in x and '"info":{' in x]
    rl[tc[0]] = rl[tc[0]].replace('"input_tokens":', '"input_tokens":"x","_":', 1)
    cx = tmp_path / rollout.name
    cx.write_text("\n".join(rl) + "\n")
    got = load_traces([cx])
    assert [(i.line, "total_token_usage.input_tokens" in i.message) for i in got.issues] == [(tc[0] + 1, True)]


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_claude_code_line_repeats_and_order_do_not_change_the_count(data: st.DataObject) -> None:
    """Any line of a real transcript repeated any number of times: the same calls and tokens."""
    src = max(claude_files(), key=lambda p: p.stat().st_size)
    lines = src.read_text().splitlines()
    repeats = data.draw(st.lists(st.integers(0, len(lines) - 1), max_size=12))
    mutated = list(lines)
    for i in sorted(repeats, reverse=True):
        mutated.insert(i + 1, lines[i])
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / src.name
        out.write_text("\n".join(mutated) + "\n")
        got = load_traces([out])
    want = load_traces([src])
    key = lambda ts: sorted((c.call_id, c.input_tokens, c.output_tokens) for r in ts.runs for c in r.calls)  # noqa: E731
    assert key(got) == key(want)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 100), st.booleans()), min_size=1, max_size=30))
def test_codex_deltas_sum_to_the_final_total(steps: list[tuple[int, int, bool]]) -> None:
    """A real rollout's token_count line re-emitted with growing or unchanged totals: the calls sum to the total."""
    rollout = codex_files()[0]
    lines = rollout.read_text().splitlines()
    template = json.loads(next(x for x in lines if '"token_count"' in x and '"info":{' in x))
    head = [x for x in lines if '"token_count"' not in x]
    total = Counter[str]()
    out_lines, grew = list(head), 0
    for k, (inp, out, same) in enumerate(steps):
        if not same or k == 0:
            total["input_tokens"] += inp
            total["output_tokens"] += out
            grew += 1 if (inp or out) else 0
        ev = json.loads(json.dumps(template))
        info = ev["payload"]["info"]
        usage = {
            "input_tokens": total["input_tokens"],
            "cached_input_tokens": 0,
            "cache_write_input_tokens": 0,
            "output_tokens": total["output_tokens"],
            "reasoning_output_tokens": 0,
            "total_tokens": total["input_tokens"] + total["output_tokens"],
        }
        info["total_token_usage"] = usage
        info["last_token_usage"] = usage if k == 0 else info["last_token_usage"]
        ev["timestamp"] = f"2026-12-03T16:{k // 60:02d}:{k % 60:02d}.000Z"
        out_lines.append(json.dumps(ev))
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / rollout.name
        path.write_text("\n".join(out_lines) + "\n")
        ts = load_traces([path])
    calls = [c for r in ts.runs for c in r.calls]
    assert sum(c.input_tokens for c in calls) == total["input_tokens"]
    assert sum(c.output_tokens for c in calls) == total["output_tokens"]
    assert len(calls) == grew


def test_cli_discovers_local_logs_with_a_time_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(CLAUDE, tmp_path / "claude" / "projects")
    shutil.copytree(CODEX, tmp_path / "codex" / "sessions")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex"))
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "apiVersion: governor/v1\nkind: Policy\nmetadata:\n  name: observe\ndefaults:\n  allow_unpriced: true\n"
    )

    def replay(*extra: str) -> dict[str, Any]:
        out = tmp_path / "r.json"
        assert main(["replay", str(policy), "--format", "json", "-o", str(out), "--no-progress", *extra]) == 0
        return json.loads(out.read_text())

    everything = replay("--claude-code", "--codex")
    assert everything["totals"]["calls"] == len(upstream("anthropic")) + len(upstream("responses"))
    only_codex = replay("--codex")
    assert only_codex["totals"]["calls"] == len(upstream("responses"))
    first = min(c.timestamp for r in load_traces([CODEX]).runs for c in r.calls)
    from datetime import datetime, timezone

    cut = datetime.fromtimestamp(first + 0.001, timezone.utc).isoformat()
    assert replay("--codex", "--until", cut)["totals"]["calls"] == 1
    assert replay("--codex", "--since", cut)["totals"]["calls"] == len(upstream("responses")) - 1
    assert main(["replay", str(policy), "--since", "last tuesday", "--codex"]) == 2
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "nowhere"))
    assert main(["replay", str(policy), "--codex"]) == 2


def test_a_file_in_the_codex_home_that_is_no_rollout_is_one_issue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(CODEX, tmp_path / "codex" / "sessions")
    stray = tmp_path / "codex" / "sessions" / "2026" / "stray.jsonl"
    shutil.copy(next(CLAUDE.rglob("*.jsonl")), stray)  # a real file of another format where rollouts live
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex"))
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "apiVersion: governor/v1\nkind: Policy\nmetadata:\n  name: observe\ndefaults:\n  allow_unpriced: true\n"
    )
    out = tmp_path / "r.json"
    assert main(["replay", str(policy), "--codex", "--format", "json", "-o", str(out), "--no-progress"]) == 0
    report = json.loads(out.read_text())
    assert report["totals"]["calls"] == len(upstream("responses"))
    assert [(s["file"], s["line"], "no Codex rollout line" in s["message"]) for s in report["skipped"]] == [
        (str(stray), 0, True)
    ]


def test_synthetic_messages_that_are_no_api_error_are_not_calls(tmp_path: Path) -> None:
    """Claude Code's own <synthetic> replies (the error line with its error marks removed) made no API call."""
    src = next(p for p in claude_files() if '"isApiErrorMessage":true' in p.read_text())
    lines = []
    for x in src.read_text().splitlines():
        rec = json.loads(x)
        if rec.get("isApiErrorMessage"):
            for key in ("isApiErrorMessage", "error", "errorDetails", "apiErrorStatus"):
                rec.pop(key, None)
        lines.append(json.dumps(rec))
    out = tmp_path / src.name
    out.write_text("\n".join(lines) + "\n")
    assert load_traces([src]).calls == 1 and load_traces([out]).calls == 0
