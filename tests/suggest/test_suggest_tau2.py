"""``governor suggest`` on the real tau2-bench traces, checked against figures computed here from the JSON.

The split, each run's calls, their recorded costs and tokens, and what a chosen
cap stops and saves are computed below by plain JSON parsing and arithmetic,
independently of the importer, the replay engine and the suggest code; the
suggestion's in-sample and held-out figures for its chosen caps must equal them.
The written policy must validate, its test file must pass under ``governor
test``, and ``governor replay`` of the written file must give the combined
figures it claims.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from governor.cli import main
from tests.replay.conftest import tau2_docs

DEFAULT_OUTPUT = 1024  # the engine's output allowance when a call sets no max_tokens and the policy no default


@dataclass
class Call:
    role: str
    model: str
    input: int
    output: int
    cost: float
    max_tokens: int | None
    time: float


@dataclass
class Run:
    run_id: str
    accepted: bool
    calls: list[Call]

    @property
    def start(self) -> float:
        return min(c.time for c in self.calls)

    @property
    def paid(self) -> float:
        return sum(c.cost for c in self.calls)


def _time(text: str) -> float:
    dt = datetime.fromisoformat(text)
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def _inclusive_input(m: dict[str, Any]) -> int:
    prompt = m["usage"]["prompt_tokens"]
    raw = (m.get("raw_data") or {}).get("usage") or {}
    cr = raw.get("cache_read_input_tokens") or 0
    cw = raw.get("cache_creation_input_tokens") or 0
    if (cr or cw) and raw.get("input_tokens") == prompt:
        return prompt + cr + cw
    return prompt


def read_runs(tau2_dir: Path) -> list[Run]:
    runs = []
    for doc in tau2_docs(tau2_dir):
        info = doc["info"]
        models = {"assistant": info["agent_info"]["llm"], "user": info["user_info"]["llm"]}
        limits = {
            "assistant": (info["agent_info"].get("llm_args") or {}).get("max_tokens"),
            "user": (info["user_info"].get("llm_args") or {}).get("max_tokens"),
        }
        for sim in doc["simulations"]:
            calls = []
            for m in sim["messages"]:
                if m.get("usage") is None:
                    continue
                assert m.get("timestamp") and m.get("cost") is not None  # what this computation relies on
                calls.append(
                    Call(
                        role=m["role"],
                        model=models[m["role"]],
                        input=_inclusive_input(m),
                        output=m["usage"]["completion_tokens"],
                        cost=m["cost"],
                        max_tokens=limits[m["role"]],
                        time=_time(m["timestamp"]),
                    )
                )
            reward = (sim.get("reward_info") or {}).get("reward") or 0
            runs.append(Run(run_id=sim["id"], accepted=reward >= 1, calls=calls))
    assert len({r.run_id for r in runs}) == len(runs)
    return runs


def split(runs: list[Run], holdout: float = 0.3) -> tuple[list[Run], list[Run]]:
    ordered = sorted(runs, key=lambda r: (r.start, r.run_id))
    n_fit = len(runs) - math.floor(len(runs) * holdout)
    return ordered[:n_fit], ordered[n_fit:]


def stop_index(run: Run, knob: str, value: float, rates: dict[str, tuple[float, float]]) -> int | None:
    """0-based index of the call the cap blocks (ending the run), counting agent calls only; None: never."""
    calls = tokens = 0
    spent = 0.0
    for k, c in enumerate(run.calls):
        if c.role != "assistant":
            continue
        out = DEFAULT_OUTPUT if c.max_tokens is None else c.max_tokens
        if knob == "run-calls" and calls >= value:
            return k
        if knob == "run-tokens" and tokens + c.input + out > value:
            return k
        if knob == "run-usd":
            rin, rout = rates[c.model]
            if spent + c.input * rin + out * rout > value + 1e-12:
                return k
        calls += 1
        tokens += c.input + c.output
        spent += c.cost
    return None


def figures(runs: list[Run], knob: str, value: float, rates: dict[str, tuple[float, float]]) -> dict[str, Any]:
    paid = governed = 0.0
    acc_stopped = rej_stopped = kept = 0
    for r in runs:
        at = stop_index(r, knob, value, rates)
        paid += r.paid
        governed += r.paid if at is None else sum(c.cost for c in r.calls[:at])
        if at is not None:
            acc_stopped += r.accepted
            rej_stopped += not r.accepted
        kept += r.accepted and at is None
    accepted = sum(r.accepted for r in runs)
    return {
        "runs": len(runs),
        "accepted": accepted,
        "paid_usd": paid,
        "saved_usd": paid - governed,
        "accepted_stopped": acc_stopped,
        "rejected_stopped": rej_stopped,
        "cost_per_accepted_before": paid / accepted if accepted else None,
        "cost_per_accepted_after": governed / kept if kept else None,
    }


def _rates(models: set[str]) -> dict[str, tuple[float, float]]:
    from governor.pricing import PriceTable

    out = {}
    for m in models:
        price = PriceTable().lookup(m)
        assert price is not None, m
        out[m] = (price.input, price.output)
    return out


@pytest.fixture(scope="module")
def runs(tau2_dir: Path) -> list[Run]:
    return read_runs(tau2_dir)


@pytest.fixture(scope="module")
def suggested(tau2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("suggest")
    code = main(
        [
            "suggest",
            str(tau2_dir),
            "--match",
            "agent=agent",
            "-o",
            str(out / "suggested.yaml"),
            "--format",
            "json",
            "--report",
            str(out / "report.json"),
            "--html",
            str(out / "report.html"),
            "--jobs",
            "2",
        ]
    )
    assert code == 0
    return out, json.loads((out / "report.json").read_text(encoding="utf-8"))


def test_the_suggested_policy_validates_and_its_tests_pass(suggested: tuple[Path, dict[str, Any]]) -> None:
    out, report = suggested
    from governor.policy.loader import load_policy

    policy = load_policy(out / "suggested.yaml")
    picked = {p["rule_id"] for p in report["combined"]["picks"]}
    assert picked, "the tau2 runs hold rejected runs that cost more than any accepted one: something is suggested"
    assert picked == {r.id for g in (policy.stop, policy.budgets, policy.context) for r in g}
    assert main(["validate", str(out / "suggested.yaml")]) == 0
    assert report["written"]["cases"] >= 2 * len([p for p in picked if "run-" in p])
    assert main(["test", str(out / "suggested.test.yaml")]) == 0
    text = (out / "suggested.yaml").read_text(encoding="utf-8")
    for p in report["combined"]["picks"]:
        assert p["basis"] in text  # the evidence is in the comments


def test_the_default_picks_stop_no_accepted_fit_run(suggested: tuple[Path, dict[str, Any]]) -> None:
    _, report = suggested
    assert report["combined"]["fit"]["accepted_stopped"] == 0
    assert report["combined"]["fit"]["accepted_trimmed"] == 0
    for k in report["knobs"]:
        if k["pick"] is not None:
            assert k["pick"]["fit"]["accepted_stopped"] == 0 and k["pick"]["fit"]["accepted_trimmed"] == 0


def test_the_split_is_by_time(suggested: tuple[Path, dict[str, Any]], runs: list[Run]) -> None:
    _, report = suggested
    fit, held = split(runs)
    assert report["split"]["by"] == "time"
    assert (report["split"]["fit_runs"], report["split"]["held_out_runs"]) == (len(fit), len(held))
    assert max(r.start for r in fit) <= min(r.start for r in held)


@pytest.mark.parametrize("knob", ["run-calls", "run-tokens", "run-usd"])
def test_the_chosen_caps_figures_equal_an_independent_computation(
    suggested: tuple[Path, dict[str, Any]], runs: list[Run], knob: str
) -> None:
    _, report = suggested
    fit, held = split(runs)
    rates = _rates({c.model for r in runs for c in r.calls if c.role == "assistant"})
    (entry,) = [k for k in report["knobs"] if k["knob"] == knob]
    points = [entry["pick"]] if entry["pick"] else []
    points += entry["candidates"][:2]  # and the tightest ones, which do stop accepted runs
    for p in points:
        for part, mine in (("fit", fit), ("held_out", held)):
            want = figures(mine, knob, p["value"], rates)
            got = p[part]
            where = f"{knob} {p['value']} {part}"
            assert got["runs"] == want["runs"] and got["accepted"] == want["accepted"], where
            assert got["paid_usd"] == pytest.approx(want["paid_usd"], abs=1e-5), where
            assert got["saved_usd"] == pytest.approx(want["saved_usd"], abs=1e-5), where
            assert got["accepted_stopped"] == want["accepted_stopped"], where
            assert got["rejected_stopped"] == want["rejected_stopped"], where
            assert got["unknown_stopped"] == 0 and got["unpriced_runs"] == 0, where
            for key in ("cost_per_accepted_before", "cost_per_accepted_after"):
                assert got[key] == pytest.approx(want[key], abs=1e-5), where


def test_replaying_the_written_policy_gives_the_combined_figures(
    suggested: tuple[Path, dict[str, Any]], runs: list[Run], tau2_dir: Path, tmp_path: Path
) -> None:
    out, report = suggested
    fit, held = split(runs)
    for part, mine in (("fit", fit), ("held_out", held)):
        ids = {r.run_id for r in mine}
        # the other part's runs get no outcome, and are left out of the sums below
        outcomes = tmp_path / f"{part}.csv"
        with outcomes.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["run_id", "outcome"])
            w.writerows([r.run_id, "accepted" if r.accepted else "rejected"] for r in mine)
        rep = tmp_path / f"{part}.json"
        code = main(["replay", str(out / "suggested.yaml"), str(tau2_dir), "--format", "json", "-o", str(rep)])
        assert code == 0
        rows = [r for r in json.loads(rep.read_text(encoding="utf-8"))["runs"] if r["run_id"] in ids]
        saved = sum(r["cost_usd_recorded"] - r["cost_usd_governed"] for r in rows)
        stopped = {r["run_id"] for r in rows if r["stopped_at_call"] is not None}
        want = report["combined"][part]
        assert saved == pytest.approx(want["saved_usd"], abs=1e-5), part
        accepted = {r.run_id for r in mine if r.accepted}
        assert len(stopped & accepted) == want["accepted_stopped"], part
        assert len(stopped - accepted) == want["rejected_stopped"] + want["unknown_stopped"], part


def test_the_report_renders_the_frontier(suggested: tuple[Path, dict[str, Any]]) -> None:
    out, report = suggested
    from governor.suggest.render import render_markdown, render_text

    html = (out / "report.html").read_text(encoding="utf-8")
    for part in ("fit part", "held out"):
        assert f'<svg width="760" height="320" role="img" aria-label="Pareto frontier, {part}">' in html
    assert html.count("<circle") >= 2 * sum(len(k["candidates"]) for k in report["knobs"])
    assert "<h2>Pareto frontier</h2>" in html and "<table>" in html
    front = report["frontier"]
    assert front and all(
        a["fit"]["accepted_stopped"] + a["fit"]["accepted_trimmed"]
        <= b["fit"]["accepted_stopped"] + b["fit"]["accepted_trimmed"]
        and a["fit"]["saved_usd"] < b["fit"]["saved_usd"]
        for a, b in zip(front, front[1:], strict=False)
    )
    for text in (render_text(report), render_markdown(report)):
        assert "Pareto frontier" in text and "held" in text


def test_no_accepted_outcomes_gets_a_message_instead_of_a_policy(
    tau2_dir: Path, runs: list[Run], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcomes = tmp_path / "all-rejected.csv"
    outcomes.write_text("run_id,outcome\n" + "".join(f"{r.run_id},rejected\n" for r in runs), encoding="utf-8")
    target = tmp_path / "suggested.yaml"
    code = main(["suggest", str(tau2_dir), "--outcomes", str(outcomes), "-o", str(target)])
    assert code == 1
    err = capsys.readouterr().err
    assert f"none of the {len(runs)} runs has an accepted outcome" in err and "--outcomes" in err
    assert not target.exists() and not (tmp_path / "suggested.test.yaml").exists()


def test_a_suggestion_extends_its_base_and_governor_diff_works_on_it_at_once(
    tau2_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import POLICIES_DIR

    base = POLICIES_DIR / "tau2-airline.yaml"
    target = tmp_path / "out" / "suggested.yaml"
    target.parent.mkdir()
    report = tmp_path / "report.json"
    argv = ["suggest", str(tau2_dir), "--base", str(base), "--match", "agent=agent", "--knob", "run-calls"]
    code = main([*argv, "-o", str(target), "--format", "json", "--report", str(report)])
    assert code == 0
    text = target.read_text(encoding="utf-8")
    assert "\nextends: ../../" in text and text.rstrip().count("tau2-airline.yaml") >= 1
    from governor.policy.loader import load_policy

    policy = load_policy(target)
    base_ids = {r.id for g in (load_policy(base).stop, load_policy(base).budgets) for r in g}
    assert base_ids <= {r.id for g in (policy.stop, policy.budgets) for r in g}  # the base's rules stay
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["base"] == str(base)
    assert main(["test", str(target.with_name("suggested.test.yaml"))]) == 0
    capsys.readouterr()
    assert main(["diff", str(base), str(target), "--traces", str(tau2_dir), "--format", "markdown"]) == 0
    diff = capsys.readouterr().out
    if data["combined"]["picks"]:
        assert "suggested-run-calls" in diff
