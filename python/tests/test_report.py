"""`tokenscan.report`: the triage report from Python, byte for byte the CLI's."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

import tokenscan
from conftest import FIXTURES


def data_of(html: str) -> dict[str, Any]:
    start = html.index('<script type="application/json" id="report-data">')
    start = html.index(">", start) + 1
    data: dict[str, Any] = json.loads(html[start : html.index("</script>", start)])
    return data


def test_the_report_of_the_pod_session(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    tokenscan.report(FIXTURES / "pod-session.parquet", out)
    data = data_of(out.read_text())
    # fixtures/EXPECTED.md: 83 events; 7 Elastic and 7 TRC-108 findings, all in container A.
    assert data["summary"]["events"] == 83
    assert {r["id"]: r["findings"] for r in data["rules"]} == {
        "66229f32-c460-410d-bc37-4b32322cd4bb": 7,
        "TRC-108": 7,
    }
    assert {f["container_id"][:12] for f in data["findings"]} == {"48c9dfca9bda"}


def test_rules_carry_version_and_the_hash_of_their_text(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    tokenscan.report(FIXTURES / "pod-session.parquet", out)
    rules = {r["id"]: (r["version"], r["text_sha256"]) for r in data_of(out.read_text())["rules"]}
    # The built-in rule files: Elastic's `[metadata] updated_date`, TRC-108's `version`;
    # each hash from hashlib over the file's bytes.
    core_rules = FIXTURES.parent / "core" / "rules"

    def sha(name: str) -> str:
        return hashlib.sha256((core_rules / name).read_bytes()).hexdigest()

    assert rules == {
        "66229f32-c460-410d-bc37-4b32322cd4bb": ("2026/02/01", sha("elastic-d4c-service-account-token-read.toml")),
        "TRC-108": ("1", sha("tracee-trc-108-k8s-service-account-token.toml")),
    }


def test_one_tree_per_container_and_session(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    tokenscan.report(FIXTURES / "pod-session.parquet", out)
    trees = data_of(out.read_text())["trees"]
    # All 14 findings are in container A; this version 1 capture has no pod metadata and
    # no session ids, so one group, named by the short container id, session unknown.
    assert [(t["scope"], t["session"], t["findings"]) for t in trees] == [("container 48c9dfca9bda", None, 14)]


def test_the_same_bytes_as_the_cli(tmp_path: Path, cli: Path, in_repo: Path) -> None:
    tokenscan.report("fixtures/pod-session.parquet", tmp_path / "py.html")
    subprocess.run([cli, "report", "fixtures/pod-session.parquet", "-o", tmp_path / "cli.html"], check=True)
    assert (tmp_path / "py.html").read_bytes() == (tmp_path / "cli.html").read_bytes()


def test_an_existing_file_is_replaced_only_with_force(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    out.write_text("precious\n")
    with pytest.raises(FileExistsError):
        tokenscan.report(FIXTURES / "pod-session.parquet", out)
    assert out.read_text() == "precious\n"
    tokenscan.report(FIXTURES / "pod-session.parquet", out, force=True)
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_the_output_is_never_a_capture(tmp_path: Path) -> None:
    capture = tmp_path / "c.ndjson"
    capture.write_text((FIXTURES / "pod-session.ndjson").read_text())
    with pytest.raises(tokenscan.TokenscanError):
        tokenscan.report(capture, capture, force=True)
    assert capture.read_text() == (FIXTURES / "pod-session.ndjson").read_text()
