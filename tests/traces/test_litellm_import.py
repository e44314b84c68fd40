"""LiteLLM StandardLoggingPayload JSONL written by a real litellm CustomLogger around mock_response calls."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from governor._litellm import litellm
from governor.traces import load_traces


@pytest.fixture(scope="module")
def payload_file(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Runs real litellm calls (mock responses, a router fallback) and writes each standard_logging_object.

    Module-scoped: litellm wires its callback list into its loggers once per process.
    """
    tmp_path = tmp_path_factory.mktemp("litellm")
    lt = litellm()
    from litellm.integrations.custom_logger import CustomLogger

    path = tmp_path / "payloads.jsonl"
    written: list[dict[str, Any]] = []

    class Writer(CustomLogger):
        def log_success_event(self, kwargs, response_obj, start_time, end_time):  # type: ignore[no-untyped-def]
            written.append(kwargs["standard_logging_object"])

        def log_failure_event(self, kwargs, response_obj, start_time, end_time):  # type: ignore[no-untyped-def]
            written.append(kwargs["standard_logging_object"])

    writer = Writer()
    saved = list(lt.callbacks)
    lt.callbacks = [writer]
    try:
        for run, n in (("run-1", 2), ("run-2", 1)):
            for i in range(n):
                lt.completion(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": f"{run} step {i}"}],
                    mock_response="done",
                    max_tokens=64,
                    metadata={"requester_metadata": {"run": run, "agent": "coder"}},
                    user="alice",
                )
        router = lt.Router(
            model_list=[
                {
                    "model_name": "primary",
                    "litellm_params": {"model": "gpt-4o", "mock_response": Exception("overloaded")},
                },
                {"model_name": "backup", "litellm_params": {"model": "gpt-4o-mini", "mock_response": "fallback ok"}},
            ],
            fallbacks=[{"primary": ["backup"]}],
            num_retries=0,
        )
        router.completion(
            model="primary",
            messages=[{"role": "user", "content": "run-3"}],
            metadata={"requester_metadata": {"run": "run-3"}},
        )
        deadline = time.time() + 10
        while len(written) < 5 and time.time() < deadline:
            time.sleep(0.05)  # litellm logs success callbacks on a worker thread
    finally:
        lt.callbacks = saved
    assert len(written) == 5, f"expected 5 logged calls, got {len(written)}"
    path.write_text("".join(json.dumps(p, default=str) + "\n" for p in written), encoding="utf-8")
    return path, written


def test_runs_by_run_key_and_retries_by_trace_id(payload_file) -> None:  # type: ignore[no-untyped-def]
    path, written = payload_file
    ts = load_traces([path], run_key="run")
    assert ts.formats[str(path)] == "litellm"
    runs = {r.run_id: r for r in ts.runs}
    assert sorted(runs) == ["run-1", "run-2", "run-3"]
    assert len(runs["run-1"].calls) == 2 and len(runs["run-2"].calls) == 1
    for run_id in ("run-1", "run-2"):
        for c in runs[run_id].calls:
            src = next(p for p in written if p["id"] == c.call_id)
            assert (c.input_tokens, c.output_tokens) == (src["prompt_tokens"], src["completion_tokens"])
            assert c.cost_usd == pytest.approx(src["response_cost"])
            assert c.metadata["agent"] == "coder" and c.metadata["user"] == "alice"
            assert c.max_tokens == 64 and c.messages and c.error is None
    failed, fallback = runs["run-3"].calls
    assert failed.error is not None and failed.model == "gpt-4o" and failed.input_tokens == 0
    assert fallback.error is None and fallback.model == "gpt-4o-mini"
    assert failed.retry_group == fallback.retry_group is not None


def test_without_run_key_runs_follow_the_trace_id(payload_file) -> None:  # type: ignore[no-untyped-def]
    path, written = payload_file
    ts = load_traces([path])
    assert len(ts.runs) == len({p["trace_id"] for p in written})


def test_malformed_lines_are_skipped_and_reported(payload_file, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path, written = payload_file
    lines = path.read_text().splitlines()
    broken = dict(written[0], prompt_tokens="twelve")
    lines[1] = json.dumps(broken, default=str)
    lines.insert(3, "{truncated")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    ts = load_traces([bad], run_key="run")
    assert [(i.line, i.message.split(" ")[0]) for i in ts.issues] == [(2, "prompt_tokens"), (4, "invalid")]
    assert ts.calls == 4


def test_replay_of_litellm_payloads_through_the_cli(payload_file, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from governor.cli import main

    path, written = payload_file
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "apiVersion: governor/v1\nkind: Policy\nmetadata: {name: p}\n"
        "routes:\n  - {id: to-mini, match: {model: gpt-4o}, to: gpt-4o-mini}\n"
    )
    out = tmp_path / "r.json"
    assert main(["replay", str(policy), str(path), "--run-key", "run", "--format", "json", "-o", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["totals"]["calls"] == 5 and rep["totals"]["runs"] == 3
    assert rep["totals"]["calls_rerouted"] == 1
    assert rep["totals"]["cost_usd_recorded"] == pytest.approx(sum(p["response_cost"] or 0 for p in written), abs=1e-9)


def test_a_run_split_over_two_files_is_merged_in_time_order(payload_file, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path, _ = payload_file
    lines = path.read_text().splitlines(keepends=True)
    (tmp_path / "a.jsonl").write_text("".join(lines[1::2]))
    (tmp_path / "b.jsonl").write_text("".join(lines[0::2]))
    whole = {r.run_id: r for r in load_traces([path], run_key="run").runs}
    split = {r.run_id: r for r in load_traces([tmp_path / "a.jsonl", tmp_path / "b.jsonl"], run_key="run").runs}
    assert sorted(split) == sorted(whole)
    for run_id, run in whole.items():
        assert [c.call_id for c in split[run_id].calls] == [c.call_id for c in run.calls]
        assert [c.index for c in split[run_id].calls] == list(range(len(run.calls)))
