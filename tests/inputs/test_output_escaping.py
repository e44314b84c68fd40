"""What the governor writes from untrusted text: keys scrubbed from error text, Markdown and HTML escaped."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from governor import Governor
from governor.policy.loader import load_policy_text
from governor.redact import scrub
from governor.replay.engine import Replayer
from governor.replay.html import render_html
from governor.replay.render import md_text, render_markdown
from governor.replay.report import build_report
from governor.traces import load_traces
from tests.engine.conftest import HEADER, MSGS, Clock

KEY = "sk-proj-" + "Ab3" * 16


def test_a_key_in_provider_error_text_never_reaches_the_trace(tmp_path: Path) -> None:
    """The finding: provider error text, which can carry a key, was written verbatim to traces."""
    trace = tmp_path / "t.jsonl"
    gov = Governor(load_policy_text(HEADER, "p.yaml"), clock=Clock(), record_to=trace, observers=False)
    d = gov.check(model="gpt-4o", messages=MSGS)
    gov.record(
        d,
        input_tokens=0,
        output_tokens=0,
        error=RuntimeError(f"Error code: 401 - Incorrect API key provided: {KEY}. Bearer {KEY}"),
    )
    gov.close()
    text = trace.read_text()
    assert KEY not in text and KEY[8:20] not in text
    record = [json.loads(line) for line in text.splitlines() if '"record"' in line][0]
    assert record["error"].startswith("RuntimeError: Error code: 401 - Incorrect API key provided: sk-proj-[redacted]")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_scrub_never_leaves_an_embedded_key(prefix: str) -> None:
    assert KEY not in scrub(f"{prefix} {KEY} {prefix}")


def test_markdown_and_html_reports_show_trace_text_as_text(tmp_path: Path) -> None:
    """The finding: the Markdown report passed HTML and `|` from traces unescaped."""
    hostile = "<img src=x onerror=alert(1)>|**bold**|[link](http://x)\n# heading"
    trace = tmp_path / "t.jsonl"
    gov = Governor(load_policy_text(HEADER, "p.yaml"), clock=Clock(), record_to=trace, observers=False)
    for _ in range(3):
        d = gov.check(model="gpt-4o", messages=MSGS, metadata={"run_id": hostile, "agent": hostile})
        gov.record(d, input_tokens=100, output_tokens=10)
    gov.close()
    policy = load_policy_text(HEADER, "p.yaml")
    report = build_report(Replayer(policy).replay(load_traces([trace])), policy)
    md = render_markdown(report)
    assert "<img" not in md and "**bold**" not in md and "[link](" not in md and "\n# heading" not in md
    assert md_text(hostile) in md  # the run is still named, as text
    for line in md.splitlines():
        if line.startswith("|") and "img" in line:
            assert line.count(" | ") + 2 == line.count("|") - line.count("\\|")  # no extra columns
    html = render_html(report)
    assert "<img" not in html
