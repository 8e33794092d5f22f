"""`tokenscan.process_tree`: the processes of a session with their findings, as Arrow."""

from __future__ import annotations

import pyarrow as pa

import tokenscan
from conftest import FIXTURES

ELASTIC = "66229f32-c460-410d-bc37-4b32322cd4bb"


def test_the_session_of_the_pod_shell_lists_its_token_reads() -> None:
    # fixtures/pod-session (capture v1): an interactive `sh` (pid 51001) in container
    # 48c9dfca9bda runs commands; its cat of the token (pid 51040) fires the seed rule
    # on its exec (event 30) and TRC-108 on its open (event 32), per fixtures/EXPECTED.md.
    t = tokenscan.process_tree(FIXTURES / "pod-session.parquet", pid=51001)
    assert isinstance(t, pa.Table)
    rows = t.to_pylist()
    assert rows[0]["pid"] == 51001 and rows[0]["depth"] == 0 and rows[0]["name"] == "sh"
    cat = next(r for r in rows if r["pid"] == 51040)
    assert cat["depth"] == 1
    assert cat["parent_entity_id"] == rows[0]["entity_id"]
    assert cat["rule_ids"] == [ELASTIC, "TRC-108"]
    assert cat["event_indexes"] == [30, 32]
    # A version 1 capture has no pod metadata or start times: missing, never invented.
    assert cat["pod_name"] is None and cat["start"] is None
    assert cat["args"] == ["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"]
