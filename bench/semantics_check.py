"""A hand-made capture whose findings are derived by hand from the rule texts.

Each row states what the seed rules' text (core/rules/*.toml) and their home systems'
semantics (docs/rule-semantics.md) say about it, independently of any engine. The bench
runs every engine (tokenscan included) on it first: an engine that disagrees with the
hand derivation stops the bench, so a translation cannot pass merely by matching another.
"""

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from engines import ELASTIC, TRC
from shapes import capture_schema

SA = "/var/run/secrets/kubernetes.io/serviceaccount"
RUN = "/run/secrets/kubernetes.io/serviceaccount"
LONG = "x" * 1100
E, T = {ELASTIC}, {TRC}
B = E | T
N = set()

# (expected rules, kind, fields); defaults: comm "sh", container "c1", tty "pts/0", result 3/0.
ROWS = [
    (B, "open", dict(path=f"{SA}/token", flags=2)),  # O_RDWR: a change (Elastic) and a read (TRC-108)
    (T, "open", dict(path=f"{SA}/token", flags=0)),  # read-only: event.type access
    (E, "open", dict(path=f"{SA}/token", flags=1)),  # write-only: not IsFileRead
    (N, "open", dict(path=f"{SA}/token", flags=3)),  # access mode 3: neither
    (T, "open", dict(path=f"{RUN}/..2026_11_20_09_58_11.1829374651/token", flags=0)),
    (T, "open", dict(path=f"{RUN}/..data/token", flags=2)),  # not one of the four exact paths
    (N, "open", dict(path=f"{SA}/token", flags=0, comm="kubectl")),  # allow-listed
    (N, "open", dict(path=f"{SA}/token", flags=0, container_id=None)),  # host
    (N, "open", dict(path=f"{SA}/token", flags=0, container_started=False)),  # container-init
    (T, "open", dict(path=f"{SA}/token", flags=0, container_started=True)),
    (N, "open", dict(path=f"{SA}/token", flags=None)),  # cannot be evaluated
    (N, "open", dict(path=None, flags=0, result=-2)),  # failed open: invisible
    (T, "open", dict(path=f"{SA}/token", flags=0, result=None)),  # unknown result, has a path: visible
    (E, "exec", dict(comm="cat", args=["cat", f"{SA}/token"])),
    (N, "exec", dict(comm="cat", args=["cat", f"{SA}/token"], tty=None)),  # not interactive
    (E, "exec", dict(comm="python3", args=["/usr/bin/cat", f"{RUN}/ca.crt"])),  # argv in the list
    (N, "exec", dict(comm="python3", args=["/opt/cat", f"{RUN}/token"])),  # neither name nor argv
    (N, "exec", dict(comm="cat", args=["cat", LONG + f"{SA}/token"])),  # element over ignore_above
    (E, "exec", dict(comm="cat", args=["cat", f"--file={SA}/token"])),  # like *...*
    (N, "exec", dict(comm="cat", args=["cat", f"{SA}/token"], result=-2)),  # failed exec: invisible
    (E, "exec", dict(comm="cat", args=["cat", f"{SA}/token"], result=None)),
    (N, "exec", dict(comm="cat", args=[])),  # empty argv: missing
    (N, "exec", dict(comm="cat", args=["cat", f"{SA}/token"], container_id="c" * 1100)),  # id over ignore_above
    (T, "open", dict(path=f"{SA}/token", flags=0, container_id="c" * 1100)),  # TRC-108 has no ignore_above
    (T, "open", dict(path="/var/run/secrets/kubernetes.io/serviceaccount-my-token", flags=0)),  # seed regex
    (N, "open", dict(path=f"{SA}/token1234", flags=0)),
    (E, "open", dict(path=f"{RUN}/ca.crt", flags=0x8002)),  # O_RDWR|O_LARGEFILE; regex needs token$
    (N, "fork", dict(comm="cat")),
    (N, "exec", dict(comm="CAT", args=["CAT", f"{SA}/token"])),  # case-sensitive
    (T, "open", dict(path=f"{SA}/token", flags=0, container_id="")),  # an empty id is a container
    (T, "open", dict(path=f"{SA}/token", flags=0, container_id="", tty=None)),  # TRC-108 ignores the tty
    (E, "open", dict(path=f"{SA}/token", flags=1, container_id="")),  # like "*" matches ""
]


def write(schema, out):
    """Writes the hand-made capture to out in schema (shapes.capture_schema).

    Returns the expected findings, a set of (rule, event index)."""
    cols = {f.name: [] for f in schema}
    want = set()
    for i, (rules, kind, fields) in enumerate(ROWS):
        row = dict(time=i, kind=kind, host="node-1", pid=100 + i, tid=100 + i, ppid=1, uid=0, gid=0, comm="sh",
                   exe="/bin/sh", tty="pts/0", cgroup_id=7, container_id="c1",
                   result=3 if kind == "open" else 0 if kind == "exec" else None)
        row.update(fields)
        for name in cols:
            cols[name].append(row.get(name))
        want |= {(r, i) for r in rules}
    pq.write_table(pa.Table.from_pydict(cols, schema=schema), out)
    return want


def main():
    """`semantics_check.py TOKENSCAN OUT`: writes the capture, prints the expected findings as JSON."""
    tokenscan, out = sys.argv[1:3]
    want = write(capture_schema(tokenscan, Path(out).parent), out)
    print(json.dumps(sorted(want)))


if __name__ == "__main__":
    main()
