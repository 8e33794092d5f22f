"""`tokenscan.Rules`: loading, describing, pickling, and evaluating any Arrow data
(the hook for Spark's mapInArrow and Ray's map_batches)."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import tokenscan
from conftest import FIXTURES, run_spinning

POD = FIXTURES / "pod-session.parquet"
ELASTIC_ID = "66229f32-c460-410d-bc37-4b32322cd4bb"


def rows(findings: tokenscan.Findings, *columns: str) -> list[tuple[Any, ...]]:
    """Chosen columns of every finding, as tuples."""
    table = pa.table(findings)
    return list(zip(*(table[c].to_pylist() for c in columns)))


# --- making and describing rule sets ---------------------------------------------------------------


def test_default_rules() -> None:
    rules = tokenscan.Rules.default()
    assert rules.ids == [ELASTIC_ID, "TRC-108"]
    assert len(rules) == 2
    assert rules.ignore_above == 1024
    assert repr(rules) == f"<tokenscan.Rules: {ELASTIC_ID}, TRC-108>"
    assert [name for name, _ in rules.sources] == [
        "<builtin>/elastic-d4c-service-account-token-read.toml",
        "<builtin>/tracee-trc-108-k8s-service-account-token.toml",
    ]
    assert tokenscan.Rules.default(ignore_above=None).ignore_above is None


def test_describe_lists_every_rule_like_rules_list_json() -> None:
    elastic, trc = tokenscan.Rules.default().describe()
    assert elastic["id"] == ELASTIC_ID
    assert elastic["kind"] == "eql"
    assert elastic["severity"] == "medium"
    assert elastic["risk_score"] == 47.0
    assert elastic["source"] == "<builtin>/elastic-d4c-service-account-token-read.toml"
    assert any("T1552.001" in t for t in elastic["threat"])
    assert (trc["id"], trc["kind"], trc["severity"], trc["risk_score"]) == ("TRC-108", "signature", "info", None)
    assert set(elastic) == {"id", "name", "kind", "severity", "risk_score", "threat", "source"}


def test_load_files_and_directories(tmp_path: Path) -> None:
    (tmp_path / "b.toml").write_text(tokenscan.Rules.default().sources[0][1])
    (tmp_path / "a.toml").write_text(tokenscan.Rules.default().sources[1][1])
    (tmp_path / "notes.txt").write_text("not a rule")
    from_dir = tokenscan.Rules.load(tmp_path)
    assert from_dir.ids == ["TRC-108", ELASTIC_ID]  # sorted by file name
    assert [Path(n).name for n, _ in from_dir.sources] == ["a.toml", "b.toml"]
    from_files = tokenscan.Rules.load([str(tmp_path / "b.toml"), tmp_path / "a.toml"])
    assert from_files.ids == [ELASTIC_ID, "TRC-108"]
    assert tokenscan.Rules.load(tmp_path / "a.toml").ids == ["TRC-108"]


def test_from_text_and_from_sources() -> None:
    elastic_text = tokenscan.Rules.default().sources[0][1]
    one = tokenscan.Rules.from_text(elastic_text, "mine.toml")
    assert one.ids == [ELASTIC_ID]
    assert one.describe()[0]["source"] == "mine.toml"
    assert tokenscan.Rules.from_text(elastic_text).describe()[0]["source"] == "<text>"
    again = tokenscan.Rules.from_sources(tokenscan.Rules.default().sources, ignore_above=None)
    assert again.ids == tokenscan.Rules.default().ids
    assert again.ignore_above is None


def test_an_edited_rule_changes_the_findings() -> None:
    """The detection engineer's loop: edit a rule's text, replay, compare."""
    text = tokenscan.Rules.default().sources[1][1]
    assert '"cat"' not in text
    allow = text.replace('"kubectl"', '"kubectl", "cat"')
    assert allow != text
    edited = tokenscan.Rules.from_text(allow, "trc-108-allow-cat.toml")
    before = tokenscan.replay(POD, tokenscan.Rules.from_text(text))
    after = tokenscan.replay(POD, edited)
    assert {r[0] for r in rows(before, "comm")} >= {"cat"}
    assert "cat" not in {r[0] for r in rows(after, "comm")}


# --- pickling: by source text ------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_round_trip(protocol: int, tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text(tokenscan.Rules.default().sources[1][1])
    for rules in (tokenscan.Rules.default(), tokenscan.Rules.default(ignore_above=None), tokenscan.Rules.load(tmp_path)):
        data = pickle.dumps(rules, protocol=protocol)
        back = pickle.loads(data)
        assert isinstance(back, tokenscan.Rules)
        assert back.sources == rules.sources
        assert back.ids == rules.ids
        assert back.ignore_above == rules.ignore_above
        assert rows(back.evaluate(pq.read_table(POD)), "rule_id", "event_index", "reason") == rows(
            rules.evaluate(pq.read_table(POD)), "rule_id", "event_index", "reason"
        )
    # the pickle holds the rule texts, not compiled state
    assert b"process.args" in pickle.dumps(tokenscan.Rules.default(), protocol=protocol)


def test_pickle_does_not_need_the_rule_files(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(tokenscan.Rules.default().sources[0][1])
    data = pickle.dumps(tokenscan.Rules.load(path))
    path.unlink()
    assert pickle.loads(data).ids == [ELASTIC_ID]


# --- evaluate: any Arrow object --------------------------------------------------------------------


def test_evaluate_matches_replay_for_every_arrow_form() -> None:
    rules = tokenscan.Rules.default()
    table = pq.read_table(POD)
    expected = rows(tokenscan.replay(POD), "rule_id", "event_index", "reason", "comm", "path")
    cols = ("rule_id", "event_index", "reason", "comm", "path")
    assert rows(rules.evaluate(table), *cols) == expected  # __arrow_c_stream__
    assert rows(rules.evaluate(table.combine_chunks().to_batches()[0]), *cols) == expected  # __arrow_c_array__
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=10))
    assert rows(rules.evaluate(reader), *cols) == expected  # a stream of many batches
    generator = pa.RecordBatchReader.from_batches(table.schema, iter(table.to_batches(max_chunksize=7)))
    assert rows(rules.evaluate(generator), *cols) == expected  # produced lazily by Python


def test_evaluate_polars_and_pandas_data() -> None:
    pl = pytest.importorskip("polars")
    rules = tokenscan.Rules.default()
    expected = rows(tokenscan.replay(POD), "rule_id", "event_index", "reason")
    df = pl.read_parquet(POD)  # string views, large lists, i64 where polars likes them
    assert rows(rules.evaluate(df), "rule_id", "event_index", "reason") == expected
    pd = pytest.importorskip("pandas")
    # pandas with Arrow-backed columns keeps nullable integers as integers
    frame = pq.read_table(POD).to_pandas(types_mapper=pd.ArrowDtype)
    assert isinstance(frame, pd.DataFrame)
    from_pandas = pa.Table.from_pandas(frame, preserve_index=False)
    assert rows(rules.evaluate(from_pandas), "rule_id", "event_index", "reason") == expected
    # NumPy-backed pandas turns an integer column with nulls into floats: refused, by name
    numpy_backed = pa.Table.from_pandas(pq.read_table(POD).to_pandas(), preserve_index=False)
    with pytest.raises(tokenscan.CaptureError, match="column `flags` has type Float64, which cannot hold an integer"):
        rules.evaluate(numpy_backed)


def test_evaluate_a_duckdb_relation() -> None:
    duckdb = pytest.importorskip("duckdb")
    relation = duckdb.sql(f"select * from read_parquet('{POD}') order by time")
    findings = tokenscan.Rules.default().evaluate(relation)
    assert rows(findings, "rule_id", "event_index") == rows(tokenscan.replay(POD), "rule_id", "event_index")


def test_evaluate_labels_numbers_and_summarizes() -> None:
    table = pq.read_table(POD)
    findings = tokenscan.Rules.default().evaluate(table.slice(30, 10), capture="pod#30", first_index=30)
    expected = [("pod#30", i, r) for i, r in rows(tokenscan.replay(POD), "event_index", "rule_id") if 30 <= i < 40]
    assert len(expected) >= 2
    assert rows(findings, "capture", "event_index", "rule_id") == expected
    s = findings.summary()
    assert s["captures"] == [{"path": "pod#30", "events": 10}]
    assert s["events"] == 10
    assert tokenscan.Rules.default().evaluate(table).summary()["captures"] == [{"path": "<arrow>", "events": 83}]


def test_evaluate_ignores_extra_columns_and_their_order() -> None:
    table = pq.read_table(POD)
    shuffled = table.select(list(reversed(table.column_names))).append_column("note", pa.array(["x"] * len(table)))
    expected = rows(tokenscan.Rules.default().evaluate(table), "rule_id", "event_index")
    assert rows(tokenscan.Rules.default().evaluate(shuffled), "rule_id", "event_index") == expected


def test_evaluate_strict() -> None:
    table = pq.read_table(FIXTURES / "edge-cases.parquet")
    assert tokenscan.Rules.default().evaluate(table).summary()["rules"][1]["unevaluable"] == 1
    with pytest.raises(tokenscan.UnevaluableError) as e:
        tokenscan.Rules.default().evaluate(table, capture="edge", strict=True)
    assert (e.value.capture, e.value.event_index, e.value.rule_id) == ("edge", 29, "TRC-108")


def test_evaluate_rejects_what_is_not_arrow() -> None:
    with pytest.raises(TypeError, match="__arrow_c_array__ or __arrow_c_stream__"):
        tokenscan.Rules.default().evaluate([1, 2, 3])  # type: ignore[arg-type]


def test_evaluate_names_a_missing_column() -> None:
    table = pq.read_table(POD).drop_columns(["comm"])
    with pytest.raises(tokenscan.CaptureError) as e:
        tokenscan.Rules.default().evaluate(table, capture="spark-partition-3")
    assert str(e.value).startswith("spark-partition-3: required column `comm` is missing")
    assert e.value.path == "spark-partition-3"


def test_evaluate_names_a_column_of_the_wrong_type() -> None:
    table = pq.read_table(POD)
    table = table.set_column(table.schema.get_field_index("pid"), "pid", pa.array(["x"] * len(table)))
    with pytest.raises(tokenscan.CaptureError, match="column `pid` has type Utf8, which cannot hold an integer"):
        tokenscan.Rules.default().evaluate(table)


def test_evaluate_passes_on_an_error_raised_by_the_data_producer() -> None:
    table = pq.read_table(POD)

    def batches() -> Iterator[pa.RecordBatch]:
        yield table.to_batches()[0]
        raise RuntimeError("the upstream source failed")

    reader = pa.RecordBatchReader.from_batches(table.schema, batches())
    with pytest.raises(Exception, match="the upstream source failed"):
        tokenscan.Rules.default().evaluate(reader)


# --- distributed engines: no global state, plain functions, pickled rules ----------------------------


def spark_map_in_arrow(rules: tokenscan.Rules, iterator: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """What a function given to `DataFrame.mapInArrow` looks like: batches in, batches out."""
    for batch in iterator:
        yield from rules.evaluate(batch).to_arrow().to_batches()


def ray_map_batches(rules: tokenscan.Rules, batch: pa.Table) -> pa.Table:
    """What a function given to `Dataset.map_batches(..., batch_format="pyarrow")` looks like."""
    return rules.evaluate(batch).to_arrow()


def in_worker(payload: bytes, batches: list[pa.RecordBatch]) -> list[tuple[Any, ...]]:
    """Runs in another process: unpickles the rules and maps them over batches (as a Spark executor would)."""
    rules = pickle.loads(payload)
    out = list(spark_map_in_arrow(rules, iter(batches)))
    return [
        (rule_id, comm, reason)
        for b in out
        for rule_id, comm, reason in zip(b["rule_id"].to_pylist(), b["comm"].to_pylist(), b["reason"].to_pylist())
    ]


def test_works_as_a_spark_map_in_arrow_function() -> None:
    rules = pickle.loads(pickle.dumps(tokenscan.Rules.default()))
    batches = pq.read_table(POD).to_batches(max_chunksize=16)
    out = list(spark_map_in_arrow(rules, iter(batches)))
    assert all(isinstance(b, pa.RecordBatch) for b in out)
    got = pa.Table.from_batches(out)
    assert sorted(zip(got["rule_id"].to_pylist(), got["comm"].to_pylist())) == sorted(
        rows(tokenscan.replay(POD), "rule_id", "comm")
    )


def test_works_as_a_ray_map_batches_function() -> None:
    rules = tokenscan.Rules.default()
    table = pq.read_table(POD)
    parts = [ray_map_batches(rules, table.slice(i, 20)) for i in range(0, len(table), 20)]
    assert sum(p.num_rows for p in parts) == 14
    assert all(p.schema == parts[0].schema for p in parts)


def test_pickled_rules_evaluate_in_other_processes() -> None:
    payload = pickle.dumps(tokenscan.Rules.default())
    table = pq.read_table(POD)
    chunks = [table.slice(i, 21).to_batches() for i in range(0, len(table), 21)]
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: nothing shared but the pickle
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        results = list(pool.map(in_worker, [payload] * len(chunks), chunks))
    got = sorted(r for part in results for r in part)
    assert got == sorted(rows(tokenscan.replay(POD), "rule_id", "comm", "reason"))


def test_one_rule_set_serves_many_threads() -> None:
    rules = tokenscan.Rules.default()
    table = pq.read_table(POD)
    expected = rows(rules.evaluate(table), "rule_id", "event_index")
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: rows(rules.evaluate(table), "rule_id", "event_index"), range(16)))
    assert all(r == expected for r in results)


def test_evaluate_releases_the_gil(long_capture: Path) -> None:
    """The evaluation of Arrow data runs without the GIL (a Spark or Ray worker's other threads keep going)."""
    rules = tokenscan.Rules.default()
    table = pq.read_table(long_capture)
    findings, spinning = run_spinning(lambda: rules.evaluate(table))
    assert len(findings) == 16_800  # 14 per copy
    spinning.assert_ran_during_call()
