#!/usr/bin/env python3
"""Fleet bench: `tokenscan.spark.replay` on Spark local[2] (and `tokenscan.ray.replay` on a
2-CPU local Ray) vs `tokenscan replay` on the same captures.

Writes a directory of N synthetic captures (`tokenscan synth`, one per "node"), then times,
best of --runs:
  (a) `tokenscan replay DIR/*.parquet` (release build, all cores, NDJSON findings to a file),
  (b) Spark local[2]: `tokenscan.spark.replay(spark, DIR).write.parquet(...)`, the session
      already started (its start-up is reported apart),
  (c) with --ray: Ray (num_cpus=2): `tokenscan.ray.replay(DIR)` (materialized), Ray already
      started (its start-up is reported apart);
and reports events/s of each, its ratio to (a), the number of tasks and the time per task
beyond (a)'s wall time (the overhead per task), and checks each found the same
(capture, event_index, rule_id) triples as (a).

Beside each wall time it prints what the machine was doing, since a shared machine's numbers
measure its load too: the 1-minute load average before and after the run, the CPU time the
run's own processes used (user+system, the engine's JVM or workers included), and the whole
machine's busy CPU over the run (all processes, the bench's included).

Usage (needs pyspark and Java, ray for --ray; the release CLI from
`cargo build --release -p tokenscan-cli` and the wheel installed in the running Python):
    python bench/spark_bench.py [--nodes 8] [--events 2000000] [--runs 3] [--ray]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
TOKENSCAN = Path(os.environ.get("TOKENSCAN_CLI", ROOT / "target" / "release" / "tokenscan"))
TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> float:
    """CPU seconds (user+system) of `root` and its live descendants, their reaped children included."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(d.name), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        times[pid] = sum(int(x) for x in fields[11:15]) / TICK  # utime stime cutime cstime
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo.extend(children.get(pid, []))
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = v[3] + v[4]
    return (sum(v) - idle) / TICK, sum(v) / TICK


def timed(label: str, run: Callable[[], None], runs: int) -> float:
    """Best wall time of `runs` calls of `run`, each printed with the load around it."""
    best = float("inf")
    for i in range(runs):
        load0, cpu0, (busy0, all0) = os.getloadavg()[0], tree_cpu(os.getpid()), machine_busy()
        t = time.perf_counter()
        run()
        wall = time.perf_counter() - t
        cpu, (busy1, all1) = tree_cpu(os.getpid()) - cpu0, machine_busy()
        cores = os.cpu_count() or 1
        print(
            f"  {label} run {i + 1}: wall {wall:.2f} s, own CPU {cpu:.1f} s, machine busy "
            f"{(busy1 - busy0) / (all1 - all0) * cores:.2f} of {cores} cores, load {load0:.2f} -> {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        best = min(best, wall)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=8, help="captures in the directory")
    ap.add_argument("--events", type=int, default=2_000_000, help="events per capture")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ray", action="store_true", help="also time tokenscan.ray on a local Ray")
    args = ap.parse_args()

    import tokenscan.spark as tspark  # sets PYSPARK_PYTHON before the session starts
    from pyspark.sql import SparkSession

    work = Path(tempfile.mkdtemp(prefix="tokenscan-spark-bench-"))
    fleet = work / "fleet"
    fleet.mkdir()
    for i in range(args.nodes):
        out = fleet / f"node-{i:03}.parquet"
        subprocess.run(
            [str(TOKENSCAN), "synth", "-o", str(out), "--events", str(args.events), "--seed", str(i + 1),
             "--token-reads-per-million", "200"],
            check=True,
        )
    files = sorted(str(p) for p in fleet.glob("*.parquet"))
    events = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    print(f"{TOKENSCAN} ({subprocess.run([str(TOKENSCAN), '--version'], capture_output=True, text=True).stdout.strip()})")
    print(f"captures {len(files)} in {fleet}, events {events:,}, {os.cpu_count()} cores", flush=True)

    def cli() -> None:
        subprocess.run(
            [str(TOKENSCAN), "replay", *files, "--format", "ndjson", "--quiet", "-o", str(work / "cli.ndjson"), "--force"],
            check=False,
        )

    cli_best = timed("(a) CLI", cli, args.runs)
    cli_keys = {
        (r["capture"], r["event_index"], r["rule_id"])
        for r in (json.loads(line) for line in (work / "cli.ndjson").read_text().splitlines())
    }
    print(f"(a) tokenscan replay: {cli_best:.2f} s, {events / cli_best:,.0f} events/s, findings {len(cli_keys):,}")

    t = time.perf_counter()
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "4g")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    start_up = time.perf_counter() - t
    runs = iter(range(args.runs))

    def on_spark() -> None:
        tspark.replay(spark, fleet).write.mode("overwrite").parquet(str(work / f"spark-{next(runs)}"))

    spark_best = timed("(b) Spark", on_spark, args.runs)
    got = spark.read.parquet(str(work / "spark-0")).select("capture", "event_index", "rule_id").collect()
    spark_keys = {(r[0], r[1], r[2]) for r in got}
    spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
    tasks = spark.read.parquet(*files).rdd.getNumPartitions()
    spark.stop()
    print(f"(b) Spark local[2]:   {spark_best:.2f} s, {events / spark_best:,.0f} events/s (session start {start_up:.1f} s)")
    print(f"    b/a = {spark_best / cli_best:.2f}; read tasks {tasks}; overhead per task "
          f"{(spark_best - cli_best) / max(tasks, 1) * 1000:.0f} ms")
    same = spark_keys == cli_keys
    print("    same (capture, event_index, rule_id) as the CLI:", same, flush=True)

    if args.ray:
        import logging

        import ray

        import tokenscan.ray as tray

        t = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        ray_start = time.perf_counter() - t
        found: list[object] = []

        def on_ray() -> None:
            found[:] = [tray.replay(fleet)]

        ray_best = timed("(c) Ray", on_ray, args.runs)
        ds = found[0]
        ray_keys = {(r["capture"], r["event_index"], r["rule_id"]) for r in ds.select_columns(  # type: ignore[attr-defined]
            ["capture", "event_index", "rule_id"]).take_all()}
        ray.shutdown()
        print(f"(c) Ray (2 CPUs):     {ray_best:.2f} s, {events / ray_best:,.0f} events/s (Ray start {ray_start:.1f} s)")
        print(f"    c/a = {ray_best / cli_best:.2f}; tasks {len(files)} (one per capture); overhead per task "
              f"{(ray_best - cli_best) / len(files) * 1000:.0f} ms")
        print("    same (capture, event_index, rule_id) as the CLI:", ray_keys == cli_keys)
        same = same and ray_keys == cli_keys
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
