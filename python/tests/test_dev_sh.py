"""The closing summary line of ``./dev.sh test`` counts a failed Python setup step.

``./dev.sh test`` ends with one line, ``tokenscan: N passed, N failed, N skipped``,
that people and CI read. A pip or maturin failure used to make the run exit
non-zero while that line still said ``0 failed``. These tests run dev.sh's own
``python_tests`` and ``summarize`` functions in a scratch directory whose
``.venv/bin/python`` is a stub that fails at a chosen step.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

DEV_SH = Path(__file__).resolve().parents[2] / "dev.sh"

# A stand-in for the venv's python: fails when its arguments contain $FAIL_AT.
STUB = """#!/bin/sh
case "$*" in *"$FAIL_AT"*) echo "stub: $* failed" >&2; exit 1 ;; esac
exit 0
"""

HARNESS = r"""
set -uo pipefail
eval "$(sed '/^case "\${1:-}" in/,$d' dev.sh)"
set +e
mkdir -p target
echo "test result: ok. 3 passed; 0 failed; 1 ignored; finished in 0.01s" >target/test-output.log
python_tests target/pytest-output.log
echo "python_tests exit $?"
summarize target/test-output.log target/pytest-output.log
"""


def run_with_failing_step(tmp_path: Path, fail_at: str) -> list[str]:
    """Run dev.sh's python_tests and summarize with the stub failing at ``fail_at``."""
    shutil.copy(DEV_SH, tmp_path / "dev.sh")
    py = tmp_path / ".venv" / "bin" / "python"
    py.parent.mkdir(parents=True)
    py.write_text(STUB)
    py.chmod(py.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "FAIL_AT": fail_at, "CARGO_TARGET_DIR": str(tmp_path / "target")}
    done = subprocess.run(
        ["bash", "-c", HARNESS], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    return done.stdout.strip().splitlines()


@pytest.mark.skipif(shutil.which("bash") is None, reason="dev.sh needs bash")
@pytest.mark.parametrize("fail_at", ["pip>=25.1", "--group test", "maturin build"])
def test_failed_setup_step_is_counted_in_summary(tmp_path: Path, fail_at: str) -> None:
    """A failing pip or maturin step is one failed test in the summary line."""
    lines = run_with_failing_step(tmp_path, fail_at)
    assert lines[0] == "python_tests exit 1"
    assert lines[-1] == "tokenscan: 3 passed, 1 failed, 1 skipped"
