"""`tokenscan.ray` on a real local Ray (2 CPUs): the same findings and diff as the CLI.

Needs ray (the test group). Without it, the module is skipped LOUDLY on a developer
machine and FAILS under CI=true.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import tokenscan
from conftest import FIXTURES, NDJSON_FIXTURES, PARQUET_FIXTURES, POD_SESSION_ELASTIC, POD_SESSION_TRC108
from test_replay import FINDING_COLUMNS, cli_findings, python_findings, rfc3339_to_ns

IN_CI = os.environ.get("CI") == "true"

try:
    import ray
except ImportError:
    MESSAGE = "THE RAY TESTS DID NOT RUN: missing ray (pip install 'ray[data]')"
    if IN_CI:
        pytest.fail(MESSAGE + " (CI=true: this is a failure)", pytrace=False)
    sys.stderr.write(f"\n\033[1;33m==> SKIPPED: {MESSAGE}\033[0m\n")
    warnings.warn(MESSAGE, stacklevel=1)
    pytest.skip(MESSAGE, allow_module_level=True)

import tokenscan.ray as tray  # noqa: E402

ELASTIC_ID = "66229f32-c460-410d-bc37-4b32322cd4bb"
V1 = str(FIXTURES / "rules" / "elastic-d4c-token-read-v1.toml")
V5 = str(FIXTURES / "rules" / "elastic-d4c-token-read-v5.toml")


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One local Ray for the module (2 CPUs, no dashboard), shut down after."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def rows(ds: Any) -> list[dict[str, Any]]:
    """A Dataset's rows in order, times as nanoseconds (as `python_findings` gives them)."""
    table = pa.concat_tables(ray.get(ds.to_arrow_refs()))
    return python_findings(table)


@pytest.fixture(scope="module")
def ndjson_node(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """One more "node": the NDJSON fixtures, in a directory of their own."""
    node = tmp_path_factory.mktemp("ndjson-node")
    for name in NDJSON_FIXTURES:
        shutil.copy(FIXTURES / name, node / name)
    return sorted(node / name for name in NDJSON_FIXTURES)


def test_pod_session_gives_the_hand_derived_findings() -> None:
    path = str(FIXTURES / "pod-session.parquet")
    got = rows(tray.replay(path))
    assert {r["capture"] for r in got} == {path}
    elastic = [r["event_index"] for r in got if r["rule_id"] == ELASTIC_ID]
    trc = [r["event_index"] for r in got if r["rule_id"] == "TRC-108"]
    assert (sorted(elastic), sorted(trc)) == (POD_SESSION_ELASTIC, POD_SESSION_TRC108)
    assert [list(r) for r in got] == [FINDING_COLUMNS] * len(got)
    # the triage context is there, as in the CLI's rows (null on Spark): the commands'
    # parent, the pod's shell, rebuilt from the capture's events
    assert {r["parent_name"] for r in got} == {"sh"}


def test_directory_trees_give_the_clis_findings(fleet: list[Path], ndjson_node: list[Path], cli: Path) -> None:
    synth = [f for f in fleet if f.name.startswith("synth-")]
    assert all(pq.ParquetFile(f).num_row_groups >= 10 for f in synth)
    root = fleet[0].parent.parent
    expected = cli_findings(cli, *map(str, fleet + ndjson_node))
    # the synthesized (many-row-group) captures and NDJSON ones have findings of their own
    assert {str(f) for f in synth + ndjson_node[:1]} <= {r["capture"] for r in expected}
    got = rows(tray.replay([root, ndjson_node[0].parent]))
    assert got == expected  # every column, in the CLI's order (files by name, then events)
    # the same again with the rules given as files, and matching tokenscan.replay
    got = rows(tray.replay([str(f) for f in fleet], [V5]))
    local = python_findings(tokenscan.replay([str(f) for f in fleet], [V5]))
    assert local
    assert got == local


def cli_diff(cli: Path, *args: str) -> list[dict[str, Any]]:
    """What `tokenscan diff --format ndjson` prints, one dict per change, times as nanoseconds."""
    out = subprocess.run([str(cli), "diff", *args, "--format", "ndjson", "--quiet"], check=True, capture_output=True, text=True)
    return [{**r, "time": rfc3339_to_ns(r["time"])} for r in map(json.loads, out.stdout.splitlines())]


def test_diff_gives_the_clis_changes(fleet: list[Path], ndjson_node: list[Path], cli: Path) -> None:
    files = [str(f) for f in fleet + ndjson_node]
    expected = cli_diff(cli, "--baseline", V1, "--candidate", V5, *files)
    assert expected and {r["change"] for r in expected} == {"added"}  # v5 widens v1: only additions
    assert all(r.pop("other_side") for r in expected)  # the CLI says why; Ray leaves it null
    got = rows(tray.diff(V1, V5, files))
    assert all(r.pop("other_side") is None for r in got)
    key = lambda r: (r["capture"], r["event_index"], r["rule_id"], r["change"])  # noqa: E731
    assert sorted(got, key=key) == sorted(expected, key=key)
    # and the other way round: what going back to v1 would remove
    back = rows(tray.diff(V5, V1, files))
    assert sorted((r["change"], r["capture"], r["event_index"]) for r in back) == sorted(
        ("removed", r["capture"], r["event_index"]) for r in expected
    )


def test_bad_rules_and_missing_captures_fail_before_ray_runs(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[rule]\nrule_id = "x"\nname = "x"\nlanguage = "eql"\nquery = \'\'\'process where\'\'\'\n')
    with pytest.raises(tokenscan.RuleError) as e:
        tray.replay(FIXTURES / "pod-session.parquet", [str(bad)])
    assert e.value.file == str(bad)
    missing = tmp_path / "no-such-capture.parquet"
    with pytest.raises(FileNotFoundError) as f:
        tray.replay([FIXTURES / "pod-session.parquet", missing])
    assert f.value.filename == str(missing)


def test_a_corrupt_capture_among_others_fails_naming_it(corrupt_capture: Path) -> None:
    with pytest.raises(tokenscan.CaptureError, match=str(corrupt_capture)):
        tray.replay(corrupt_capture.parent.parent)


def test_a_capture_broken_past_its_footer_fails_in_the_task_naming_it(tmp_path: Path) -> None:
    """A capture whose footer reads but whose events do not (here: no `kind` column) fails
    in the Ray task; the caller gets tokenscan's CaptureError naming the file, not Ray's."""
    good = tmp_path / "good.parquet"
    shutil.copy(FIXTURES / "pod-session.parquet", good)
    broken = tmp_path / "no-kind.parquet"
    pq.write_table(pq.read_table(good).drop_columns(["kind"]), broken)
    with pytest.raises(tokenscan.CaptureError) as e:
        tray.replay(tmp_path)
    assert str(broken) in str(e.value)
    assert "ray" not in type(e.value).__module__ and "Traceback" not in str(e.value)


def test_rules_keep_their_ignore_above_on_the_workers(long_name: tuple[Path, str]) -> None:
    capture, rule = long_name
    off = tokenscan.Rules.from_text(rule, ignore_above=None)
    assert [r["event_index"] for r in rows(tray.replay(capture, off))] == [30]
    assert rows(tray.replay(capture, tokenscan.Rules.from_text(rule))) == []  # 1024: as Elasticsearch
    changes = rows(tray.diff(tokenscan.Rules.from_text(rule), off, capture))
    assert [(r["change"], r["event_index"]) for r in changes] == [("added", 30)]


def test_rules_over_a_whole_run_are_refused_before_ray_runs(fleet: list[Path], whole_run_rule: tuple[str, str]) -> None:
    """Refused on the driver, with the core's message naming the rule and its file; without
    that check each task would apply the rule to its own capture (checked: no error)."""
    text, message = whole_run_rule
    files = [str(f) for f in fleet]
    rules = tokenscan.Rules.from_text(text, "rule.toml")
    calls: list[Callable[[], object]] = [lambda: tray.replay(files, rules), lambda: tray.diff(None, rules, files)]
    for call in calls:
        with pytest.raises(tokenscan.RuleError, match=re.escape(message)) as e:
            call()
        assert e.value.file == "rule.toml"
