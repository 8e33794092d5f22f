#!/usr/bin/env python3
"""Replay benchmark: tokenscan vs DuckDB vs the decode floor, on synthetic captures.

For each size it times, on the same file and with all cores:
  (a) `tokenscan replay` with both built-in rules (whole process, NDJSON findings to a file),
  (b) DuckDB executing both rules hand-translated to SQL (bench/rules.sql; the query only,
      inside its process, so Python's start-up is not counted against DuckDB),
  (c) the decode floor: `tokenscan decode-floor`, reading exactly the columns replay reads,
      with the same parallelism, doing nothing else.
It reports the best of N runs, events/s, a/b, a/c, peak RSS of each process, and checks that
(a) and (b) found exactly the same (rule, event) pairs.

Usage: bench/replay_bench.py [--sizes 5000000,10000000,20000000] [--runs 3]
(`./dev.sh bench` installs DuckDB into a venv, builds tokenscan in release mode and runs this.)
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKENSCAN = ROOT / "target" / "release" / "tokenscan"
WORK = ROOT / "target" / "bench"
RULES_SQL = ROOT / "bench" / "rules.sql"

DUCKDB_RUNNER = r"""
import duckdb, json, sys, time
sql = open(sys.argv[1]).read().replace('$capture', sys.argv[2])
con = duckdb.connect()
t = time.perf_counter()
rows = con.sql(sql).fetchall()
elapsed = time.perf_counter() - t
with open(sys.argv[3], 'w') as f:
    json.dump({'seconds': elapsed, 'rows': [[r, int(i)] for r, i in rows]}, f)
"""


def run(cmd):
    """Runs cmd, returns (wall seconds, peak RSS in MiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"command failed: {' '.join(map(str, cmd))}")
    return wall, usage.ru_maxrss / 1024


def ensure_capture(events):
    path = WORK / f"synth-{events}.parquet"
    if not path.exists():
        print(f"generating {path.name} ...", file=sys.stderr)
        subprocess.run([TOKENSCAN, "synth", "-o", path, "--events", str(events), "--seed", "7"], check=True)
    return path


def bench(events, runs):
    capture = ensure_capture(events)
    out_a = WORK / f"findings-{events}.ndjson"
    out_b = WORK / f"duckdb-{events}.json"
    a = min(
        (run([TOKENSCAN, "replay", capture, "-f", "ndjson", "-q", "--force", "-o", out_a]) for _ in range(runs)),
        key=lambda r: r[0],
    )
    b_best = None
    for _ in range(runs):
        _, rss = run([sys.executable, "-c", DUCKDB_RUNNER, RULES_SQL, capture, out_b])
        secs = json.loads(out_b.read_text())["seconds"]
        if b_best is None or secs < b_best[0]:
            b_best = (secs, rss)
    c = min((run([TOKENSCAN, "decode-floor", capture]) for _ in range(runs)), key=lambda r: r[0])
    found_a = {(f["rule_id"], f["event_index"]) for f in map(json.loads, out_a.read_text().splitlines())}
    found_b = {(r, i) for r, i in json.loads(out_b.read_text())["rows"]}
    return {
        "events": events,
        "a": a,
        "b": b_best,
        "c": c,
        "findings": len(found_a),
        "same": found_a == found_b,
        "only_a": sorted(found_a - found_b)[:5],
        "only_b": sorted(found_b - found_a)[:5],
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="5000000,10000000,20000000")
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    rows = [bench(int(s), args.runs) for s in args.sizes.split(",")]
    print(f"machine: {os.cpu_count()} cores; best of {args.runs} runs; events/s in millions; RSS in MiB")
    header = (
        f"{'events':>10} {'(a) replay s':>12} {'(b) duckdb s':>12} {'(c) floor s':>11} "
        f"{'a Mev/s':>8} {'b Mev/s':>8} {'c Mev/s':>8} {'a/b':>5} {'a/c':>5} "
        f"{'RSS a':>6} {'RSS b':>6} {'RSS c':>6} {'findings':>8} same"
    )
    print(header)
    ok = True
    for r in rows:
        n = r["events"]
        (a, ra), (b, rb), (c, rc) = r["a"], r["b"], r["c"]
        print(
            f"{n:>10} {a:>12.2f} {b:>12.2f} {c:>11.2f} {n / a / 1e6:>8.2f} {n / b / 1e6:>8.2f} {n / c / 1e6:>8.2f} "
            f"{a / b:>5.2f} {a / c:>5.2f} {ra:>6.0f} {rb:>6.0f} {rc:>6.0f} {r['findings']:>8} {'yes' if r['same'] else 'NO'}"
        )
        if not r["same"]:
            ok = False
            print(f"  only tokenscan: {r['only_a']}  only duckdb: {r['only_b']}")
    if not ok:
        sys.exit("tokenscan and DuckDB disagree on the findings")


if __name__ == "__main__":
    main()
