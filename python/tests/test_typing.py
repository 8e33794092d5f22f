"""The stubs match the compiled module (stubtest) and the package type-checks (mypy --strict)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tokenscan
from conftest import REPO

pytest.importorskip("mypy")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True)


def test_stubs_match_the_compiled_module() -> None:
    done = run("mypy.stubtest", "tokenscan._tokenscan", "--mypy-config-file", str(REPO / "pyproject.toml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_package_and_tests_type_check() -> None:
    done = run("mypy", "--config-file", str(REPO / "pyproject.toml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_public_name_is_documented() -> None:
    assert tokenscan.__doc__
    for name in tokenscan.__all__:
        obj = getattr(tokenscan, name)
        if name == "__version__":
            assert isinstance(obj, str)
            continue
        assert obj.__doc__, f"{name} has no docstring"
        for attr in dir(obj):
            if attr.startswith("_") and attr not in ("__arrow_c_stream__", "_repr_html_"):
                continue
            member = getattr(obj, attr)
            if callable(member) and getattr(member, "__module__", None) != "builtins":
                assert member.__doc__, f"{name}.{attr} has no docstring"
