"""`tokenscan.spark` on a real Apache Spark (local[2]): the same findings and diff as the CLI.

Needs pyspark (the test group) and a Java runtime (dev.sh installs one). Without Java,
the module is skipped LOUDLY on a developer machine and FAILS under CI=true.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import tokenscan
from conftest import FIXTURES, PARQUET_FIXTURES, POD_SESSION_ELASTIC, POD_SESSION_TRC108
from test_replay import FINDING_COLUMNS, rfc3339_to_ns

IN_CI = os.environ.get("CI") == "true"


def _java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def _need_spark() -> None:
    missing = []
    if _java() is None:
        missing.append("a Java runtime (apt-get install openjdk-17-jre-headless)")
    try:
        import pyspark  # noqa: F401
    except ImportError:
        missing.append("pyspark (pip install pyspark)")
    if not missing:
        return
    message = f"THE SPARK TESTS DID NOT RUN: missing {' and '.join(missing)}"
    if IN_CI:
        pytest.fail(message + " (CI=true: this is a failure)", pytrace=False)
    sys.stderr.write(f"\n\033[1;33m==> SKIPPED: {message}\033[0m\n")
    warnings.warn(message, stacklevel=1)
    pytest.skip(message, allow_module_level=True)


_need_spark()

import tokenscan.spark as tspark  # noqa: E402  (after the check: it needs pyspark only lazily)
from pyspark.sql import SparkSession  # noqa: E402

# Small enough that every multi-row-group capture is split across several tasks.
SPLIT_BYTES = 16 * 1024
ELASTIC_ID = "66229f32-c460-410d-bc37-4b32322cd4bb"


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    """One local[2] session for the module (a session takes ~15 s to start)."""
    session = (
        SparkSession.builder.master("local[2]")
        .appName("tokenscan-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "3")
        .config("spark.sql.files.maxPartitionBytes", str(SPLIT_BYTES))
        .config("spark.sql.files.openCostInBytes", "0")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def cli_rows(cli: Path, command: str, *args: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(cli), command, *args, "--format", "ndjson", "--quiet"], check=True, capture_output=True, text=True
    ).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    for r in rows:
        r["time"] = rfc3339_to_ns(r["time"])
    return rows


TRIAGE_COLUMNS = {
    "pod_name", "pod_namespace", "container_name", "image", "process_entity_id",
    "parent_pid", "parent_name", "parent_args", "session_leader_pid", "session_leader_name",
    "session_leader_tty", "entry_leader_pid", "entry_leader_name", "entry_leader_type",
}


def comparable(rows: list[dict[str, Any]], extra: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    """The CLI's finding columns (and `extra`), sorted by (capture, event_index, rule_id).

    The triage context columns (pod, parent, leaders) are left out: on Spark they are
    null, as docs/spark.md says, while the CLI fills them from the capture's processes."""
    cols = [*extra, *(c for c in FINDING_COLUMNS if c not in TRIAGE_COLUMNS)]
    out = [tuple(json.dumps(r[c], sort_keys=True) for c in cols) for r in rows]
    key = [cols.index("capture"), cols.index("event_index"), cols.index("rule_id")]
    return sorted(out, key=lambda t: (t[key[0]], int(t[key[1]]), t[key[2]], t))


def spark_rows(df: Any) -> list[dict[str, Any]]:
    return [r.asDict(recursive=True) for r in df.collect()]


def test_pod_session_gives_the_hand_derived_findings(spark: SparkSession) -> None:
    path = str(FIXTURES / "pod-session.parquet")
    rows = spark_rows(tspark.replay(spark, path))
    assert {r["capture"] for r in rows} == {path}
    elastic = sorted(r["event_index"] for r in rows if r["rule_id"] == ELASTIC_ID)
    trc = sorted(r["event_index"] for r in rows if r["rule_id"] == "TRC-108")
    assert (elastic, trc) == (POD_SESSION_ELASTIC, POD_SESSION_TRC108)
    assert [list(r)[: len(FINDING_COLUMNS)] for r in rows] == [FINDING_COLUMNS] * len(rows)


def test_files_are_split_across_tasks(spark: SparkSession, fleet: list[Path]) -> None:
    synth = [f for f in fleet if f.name.startswith("synth-")]
    assert all(pq.ParquetFile(f).num_row_groups >= 10 for f in synth)
    spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
    tasks = spark.read.parquet(str(synth[0])).rdd.getNumPartitions()
    assert tasks > 1, f"one capture read in {tasks} task: the split is not exercised"


def test_a_directory_tree_gives_the_clis_findings(spark: SparkSession, fleet: list[Path], cli: Path) -> None:
    root = fleet[0].parent.parent
    expected = cli_rows(cli, "replay", *map(str, fleet))
    # the synthesized (split) captures have findings of their own, so they are compared too
    synth = {str(f) for f in fleet if f.name.startswith("synth-")}
    assert synth <= {r["capture"] for r in expected}
    got = spark_rows(tspark.replay(spark, root))
    assert comparable(got) == comparable(expected)
    # the same again with the rules given as files, and matching tokenscan.replay
    rules = [str(FIXTURES / "rules" / "elastic-d4c-token-read-v5.toml")]
    got = spark_rows(tspark.replay(spark, [str(f) for f in fleet], rules))
    local = list(tokenscan.replay([str(f) for f in fleet], rules))
    assert local
    assert sorted((r["capture"], r["event_index"], r["rule_id"]) for r in got) == sorted(
        (r["capture"], r["event_index"], r["rule_id"]) for r in local
    )


def test_diff_gives_the_clis_changes(spark: SparkSession, fleet: list[Path], cli: Path) -> None:
    v1 = str(FIXTURES / "rules" / "elastic-d4c-token-read-v1.toml")
    v5 = str(FIXTURES / "rules" / "elastic-d4c-token-read-v5.toml")
    expected = cli_rows(cli, "diff", "--baseline", v1, "--candidate", v5, *map(str, fleet))
    assert {r["change"] for r in expected} == {"added"}  # v5 widens v1: only additions
    got = spark_rows(tspark.diff(spark, v1, v5, [str(f) for f in fleet]))
    assert all(r["other_side"] is None for r in got)
    assert comparable(got, ("change",)) == comparable(expected, ("change",))
    # and the other way round: what going back to v1 would remove
    back = spark_rows(tspark.diff(spark, v5, v1, [str(f) for f in fleet]))
    assert sorted((r["change"], r["capture"], r["event_index"]) for r in back) == sorted(
        ("removed", r["capture"], r["event_index"]) for r in expected
    )


def test_bad_rules_and_missing_captures_fail_before_spark_runs(spark: SparkSession, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[rule]\nrule_id = "x"\nname = "x"\nlanguage = "eql"\nquery = \'\'\'process where\'\'\'\n')
    with pytest.raises(tokenscan.RuleError) as e:
        tspark.replay(spark, FIXTURES / "pod-session.parquet", [str(bad)])
    assert e.value.file == str(bad)
    missing = tmp_path / "no-such-capture.parquet"
    with pytest.raises(FileNotFoundError) as f:
        tspark.replay(spark, [FIXTURES / "pod-session.parquet", missing])
    assert f.value.filename == str(missing)


def test_a_corrupt_capture_among_others_fails_naming_it(spark: SparkSession, corrupt_capture: Path) -> None:
    with pytest.raises(tokenscan.CaptureError, match=str(corrupt_capture)):
        tspark.replay(spark, corrupt_capture.parent.parent)


def test_rules_keep_their_ignore_above_on_the_executors(spark: SparkSession, long_name: tuple[Path, str]) -> None:
    capture, rule = long_name
    off = tokenscan.Rules.from_text(rule, ignore_above=None)
    assert [r["event_index"] for r in spark_rows(tspark.replay(spark, capture, off))] == [30]
    assert spark_rows(tspark.replay(spark, capture, tokenscan.Rules.from_text(rule))) == []  # 1024: as Elasticsearch
    changes = spark_rows(tspark.diff(spark, tokenscan.Rules.from_text(rule), off, capture))
    assert [(r["change"], r["event_index"]) for r in changes] == [("added", 30)]


def test_rules_over_a_whole_run_are_refused_before_spark_runs(
    spark: SparkSession, fleet: list[Path], whole_run_rule: tuple[str, str]
) -> None:
    text, message = whole_run_rule
    rules = tokenscan.Rules.from_text(text, "rule.toml")
    with pytest.raises(tokenscan.RuleError, match=re.escape(message)) as e:
        tspark.replay(spark, fleet[0].parent.parent, rules)  # a directory: its first Parquet file is sampled
    assert e.value.file == "rule.toml"
    with pytest.raises(tokenscan.RuleError, match=re.escape(message)):
        tspark.diff(spark, None, rules, [str(f) for f in fleet])
