"""``.ci/run`` fails when a test fails, in either of its steps, and runs step 2 only after step 1 passed.

The steps themselves are what CI runs; here a scratch copy of ``.ci/run`` runs
beside a README whose test command we choose and a stand-in ``.ci/newest-deps``
that records that it ran and exits as told.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

README = """\
# x

Run the tests (a stand-in command):

    {command}

---
"""


def _ci(tmp_path: Path, command: str, newest_exit: int) -> subprocess.CompletedProcess[str]:
    (tmp_path / ".ci").mkdir()
    shutil.copy(REPO_ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    (tmp_path / ".ci" / "newest-deps").write_text(f"touch newest-ran\nexit {newest_exit}\n")
    (tmp_path / "README.md").write_text(README.format(command=command))
    return subprocess.run(["bash", str(tmp_path / ".ci" / "run")], cwd="/", capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("command", "newest_exit", "code", "newest_ran"),
    [
        ("true", 0, 0, True),
        ("echo step one && exit 1", 0, 1, False),  # a failing test command stops CI before step 2
        ("false && true", 0, 1, False),
        ("true", 1, 1, True),  # a failing newest-dependencies check fails CI
    ],
)
def test_ci_run_fails_when_a_step_fails(
    tmp_path: Path, command: str, newest_exit: int, code: int, newest_ran: bool
) -> None:
    proc = _ci(tmp_path, command, newest_exit)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert (tmp_path / "newest-ran").exists() == newest_ran
    assert f"+ {command}" in proc.stdout


def test_ci_run_without_a_test_command_in_the_readme_fails(tmp_path: Path) -> None:
    (tmp_path / ".ci").mkdir()
    shutil.copy(REPO_ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    (tmp_path / "README.md").write_text("# nothing to run\n")
    proc = subprocess.run(["bash", str(tmp_path / ".ci" / "run")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no test command found" in proc.stderr


def test_the_newest_dependencies_check_installs_no_lock_and_runs_the_core_subset() -> None:
    script = (REPO_ROOT / ".ci" / "newest-deps").read_text()
    assert "lock.txt" not in script and " -c " not in script  # no constraints: the index's newest releases
    assert "--upgrade-strategy eager" in script
    listed = script.split("CORE_TESTS=(", 1)[1].split(")", 1)[0].split()
    assert listed and all((REPO_ROOT / p).exists() for p in listed)
