"""Capture shapes for the engine benchmark, generated deterministically with pyarrow.

Every shape is a seeded function of its parameters: the same name and size give the
same file, byte for byte (pyarrow's writer is deterministic). Each is written twice:
by pyarrow with its default settings (snappy, 1 Mi-row groups) and by `tokenscan convert`
(zstd, dictionaries), so both writers' layouts are timed.

No shape holds a runtime-init event (a comm starting with `runc:`): tokenscan would call the
events of such a container `container-init` until its first exec and TRC-108 would skip
them, a lifecycle the hand-translated queries do not model. `check_no_container_init`
asserts it on every file before it is used.
"""

import random
import subprocess
import sys
from pathlib import Path
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
RUN_DIR = "/run/secrets/kubernetes.io/serviceaccount"
# Paths near the rules' edges: exact file-branch paths, the kubelet's resolved ..data form,
# the seed regex's loose matches and near misses.
ROW_GROUP = 1024 * 1024  # pyarrow's default row group length
SPECIAL_PATHS = [
    f"{TOKEN_DIR}/token",
    f"{TOKEN_DIR}/ca.crt",
    f"{RUN_DIR}/token",
    f"{RUN_DIR}/ca.crt",
    f"{RUN_DIR}/..2026_11_20_09_58_11.1829374651/token",
    f"{RUN_DIR}/namespace",
    "/var/run/secrets/kubernetes.io/serviceaccount-my-token",
    "/var/run/secrets/kubernetesXio/serviceaccount/token",
    "/var/run/secrets/kubernetes.io/serviceaccounttoken",
    f"{TOKEN_DIR}/token1234",
    "/tmp/token",
]
READERS = ["cat", "head", "tail", "more", "less", "sed", "awk"]
ALLOWED = ["flanneld", "kube-proxy", "etcd", "kube-apiserver", "coredns", "kube-controller", "kubectl"]
FLAGS = [0, 0x8000, 0x80000, 1, 0x241, 2, 0x8002, 3]



def capture_schema(tokenscan, scratch):
    """The canonical capture schema, as tokenscan's own writer declares it (one declaration:
    core/src/capture/schema.rs), read from a one-event `tokenscan synth` file in scratch."""
    path = scratch / "schema.parquet"
    subprocess.run([tokenscan, "synth", "-o", path, "--events", "1", "--seed", "0", "--force"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return pq.read_schema(path).remove_metadata()


@dataclass(frozen=True)
class Shape:
    """One capture shape: the knobs a generated capture is drawn with."""

    name: str
    comms: int  # distinct comms (besides the readers and the allow-listed names)
    paths: int  # distinct ordinary paths (argv and open paths are drawn from them)
    exec_share: float  # share of open/exec events that are execs
    argv_len: tuple = (1, 4)  # min and max argv length of an exec
    host_prefix: float = 0.0  # share of events at the start of the file with no container
    v2: bool = False  # fork, exit, process and container rows, sid/pgid/start/cwd filled
    # Processes as a node has them (a `v2` shape only): this many alive at a time, each with its
    # own comm, container and tty, events in bursts from one of them, parents among a few
    # daemons, now and then one exiting and a new pid forking in its place, and lifecycle rows
    # only for these. Without it (every other shape) each event's pid, comm, container and tty
    # are drawn anew (pids from 100-60,000) and `v2` adds fork, exit and snapshot rows at random:
    # no two events of a process are near each other, the process table's worst case.
    live: int = 0


SHAPES = [
    Shape("low-card", comms=12, paths=10, exec_share=0.03),
    Shape("high-card", comms=5000, paths=100_000, exec_share=0.03),
    Shape("exec-1pct", comms=200, paths=30_000, exec_share=0.01),
    Shape("exec-20pct", comms=200, paths=30_000, exec_share=0.20),
    Shape("host-mostly", comms=200, paths=30_000, exec_share=0.03, host_prefix=0.9),
    Shape("long-argv", comms=200, paths=30_000, exec_share=0.05, argv_len=(40, 200)),
    Shape("v2", comms=200, paths=30_000, exec_share=0.03, v2=True),
    Shape("bursty", comms=200, paths=30_000, exec_share=0.03, v2=True, live=300),
]
SHAPE_NAMES = [s.name for s in SHAPES]


def generate(schema, shape, events, seed, out):
    """Writes `events` rows of `shape` in `schema` to the Parquet file `out` with pyarrow's defaults."""
    rng = random.Random(f"{shape.name}:{events}:{seed}")
    comms = READERS + ALLOWED + [f"proc{i}" for i in range(shape.comms)]
    paths = [f"/srv/app{i % 97}/data/file{i}.dat" for i in range(shape.paths)]
    containers = ["%064x" % rng.getrandbits(256) for _ in range(40)]
    long_token_arg = "x" * 1100 + f"{TOKEN_DIR}/token"  # over ignore_above: never matches the Elastic rule
    cols = {f.name: [] for f in schema}
    t0 = 1_764_000_000_000_000_000
    host_rows = int(events * shape.host_prefix)

    if shape.v2:
        schema = schema.with_metadata({"tokenscan.capture_version": "2"})
    # Row groups of pyarrow's default size, written as they fill, so memory stays bounded.
    writer = pq.ParquetWriter(out, schema)

    def flush():
        if cols["kind"]:
            writer.write_table(pa.Table.from_pydict(cols, schema=schema), row_group_size=ROW_GROUP)
        for c in cols.values():
            c.clear()

    def row(**kw):
        for name in cols:
            cols[name].append(kw.get(name))
        if len(cols["kind"]) == ROW_GROUP:
            flush()

    def draw_comm():
        return comms[int(rng.paretovariate(1.2)) % len(comms)] if rng.random() < 0.5 else rng.choice(comms)

    def draw_container():
        return None if rng.random() < 0.3 else rng.choice(containers)

    def draw_process(pid, parent):
        return (pid, parent, draw_comm(), draw_container(), "pts/0" if rng.random() < 0.05 else None)

    # `live` shapes: the processes alive now (pid, parent, comm, container, tty) and the one
    # whose burst this is.
    daemons = list(range(200, 220))
    alive = [draw_process(1000 + k, daemons[k % len(daemons)]) for k in range(shape.live)]
    next_pid, current, forked = 1000 + shape.live, 0, None
    for i in range(events):
        lifecycle = None  # for `live` shapes: a snapshot, exit or fork row due now
        if shape.live:
            # A snapshot row for each process alive at the start; then bursts of 20 events on
            # average; one event in 2,000 a process exits and, at the next event, a new one (a
            # higher pid) forks in its place. Every lifecycle row is one of these.
            if i < shape.live:
                current, lifecycle = i, "process"
            elif forked is not None:
                current, lifecycle, forked = forked, "fork", None
            else:
                if rng.random() < 0.05:
                    current = rng.randrange(shape.live)
                if rng.random() < 0.0005:
                    lifecycle, forked = "exit", current
            pid, ppid, comm, cid, tty = alive[current]
            if lifecycle == "exit":
                alive[current] = draw_process(next_pid, rng.choice(daemons))
                next_pid += 1
            if i < host_rows:
                cid = None
            special = rng.random() < 0.02
            if special and rng.random() < 0.5:
                tty = "pts/0"  # as below: the rules' edges exercised at small sizes too
        else:
            pid = rng.randrange(100, 60_000)
            ppid = pid - 1
            comm = draw_comm()
            cid = None if i < host_rows or rng.random() < 0.3 else rng.choice(containers)
        if cid is not None and rng.random() < 0.0005:
            cid = "c" * 1100  # over ignore_above: container.id like "*" fails, TRC-108 still sees it
        if not shape.live:
            # Events at the rules' edges come more often from a tty, so that the Elastic rule's
            # edges are exercised at small sizes too.
            special = rng.random() < 0.02
            tty = "pts/0" if rng.random() < (0.5 if special else 0.05) else None
        base = dict(
            time=t0 + i * 1000,
            host="node-1",
            pid=pid,
            tid=pid,
            ppid=ppid,
            uid=0,
            gid=0,
            comm=comm,
            exe=f"/usr/bin/{comm}",
            tty=tty,
            cgroup_id=1000 + containers.index(cid) if cid in containers else 1,
            container_id=cid,
        )
        if shape.v2:
            base.update(sid=pid, pgid=pid, start=t0, parent_start=t0, cwd="/")
            if cid is not None and rng.random() < 0.3:
                base["container_started"] = rng.random() < 0.8
            if lifecycle is not None:
                row(kind=lifecycle, **base, args=[comm] if lifecycle != "exit" else None)
                continue
            r = rng.random()
            if r < 0.05 and not shape.live:
                row(kind=rng.choice(["fork", "exit", "process"]), **base, args=[comm] if r < 0.01 else None)
                continue
            if 0.05 <= r < 0.06 and cid is not None:
                row(kind="container", **{**base, "container_started": None}, pod_name="web-0", pod_namespace="shop",
                    image="registry:5000/shop/web:1.4.2", image_name="registry:5000/shop/web", image_tag="1.4.2",
                    privileged=False)
                continue
        if rng.random() < shape.exec_share:
            n = rng.randint(*shape.argv_len)
            prog = rng.choice(READERS + (["ls", "python3"] if special else comms[:20]))
            argv0 = rng.choice([prog, f"/bin/{prog}", f"/usr/bin/{prog}", f"/usr/local/bin/{prog}", f"/opt/{prog}"])
            args = [argv0] + [rng.choice(paths) for _ in range(n - 1)]
            if special and n > 1:
                args[rng.randrange(1, n)] = rng.choice(SPECIAL_PATHS + [long_token_arg] * 3 + ["--file=" + SPECIAL_PATHS[0]])
            if rng.random() < 0.002:
                args = []
            result = rng.choice([0] * 20 + [-2, None])
            row(kind="exec", **base, args=args, path=f"/usr/bin/{prog}", requested_path=argv0, result=result)
        else:
            path = rng.choice(SPECIAL_PATHS) if special else rng.choice(paths)
            flags = rng.choice(FLAGS) if rng.random() > 0.01 else None
            result = rng.choice([3] * 30 + [-2, -13, None])
            if result is not None and result < 0:
                path = None
            elif result is None and rng.random() < 0.3:
                path = None
            row(kind="open", **base, path=path, requested_path=path, flags=flags, result=result)
    flush()
    writer.close()


def check_no_container_init(path):
    """Fails when a capture holds a runtime-init event (comm `runc:...`), see the module doc."""
    comm = pq.read_table(path, columns=["comm"]).column("comm")
    starts = pa.compute.starts_with(comm, "runc:")
    if pa.compute.any(starts).as_py():
        raise SystemExit(f"{path}: holds runc: init events; the hand-written queries do not model container-init")


def main():
    """`shapes.py generate TOKENSCAN SHAPE EVENTS SEED OUT` or `shapes.py check CAPTURE`.

    The bench calls these in child processes, so that its own process stays small: a child's
    peak RSS as the kernel reports it includes the parent's at the fork."""
    if sys.argv[1] == "generate":
        tokenscan, name, events, seed, out = sys.argv[2:7]
        schema = capture_schema(tokenscan, Path(out).parent)
        generate(schema, next(s for s in SHAPES if s.name == name), int(events), int(seed), out)
    elif sys.argv[1] == "check":
        check_no_container_init(sys.argv[2])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")


if __name__ == "__main__":
    main()
