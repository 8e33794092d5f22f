"""Replay and diff a fleet's captures on Ray Data (``pip install 'tokenscan[ray]'``).

``replay(captures)`` and ``diff(baseline, candidate, captures)`` return Ray
Datasets with the rows ``tokenscan replay`` and ``tokenscan diff`` give on the
same files: the same ``(capture, event_index, rule_id)`` and the same columns,
the triage context (pod, parent, session and entry leaders) included. They use
the running Ray cluster (``ray.init()`` first to pick one; otherwise Ray starts
a local one).

How it is distributed, and why not ``ray.data.read_parquet``:

- The rules read per-process state (a process's parent, its session leader,
  whether its container has started) that is built from a capture's events *in
  order*, so each capture must be evaluated whole, in order, by one task. Ray
  2.60's ``read_parquet`` splits a file at row-group boundaries across read tasks
  and offers no row position: ``include_paths=True`` gives each row's file, but
  the only per-row identity is ``include_row_hash`` (a hash, not an index), so a
  file's rows cannot be put back in order after the read, and ``event_index``
  would be lost.
- So the Dataset is one row per capture file (found on the driver: a directory
  is searched recursively for ``*.parquet``, ``*.ndjson`` and ``*.jsonl``, in
  name order), one file per block, and ``map_batches`` (``batch_format=
  "pyarrow"``, one file per call) runs ``tokenscan.replay`` on the file in a
  Ray task: the file is read whole by tokenscan's own reader and its events are
  numbered from 0 in file order, as the CLI numbers them. A single capture must
  fit in one worker's memory, as on Spark.
- Rules travel to the workers as their texts (a ``tokenscan.Rules`` pickles as
  its rule files' texts and its ``ignore_above``) and are compiled once per file.
- ``replay`` and ``diff`` run the work before they return (the Dataset is
  materialized: findings are few next to events), so a capture that cannot be
  read raises tokenscan's own ``CaptureError`` naming the file, or Python's
  ``FileNotFoundError``, not a Ray stack trace.

What differs from the CLI: ``capture`` is the file's absolute path; in ``diff``,
``other_side`` (the CLI's note on why the other rule set did not fire) is null.
Paths must be readable on every Ray node (a local path on a one-machine Ray, a
shared mount on a cluster); URIs (``s3://``, ``hdfs://``) are refused. On a cluster every
worker needs tokenscan: install the wheel on the nodes, or name it in
``ray.init(runtime_env={"py_modules": ["tokenscan-....whl"]})`` (not tested here).

EQL sequence rules, and rules ending in a ``| head`` or ``| tail`` pipe, are
refused on Ray (and on Spark) until they are distributed: the CLI matches a
sequence across all of a run's captures by its ``by`` keys, in time order, and
applies a pipe over the whole run, which a task evaluating one file cannot do.
The rules are evaluated over the captures' first event on the driver first, where
the core raises ``RuleError`` naming such a rule, before Ray runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Union

import pyarrow as pa

import tokenscan
from tokenscan.spark import _changes, _check_footers, _refuse_whole_run_rules, _rules

if TYPE_CHECKING:
    from ray.data import Dataset

__all__ = ["replay", "diff"]

_StrPath = Union[str, "os.PathLike[str]"]
_Paths = Union[_StrPath, Iterable[_StrPath]]
_RulesArg = Union[tokenscan.Rules, _Paths, None]

_CAPTURE_SUFFIXES = (".parquet", ".ndjson", ".jsonl")


def _capture_files(captures: _Paths) -> list[str]:
    """The capture files named by ``captures`` (files, or directory trees searched for
    ``*.parquet``, ``*.ndjson``, ``*.jsonl``), as absolute paths, each Parquet footer read."""
    files: list[str] = []
    for given in [captures] if isinstance(captures, (str, os.PathLike)) else captures:
        path = Path(os.fspath(given)).absolute()
        if "://" in str(given):
            raise ValueError(f"{given}: tokenscan.ray reads paths every Ray node can open, not URIs (mount or copy the files)")
        if path.is_dir():
            found = sorted(str(f) for f in path.rglob("*") if f.suffix.lower() in _CAPTURE_SUFFIXES and f.is_file())
            if not found:
                raise tokenscan.CaptureError(f"{given}: directory holds no capture files (*.parquet, *.ndjson, *.jsonl)")
            files.extend(found)
        elif path.exists():
            files.append(str(path))
        else:
            raise FileNotFoundError(2, "No such file or directory", str(given))
    if not files:
        raise ValueError("no captures given")
    for f in files:
        if f.lower().endswith(".parquet"):
            _check_footers(f)  # an unreadable footer fails here, before Ray runs
    return files


def _findings(path: str, rules: tokenscan.Rules) -> pa.Table:
    return pa.table(tokenscan.replay(path, rules))


def replay(captures: _Paths, rules: _RulesArg = None) -> Dataset:
    """Replays captures (files or directory trees) on Ray Data, as ``tokenscan replay``.

    ``rules`` is a ``tokenscan.Rules``, rule files or directories (default: the
    built-in rules). Returns a materialized ``ray.data.Dataset`` with the columns of
    ``tokenscan.replay`` (those of ``tokenscan replay``), one row per finding, each
    with the same ``(capture, event_index, rule_id)`` as the CLI's on the same files
    (``capture``: the absolute path). Raises ``RuleError`` for a rule that does not
    load, ``FileNotFoundError`` for a missing capture, ``CaptureError`` naming the
    file for an unusable one.
    """
    compiled = _rules(rules)
    files = _capture_files(captures)
    schema = _findings_schema(compiled, files)

    def run(path: str) -> pa.Table:
        return _findings(path, compiled)

    return _per_file(files, run, schema)


def diff(baseline: _RulesArg, candidate: _RulesArg, captures: _Paths) -> Dataset:
    """Findings added and removed going from ``baseline`` to ``candidate`` rules, as ``tokenscan diff``.

    Rows: ``change`` (``added`` or ``removed``), the finding columns, and
    ``other_side`` (null here; the CLI says why the other rule set did not fire). A
    finding is unchanged when both sides have one for the same event and rule id.
    Materialized, with the same errors as ``replay``.
    """
    base, cand = _rules(baseline), _rules(candidate)
    files = _capture_files(captures)
    findings = _findings_schema(base, files)
    _findings_schema(cand, files)
    schema = pa.schema([pa.field("change", pa.string()), *findings, pa.field("other_side", pa.string())])

    def run(path: str) -> pa.Table:
        return _changes(_findings(path, base), _findings(path, cand))

    return _per_file(files, run, schema)


def _findings_schema(rules: tokenscan.Rules, files: list[str]) -> pa.Schema:
    """The finding columns' schema, after the rules are checked on the driver: a rule that
    needs a whole run of captures in order (a sequence, a ``| head`` or ``| tail`` pipe) is
    refused there, since a task per file would answer it per file."""
    _refuse_whole_run_rules(rules, files)
    return pa.table(rules.evaluate(pa.table({"kind": pa.array([], pa.string())}))).schema


def _per_file(files: list[str], run: Callable[[str], pa.Table], schema: pa.Schema) -> Dataset:
    """One Ray task per capture file runs ``run(path)``; the rows, materialized, in file order."""
    import ray.data

    def batch(paths: pa.Table) -> pa.Table:
        tables = [run(p) for p in paths.column("path").to_pylist()]
        return pa.concat_tables([t.cast(schema) for t in tables]) if tables else schema.empty_table()

    items = ray.data.from_items([{"path": f} for f in files], override_num_blocks=len(files))
    ds = items.map_batches(batch, batch_size=1, batch_format="pyarrow")
    ds.context.execution_options.preserve_order = True  # rows in file order, run after run
    ds.context.raise_original_map_exception = True  # the task's own exception, as the error's `cause`
    try:
        done: Dataset = ds.materialize()
    except Exception as e:  # Ray wraps the worker's exception: raise tokenscan's (or the OSError) itself
        cause = _user_error(e)
        if cause is None:
            raise
        raise cause from None
    return done


def _user_error(e: BaseException) -> BaseException | None:
    """The ``TokenscanError`` or ``OSError`` a Ray task raised, found in the chain Ray wrapped it in."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [e]
    while todo:
        x = todo.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, (tokenscan.TokenscanError, OSError)) and type(x).__module__ != "ray.exceptions":
            return x
        todo.extend([x.__cause__, x.__context__, getattr(x, "cause", None)])
    return None
