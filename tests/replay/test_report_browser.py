"""The HTML report in a real headless Chromium: it renders, every section is a real element, no console errors.

Also: every run is counted in the per-run chart and table, aggregated past
their limits and said so, on the real tau2 traces.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from governor.cli import main
from governor.replay import html as html_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]
REPO = Path(__file__).resolve().parents[2]


def _replay(tmp_path: Path, tau2_dir: Path) -> tuple[Path, dict]:  # type: ignore[type-arg]
    page, out = tmp_path / "report.html", tmp_path / "report.json"
    outcomes = tmp_path / "reviews.csv"
    outcomes.write_text("run_id,outcome\nno-such-run,accepted\n")
    assert (
        main(
            [
                "replay",
                str(REPO / "policies" / "tau2-airline.yaml"),
                str(tau2_dir),
                "--no-progress",
                "--format",
                "json",
                "-o",
                str(out),
                "--html",
                str(page),
                "--outcomes",
                str(outcomes),
            ]
        )
        == 0
    )
    return page, json.loads(out.read_text())


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium_without_console_errors(tmp_path: Path, tau2_dir: Path) -> None:
    page, report = _replay(tmp_path, tau2_dir)
    profile = tmp_path / "profile"
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert not [x for x in dom.stderr.splitlines() if "CONSOLE" in x or "Uncaught" in x]
    body = dom.stdout
    assert body.count("<svg") == 6 and body.count("<table") >= 10
    assert "<pre>" not in body  # the full report is tables, not Markdown in a <pre>
    for heading in (
        "Spend per week",
        "Savings per rule",
        "Runs the policy would stop",
        "Cost per accepted task",
        "Spend by model",
        "Spend by agent",
        "Low acceptance, high spend",
        "Full report",
    ):
        assert f">{heading}" in body, heading
    stopped = report["finops"]["stopped_runs"]
    rows = re.search(r">Runs the policy would stop</h2>.*?<tbody>(.*?)</tbody>", body, re.S)
    assert rows is not None and rows.group(1).count("<tr>") == stopped["shown"]
    first_outcomes = re.findall(r"<tr><td>[^<]*</td><td>([a-z]+)</td>", rows.group(1))
    assert first_outcomes == sorted(first_outcomes, key=lambda o: o != "accepted")  # accepted runs first
    assert "no-such-run" in body  # the outcome record that matched no run is shown
    shot = tmp_path / "shot.png"
    drawn = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={shot}",
            "--window-size=1200,4000",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert drawn.returncode == 0 and shot.stat().st_size > 20_000  # a page was painted, not a blank one


def test_every_run_counted_in_the_per_run_chart_and_table(
    tmp_path: Path, tau2_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, report = _replay(tmp_path, tau2_dir)
    runs = report["runs"]
    monkeypatch.setattr(html_report, "MAX_BARS", 40)
    monkeypatch.setattr(html_report, "MAX_ROWS", 30)
    page = html_report.render_html(report)
    assert f"the other {len(runs) - 39:,} runs together, so every run is counted" in page
    assert f"30 of {len(runs):,} runs one row each" in page and f"the other {len(runs) - 30:,} runs" in page
    bars = re.findall(r"<title>([^<]*): recorded \$([0-9.,]+)</title>", page)
    per_run = [b for b in bars if not b[0].startswith(("week", "day", "month"))]
    assert len(per_run) == 40
    total = sum(float(v.replace(",", "")) for _, v in per_run)
    assert total == pytest.approx(report["totals"]["cost_usd_recorded"], abs=0.0001 * 40)
    monkeypatch.undo()
    everything = html_report.render_html(report)
    assert f"Every run is drawn ({len(runs):,})." in everything
