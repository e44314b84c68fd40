"""Helpers for replay tests: run the real CLI in-process and read its JSON report."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from governor.cli import main


def run_cli(*argv: str) -> int:
    return main(list(argv))


@pytest.fixture
def replay_json(tmp_path: Path):  # type: ignore[no-untyped-def]
    """``replay_json(policy_text_or_path, *traces, *extra)`` -> the JSON report of ``governor replay``."""

    def go(policy: str | Path, *traces: str | Path, extra: tuple[str, ...] = ()) -> dict[str, Any]:
        if isinstance(policy, str) and "\n" in policy:
            path = tmp_path / "policy.yaml"
            path.write_text(policy, encoding="utf-8")
            policy = path
        out = tmp_path / "report.json"
        code = run_cli(
            "replay",
            str(policy),
            "--traces",
            *map(str, traces),
            "--format",
            "json",
            "-o",
            str(out),
            "--no-progress",
            *extra,
        )
        assert code == 0, f"governor replay exited {code}"
        return json.loads(out.read_text(encoding="utf-8"))

    return go


def tau2_files(tau2_dir: Path) -> list[Path]:
    files = sorted(tau2_dir.glob("*.json.gz"))
    assert files, f"no tau2 files in {tau2_dir}"
    return files


def tau2_docs(tau2_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(gzip.decompress(f.read_bytes())) for f in tau2_files(tau2_dir)]
