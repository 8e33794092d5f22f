"""EQL sequence and sample rules from Python: `tokenscan.replay` reports each event of a matched
sequence; evaluating Arrow batches one at a time refuses a sequence rule by name.
Expected events are derived by hand from Elasticsearch's sequence semantics
(docs/rule-semantics.md#sequences)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import tokenscan

T0 = 1_763_649_000_000_000_000
SEC = 1_000_000_000
TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"

RULE = """[rule]
name = "Token read then a download tool"
rule_id = "seq-token-then-tool"
severity = "high"
language = "eql"
query = '''
sequence by container.id with maxspan=30s
  [file where event.action == "open" and file.path like "*/serviceaccount/token"]
  [process where event.action == "exec" and process.name in ("curl", "wget")]
'''
"""


def event(t: int, container: str | None, **fields: Any) -> dict[str, Any]:
    e: dict[str, Any] = {
        "time": T0 + t * SEC, "host": "node-a", "pid": 10 + t, "tid": 10 + t, "ppid": 1,
        "uid": 0, "gid": 0, "cgroup_id": 1, "container_id": container,
    }
    e.update(fields)
    return e


def read_token(t: int, container: str | None) -> dict[str, Any]:
    return event(t, container, kind="open", comm="cat", exe="/usr/bin/cat", path=TOKEN, flags=0, result=3)


def run(t: int, container: str | None, name: str) -> dict[str, Any]:
    exe = f"/usr/bin/{name}"
    return event(t, container, kind="exec", comm=name, exe=exe, path=exe, args=[name, "https://kubernetes.default.svc"], result=0)


@pytest.fixture()
def capture(tmp_path: Path) -> Path:
    events = [
        read_token(0, "c1"),   # 0: stage 1, c1
        read_token(1, "c2"),   # 1: stage 1, c2
        run(2, "c1", "curl"),  # 2: completes c1's [0, 2]
        read_token(3, None),   # 3: host: null key joins nothing
        run(4, None, "curl"),  # 4: nor this
        run(40, "c2", "curl"), # 5: 39 s after 1: beyond maxspan
        read_token(41, "c2"),  # 6: stage 1, c2
        run(45, "c2", "wget"), # 7: completes [6, 7]
    ]
    path = tmp_path / "node.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_replay_reports_every_event_of_each_sequence(capture: Path) -> None:
    findings = tokenscan.replay(capture, tokenscan.Rules.from_text(RULE, "seq.toml"))
    table = pa.table(findings)
    assert table["event_index"].to_pylist() == [0, 2, 6, 7]
    heads = [r.split(": ", 1)[0] for r in table["reason"].to_pylist()]
    name = str(capture)
    assert heads == [
        f"sequence {name}:0, event 1 of 2 (stage 1)",
        f"sequence {name}:0, event 2 of 2 (stage 2)",
        f"sequence {name}:6, event 1 of 2 (stage 1)",
        f"sequence {name}:6, event 2 of 2 (stage 2)",
    ]
    rule = findings.summary()["rules"][0]
    assert (rule["findings"], rule["sequences"], rule["sequences_dropped"]) == (4, 2, 0)


def test_evaluating_batches_refuses_a_sequence_rule_by_name(capture: Path) -> None:
    table = tokenscan.read_capture(capture)
    with pytest.raises(tokenscan.RuleError, match="rule seq-token-then-tool is an EQL sequence"):
        tokenscan.Rules.from_text(RULE, "seq.toml").evaluate(table)


def test_evaluating_batches_refuses_a_piped_rule_by_name(capture: Path) -> None:
    piped = RULE.replace("seq-token-then-tool", "piped").replace(
        "sequence by container.id with maxspan=30s\n  [file where", "file where"
    ).split("]\n  [process")[0] + " | head 2\n'''\n"
    table = tokenscan.read_capture(capture)
    with pytest.raises(tokenscan.RuleError, match=r"rule piped ends in `\| head 2`"):
        tokenscan.Rules.from_text(piped, "piped.toml").evaluate(table)
    assert pa.table(tokenscan.replay(capture, tokenscan.Rules.from_text(piped, "piped.toml")))["event_index"].to_pylist() == [0, 1]


SAMPLE = """[rule]
name = "Token read and a download tool in one container, in any order"
rule_id = "sample-token-tool"
severity = "medium"
language = "eql"
query = '''
sample by container.id
  [process where event.action == "exec" and process.name in ("curl", "wget")]
  [file where event.action == "open" and file.path like "*/serviceaccount/token"]
'''
"""


def test_a_sample_rule_takes_one_sample_per_key_in_any_order(capture: Path) -> None:
    # Per container, each filter takes its earliest event: c1's curl 2 and
    # read 0 (the read came first: samples ignore order), c2's curl 5 and
    # read 1 (no maxspan: 39 s apart is fine); 6 and 7 are not used, one
    # sample per key; the host's events (null container.id) join nothing.
    findings = tokenscan.replay(capture, tokenscan.Rules.from_text(SAMPLE, "sample.toml"))
    table = pa.table(findings)
    got = sorted(zip(table["event_index"].to_pylist(), (r.split(": ", 1)[0] for r in table["reason"].to_pylist())))
    name = str(capture)
    assert got == [
        (0, f"sample {name}:0, event 1 of 2 (filter 2)"),
        (1, f"sample {name}:1, event 1 of 2 (filter 2)"),
        (2, f"sample {name}:0, event 2 of 2 (filter 1)"),
        (5, f"sample {name}:1, event 2 of 2 (filter 1)"),
    ]
    rule = findings.summary()["rules"][0]
    assert (rule["findings"], rule["samples"]) == (4, 2)
    with pytest.raises(tokenscan.RuleError, match="sample-token-tool"):
        tokenscan.Rules.from_text(SAMPLE, "sample.toml").evaluate(tokenscan.read_capture(capture))
