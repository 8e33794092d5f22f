"""Shared fixtures: the repository's capture fixtures, the CLI, synthesized captures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Callable, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"
PARQUET_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.parquet"))
NDJSON_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.ndjson"))


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Runs the test from the repository root, so fixture paths read as the CLI's do."""
    monkeypatch.chdir(REPO)
    return REPO


def _build_cli() -> Path:
    """Builds (or finds up to date) the `tokenscan` binary with cargo and returns its path."""
    cargo = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
    out = subprocess.run(
        [cargo, "build", "--quiet", "-p", "tokenscan-cli", "--message-format=json"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            if Path(msg["executable"]).name == "tokenscan":
                return Path(msg["executable"])
    raise RuntimeError("cargo built no `tokenscan` executable")


@pytest.fixture(scope="session")
def cli() -> Path:
    """The `tokenscan` CLI: $TOKENSCAN_CLI if set (./dev.sh sets it), else built with cargo."""
    given = os.environ.get("TOKENSCAN_CLI")
    if given:
        return Path(given)
    if shutil.which("cargo") is None and not (Path.home() / ".cargo" / "bin" / "cargo").exists():
        pytest.skip("no cargo to build the tokenscan CLI and TOKENSCAN_CLI is not set")
    return _build_cli()


def replicate(source: Path, dest: Path, times: int) -> int:
    """Writes a capture made of `source`'s events repeated `times` times; returns the event count."""
    table = pq.read_table(source)
    big = pa.concat_tables([table] * times)
    pq.write_table(big, dest, row_group_size=1 << 20, compression="zstd")
    return int(big.num_rows)


@pytest.fixture(scope="session")
def big_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pod-session.parquet repeated 120 times: 9,960 events, 1,680 findings.

    Small enough for a debug build of the module (what ./dev.sh test builds), big enough
    that one Python object per event or per finding would show."""
    dest = tmp_path_factory.mktemp("big") / "pod-session-x120.parquet"
    replicate(FIXTURES / "pod-session.parquet", dest, 120)
    return dest


T = TypeVar("T")


def run_spinning(call: Callable[[], T]) -> tuple[T, int]:
    """Runs `call` in another thread while this one spins running Python bytecode;
    returns its result and the spin count. Were the GIL held for the whole call,
    this thread could not run until it was over, and the count would stay near 0."""
    in_call = threading.Event()
    done = threading.Event()
    result: list[T] = []

    def work() -> None:
        in_call.set()
        result.append(call())
        done.set()

    t = threading.Thread(target=work)
    t.start()
    in_call.wait()
    spins = 0
    while not done.is_set():
        spins += 1
    t.join()
    return result[0], spins
