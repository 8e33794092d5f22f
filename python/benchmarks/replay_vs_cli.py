"""Replay from Python versus the CLI on the same capture (the figure in BENCHMARKS.md).

Usage (from the repository root, with a release CLI and a release wheel installed):

    cargo build --release -p tokenscan-cli
    maturin build --release --out dist && pip install --force-reinstall dist/tokenscan-*.whl
    python python/benchmarks/replay_vs_cli.py --cli target/release/tokenscan

It makes two captures unless given ones: a realistic mix (`tokenscan synth`, rare token
reads) and a findings-heavy one (fixtures/pod-session.parquet repeated; one event in six
fires). For each it times, best of --repeat runs:

* cli      `tokenscan replay CAPTURE --format ndjson --quiet > /dev/null` (a whole process);
* python   `tokenscan.replay(CAPTURE)` and `.to_arrow()` inside one interpreter;
* python+  the same as a whole process: `python -c "import tokenscan; ..."` (interpreter
           start and imports included).

and prints a Markdown table; then the CPU time (user + system, all threads) of the CLI
process and of the Python call, alternating runs, which a busy machine disturbs less. Both sides run the same core (same source tree, release profile).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import tokenscan

REPO = Path(__file__).resolve().parents[2]


def best(times: list[float]) -> float:
    return min(times)


def time_process(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return best(times)


def time_python(capture: Path, repeat: int) -> tuple[float, int, int]:
    times = []
    findings = events = 0
    for _ in range(repeat):
        start = time.perf_counter()
        result = tokenscan.replay(capture)
        table = result.to_arrow()
        times.append(time.perf_counter() - start)
        findings, events = table.num_rows, result.summary()["events"]
    return best(times), findings, events


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return float(usage.ru_utime + usage.ru_stime)


def cpu_compare(cli: Path, capture: Path, repeat: int) -> tuple[list[float], list[float]]:
    """CPU seconds (user + system, all threads) of the CLI process and of the Python call,
    alternating: steadier than wall time on a machine shared with other work."""
    cli_cpu, py_cpu = [], []
    for _ in range(repeat):
        before = cpu_seconds(resource.RUSAGE_CHILDREN)
        subprocess.run(
            [str(cli), "replay", str(capture), "--format", "ndjson", "--quiet"], check=True, stdout=subprocess.DEVNULL
        )
        cli_cpu.append(cpu_seconds(resource.RUSAGE_CHILDREN) - before)
        before = cpu_seconds(resource.RUSAGE_SELF)
        tokenscan.replay(capture).to_arrow()
        py_cpu.append(cpu_seconds(resource.RUSAGE_SELF) - before)
    return sorted(cli_cpu), sorted(py_cpu)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cli", type=Path, default=REPO / "target" / "release" / "tokenscan")
    parser.add_argument("--events", type=int, default=2_000_000, help="events in the synthetic capture")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--capture", type=Path, action="append", help="use these captures instead")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        captures: list[tuple[str, Path]] = []
        if args.capture:
            captures = [(c.name, c) for c in args.capture]
        else:
            synth = Path(tmp) / "synth.parquet"
            subprocess.run(
                [str(args.cli), "synth", "--events", str(args.events), "-o", str(synth)],
                check=True,
                stderr=subprocess.DEVNULL,
            )
            captures.append((f"synth, {args.events:,} events", synth))
            pod = pq.read_table(REPO / "fixtures" / "pod-session.parquet")
            times = max(1, args.events // 4 // pod.num_rows)
            heavy = Path(tmp) / "pod-session-repeated.parquet"
            pq.write_table(pa.concat_tables([pod] * times), heavy, row_group_size=65_536, compression="zstd")
            captures.append((f"pod-session x{times:,}", heavy))

        print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs; {platform.system()} {platform.release()}")
        print(
            f"python {platform.python_version()}, pyarrow {pa.__version__}, tokenscan {tokenscan.__version__}; "
            f"best of {args.repeat}"
        )
        print()
        print("| capture | events | findings | CLI ndjson (s) | Python replay (s) | Python/CLI | Python process (s) | process/CLI |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        cpu_rows: list[tuple[str, list[float], list[float]]] = []
        for name, capture in captures:
            time_python(capture, 1)  # warm the page cache and the module
            cli = time_process([str(args.cli), "replay", str(capture), "--format", "ndjson", "--quiet"], args.repeat)
            py, findings, events = time_python(capture, args.repeat)
            code = f"import tokenscan; tokenscan.replay({str(capture)!r}).to_arrow()"
            proc = time_process([sys.executable, "-c", code], args.repeat)
            print(
                f"| {name} | {events:,} | {findings:,} | {cli:.3f} | {py:.3f} | {py / cli:.2f} | "
                f"{proc:.3f} | {proc / cli:.2f} |"
            )
            cpu_rows.append((name, *cpu_compare(args.cli, capture, args.repeat)))
        print()
        print(f"CPU seconds (user + system, all threads), {args.repeat} alternating runs:")
        print()
        print("| capture | CLI min / median | Python min / median | Python/CLI min / median |")
        print("|---|---:|---:|---:|")
        for name, c, p in cpu_rows:
            mc, mp = c[len(c) // 2], p[len(p) // 2]
            print(f"| {name} | {c[0]:.3f} / {mc:.3f} | {p[0]:.3f} / {mp:.3f} | {p[0] / c[0]:.2f} / {mp / mc:.2f} |")


if __name__ == "__main__":
    main()
