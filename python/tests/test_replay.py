"""`tokenscan.replay` and `Findings`: the same answers as the CLI, handed over as Arrow."""

from __future__ import annotations

import datetime
import gc
import json
import multiprocessing
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import tokenscan
from conftest import FIXTURES, NDJSON_FIXTURES, PARQUET_FIXTURES, run_spinning

FINDING_COLUMNS = [
    "rule_id",
    "rule_name",
    "severity",
    "capture",
    "event_index",
    "time",
    "kind",
    "host",
    "container_id",
    "pid",
    "tid",
    "ppid",
    "uid",
    "comm",
    "exe",
    "args",
    "path",
    "requested_path",
    "flags",
    "tty",
    # A Kubernetes audit event's request (null on node events).
    "audit_user",
    "audit_pod_name",
    "audit_verb",
    "audit_request_uri",
    "audit_response_code",
    "reason",
    # The triage context (docs/processes.md), null where the capture does not say.
    "pod_name",
    "pod_namespace",
    "container_name",
    "image",
    "process_entity_id",
    "parent_pid",
    "parent_name",
    "parent_args",
    "session_leader_pid",
    "session_leader_name",
    "session_leader_tty",
    "entry_leader_pid",
    "entry_leader_name",
    "entry_leader_type",
]


def rfc3339_to_ns(text: str) -> int:
    """`2026-11-20T14:30:02.6011Z` (as the CLI's JSON writes times) to nanoseconds since the epoch."""
    assert text.endswith("Z"), text
    whole, _, frac = text[:-1].partition(".")
    seconds = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.timezone.utc).timestamp()
    return int(seconds) * 1_000_000_000 + int((frac + "000000000")[:9])


def cli_findings(cli: Path, *args: str) -> list[dict[str, Any]]:
    """What `tokenscan replay --format ndjson` prints, one dict per finding."""
    out = subprocess.run(
        [str(cli), "replay", *args, "--format", "ndjson", "--quiet"], check=True, capture_output=True, text=True
    ).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    for r in rows:
        r["time"] = rfc3339_to_ns(r["time"])
    return rows


def python_findings(findings: tokenscan.Findings) -> list[dict[str, Any]]:
    """The findings as plain values comparable with the CLI's JSON (times as nanoseconds)."""
    table = pa.table(findings)
    table = table.set_column(table.schema.get_field_index("time"), "time", table["time"].cast(pa.int64()))
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


@pytest.mark.parametrize("fixture", PARQUET_FIXTURES + NDJSON_FIXTURES)
def test_replay_matches_the_cli_for_every_fixture(fixture: str, cli: Path, in_repo: Path) -> None:
    path = f"fixtures/{fixture}"
    expected = cli_findings(cli, path)
    got = python_findings(tokenscan.replay(path))
    assert [list(r) for r in got] == [FINDING_COLUMNS] * len(got)
    assert got == expected
    # the parts the issue names, spelled out so a failure reads well
    key = ["rule_id", "event_index", "capture", "reason"]
    assert [[r[k] for k in key] for r in got] == [[r[k] for k in key] for r in expected]


def test_replay_of_the_fixtures_directory_matches_the_cli(cli: Path, in_repo: Path) -> None:
    expected = cli_findings(cli, "fixtures")
    findings = tokenscan.replay("fixtures")
    assert python_findings(findings) == expected
    assert {r["capture"] for r in expected} <= {f"fixtures/{n}" for n in PARQUET_FIXTURES + NDJSON_FIXTURES}


@pytest.mark.parametrize("fixture", PARQUET_FIXTURES)
def test_summary_matches_the_cli_json_summary(fixture: str, cli: Path, in_repo: Path) -> None:
    path = f"fixtures/{fixture}"
    out = subprocess.run(
        [str(cli), "replay", path, "--format", "json", "--quiet"], check=True, capture_output=True, text=True
    ).stdout
    expected = json.loads(out)["summary"]
    got: dict[str, Any] = dict(tokenscan.replay(path).summary())
    time_range = got.pop("time_range")
    cli_range = expected.pop("time_range")
    assert got == expected
    assert time_range is not None and cli_range is not None
    for k in ("first", "last"):
        t = time_range[k]
        assert t.tzinfo is not None and t.utcoffset() == datetime.timedelta(0)
        ns = rfc3339_to_ns(cli_range[k])
        assert t == datetime.datetime.fromtimestamp(ns // 1000 / 1e6, tz=datetime.timezone.utc)


def test_pod_session_findings(in_repo: Path) -> None:
    findings = tokenscan.replay("fixtures/pod-session.parquet")
    assert len(findings) == 14
    s = findings.summary()
    assert s["events"] == 83
    assert s["findings"] == 14
    assert [(r["rule_id"], r["findings"]) for r in s["rules"]] == [
        ("66229f32-c460-410d-bc37-4b32322cd4bb", 7),
        ("TRC-108", 7),
    ]
    assert s["containers"] == ["48c9dfca9bda9dfa36f83121c6185b99f99f5280628b35a906477e79d29c31ad"]
    assert {"host": "node-a", "pid": 51040, "comm": "cat"} in s["processes"]
    assert s["captures"] == [{"path": "fixtures/pod-session.parquet", "events": 83}]


def test_captures_can_be_paths_lists_and_directories(in_repo: Path) -> None:
    one = python_findings(tokenscan.replay(Path("fixtures/pod-session.parquet")))
    assert python_findings(tokenscan.replay("fixtures/pod-session.parquet")) == one
    both = tokenscan.replay(["fixtures/pod-session.parquet", Path("fixtures/edge-cases.parquet")])
    assert [c["path"] for c in both.summary()["captures"]] == [
        "fixtures/pod-session.parquet",
        "fixtures/edge-cases.parquet",
    ]
    assert len(both) == 14 + 12
    everything = tokenscan.replay(iter(["fixtures"]))
    assert len(everything.summary()["captures"]) == len(PARQUET_FIXTURES) + len(NDJSON_FIXTURES)
    assert len(tokenscan.replay([])) == 0


def test_rules_can_be_a_rules_object_paths_or_a_directory(in_repo: Path, tmp_path: Path) -> None:
    builtin = python_findings(tokenscan.replay("fixtures/pod-session.parquet"))
    assert python_findings(tokenscan.replay("fixtures/pod-session.parquet", tokenscan.Rules.default())) == builtin
    files = [tmp_path / name for name, _ in (("a.toml", ""), ("b.toml", ""))]
    for f, (_, text) in zip(files, tokenscan.Rules.default().sources):
        f.write_text(text)
    findings_dir = tokenscan.replay("fixtures/pod-session.parquet", rules=tmp_path)
    findings_files = tokenscan.replay("fixtures/pod-session.parquet", rules=[str(f) for f in files])
    assert python_findings(findings_dir) == python_findings(findings_files) == builtin
    only_trc = tokenscan.replay("fixtures/pod-session.parquet", rules=files[1])
    assert {r["rule_id"] for r in only_trc} == {"TRC-108"}
    assert len(only_trc) == 7


def test_strict_raises_on_an_unevaluable_event_and_otherwise_counts_it(in_repo: Path) -> None:
    lenient = tokenscan.replay("fixtures/edge-cases.parquet")
    trc = [r for r in lenient.summary()["rules"] if r["rule_id"] == "TRC-108"][0]
    assert trc["unevaluable"] == 1
    assert trc["unevaluable_examples"] == [
        {
            "capture": "fixtures/edge-cases.parquet",
            "event_index": 29,
            "message": 'argument "flags" is missing (flags is null)',
        }
    ]
    with pytest.raises(tokenscan.UnevaluableError) as e:
        tokenscan.replay("fixtures/edge-cases.parquet", strict=True)
    assert str(e.value) == (
        "fixtures/edge-cases.parquet: event 29: rule TRC-108 cannot evaluate it: "
        'argument "flags" is missing (flags is null)'
    )
    assert (e.value.capture, e.value.event_index, e.value.rule_id) == ("fixtures/edge-cases.parquet", 29, "TRC-108")
    assert isinstance(e.value, tokenscan.TokenscanError)


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_batch_size_does_not_change_the_findings(batch_size: int, in_repo: Path) -> None:
    expected = python_findings(tokenscan.replay("fixtures/pod-session.parquet"))
    assert python_findings(tokenscan.replay("fixtures/pod-session.parquet", batch_size=batch_size)) == expected


# --- Findings as Arrow and friends --------------------------------------------------------------


def test_findings_are_an_arrow_stream(in_repo: Path) -> None:
    findings = tokenscan.replay("fixtures/pod-session.parquet")
    reader = pa.RecordBatchReader.from_stream(findings)
    assert reader.schema.names == FINDING_COLUMNS
    assert reader.read_all().num_rows == 14
    table = findings.to_arrow()
    assert isinstance(table, pa.Table)
    assert table.schema.names == FINDING_COLUMNS
    assert table.schema.field("time").type == pa.timestamp("ns", tz="UTC")
    assert table.schema.field("args").type == pa.list_(pa.string())
    assert table.schema.field("event_index").type == pa.uint64()
    # the stream can be exported again (each call is a fresh stream over the same buffers)
    assert pa.table(findings).equals(table)


def test_to_arrow_does_not_copy(in_repo: Path) -> None:
    findings = tokenscan.replay("fixtures/pod-session.parquet")
    a = findings.to_arrow()
    b = findings.to_arrow()
    # both tables wrap the very same Rust-owned buffers
    for name in ("reason", "comm", "event_index"):
        ca, cb = a[name].chunks[0], b[name].chunks[0]
        assert [buf.address for buf in ca.buffers() if buf] == [buf.address for buf in cb.buffers() if buf]


def test_requested_schema_is_honoured(in_repo: Path) -> None:
    findings = tokenscan.replay("fixtures/pod-session.parquet")
    wanted = findings.to_arrow().schema.set(
        FINDING_COLUMNS.index("reason"), pa.field("reason", pa.large_string(), nullable=False)
    )
    capsule = findings.__arrow_c_stream__(wanted.__arrow_c_schema__())
    table = pa.RecordBatchReader._import_from_c_capsule(capsule).read_all()
    assert table.schema.field("reason").type == pa.large_string()


def test_empty_findings_keep_their_schema(in_repo: Path) -> None:
    findings = tokenscan.replay("fixtures/host-reads.parquet")
    assert len(findings) == 0
    assert not findings
    table = findings.to_arrow()
    assert table.num_rows == 0
    assert table.schema.names == FINDING_COLUMNS
    assert list(findings) == []
    assert findings.to_pandas().shape == (0, len(FINDING_COLUMNS))


def test_to_pandas(in_repo: Path) -> None:
    pd = pytest.importorskip("pandas")
    df = tokenscan.replay("fixtures/pod-session.parquet").to_pandas()
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == FINDING_COLUMNS
    assert len(df) == 14
    assert str(df["time"].dtype) in ("datetime64[ns, UTC]", "datetime64[ns, tz=UTC]")
    assert df["comm"].iloc[0] == "cat"


def test_to_polars(in_repo: Path) -> None:
    pl = pytest.importorskip("polars")
    df = tokenscan.replay("fixtures/pod-session.parquet").to_polars()
    assert isinstance(df, pl.DataFrame)
    assert df.columns == FINDING_COLUMNS
    assert df.height == 14
    assert df.filter(pl.col("rule_id") == "TRC-108").height == 7
    # polars also reads the stream directly
    assert pl.DataFrame(tokenscan.replay("fixtures/pod-session.parquet")).height == 14
    # polars.from_arrow of any Arrow stream that is not pyarrow's is a Series of structs
    # (polars' choice, not ours); unnested it is the same frame
    series = pl.from_arrow(tokenscan.replay("fixtures/pod-session.parquet"))
    assert isinstance(series, pl.Series)
    assert series.struct.unnest().equals(df)


def test_duckdb_reads_findings_directly(in_repo: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    findings = tokenscan.replay("fixtures/pod-session.parquet")
    counts = duckdb.sql("select rule_id, count(*) from findings group by rule_id order by rule_id").fetchall()
    assert counts == [("66229f32-c460-410d-bc37-4b32322cd4bb", 7), ("TRC-108", 7)]


def test_missing_optional_dependency_says_which_extra(in_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    findings = tokenscan.replay("fixtures/pod-session.parquet")
    for module, method in (("pandas", findings.to_pandas), ("polars", findings.to_polars)):
        monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
        with pytest.raises(ImportError, match=rf"pip install 'tokenscan\[{module}\]'"):
            method()


def test_iteration_yields_dicts(in_repo: Path) -> None:
    rows = list(tokenscan.replay("fixtures/pod-session.parquet"))
    assert len(rows) == 14
    first = rows[0]
    assert list(first) == FINDING_COLUMNS
    assert first["rule_id"] == "66229f32-c460-410d-bc37-4b32322cd4bb"
    assert first["event_index"] == 30
    assert first["args"] == ["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"]


def test_repr_and_html(in_repo: Path) -> None:
    findings = tokenscan.replay("fixtures/pod-session.parquet")
    assert repr(findings) == (
        "<tokenscan.Findings: 14 findings in 83 events from 1 capture "
        "(66229f32-c460-410d-bc37-4b32322cd4bb: 7, TRC-108: 7)>"
    )
    html = findings._repr_html_()
    assert html.startswith('<div class="tokenscan-findings">') and html.endswith("</div>")
    assert "<b>14 findings</b> in 83 events from 1 capture" in html
    assert "2026-11-20 10:15:00.000 .. 2026-11-20 10:16:56.543 UTC" in html
    assert html.count("<tr><td>") == 2 + 14  # per-rule rows, then every finding
    # event text is escaped, never interpreted
    assert "&quot;cat&quot;" in html and '"cat"' not in html.split("<tbody>", 2)[2]


def test_html_shows_the_first_rows_and_counts_the_rest(in_repo: Path) -> None:
    findings = tokenscan.replay("fixtures")
    html = findings._repr_html_()
    assert html.count("<tr><td>") == 2 + 20
    assert f"{len(findings) - 20} more findings" in html
    assert "edge-cases.ndjson#0" in html  # several captures: events are named capture#index
    assert "could not be evaluated" in html


def test_findings_cannot_be_made_by_hand() -> None:
    with pytest.raises(TypeError):
        tokenscan.Findings()


# --- performance properties -----------------------------------------------------------------------


def test_no_python_object_is_made_per_event(big_capture: Path) -> None:
    gc.collect()
    before = sys.getallocatedblocks()
    findings = tokenscan.replay(big_capture)
    table = findings.to_arrow()
    gc.collect()
    grown = sys.getallocatedblocks() - before
    assert findings.summary()["events"] == 9_960
    assert table.num_rows == 1_680
    # a few hundred Python objects for the whole result, not one per event or finding
    assert grown < 300, grown


def replay_in_child(path: str, out: Any) -> None:
    out.put(len(tokenscan.replay(path)))


def test_replay_works_in_a_forked_child(tmp_path: Path) -> None:
    """multiprocessing forks by default on Linux: a child must not inherit a dead thread pool."""
    capture = tmp_path / "row-groups.parquet"
    table = pq.read_table(FIXTURES / "pod-session.parquet")
    pq.write_table(pa.concat_tables([table] * 6), capture, row_group_size=100)  # several row groups
    assert len(tokenscan.replay(capture)) == 84  # the parent replays first
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=replay_in_child, args=(str(capture), out))
    child.start()
    child.join(120)
    if child.is_alive():
        child.kill()
        pytest.fail("replay hung in a forked child")
    assert child.exitcode == 0
    assert out.get(timeout=5) == 84


def test_replay_releases_the_gil(long_capture: Path) -> None:
    findings, spinning = run_spinning(lambda: tokenscan.replay(long_capture))
    assert len(findings) == 16_800  # 14 per copy
    # This thread kept running Python while the replay ran in the other one, in
    # the middle of the call, not only once it had returned.
    spinning.assert_ran_during_call()
