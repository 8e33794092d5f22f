"""`tokenscan.import_tracee` / `import_ecs` / `export_tracee` / `export_ecs`: the CLI's
importers and exporters from Python, checked against the hand-checked samples in
fixtures/import/ (EXPECTED.md) and against the CLI itself."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pyarrow.parquet as pq
import pytest

import tokenscan
from conftest import FIXTURES, run_spinning
from test_replay import cli_findings, python_findings

SAMPLES = FIXTURES / "import"
ELASTIC = "66229f32-c460-410d-bc37-4b32322cd4bb"
TRC108 = "TRC-108"


@dataclass
class Sample:
    """A sample of fixtures/import/ and what EXPECTED.md says the import makes of it."""

    name: str
    kind: str  # "tracee" or "ecs"
    lines: int
    opens: int
    execs: int
    unmapped: dict[int, str]  # line number -> the start of its reason
    findings: dict[str, list[int]]  # rule id -> rows that fire with the built-in rules
    notes: dict[str, int] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return SAMPLES / self.name

    def importer(self) -> Callable[..., tokenscan.ImportReport]:
        return tokenscan.import_tracee if self.kind == "tracee" else tokenscan.import_ecs


CONTAINER_INIT_KEPT = "container-init events kept with their container id (origin container-init: TRC-108 skips them)"

SAMPLE_LIST = [
    Sample(
        "tracee-v0.23.json",
        "tracee",
        lines=7,
        opens=5,
        execs=1,
        unmapped={4: "event sched_process_fork"},
        findings={TRC108: [3]},
    ),
    Sample(
        "tracee-v0.24.json",
        "tracee",
        lines=8,
        opens=4,
        execs=2,
        unmapped={7: "invalid JSON: EOF while parsing a string (column 180)", 8: "event net_packet_dns"},
        findings={TRC108: [2, 4]},  # row 6 is container-init: skipped, as Tracee does
        notes={CONTAINER_INIT_KEPT: 1},
    ),
    Sample(
        "ecs-d4c.ndjson",
        "ecs",
        lines=9,
        opens=2,
        execs=4,
        unmapped={3: "event process/fork", 6: "event process/end", 7: "event file/creation"},
        findings={ELASTIC: [2, 3, 5]},
    ),
]
SAMPLES_BY_NAME = {s.name: s for s in SAMPLE_LIST}


@pytest.fixture(params=[s.name for s in SAMPLE_LIST])
def sample(request: pytest.FixtureRequest) -> Sample:
    return SAMPLES_BY_NAME[request.param]


def fired(findings: tokenscan.Findings) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for f in findings:
        out.setdefault(f["rule_id"], []).append(f["event_index"])
    return out


# --- the hand-checked samples -------------------------------------------------------------------


def test_import_counts_rows_and_unmapped_lines(sample: Sample, tmp_path: Path) -> None:
    out = tmp_path / "capture.parquet"
    report = sample.importer()(sample.path, out)
    assert report["format"] == sample.kind
    assert report["inputs"] == [str(sample.path)]
    assert report["output"] == str(out)
    assert report["lines"] == sample.lines
    assert (report["opens"], report["execs"]) == (sample.opens, sample.execs)
    assert report["events"] == sample.opens + sample.execs
    assert report["bytes"] == sample.path.stat().st_size
    assert report["gzip"] is False
    assert report["unmapped"] == len(sample.unmapped)
    assert sum(report["unmapped_by_reason"].values()) == report["unmapped"]
    examples = report["unmapped_examples"]
    assert [e["line"] for e in examples] == sorted(sample.unmapped)
    for e in examples:
        assert e["input"] == str(sample.path)
        assert e["reason"].startswith(sample.unmapped[e["line"]]), e
    assert report["notes"] == sample.notes
    # `events` counts opens and execs; `container` and `process` rows come with them.
    kinds = pq.read_table(out)["kind"].to_pylist()
    assert sum(k in ("open", "exec") for k in kinds) == report["events"]


def test_import_writes_the_expected_rows(sample: Sample, tmp_path: Path) -> None:
    """The NDJSON capture is byte for byte the hand-written fixtures/import/*.expected.ndjson."""
    out = tmp_path / "capture.ndjson"
    sample.importer()(sample.path, out)
    expected = sample.path.with_name(sample.path.name.rsplit(".", 1)[0] + ".expected.ndjson")
    assert out.read_text() == expected.read_text()


def test_imported_capture_fires_as_worked_out_by_hand(sample: Sample, tmp_path: Path) -> None:
    out = tmp_path / "capture.parquet"
    sample.importer()(sample.path, out)
    assert fired(tokenscan.replay(out)) == sample.findings


def test_import_and_replay_match_the_cli(sample: Sample, cli: Path, tmp_path: Path) -> None:
    """`tokenscan import ...` then `tokenscan replay --format ndjson`, against the same from Python."""
    ours, theirs = tmp_path / "python.parquet", tmp_path / "cli.parquet"
    report = sample.importer()(sample.path, ours)
    done = subprocess.run(
        [str(cli), "import", sample.kind, str(sample.path), "-o", str(theirs)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    m = re.search(r"imported (\d+) events? \((\d+) opens?, (\d+) execs?\) from (\d+) lines?", done.stderr)
    assert m, done.stderr
    assert [int(g) for g in m.groups()] == [report["events"], report["opens"], report["execs"], report["lines"]]
    for e in report["unmapped_examples"]:
        assert f"{e['input']}: line {e['line']}: {e['reason']}" in done.stderr
    assert pq.read_table(ours).equals(pq.read_table(theirs))
    py = python_findings(tokenscan.replay(ours))
    expected = cli_findings(cli, str(theirs))
    for f in py + expected:
        f.pop("capture")  # the two files have different names
    assert py == expected
    assert len(py) == sum(len(rows) for rows in sample.findings.values())


def test_import_of_a_gzip_file(sample: Sample, tmp_path: Path) -> None:
    gz = tmp_path / (sample.name + ".gz")
    gz.write_bytes(gzip.compress(sample.path.read_bytes()))
    plain = sample.importer()(sample.path, tmp_path / "plain.parquet")
    packed = sample.importer()(gz, tmp_path / "packed.parquet")
    assert packed["gzip"] is True
    assert packed["bytes"] == plain["bytes"] == sample.path.stat().st_size  # decompressed JSON
    for key in ("lines", "events", "opens", "execs", "unmapped", "unmapped_by_reason"):
        assert packed[key] == plain[key], key
    assert [e["line"] for e in packed["unmapped_examples"]] == [e["line"] for e in plain["unmapped_examples"]]
    assert pq.read_table(tmp_path / "packed.parquet").equals(pq.read_table(tmp_path / "plain.parquet"))


def test_corrupt_gzip_is_a_capture_error(tmp_path: Path) -> None:
    gz = tmp_path / "events.json.gz"
    gz.write_bytes(gzip.compress(SAMPLES_BY_NAME["tracee-v0.23.json"].path.read_bytes())[:-40])
    out = tmp_path / "capture.parquet"
    with pytest.raises(tokenscan.CaptureError, match="gzip") as e:
        tokenscan.import_tracee(gz, out)
    assert e.value.path == str(gz)
    assert not out.exists()


# --- strictness and reporting ---------------------------------------------------------------------


def test_strict_raises_at_the_first_unmapped_line(sample: Sample, tmp_path: Path) -> None:
    out = tmp_path / "capture.parquet"
    first = min(sample.unmapped)
    with pytest.raises(tokenscan.CaptureError, match=rf"line {first}: ") as e:
        sample.importer()(sample.path, out, strict=True)
    assert e.value.path == str(sample.path)
    assert not out.exists(), "a failed import left a partial capture behind"


def test_strict_accepts_an_input_where_every_line_maps(sample: Sample, tmp_path: Path) -> None:
    lines = sample.path.read_text().splitlines(keepends=True)
    clean = tmp_path / sample.name
    clean.write_text("".join(line for i, line in enumerate(lines, 1) if i not in sample.unmapped))
    report = sample.importer()(clean, tmp_path / "capture.parquet", strict=True)
    assert report["unmapped"] == 0
    assert report["events"] == sample.opens + sample.execs


def test_max_examples_limits_the_examples_not_the_count(tmp_path: Path) -> None:
    s = SAMPLES_BY_NAME["ecs-d4c.ndjson"]
    report = tokenscan.import_ecs(s.path, tmp_path / "c.parquet", max_examples=1)
    assert report["unmapped"] == 3
    assert [e["line"] for e in report["unmapped_examples"]] == [3]


def test_several_inputs_form_one_capture(tmp_path: Path) -> None:
    a, b = SAMPLES_BY_NAME["tracee-v0.23.json"], SAMPLES_BY_NAME["tracee-v0.24.json"]
    out = tmp_path / "both.parquet"
    report = tokenscan.import_tracee([a.path, b.path], out)
    assert report["inputs"] == [str(a.path), str(b.path)]
    assert report["events"] == 12
    # line numbers count within each input
    assert [(Path(e["input"]).name, e["line"]) for e in report["unmapped_examples"]] == [
        (a.name, 4),
        (b.name, 7),
        (b.name, 8),
    ]
    # b's rows follow a's eight (six events, two `container` rows); b's row 6 (14 here)
    # is the init container's cp, container-init: skipped as Tracee does
    assert fired(tokenscan.replay(out)) == {TRC108: [3, 10, 12]}
    assert pq.read_metadata(out).metadata[b"tokenscan.imported_from"] == b"tracee"


def test_container_init_as_host_drops_the_container_id(tmp_path: Path) -> None:
    s = SAMPLES_BY_NAME["tracee-v0.24.json"]
    out = tmp_path / "c.parquet"
    report = tokenscan.import_tracee(s.path, out, container_init="host")
    assert report["notes"] == {"container-init events imported as host events (container id dropped)": 1}
    # the init container's id and its `container` row are gone: cp's open is row 5
    assert pq.read_table(out)["comm"][5].as_py() == "cp"
    assert pq.read_table(out)["container_id"][5].as_py() is None
    assert fired(tokenscan.replay(out)) == {TRC108: [2, 4]}  # cp's open no longer fires, as in Tracee


def test_tty_from_stdin_lets_the_elastic_rule_see_an_interactive_exec(tmp_path: Path) -> None:
    s = SAMPLES_BY_NAME["tracee-v0.23.json"]
    out = tmp_path / "c.parquet"
    tokenscan.import_tracee(s.path, out, tty_from_stdin=True)
    assert pq.read_table(out)["tty"][1].as_py() == "pts/0"  # row 0 is the container's
    assert fired(tokenscan.replay(out)) == {ELASTIC: [1], TRC108: [3]}


def test_output_format_from_the_extension_or_the_argument(tmp_path: Path) -> None:
    s = SAMPLES_BY_NAME["ecs-d4c.ndjson"]
    tokenscan.import_ecs(s.path, tmp_path / "a.jsonl")
    assert (tmp_path / "a.jsonl").read_text() == (SAMPLES / "ecs-d4c.expected.ndjson").read_text()
    tokenscan.import_ecs(s.path, tmp_path / "b.out", format="parquet")
    assert pq.read_table(tmp_path / "b.out").num_rows == 8  # 6 events, a `container` and a `process` row
    with pytest.raises(ValueError, match="extension"):
        tokenscan.import_ecs(s.path, tmp_path / "c.out")
    with pytest.raises(ValueError, match="format must be"):
        tokenscan.import_ecs(s.path, tmp_path / "d.out", format="csv")  # type: ignore[arg-type]
    assert not (tmp_path / "c.out").exists() and not (tmp_path / "d.out").exists()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda p, o: tokenscan.import_tracee(p, o, container_init="drop"), "container_init must be"),  # type: ignore[arg-type]
        (lambda p, o: tokenscan.import_tracee([], o), "no input files"),
        (lambda p, o: tokenscan.export_tracee(p, o, style="v0.25"), "style must be"),  # type: ignore[arg-type]
        (lambda p, o: tokenscan.export_ecs(p, o, layout="flat"), "layout must be"),  # type: ignore[arg-type]
    ],
)
def test_bad_options_are_value_errors(call: Callable[[Path, Path], Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        call(FIXTURES / "pod-session.parquet", tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


# --- files: overwriting, missing inputs -----------------------------------------------------------


@pytest.mark.parametrize(
    "write",
    [
        lambda out, **kw: tokenscan.import_tracee(SAMPLES / "tracee-v0.24.json", out, **kw),
        lambda out, **kw: tokenscan.import_ecs(SAMPLES / "ecs-d4c.ndjson", out, **kw),
        lambda out, **kw: tokenscan.export_tracee(FIXTURES / "pod-session.parquet", out, **kw),
        lambda out, **kw: tokenscan.export_ecs(FIXTURES / "pod-session.parquet", out, **kw),
    ],
    ids=["import_tracee", "import_ecs", "export_tracee", "export_ecs"],
)
def test_an_existing_output_is_replaced_only_with_force(write: Callable[..., Any], tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    out.write_text("precious\n")
    with pytest.raises(FileExistsError) as e:
        write(out)
    assert e.value.filename == str(out)
    assert out.read_text() == "precious\n", "the existing file was touched"
    write(out, force=True)
    assert out.read_text() != "precious\n" and out.stat().st_size > 100


def test_the_output_cannot_be_the_input(tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    shutil.copy(SAMPLES / "ecs-d4c.ndjson", events)
    before = events.read_bytes()
    with pytest.raises(tokenscan.TokenscanError, match="overwrite the input"):
        tokenscan.import_ecs(events, events, force=True)
    capture = tmp_path / "c.ndjson"
    shutil.copy(FIXTURES / "pod-session.ndjson", capture)
    with pytest.raises(tokenscan.TokenscanError, match="overwrite the capture"):
        tokenscan.export_ecs(capture, capture, force=True)
    assert events.read_bytes() == before
    assert capture.read_bytes() == (FIXTURES / "pod-session.ndjson").read_bytes()


@pytest.mark.parametrize(
    "call",
    [tokenscan.import_tracee, tokenscan.import_ecs, tokenscan.export_tracee, tokenscan.export_ecs],
    ids=lambda f: f.__name__,
)
def test_a_missing_input_is_file_not_found(call: Callable[[Path, Path], Any], tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    out = tmp_path / "out.parquet"
    with pytest.raises(FileNotFoundError) as e:
        call(missing, out)
    assert e.value.filename == str(missing)
    assert not isinstance(e.value, tokenscan.TokenscanError)
    assert not out.exists(), "a failed call left an output behind"


def test_a_corrupt_capture_to_export_is_a_capture_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    out = tmp_path / "out.json"
    with pytest.raises(tokenscan.CaptureError) as e:
        tokenscan.export_tracee(bad, out)
    assert e.value.path == str(bad)
    assert not out.exists()


# --- exports and round trips ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, kwargs, cli_flags",
    [
        ("tracee", {}, []),
        ("tracee", {"style": "v0.23", "flag_names": True}, ["--style", "v0.23", "--flag-names"]),
        ("ecs", {}, []),
        ("ecs", {"layout": "dotted"}, ["--layout", "dotted"]),
    ],
)
def test_export_writes_what_the_cli_writes(
    fmt: str, kwargs: dict[str, Any], cli_flags: list[str], cli: Path, tmp_path: Path
) -> None:
    capture = FIXTURES / "pod-session.parquet"
    ours, theirs = tmp_path / "python.json", tmp_path / "cli.json"
    export = tokenscan.export_tracee if fmt == "tracee" else tokenscan.export_ecs
    assert export(capture, ours, **kwargs) == 83
    subprocess.run([str(cli), "export", fmt, str(capture), "-o", str(theirs), *cli_flags], check=True)
    assert ours.read_bytes() == theirs.read_bytes()
    assert len(ours.read_text().splitlines()) == 83


def test_round_trip_through_tracee_keeps_trc108(tmp_path: Path) -> None:
    """Exported to Tracee and imported back, the capture replays to the same TRC-108 findings
    (the seed Elastic rule needs a terminal, which Tracee does not carry; docs/import.md)."""
    capture = FIXTURES / "pod-session.parquet"
    tokenscan.export_tracee(capture, tmp_path / "events.json")
    report = tokenscan.import_tracee(tmp_path / "events.json", tmp_path / "back.parquet")
    assert report["events"] == 83 and report["unmapped"] == 0
    before = [f for f in python_findings(tokenscan.replay(capture)) if f["rule_id"] == TRC108]
    after = python_findings(tokenscan.replay(tmp_path / "back.parquet"))
    for f in before + after:
        f.pop("capture")
        f.pop("tty")
    assert len(before) == 7
    assert after == before


def test_round_trip_through_ecs_keeps_the_elastic_findings(tmp_path: Path) -> None:
    capture = FIXTURES / "pod-session.parquet"
    tokenscan.export_ecs(capture, tmp_path / "docs.ndjson", layout="dotted")
    report = tokenscan.import_ecs(tmp_path / "docs.ndjson", tmp_path / "back.parquet")
    assert report["events"] == 83 and report["unmapped"] == 0
    rules = tokenscan.Rules.load(REPO_RULES / "elastic-d4c-service-account-token-read.toml")
    before = python_findings(tokenscan.replay(capture, rules))
    after = python_findings(tokenscan.replay(tmp_path / "back.parquet", rules))
    # ECS does not carry what the process asked for, nor a failed exec's path (docs/import.md)
    for f in before + after:
        for column in ("capture", "requested_path", "flags"):
            f.pop(column)
        if f["kind"] == "exec":
            f.pop("path")  # the executable, in ECS
    assert len(before) == 7
    assert after == before


REPO_RULES = FIXTURES.parent / "core" / "rules"


# --- the GIL --------------------------------------------------------------------------------------


def test_import_releases_the_gil(tmp_path: Path) -> None:
    text = (SAMPLES / "tracee-v0.23.json").read_text()
    big = tmp_path / "big.json"
    # 31,500 lines, 48 MB: a release build imports 10,500 lines in under the
    # 50 ms the check needs to tell.
    big.write_text(text * 4500)
    report, spinning = run_spinning(lambda: tokenscan.import_tracee(big, tmp_path / "big.parquet"))
    assert report["events"] == 6 * 4500
    assert report["unmapped"] == 4500
    # this thread ran Python while the import ran in the other one, in the middle of the call
    spinning.assert_ran_during_call()


# --- Kubernetes audit logs ------------------------------------------------------------------------


def _audit_event(audit_id: str, stage: str, pod: str, at: str, code: int | None = None) -> str:
    """One `audit.k8s.io/v1` Event line as kube-apiserver writes it with --audit-log-path."""
    import json

    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": audit_id,
        "stage": stage,
        "requestURI": "/api/v1/namespaces/shop/secrets",
        "verb": "list",
        "user": {
            "username": "system:serviceaccount:shop:default",
            "extra": {"authentication.kubernetes.io/pod-name": [pod]},
        },
        "sourceIPs": ["10.244.1.17"],
        "objectRef": {"resource": "secrets", "namespace": "shop", "apiVersion": "v1"},
        "requestReceivedTimestamp": f"2026-11-20T10:15:{at}Z",
        "stageTimestamp": f"2026-11-20T10:15:{at}Z",
    }
    if code is not None:
        event["responseStatus"] = {"metadata": {}, "code": code}
    return json.dumps(event) + "\n"


def test_import_k8s_audit_makes_audit_rows_the_rules_see_by_pod_name(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_text(
        _audit_event("a-1", "RequestReceived", "web-1", "33.100")
        + "not json\n"
        + _audit_event("a-1", "ResponseComplete", "web-1", "33.104", code=403)
    )
    out = tmp_path / "audit.parquet"
    report = tokenscan.import_k8s_audit(log, out)
    assert (report["format"], report["lines"], report["events"], report["audits"]) == ("k8s-audit", 3, 2, 2)
    assert (report["opens"], report["execs"], report["unmapped"]) == (0, 0, 1)
    assert [e["line"] for e in report["unmapped_examples"]] == [2]

    raw = tokenscan.read_capture(out).to_pydict()
    assert raw["kind"] == ["k8s_audit", "k8s_audit"]
    assert raw["audit_stage"] == ["RequestReceived", "ResponseComplete"]
    assert raw["audit_pod_name"] == ["web-1", "web-1"]
    assert raw["audit_response_code"] == [None, 403]

    view = tokenscan.ecs_view(out).to_pydict()
    assert view["data_stream.dataset"] == ["kubernetes.audit_logs"] * 2
    assert view["kubernetes.audit.user.extra.authentication.kubernetes.io/pod-name"] == ["web-1", "web-1"]

    # The output is never replaced unasked; --strict stops at line 2 and leaves nothing.
    with pytest.raises(FileExistsError):
        tokenscan.import_k8s_audit(log, out)
    strict = tmp_path / "strict.parquet"
    with pytest.raises(tokenscan.CaptureError, match=r"line 2: invalid JSON") as e:
        tokenscan.import_k8s_audit(log, strict, strict=True)
    assert e.value.path == str(log)
    assert not strict.exists()


def test_an_audit_finding_shows_the_pod_whose_token_made_the_request(tmp_path: Path) -> None:
    # A finding on an audit event ran on the API server, not on a host: the
    # notebook view names the pod whose token was used and the request with
    # its answer, as the CLI table does.
    log = tmp_path / "audit.log"
    log.write_text(_audit_event("a-1", "ResponseComplete", "web-1", "33.104", code=403))
    out = tmp_path / "audit.parquet"
    tokenscan.import_k8s_audit(log, out)
    rule = tmp_path / "api.toml"
    rule.write_text(
        '[rule]\nrule_id = "api"\nname = "API request"\nseverity = "low"\nquery = """\n'
        'any where data_stream.dataset == "kubernetes.audit_logs" and kubernetes.audit.stage == "ResponseComplete"\n"""\n'
    )
    findings = tokenscan.replay(out, rule)
    assert len(findings) == 1
    row = findings._repr_html_().split("<tbody>")[2].split("</tbody>")[0]
    assert "<td>token of web-1</td>" in row
    assert "list /api/v1/namespaces/shop/secrets -&gt; 403 by system:serviceaccount:shop:default" in row
    assert "(host)" not in row
