"""The package ships ``py.typed``: users' type checkers read our hints, so they must hold.

mypy checks the whole package with the settings in pyproject.toml (the optional
frameworks and litellm are read, not checked). A hint that does not say what the
code holds fails here with mypy's report.
"""

from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_type_checks(tmp_path: Path) -> None:
    out, err, status = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            str(ROOT / "governor"),
        ]
    )
    assert status == 0, out + err
    assert "Success" in out
