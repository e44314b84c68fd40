"""The tau2 importer on the real shared files, and on copies with defects put in on purpose."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from governor.cli import main
from governor.errors import TraceError
from governor.traces import load_traces


@pytest.fixture(scope="module")
def sample(tau2_dir: Path) -> tuple[str, dict[str, Any]]:
    path = min(tau2_dir.glob("*.json.gz"), key=lambda p: p.stat().st_size)
    return path.name, json.loads(gzip.decompress(path.read_bytes()))


def _write(tmp_path: Path, name: str, doc: dict[str, Any]) -> Path:
    out = tmp_path / name
    out.write_bytes(gzip.compress(json.dumps(doc).encode()))
    return out


def _usage_positions(sim: dict[str, Any]) -> list[int]:
    return [j for j, m in enumerate(sim["messages"]) if m.get("usage") is not None]


def test_roles_models_labels_and_outcomes(sample) -> None:  # type: ignore[no-untyped-def]
    _, doc = sample
    ts_doc = doc
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        ts = load_traces([_write(Path(tmp), "s.json.gz", ts_doc)])
    agent, user = doc["info"]["agent_info"]["llm"], doc["info"]["user_info"]["llm"]
    for run, sim in zip(ts.runs, doc["simulations"], strict=False):
        assert run.run_id == sim["id"]
        expected = "accepted" if sim["reward_info"]["reward"] >= 1 else "rejected"
        assert run.outcome == expected
        msgs = [sim["messages"][j] for j in _usage_positions(sim)]
        assert [c.model for c in run.calls] == [agent if m["role"] == "assistant" else user for m in msgs]
        assert [c.metadata["agent"] for c in run.calls] == [
            "agent" if m["role"] == "assistant" else "user-simulator" for m in msgs
        ]
        # the prompt of call k is the conversation before its message
        first = _usage_positions(sim)[0]
        assert len(run.calls[0].messages) == first


def test_malformed_records_are_skipped_counted_and_located(sample, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    name, doc = sample
    doc = copy.deepcopy(doc)
    sims = doc["simulations"]
    j = _usage_positions(sims[0])[1]
    sims[0]["messages"][j]["usage"]["prompt_tokens"] = "many"
    k = _usage_positions(sims[1])[0]
    sims[1]["messages"][k]["timestamp"] = "yesterday"
    del sims[2]["messages"]
    path = _write(tmp_path, name, doc)
    ts = load_traces([path])
    where = sorted(i.where for i in ts.issues)
    assert where == sorted([f"simulations[0].messages[{j}]", f"simulations[1].messages[{k}]", "simulations[2]"])
    total = sum(len(_usage_positions(s)) for i, s in enumerate(sims) if i != 2)
    assert ts.calls == total - 2
    with pytest.raises(TraceError) as err:
        load_traces([path], strict=True)
    assert str(path) in str(err.value) and f"simulations[0].messages[{j}]" in str(err.value)


def test_cli_reports_skipped_records_and_strict_fails(sample, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    name, doc = sample
    doc = copy.deepcopy(doc)
    j = _usage_positions(doc["simulations"][0])[0]
    doc["simulations"][0]["messages"][j]["usage"]["completion_tokens"] = -1
    path = _write(tmp_path, name, doc)
    policy = tmp_path / "p.yaml"
    policy.write_text("apiVersion: governor/v1\nkind: Policy\nmetadata: {name: p}\ndefaults: {allow_unpriced: true}\n")
    out = tmp_path / "r.json"
    assert main(["replay", str(policy), str(path), "--format", "json", "-o", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["totals"]["skipped_records"] == 1
    (skipped,) = rep["skipped"]
    assert skipped["file"] == str(path) and skipped["where"] == f"simulations[0].messages[{j}]"
    assert "completion_tokens" in skipped["message"]
    assert main(["replay", str(policy), str(path), "--strict"]) == 1
    assert f"simulations[0].messages[{j}]" in capsys.readouterr().err
    assert main(["replay", str(policy), str(path)]) == 0
    assert "Skipped records" in capsys.readouterr().out


@pytest.mark.parametrize("inclusive", [True, False])
def test_anthropic_cache_counts_are_normalised_to_inclusive_input(sample, tmp_path: Path, inclusive: bool) -> None:  # type: ignore[no-untyped-def]
    name, doc = sample
    doc = copy.deepcopy(doc)
    sim = doc["simulations"][0]
    m = sim["messages"][_usage_positions(sim)[0]]
    prompt = m["usage"]["prompt_tokens"]
    cr, cw = 300, 50
    # litellm reports prompt_tokens inclusive of cache; Anthropic's own input_tokens excludes it
    raw_input = prompt - cr - cw if inclusive else prompt
    m["raw_data"] = {
        "usage": {
            "input_tokens": raw_input,
            "cache_read_input_tokens": cr,
            "cache_creation_input_tokens": cw,
            "output_tokens": 1,
        }
    }
    call = load_traces([_write(tmp_path, name, doc)]).runs[0].calls[0]
    assert (call.cache_read_tokens, call.cache_write_tokens) == (cr, cw)
    assert call.input_tokens == (prompt if inclusive else prompt + cr + cw)


def test_unknown_format_and_forced_format(tmp_path: Path, sample) -> None:  # type: ignore[no-untyped-def]
    name, doc = sample
    weird = tmp_path / "weird.json"
    weird.write_text('{"hello": 1}')
    with pytest.raises(TraceError) as err:
        load_traces([weird])
    assert "--format-in" in str(err.value)
    forced = load_traces([weird], format_in="tau2")
    assert forced.runs == () and len(forced.issues) == 1
    with pytest.raises(TraceError):
        load_traces([weird], format_in="nope")


def test_a_call_without_timestamp_is_kept_at_the_previous_calls_time(sample, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    name, doc = sample
    doc = copy.deepcopy(doc)
    sim = doc["simulations"][0]
    first, second = _usage_positions(sim)[:2]
    sim["messages"][second]["timestamp"] = None
    ts = load_traces([_write(tmp_path, name, doc)])
    assert ts.issues == ()
    calls = ts.runs[0].calls
    assert len(calls) == len(_usage_positions(sim))
    assert calls[1].timestamp == calls[0].timestamp


def test_tool_calls_take_openai_shape_so_trimming_counts_their_tokens(tau2_dir: Path) -> None:
    from governor.engine.tokens import TokenCounter

    path = tau2_dir / "ironshell_ironforge_v3_deepseek.json.gz"
    raw = json.loads(gzip.decompress(path.read_bytes()))
    first = next(c for s in raw["simulations"] for m in s["messages"] for c in (m.get("tool_calls") or []))
    traces = load_traces([path])
    calls = [c for r in traces.runs for c in r.calls if c.messages]
    sent = next(tc for c in calls for m in c.messages for tc in (m.get("tool_calls") or []) if tc["id"] == first["id"])
    assert sent["type"] == "function" and sent["function"]["name"] == first["name"]
    assert json.loads(sent["function"]["arguments"]) == first["arguments"]
    # the arguments now count: the same message without them is cheaper
    message = {"role": "assistant", "content": "", "tool_calls": [sent]}
    bare = {"role": "assistant", "content": ""}
    counter = TokenCounter()
    assert counter.count("gpt-4.1", [message])[0] > counter.count("gpt-4.1", [bare])[0] + 5
