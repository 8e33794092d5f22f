"""`read_capture`, `ecs_view`, `tracee_view` and `hunt`: the events, raw and as each rule sees them."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import tokenscan
from conftest import FIXTURES, NDJSON_FIXTURES, PARQUET_FIXTURES

POD = FIXTURES / "pod-session.parquet"

CAPTURE_SCHEMA = pa.schema(
    [
        pa.field("time", pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("host", pa.string(), nullable=False),
        pa.field("pid", pa.uint32(), nullable=False),
        pa.field("tid", pa.uint32(), nullable=False),
        pa.field("ppid", pa.uint32(), nullable=False),
        pa.field("uid", pa.uint32(), nullable=False),
        pa.field("gid", pa.uint32(), nullable=False),
        pa.field("comm", pa.string(), nullable=False),
        pa.field("exe", pa.string()),
        pa.field("args", pa.list_(pa.string())),
        pa.field("path", pa.string()),
        pa.field("requested_path", pa.string()),
        pa.field("flags", pa.int32()),
        pa.field("result", pa.int64()),
        pa.field("tty", pa.string()),
        pa.field("cgroup_id", pa.uint64(), nullable=False),
        pa.field("container_id", pa.string()),
        # capture format version 2
        pa.field("sid", pa.uint32()),
        pa.field("pgid", pa.uint32()),
        pa.field("start", pa.timestamp("ns", tz="UTC")),
        pa.field("parent_start", pa.timestamp("ns", tz="UTC")),
        pa.field("cwd", pa.string()),
        pa.field("pod_name", pa.string()),
        pa.field("pod_namespace", pa.string()),
        pa.field("pod_uid", pa.string()),
        pa.field("container_name", pa.string()),
        pa.field("image", pa.string()),
        pa.field("image_name", pa.string()),
        pa.field("image_tag", pa.string()),
        pa.field("privileged", pa.bool_()),
        pa.field("container_started", pa.bool_()),
        pa.field("old_path", pa.string()),
        # capture format version 3: Kubernetes audit events (docs/capture-format.md)
        pa.field("audit_id", pa.string()),
        pa.field("audit_stage", pa.string()),
        pa.field("audit_verb", pa.string()),
        pa.field("audit_request_uri", pa.string()),
        pa.field("audit_user", pa.string()),
        pa.field("audit_user_groups", pa.list_(pa.string())),
        pa.field("audit_pod_name", pa.string()),
        pa.field("audit_source_ips", pa.list_(pa.string())),
        pa.field("audit_user_agent", pa.string()),
        pa.field("audit_resource", pa.string()),
        pa.field("audit_subresource", pa.string()),
        pa.field("audit_namespace", pa.string()),
        pa.field("audit_name", pa.string()),
        pa.field("audit_api_group", pa.string()),
        pa.field("audit_api_version", pa.string()),
        pa.field("audit_response_code", pa.int32()),
        pa.field("audit_decision", pa.string()),
        pa.field("audit_reason", pa.string()),
        pa.field("audit_request_received", pa.timestamp("ns", tz="UTC")),
    ]
)


# --- read_capture --------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", PARQUET_FIXTURES)
def test_read_capture_has_the_canonical_schema_and_equals_the_ndjson_twin(fixture: str) -> None:
    table = tokenscan.read_capture(FIXTURES / fixture)
    assert table.schema.remove_metadata() == CAPTURE_SCHEMA
    twin = tokenscan.read_capture(FIXTURES / fixture.replace(".parquet", ".ndjson"))
    assert twin.schema.metadata is None
    assert table.replace_schema_metadata(None).equals(twin)


def test_read_capture_keeps_the_file_metadata() -> None:
    metadata = tokenscan.read_capture(POD).schema.metadata
    assert metadata[b"tokenscan.capture_version"] == b"1"


def test_read_capture_columns_in_the_order_asked() -> None:
    table = tokenscan.read_capture(str(POD), columns=["comm", "pid", "time"])
    assert table.column_names == ["comm", "pid", "time"]
    assert table.num_rows == 83
    assert table.schema.field("pid").type == pa.uint32()
    full = tokenscan.read_capture(POD)
    assert table["comm"].equals(full["comm"])
    # `kind` is always read internally, but only returned when asked for
    assert "kind" not in table.column_names
    assert tokenscan.read_capture(POD, columns=[]).num_columns == 0


def test_read_capture_unknown_column() -> None:
    with pytest.raises(ValueError, match='unknown capture column "bogus"; capture format v2 has time, kind'):
        tokenscan.read_capture(POD, columns=["pid", "bogus"])


def test_read_capture_hands_over_without_copying(tmp_path: Path) -> None:
    """The buffers stay Rust-allocated: pyarrow's allocator is not asked for memory."""
    before = pa.total_allocated_bytes()
    table = tokenscan.read_capture(POD)
    findings = tokenscan.replay(POD).to_arrow()
    assert table.nbytes > 10_000 and findings.nbytes > 1_000
    assert pa.total_allocated_bytes() - before == 0


# --- ecs_view -------------------------------------------------------------------------------------


def test_ecs_view_has_the_fields_eql_sees() -> None:
    view = tokenscan.ecs_view(POD)
    assert view.column_names[:2] == ["capture", "event_index"]
    for name in ("process.name", "process.args", "process.interactive", "event.type", "file.path", "container.id"):
        assert name in view.column_names
    # every exec and every successful open; failed opens are not in any rule view
    raw = tokenscan.read_capture(POD)
    failed_opens = pc.sum(pc.and_(pc.equal(raw["kind"], "open"), pc.less(raw["result"], 0))).as_py() or 0
    assert view.num_rows == raw.num_rows - failed_opens
    cat = view.filter(pc.equal(view["event_index"], 30)).to_pylist()[0]
    assert cat["capture"] == str(POD)
    assert (cat["event.category"], cat["event.action"], cat["event.type"]) == ("process", "exec", "start")
    assert cat["process.name"] == "cat"
    assert cat["process.args"] == ["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"]
    assert cat["process.args_count"] == 2
    assert cat["process.interactive"] is True
    assert cat["file.path"] is None  # file fields are only on opens
    read = view.filter(pc.equal(view["event_index"], 32)).to_pylist()[0]
    assert (read["event.category"], read["event.type"]) == ("file", "access")
    assert read["file.name"] == "token"
    assert read["process.args"] is None  # process.args is only on execs


def test_ecs_view_of_several_captures() -> None:
    view = tokenscan.ecs_view(FIXTURES)
    names = {Path(p).name for p in view["capture"].unique().to_pylist()}
    assert names <= set(PARQUET_FIXTURES + NDJSON_FIXTURES)
    assert len(names) == len(PARQUET_FIXTURES + NDJSON_FIXTURES)


# --- tracee_view ------------------------------------------------------------------------------------


def test_tracee_view_has_tracee_field_names() -> None:
    view = tokenscan.tracee_view(POD)
    assert view.column_names == [
        "capture",
        "event_index",
        "timestamp",
        "eventName",
        "origin",
        "processName",
        "processId",
        "threadId",
        "parentProcessId",
        "userId",
        "hostName",
        "containerId",
        "cgroupId",
        "args.pathname",
        "args.flags",
        "args.syscall_pathname",
        "args.argv",
    ]
    opened = view.filter(pc.equal(view["event_index"], 32)).to_pylist()[0]
    assert opened["eventName"] == "security_file_open"
    assert opened["origin"] == "container"
    assert opened["args.pathname"].endswith("/token")
    assert opened["args.syscall_pathname"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert opened["args.flags"] == 32768
    execd = view.filter(pc.equal(view["event_index"], 30)).to_pylist()[0]
    assert execd["eventName"] == "sched_process_exec"
    assert execd["args.flags"] is None


def test_views_explain_why_a_rule_did_not_fire() -> None:
    """Event 60 (`cd` then `cat token`) is invisible to the Elastic rule: argv has only `token`."""
    findings = tokenscan.replay(POD).to_arrow()
    fired = set(zip(findings["event_index"].to_pylist(), findings["rule_id"].to_pylist()))
    assert (60, "66229f32-c460-410d-bc37-4b32322cd4bb") not in fired
    ecs = tokenscan.ecs_view(POD)
    execs_of_60 = ecs.filter(pc.and_(pc.equal(ecs["process.pid"], 51074), pc.equal(ecs["event.action"], "exec")))
    assert execs_of_60["process.args"].to_pylist() == [["cat", "token"]]
    tracee = tokenscan.tracee_view(POD)
    seen = tracee.filter(pc.equal(tracee["event_index"], 60)).to_pylist()[0]
    assert seen["args.syscall_pathname"] == "token"


def test_views_of_an_empty_selection_keep_their_schema(tmp_path: Path) -> None:
    empty = tmp_path / "empty.ndjson"
    empty.write_text("# no events\n")
    assert tokenscan.ecs_view(empty).schema == tokenscan.ecs_view(POD).schema
    assert tokenscan.tracee_view(empty).num_rows == 0
    assert tokenscan.tracee_view(empty).schema == tokenscan.tracee_view(POD).schema


# --- hunt -----------------------------------------------------------------------------------------


def test_hunt_returns_the_matching_events() -> None:
    found = tokenscan.hunt(POD, 'process where process.name == "cat"')
    assert found.column_names == ["capture", "event_index", *CAPTURE_SCHEMA.names]
    assert found.schema.remove_metadata().field("time").type == pa.timestamp("ns", tz="UTC")
    assert set(found["comm"].to_pylist()) == {"cat"}
    assert set(found["kind"].to_pylist()) == {"exec"}
    assert 30 in found["event_index"].to_pylist()
    ecs = tokenscan.ecs_view(POD)
    expected = ecs.filter(pc.and_(pc.equal(ecs["process.name"], "cat"), pc.equal(ecs["event.category"], "process")))
    assert found["event_index"].to_pylist() == expected["event_index"].to_pylist()


def test_hunt_with_eql_features_over_several_captures() -> None:
    query = 'file where file.path : "*serviceaccount/token" and process.name in~ ("CAT", "head")'
    found = tokenscan.hunt([FIXTURES / "pod-session.parquet", FIXTURES / "edge-cases.parquet"], query)
    assert found.num_rows > 0
    assert set(found["kind"].to_pylist()) == {"open"}
    assert {Path(c).name for c in found["capture"].to_pylist()} <= {"pod-session.parquet", "edge-cases.parquet"}
    assert tokenscan.hunt(POD, 'process where process.name == "no-such-process"').num_rows == 0


def test_hunt_ignore_above() -> None:
    long_arg = 'process where length(process.executable) > 0 and process.executable like "*"'
    assert tokenscan.hunt(POD, long_arg).num_rows == tokenscan.hunt(POD, long_arg, ignore_above=None).num_rows


def test_hunt_bad_query_points_at_line_and_column() -> None:
    with pytest.raises(tokenscan.RuleError) as e:
        tokenscan.hunt(POD, 'process where\n  process.nmae == "cat"')
    assert (e.value.file, e.value.line, e.value.column) == ("<query>", 2, 3)
    assert str(e.value) == (
        "<query>:2:3: unknown field `process.nmae`: did you mean `process.name`? "
        "(write `?process.nmae` to treat it as always missing)"
    )
