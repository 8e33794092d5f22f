#!/usr/bin/env python3
"""Spark bench: `tokenscan.spark.replay` on Spark local[2] vs `tokenscan replay` on the same captures.

Writes a directory of N synthetic captures (`tokenscan synth`, one per "node"), then times:
  (a) `tokenscan replay DIR/*.parquet` (release build, all cores, NDJSON findings to a file),
  (b) Spark local[2]: `tokenscan.spark.replay(spark, DIR).write.parquet(...)`, the session
      already started (its ~15 s start-up is reported apart), best of --runs;
and reports events/s of each, b/a, the number of Spark tasks and the time per task beyond
(a)'s per-event cost (the overhead per task), and checks both found the same
(capture, event_index, rule_id) triples.

Usage (needs pyspark and Java; the release CLI from `cargo build --release -p tokenscan-cli`
and the wheel installed in the running Python):
    python bench/spark_bench.py [--nodes 8] [--events 2000000] [--runs 3]
Do not read numbers from a loaded machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
TOKENSCAN = Path(os.environ.get("TOKENSCAN_CLI", ROOT / "target" / "release" / "tokenscan"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=8, help="captures in the directory")
    ap.add_argument("--events", type=int, default=2_000_000, help="events per capture")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    import tokenscan.spark as tspark  # sets PYSPARK_PYTHON before the session starts
    from pyspark.sql import SparkSession

    work = Path(tempfile.mkdtemp(prefix="tokenscan-spark-bench-"))
    fleet = work / "fleet"
    fleet.mkdir()
    for i in range(args.nodes):
        out = fleet / f"node-{i:03}.parquet"
        subprocess.run(
            [str(TOKENSCAN), "synth", "-o", str(out), "--events", str(args.events), "--seed", str(i + 1)], check=True
        )
    files = sorted(str(p) for p in fleet.glob("*.parquet"))
    events = sum(pq.ParquetFile(f).metadata.num_rows for f in files)

    cli_best = float("inf")
    for _ in range(args.runs):
        t = time.perf_counter()
        subprocess.run(
            [str(TOKENSCAN), "replay", *files, "--format", "ndjson", "--quiet", "-o", str(work / "cli.ndjson"), "--force"],
            check=False,
        )
        cli_best = min(cli_best, time.perf_counter() - t)
    cli_keys = {
        (r["capture"], r["event_index"], r["rule_id"])
        for r in (json.loads(line) for line in (work / "cli.ndjson").read_text().splitlines())
    }

    t = time.perf_counter()
    spark = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
    start_up = time.perf_counter() - t
    spark_best = float("inf")
    for i in range(args.runs):
        t = time.perf_counter()
        tspark.replay(spark, fleet).write.mode("overwrite").parquet(str(work / f"spark-{i}"))
        spark_best = min(spark_best, time.perf_counter() - t)
    got = spark.read.parquet(str(work / "spark-0")).select("capture", "event_index", "rule_id").collect()
    spark_keys = {(r[0], r[1], r[2]) for r in got}
    tasks = spark.read.parquet(*files).rdd.getNumPartitions()
    spark.stop()

    print(f"captures {len(files)}, events {events:,}, findings {len(cli_keys):,}")
    print(f"(a) tokenscan replay: {cli_best:.2f} s, {events / cli_best:,.0f} events/s")
    print(f"(b) Spark local[2]:   {spark_best:.2f} s, {events / spark_best:,.0f} events/s (session start {start_up:.1f} s)")
    print(f"b/a = {spark_best / cli_best:.2f}; read tasks {tasks}; overhead per task "
          f"{(spark_best - cli_best) / max(tasks, 1) * 1000:.0f} ms")
    same = spark_keys == cli_keys
    print("same (capture, event_index, rule_id) as the CLI:", same)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
