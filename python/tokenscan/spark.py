"""Replay and diff a fleet's captures on Apache Spark (``pip install 'tokenscan[spark]'``).

``replay(spark, captures)`` and ``diff(spark, baseline, candidate, captures)``
return Spark DataFrames with the rows ``tokenscan replay`` and ``tokenscan diff``
give on the same files. Import this module before the SparkSession starts (or set
``PYSPARK_PYTHON`` yourself): on import it points Spark's Python workers at this
interpreter, which has tokenscan and pyarrow, unless ``PYSPARK_PYTHON`` is set.

How it is distributed (see docs/spark.md):

- Spark reads the Parquet captures (``spark.sql.legacy.parquet.nanosAsLong`` is set
  on the session, since Spark refuses the capture's nanosecond ``time`` column
  otherwise) and tags each row with its file and position from Spark's hidden
  ``_metadata.file_path`` and ``_metadata.row_index`` columns, which survive any
  split of a file across tasks.
- Rows are then repartitioned by file and sorted by position, so each file is
  evaluated whole and in order by one Python worker (``mapInArrow``): the rules read
  per-process state (parents, session leaders) that needs a capture's events in
  order, and this keeps every answer equal to the CLI's whatever the split sizes.
  A single capture must therefore fit in one worker's memory.
- Rules travel to the executors as their texts (``Rules.sources``), with their
  ``ignore_above``, and are compiled
  once per task.

What differs from the CLI: ``capture`` is the file's local path as Spark lists it
(absolute, without ``file:``); ``time`` is nanoseconds since the epoch as a long
(Spark's timestamps stop at microseconds); unsigned columns become signed longs;
the triage context columns (``pod_name``, ``parent_*``, ``session_leader_*``,
``entry_leader_*``, ...) are null, as for ``Rules.evaluate``; and in ``diff`` the
``other_side`` column (why the other rule set did not fire) is null. Only Parquet
captures are read (NDJSON captures: convert them with ``tokenscan convert``).

EQL sequence rules, and rules ending in a ``| head`` or ``| tail`` pipe, are refused on
Spark (and on Ray) until they are distributed: the CLI matches a sequence across all of a
run's captures by its ``by`` keys, in time order, and applies a pipe over the whole run,
which a task evaluating one capture cannot do (docs/spark.md says how it could be
distributed). ``replay`` and ``diff`` evaluate the rules over the captures' first event on
the driver first, where the core raises ``RuleError`` naming such a rule, before Spark runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Union

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import tokenscan

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

__all__ = ["replay", "diff"]

_StrPath = Union[str, "os.PathLike[str]"]
_Paths = Union[_StrPath, Iterable[_StrPath]]
_RulesArg = Union[tokenscan.Rules, _Paths, None]

_FILE = "_tokenscan_file"
_ROW = "_tokenscan_row"


def _path_list(captures: _Paths) -> list[str]:
    if isinstance(captures, (str, os.PathLike)):
        captures = [captures]
    out = []
    for given in captures:
        p = str(os.fspath(given))
        if "://" in p:  # hdfs://, s3a://, file://: Spark's to resolve
            out.append(p)
            continue
        if not os.path.exists(p):
            raise FileNotFoundError(2, "No such file or directory", p)
        out.append(os.path.abspath(p))
    if not out:
        raise ValueError("no captures given")
    for p in out:
        if "://" not in p:
            _check_footers(p)
    return out


def _check_footers(path: str) -> None:
    """Reads the Parquet footer of each local capture (a directory: each ``*.parquet`` under
    it), so that an unreadable file fails here with its name, not in a Java stack trace."""
    files = sorted(Path(path).rglob("*.parquet")) if os.path.isdir(path) else [Path(path)]
    for f in files:
        try:
            pq.read_schema(f)
        except (OSError, pa.ArrowException) as e:
            raise tokenscan.CaptureError(f"{f}: not a readable Parquet capture: {e}") from e


def _rules(rules: _RulesArg) -> tokenscan.Rules:
    if rules is None:
        return tokenscan.Rules.default()
    if isinstance(rules, tokenscan.Rules):
        return rules
    return tokenscan.Rules.load(rules)


def _refuse_whole_run_rules(rules: tokenscan.Rules, files: Iterable[str]) -> None:
    """Evaluates ``rules`` on the driver over the first event of ``files`` (local captures;
    a directory: its ``*.parquet`` files, the order Spark reads them in does not matter).
    The core refuses there, naming the rule and its file, a rule that needs a whole run of
    captures in order (an EQL sequence, a ``| head`` or ``| tail`` pipe): a task that
    evaluates one capture would answer it per capture, not as the CLI does over the run."""
    for f in files:
        if "://" in f:
            continue
        if os.path.isdir(f):
            _refuse_whole_run_rules(rules, sorted(str(p) for p in Path(f).rglob("*.parquet")))
            return
        if f.lower().endswith(".parquet"):
            batch = next(pq.ParquetFile(f).iter_batches(batch_size=1), None)
            sample = pa.table({}) if batch is None else pa.Table.from_batches([batch])
        else:
            sample = tokenscan.read_capture(f).slice(0, 1)
        if sample.num_rows:
            rules.evaluate(sample, capture=f"{f} (its first event, on the driver)")
            return


def _local_path(uri: str) -> str:
    """Spark's ``_metadata.file_path`` (``file:///a/b%20c.parquet``) as a local path."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return unquote(parsed.path)
    return uri


def _spark_type(t: pa.DataType) -> pa.DataType:
    """The Arrow type a finding column is handed to Spark as (Spark has no unsigned or ns types)."""
    if pa.types.is_unsigned_integer(t) or pa.types.is_timestamp(t):
        return pa.int64()
    if pa.types.is_large_string(t) or pa.types.is_string_view(t) or pa.types.is_dictionary(t):
        return pa.string()
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(_spark_type(t.value_type))
    return t


def _output_schema(arrow: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, _spark_type(f.type), True) for f in arrow])


def _findings_schema() -> pa.Schema:
    empty = pa.table({"kind": pa.array([], pa.string())})
    return _output_schema(pa.table(tokenscan.Rules.default().evaluate(empty)).schema)


def _to_spark(table: pa.Table, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    cols = [table[f.name].cast(f.type) for f in schema]
    yield from pa.Table.from_arrays(cols, schema=schema).to_batches()


def _capture_table(path: str, batches: list[pa.RecordBatch]) -> pa.Table:
    """One file's rows from Spark, in order, with the capture's own column types."""
    table = pa.Table.from_batches(batches)
    rows = table[_ROW].to_numpy()
    if len(rows) and (rows[0] != 0 or rows[-1] != len(rows) - 1):
        raise tokenscan.CaptureError(f"{path}: Spark handed over rows {rows[0]}..{rows[-1]} of {len(rows)}, not the whole file")
    file_schema = pq.read_schema(path)
    cols, names = [], []
    for name in table.column_names:
        if name in (_FILE, _ROW):
            continue
        col = table[name]
        i = file_schema.get_field_index(name)
        if i < 0:
            continue  # a column of other files (the merged schema): absent from this one
        if col.type != file_schema.field(i).type:
            col = col.cast(file_schema.field(i).type)
        cols.append(col)
        names.append(name)
    return pa.Table.from_arrays(cols, names=names)


def _per_file(batches: Iterator[pa.RecordBatch]) -> Iterator[tuple[str, pa.Table]]:
    """Groups a partition's batches (sorted by file, then row) into whole files."""
    current: str | None = None
    pending: list[pa.RecordBatch] = []
    for batch in batches:
        if batch.num_rows == 0:
            continue
        files = batch.column(_FILE)
        n = batch.num_rows
        changed = pc.not_equal(files.slice(1), files.slice(0, n - 1)).to_numpy(zero_copy_only=False)
        starts = [0, *(int(i) + 1 for i in changed.nonzero()[0]), n]
        for lo, hi in zip(starts, starts[1:]):
            uri = files[lo].as_py()
            if uri != current:
                if current is not None:
                    path = _local_path(current)
                    yield path, _capture_table(path, pending)
                current, pending = uri, []
            pending.append(batch.slice(lo, hi - lo))
    if current is not None:
        path = _local_path(current)
        yield path, _capture_table(path, pending)


def _events(spark: SparkSession, captures: _Paths) -> DataFrame:
    """The captures' rows, each with its file and row index, one file per partition run, in order."""
    from pyspark.sql import functions as F

    spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
    paths = _path_list(captures)
    df = (
        spark.read.option("recursiveFileLookup", "true")
        .option("pathGlobFilter", "*.parquet")
        .option("mergeSchema", "true")
        .parquet(*paths)
    )
    df = df.select("*", F.col("_metadata.file_path").alias(_FILE), F.col("_metadata.row_index").alias(_ROW))
    return df.repartition(F.col(_FILE)).sortWithinPartitions(_FILE, _ROW)


def replay(spark: SparkSession, captures: _Paths, rules: _RulesArg = None) -> DataFrame:
    """Replays Parquet captures (files or directory trees) on Spark, as ``tokenscan replay``.

    ``rules`` is a ``tokenscan.Rules``, rule files or directories (default: the
    built-in rules). Returns a DataFrame with the finding columns of ``tokenscan
    replay`` (``time`` as epoch nanoseconds); each finding has the same
    ``(capture, event_index, rule_id)`` as the CLI's on the same files. Lazy, like
    any DataFrame: errors in a capture surface when an action runs.
    """
    given = _rules(rules)
    _refuse_whole_run_rules(given, _path_list(captures))
    sources, ignore_above = given.sources, given.ignore_above
    schema = _findings_schema()

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        compiled = tokenscan.Rules.from_sources(sources, ignore_above=ignore_above)
        for path, table in _per_file(batches):
            yield from _to_spark(pa.table(compiled.evaluate(table, capture=path)), schema)

    return _map(spark, captures, run, schema)


def diff(spark: SparkSession, baseline: _RulesArg, candidate: _RulesArg, captures: _Paths) -> DataFrame:
    """Findings added and removed going from ``baseline`` to ``candidate`` rules, as ``tokenscan diff``.

    Rows: ``change`` (``added`` or ``removed``), the finding columns, and
    ``other_side`` (null on Spark; the CLI says why the other rule set did not fire).
    A finding is unchanged when both sides have one for the same event and rule id.
    """
    base_given, cand_given = _rules(baseline), _rules(candidate)
    for given in (base_given, cand_given):
        _refuse_whole_run_rules(given, _path_list(captures))
    base_sources, cand_sources = base_given.sources, cand_given.sources
    base_ignore, cand_ignore = base_given.ignore_above, cand_given.ignore_above
    findings = _findings_schema()
    schema = pa.schema([pa.field("change", pa.string(), True), *findings, pa.field("other_side", pa.string(), True)])

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        base = tokenscan.Rules.from_sources(base_sources, ignore_above=base_ignore)
        cand = tokenscan.Rules.from_sources(cand_sources, ignore_above=cand_ignore)
        for path, table in _per_file(batches):
            old = pa.table(base.evaluate(table, capture=path))
            new = pa.table(cand.evaluate(table, capture=path))
            yield from _to_spark(_changes(old, new), schema)

    return _map(spark, captures, run, schema)


def _changes(old: pa.Table, new: pa.Table) -> pa.Table:
    """Rows of ``new`` not in ``old`` (added) and of ``old`` not in ``new`` (removed), by
    (event, rule), ordered as the CLI orders them: by event, rule id, removed first."""

    def keys(t: pa.Table) -> list[tuple[int, str]]:
        return list(zip(t["event_index"].to_pylist(), t["rule_id"].to_pylist()))

    old_keys, new_keys = keys(old), keys(new)
    old_set, new_set = set(old_keys), set(new_keys)
    parts = []
    for change, table, table_keys, other in (("removed", old, old_keys, new_set), ("added", new, new_keys, old_set)):
        rows = [i for i, k in enumerate(table_keys) if k not in other]
        part = table.take(pa.array(rows, pa.int64()))
        part = part.add_column(0, "change", pa.array([change] * len(rows), pa.string()))
        parts.append(part.append_column("other_side", pa.nulls(len(rows), pa.string())))
    both = pa.concat_tables(parts)
    return both.sort_by([("event_index", "ascending"), ("rule_id", "ascending"), ("change", "descending")])


def _map(
    spark: SparkSession,
    captures: _Paths,
    run: Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]],
    schema: pa.Schema,
) -> DataFrame:
    from pyspark.sql.pandas.types import from_arrow_schema

    return _events(spark, captures).mapInArrow(run, from_arrow_schema(schema))
