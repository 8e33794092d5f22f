#!/usr/bin/env python3
"""Replay benchmark: tokenscan vs polars, DuckDB and DataFusion, on captures of several shapes.

First, every engine (tokenscan with and without context included) must return exactly the
findings derived by hand for a small capture of edge cases (bench/semantics_check.py).
Then, for every shape (bench/shapes.py; plus `tokenscan synth --seed 7`, the synthesizer's own data),
every size and both writers (pyarrow with default settings, and the same events rewritten by
`tokenscan convert`), it:
  1. checks that the capture holds no runc: init event (see shapes.py);
  2. runs every engine once and checks that each returns exactly tokenscan's findings, the set
     of (rule, event index); a disagreement stops the bench before anything is timed;
  3. times each engine N times and reports the median, with the peak RSS of the process:
     - tokenscan: the whole process, `tokenscan replay -q -f ndjson --no-context` ("ts") and
       the same with the findings' context columns filled ("ts+ctx"; the default);
     - polars, DuckDB, DataFusion (bench/engines.py): each run is a fresh Python process; the
       time is the whole query, reading the file included, measured inside that process
       (interpreter start-up and the engine's import are not counted against them). Each engine
       runs its query twice over: returning the hits with the event columns a finding carries
       (the same information tokenscan writes, `--columns`), and returning only the hits'
       (rule, event index) pairs ("rows only", the best engine's time in its own column);
     - the decode floor: `tokenscan decode-floor`, reading the columns replay reads, whole process.

Usage: bench/replay_bench.py [--sizes 5000000,20000000] [--runs 5] [--shapes low-card,...]
(`./dev.sh bench` installs the pinned engines into a venv, builds tokenscan (release) and runs this.)
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Everything that imports pyarrow or an engine runs in a child process (bench/shapes.py,
# bench/semantics_check.py, bench/engines.py): the peak RSS the kernel reports for a child
# includes its parent's at the fork, so this process stays small (about 10 MiB).
SHAPE_NAMES = ["low-card", "high-card", "exec-1pct", "exec-20pct", "host-mostly", "long-argv", "v2", "bursty"]
ROOT = HERE.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
TOKENSCAN = TARGET / "release" / "tokenscan"
WORK = ROOT / "target" / "bench"
ENGINES = ["polars", "duckdb", "datafusion"]


def run(cmd):
    """Runs cmd, returns (wall seconds, peak RSS in MiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"command failed: {' '.join(map(str, cmd))}")
    return wall, usage.ru_maxrss / 1024


def captures(shape, events, seed):
    """The pyarrow-written and tokenscan-written files of one shape and size, made if missing.

    Files tokenscan writes (`convert`, and `synth`'s own) are made again when
    the binary is newer than them: its writer may have changed the layout.
    """
    raw = WORK / f"{shape}-{events}-{'synth' if shape == 'synth' else 'pyarrow'}.parquet"
    conv = WORK / f"{shape}-{events}-tokenscan.parquet"
    built = TOKENSCAN.stat().st_mtime
    if shape == "synth" and raw.exists() and raw.stat().st_mtime < built:
        raw.unlink()
    if conv.exists() and conv.stat().st_mtime < built:
        conv.unlink()
    if not raw.exists():
        print(f"generating {raw.name} ...", file=sys.stderr)
        tmp = raw.with_suffix(".tmp")
        if shape == "synth":
            subprocess.run([TOKENSCAN, "synth", "-o", tmp, "--events", str(events), "--seed", str(seed), "--force",
                            "--compression", "snappy"], check=True)
        else:
            subprocess.run([sys.executable, HERE / "shapes.py", "generate", TOKENSCAN, shape, str(events), str(seed),
                            tmp], check=True)
        tmp.rename(raw)
    if not conv.exists():
        subprocess.run([TOKENSCAN, "convert", raw, "-o", conv, "--force"], check=True, stderr=subprocess.DEVNULL)
    return [("synth" if shape == "synth" else "pyarrow", raw), ("convert", conv)]


def tokenscan_findings(capture, out, context):
    """Command line of a tokenscan replay writing NDJSON findings to out."""
    cmd = [TOKENSCAN, "replay", capture, "-q", "-f", "ndjson", "--force", "-o", out]
    return cmd + ([] if context else ["--no-context"])


def engine_cmd(engine, capture, out, columns=False):
    """Command line of one engine run (bench/engines.py); `columns`: with the finding columns."""
    return [sys.executable, HERE / "engines.py", engine, capture, out] + (["--columns"] if columns else [])


def findings_of(capture):
    """Every engine's findings on capture, tokenscan's first (with and without context)."""
    out = WORK / "out.json"
    ts_out = WORK / "findings.ndjson"
    found = {}
    for name, ctx in (("ts", False), ("ts+ctx", True)):
        run(tokenscan_findings(capture, ts_out, ctx))
        # Line by line: the whole file read at once (tens of MB of findings with context)
        # would raise this process's RSS, which every later child's peak then includes.
        with ts_out.open() as lines:
            found[name] = {(f["rule_id"], f["event_index"]) for f in map(json.loads, lines)}
    for e in ENGINES:
        for columns in (False, True):
            run(engine_cmd(e, capture, out, columns))
            found[e + (" --columns" if columns else "")] = {(r, i) for r, i in json.loads(out.read_text())["rows"]}
    return found


def check(capture, want, found):
    """Stops the bench when an engine's findings differ from want."""
    for name, got in found.items():
        if got != want:
            sys.exit(f"{capture}: {name} disagrees: missing {sorted(want - got)[:5]}, extra {sorted(got - want)[:5]}")


def check_hand():
    """Every engine against the hand-derived findings of bench/semantics_check.py."""
    capture = WORK / "semantics-check.parquet"
    out = subprocess.run([sys.executable, HERE / "semantics_check.py", TOKENSCAN, capture], check=True,
                         capture_output=True, text=True).stdout
    want = {(r, i) for r, i in json.loads(out)}
    check(capture, want, findings_of(capture))
    scans = subprocess.run([sys.executable, HERE / "engines.py", "duckdb-scans", capture], check=True,
                           capture_output=True, text=True).stdout.strip()
    if scans != "1":
        sys.exit(f"DuckDB's plan reads the capture {scans} times (EXPLAIN ANALYZE), not once")
    print(f"hand-made edge cases ({len(want)} findings): every engine agrees; DuckDB's plan reads the file once")


def bench_one(capture, runs):
    """Checks every engine's findings against tokenscan's, then times all of them."""
    subprocess.run([sys.executable, HERE / "shapes.py", "check", capture], check=True)
    found = findings_of(capture)
    want = found["ts"]
    check(capture, want, found)
    out = WORK / "out.json"
    ts_out = WORK / "findings.ndjson"
    res = {"findings": len(want)}
    for name, ctx in (("ts", False), ("ts+ctx", True)):
        t = [run(tokenscan_findings(capture, ts_out, ctx)) for _ in range(runs)]
        res[name] = (statistics.median(s for s, _ in t), max(r for _, r in t))
    for e in ENGINES:
        for columns in (True, False):
            secs, rss = [], []
            for _ in range(runs):
                _, r = run(engine_cmd(e, capture, out, columns))
                secs.append(json.loads(out.read_text())["seconds"])
                rss.append(r)
            res[e if columns else e + " rows"] = (statistics.median(secs), max(rss))
    t = [run([TOKENSCAN, "decode-floor", capture]) for _ in range(runs)]
    res["floor"] = (statistics.median(s for s, _ in t), max(r for _, r in t))
    return res


def main():
    """Command line: see the module doc."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="5000000,20000000")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--shapes", default=",".join(["synth"] + SHAPE_NAMES))
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    version = subprocess.run([TOKENSCAN, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    vers = json.loads(subprocess.run([sys.executable, HERE / "engines.py", "versions"], check=True,
                                     capture_output=True, text=True).stdout)
    print(f"engines: {version}; " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    print(f"machine: {os.cpu_count()} cores; load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f} (1/5/15 min); median of {args.runs} runs; seconds (peak RSS MiB)")
    print("ts = tokenscan replay --no-context, ts+ctx = with context (default), both whole process;"
          " polars/duckdb/datafusion = whole query incl. reading the file (import not counted), returning"
          " the hits with a finding's event columns; rows only = the best engine returning (rule, index)"
          " pairs only; floor = tokenscan decode-floor")
    check_hand()
    cols = ["ts", "ts+ctx", *ENGINES, "rows only", "floor"]
    print("| shape | writer | events | findings | " + " | ".join(cols)
          + " | ts / best engine | ts / best rows only | ts / floor |")
    print("|---|---|---:|---:|" + "---:|" * (len(cols) + 3))
    for shape in args.shapes.split(","):
        for events in map(int, args.sizes.split(",")):
            for writer, capture in captures(shape, events, args.seed):
                r = bench_one(capture, args.runs)
                best = min(r[e][0] for e in ENGINES)
                rows_e = min(ENGINES, key=lambda e: r[e + " rows"][0])
                r["rows only"] = r[rows_e + " rows"]
                cells = " | ".join(f"{r[c][0]:.2f}{' ' + rows_e if c == 'rows only' else ''} ({r[c][1]:.0f})"
                                   for c in cols)
                print(f"| {shape} | {writer} | {events} | {r['findings']} | {cells} | {r['ts'][0] / best:.2f} | "
                      f"{r['ts'][0] / r['rows only'][0]:.2f} | {r['ts'][0] / r['floor'][0]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
