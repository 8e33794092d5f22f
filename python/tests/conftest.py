"""Shared fixtures: the repository's capture fixtures, the CLI, synthesized captures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"
PARQUET_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.parquet"))
NDJSON_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.ndjson"))
# The events of fixtures/pod-session.parquet each rule must flag (fixtures/EXPECTED.md, by hand).
POD_SESSION_ELASTIC = [30, 33, 36, 42, 72, 73, 77]
POD_SESSION_TRC108 = [32, 35, 44, 53, 60, 76, 82]


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


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory, cli: Path) -> list[Path]:
    """A directory tree of Parquet captures from "nodes" (the test_spark and test_ray fleets):
    the Parquet fixtures, and two synthesized captures rewritten with 500-event row groups
    (12 each, so an engine that splits files by row group splits them across tasks)."""
    root = tmp_path_factory.mktemp("fleet")
    scratch = tmp_path_factory.mktemp("synth")
    files = []
    for i, name in enumerate(PARQUET_FIXTURES):
        node = root / f"node-{i % 2}"
        node.mkdir(exist_ok=True)
        shutil.copy(FIXTURES / name, node / name)
        files.append(node / name)
    for seed in (1, 2):
        raw = scratch / f"raw-{seed}.parquet"
        subprocess.run(
            [str(cli), "synth", "-o", str(raw), "--events", "6000", "--seed", str(seed), "--token-reads-per-million", "3000"],
            check=True,
            capture_output=True,
        )
        dest = root / f"node-{seed}" / "deep" / f"synth-{seed}.parquet"
        dest.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pq.read_table(raw), dest, row_group_size=500, compression="zstd")
        files.append(dest)
    return sorted(files)


@pytest.fixture
def corrupt_capture(tmp_path: Path) -> Path:
    """`tmp_path/node-a/corrupt.parquet` (pod-session.parquet with its footer cut off),
    beside a good copy, `tmp_path/node-a/good.parquet`."""
    node = tmp_path / "node-a"
    node.mkdir()
    shutil.copy(FIXTURES / "pod-session.parquet", node / "good.parquet")
    corrupt = node / "corrupt.parquet"
    corrupt.write_bytes((FIXTURES / "pod-session.parquet").read_bytes()[:-100])
    return corrupt


@pytest.fixture(scope="session")
def long_name(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A capture and a rule about a value past ECS's `ignore_above` (1024 characters):
    pod-session.parquet with event 30's `comm` made 1,100 characters long, and the text of a
    rule matching `process.name` to exactly that name. Elasticsearch never matches such a
    value (not indexed), so the rule fires on event 30 only with `ignore_above=None`."""
    name = "x" * 1100
    table = pq.read_table(FIXTURES / "pod-session.parquet")
    comm = table["comm"].to_pylist()
    comm[30] = name
    table = table.set_column(table.schema.get_field_index("comm"), table.schema.field("comm"), pa.array(comm, pa.string()))
    path = tmp_path_factory.mktemp("long-name") / "long-comm.parquet"
    pq.write_table(table, path)
    rule = (
        '[rule]\nrule_id = "long-name"\nname = "a process name past ignore_above"\ndescription = "d"\n'
        f'severity = "low"\nrisk_score = 21\nlanguage = "eql"\nquery = \'\'\'process where process.name == "{name}"\'\'\'\n'
    )
    return path, rule


HEAD_RULE = """[rule]
name = "The first two execs"
rule_id = "first-execs"
severity = "low"
language = "eql"
query = '''process where event.action == "exec" | head 2'''
"""


@pytest.fixture(params=["sequence", "head"])
def whole_run_rule(request: pytest.FixtureRequest, fleet: list[Path]) -> tuple[str, str]:
    """A rule the CLI evaluates over a whole run of captures, and the start of the message
    the core refuses it with on a batch: test_sequences.py's sequence (matched across the
    run's captures by `container.id`), or `| head 2` (two findings in the whole run, checked
    here on the fleet, not two per capture)."""
    import tokenscan
    from test_sequences import RULE

    files = [str(f) for f in fleet]
    assert len(tokenscan.replay(files, tokenscan.Rules.from_text(HEAD_RULE, "head.toml"))) == 2
    if request.param == "sequence":
        return RULE, "rule seq-token-then-tool is an EQL sequence"
    return HEAD_RULE, "rule first-execs ends in `| head 2`"


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


@pytest.fixture(scope="session")
def long_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pod-session.parquet repeated 1,200 times: 99,600 events, 16,800 findings.

    For the tests that a call releases the GIL: they need a call lasting many
    switch intervals, and a release build replays the 120-copy capture in
    about 30 ms."""
    dest = tmp_path_factory.mktemp("long") / "pod-session-x1200.parquet"
    replicate(FIXTURES / "pod-session.parquet", dest, 1200)
    return dest


T = TypeVar("T")


class Spinning:
    """What a thread running Python saw while another thread made a call.

    ``call_start`` and ``call_end`` are `time.perf_counter()` readings taken by
    the calling thread right before and right after the call; ``ticks`` are
    readings taken by the spinning thread, at most one per millisecond.
    """

    def __init__(self, call_start: float, call_end: float, ticks: list[float]) -> None:
        self.call_start = call_start
        self.call_end = call_end
        self.ticks = ticks

    @property
    def call_seconds(self) -> float:
        """How long the call took."""
        return self.call_end - self.call_start

    def ticks_in_middle_slices(self, slices: int = 4) -> list[int]:
        """Spinner readings in each of ``slices`` equal slices of the call's middle half."""
        quarter = self.call_seconds / 4
        lo, width = self.call_start + quarter, 2 * quarter / slices
        counts = [0] * slices
        for t in self.ticks:
            i = int((t - lo) // width) if width > 0 else -1
            if 0 <= i < slices:
                counts[i] += 1
        return counts

    def assert_ran_during_call(self, min_call_seconds: float = 0.05) -> None:
        """Fails unless the spinner ran Python throughout the middle half of the call.

        A call that held the GIL throughout would let the spinner run only
        before the native code started or after it returned (the interpreter
        hands the GIL over within a switch interval of the return, so a spin
        count alone proves nothing); the middle half of a call lasting many
        switch intervals lies inside the native code. The spinner must have
        run in each eighth of the call within that half. No rate is required:
        on a loaded machine the native code's own threads may leave it little
        CPU.
        """
        assert self.call_seconds >= min_call_seconds, f"the call took {self.call_seconds:.3f} s: too short to tell"
        slices = self.ticks_in_middle_slices()
        assert all(n > 0 for n in slices), (
            f"the other thread ran Python {slices} times in the four middle eighths of a "
            f"{self.call_seconds:.3f} s call: the call held the GIL"
        )


def run_spinning(call: Callable[[], T]) -> tuple[T, Spinning]:
    """Runs `call` in another thread while this one spins running Python bytecode,
    noting the time at most once a millisecond; returns the call's result and a
    `Spinning` that tells whether this thread ran while the call was in progress."""
    in_call = threading.Event()
    done = threading.Event()
    result: list[T] = []
    window: list[float] = []

    def work() -> None:
        in_call.set()
        window.append(time.perf_counter())
        value = call()
        window.append(time.perf_counter())
        result.append(value)
        done.set()

    t = threading.Thread(target=work)
    t.start()
    in_call.wait()
    ticks: list[float] = []
    last = 0.0
    while not done.is_set():
        now = time.perf_counter()
        if now - last >= 0.001:
            ticks.append(now)
            last = now
    t.join()
    return result[0], Spinning(window[0], window[1], ticks)
