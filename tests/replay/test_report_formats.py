"""Report renderings: text, markdown, self-contained HTML, and the progress bar only on a terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import sys
import threading
import xml.dom.minidom
from pathlib import Path

from governor.cli import main

POLICY = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: fmt}
defaults: {allow_unpriced: true}
stop:
  - {id: cap, type: max_calls, max: 8}
"""


def _policy(tmp_path: Path) -> Path:
    p = tmp_path / "fmt.yaml"
    p.write_text(POLICY)
    return p


def test_text_markdown_and_html_agree_with_json(tmp_path: Path, tau2_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    policy = _policy(tmp_path)
    html = tmp_path / "report.html"
    assert (
        main(
            [
                "replay",
                str(policy),
                str(tau2_dir),
                "--format",
                "json",
                "-o",
                str(tmp_path / "r.json"),
                "--html",
                str(html),
            ]
        )
        == 0
    )
    rep = json.loads((tmp_path / "r.json").read_text())
    assert main(["replay", str(policy), str(tau2_dir)]) == 0
    text = capsys.readouterr().out
    assert f"blocked {rep['totals']['calls_blocked']:,}" in text
    assert "cap" in text and "Stopped runs" in text
    assert main(["replay", str(policy), str(tau2_dir), "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("## Replay of policy `fmt`")
    assert re.search(r"^\| cap \| stop \| " + str(rep["rules"][0]["fired"]) + r" \|", md, re.M)

    page = html.read_text()
    assert page.startswith("<!doctype html>")
    # self-contained: no scripts, no external fetches
    assert "<script" not in page and "src=" not in page and "href=" not in page and "@import" not in page
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(svgs) == 6  # spend over time, per run, cumulative, verdicts, rules, cost per accepted by model
    for svg in svgs:
        xml.dom.minidom.parseString(svg)  # well-formed
    stopped = sum(1 for r in rep["runs"] if r["stopped_at_call"])
    assert page.count('fill="#c0392b"><title>') >= 1  # stop points drawn on the cumulative chart
    assert stopped and "stopped at call 9 by cap" in page


def test_progress_bar_only_when_stderr_is_a_terminal(tmp_path: Path, tau2_dir: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    policy = _policy(tmp_path)
    assert main(["replay", str(policy), str(tau2_dir), "-o", os.devnull]) == 0
    assert "replaying" not in capsys.readouterr().err  # not a terminal: no bar
    master, slave = pty.openpty()
    seen: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            seen.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    tty = os.fdopen(slave, "w", buffering=1)
    monkeypatch.setattr(sys, "stderr", tty)
    try:
        assert main(["replay", str(policy), str(tau2_dir), "-o", os.devnull]) == 0
    finally:
        monkeypatch.undo()
        tty.close()
        reader.join(timeout=5)
        os.close(master)
    assert b"replaying [" in b"".join(seen)


def test_the_aggregate_bar_of_the_other_runs_is_unpriced_when_one_of_them_is() -> None:
    """Past MAX_BARS the cheapest runs share one bar: with an unpriced run among them, that bar is
    the '?' marker, never a partial sum that reads as what they cost."""
    from governor.replay import html as html_report

    def run(i: int, cost: float | None) -> dict[str, object]:
        return {"run_id": f"r{i}", "cost_usd_recorded": cost, "cost_usd_governed": cost, "stopped_at_call": None}

    priced = [run(i, 10.0 - i * 0.01) for i in range(html_report.MAX_BARS + 5)]
    svg = html_report.bars_per_run([*priced, run(999, None)])
    aggregate = re.findall(r"<title>the other (\d+) runs: (\w+) ([^<]+)</title>", svg)
    assert [(n, kind) for n, kind, _ in aggregate] == [("7", "recorded"), ("7", "governed")]
    assert all("unpriced" in value for _, _, value in aggregate), aggregate
    svg = html_report.bars_per_run(priced)
    assert all(
        "unpriced" not in value
        for _, _, value in re.findall(r"<title>the other (\d+) runs: (\w+) ([^<]+)</title>", svg)
    )
