"""Both seed rules hand-translated for polars, DuckDB and DataFusion, with tokenscan's semantics.

Semantics (docs/rule-semantics.md), the same in every engine:
- visibility: an exec is visible when `result` is null or >= 0; an open when `result` >= 0,
  or `result` is null and `path` is not null. fork/exit/process/container rows never match.
- Elastic 66229f32 (v3 seed query): host.os.type is always "linux"; process.interactive is
  `tty IS NOT NULL`; `container.id like "*"` is `container_id` not null and at most 1024
  characters (ECS keyword ignore_above). File branch: an open whose access mode is O_WRONLY or
  O_RDWR (event.type "change") and whose path is one of the four token/ca.crt paths. Exec
  branch: comm is a reader, or ANY argv element equals one of the 28 reader names/paths; and
  ANY argv element of at most 1024 characters contains `/run/secrets/kubernetes.io/
  serviceaccount/token` or `.../ca.crt` (case-sensitive `like "*...*"`). The two `any`
  predicates may be met by different elements. An empty argv counts as missing.
- TRC-108 (seed): a visible open from a started container (`container_id` not null and
  `container_started` true or not said; the captures here hold no runc: init events, see
  shapes.py), comm not allow-listed, path and flags not null, access mode O_RDONLY or O_RDWR,
  RE2 regex `secrets/kubernetes.io/serviceaccount.+token$` anywhere in path.

Run as `engines.py ENGINE CAPTURE OUT.json [--columns]`: imports ENGINE, then runs its query once
in this process and writes {"seconds": wall time of the whole query including reading the file
(the import not included), "rows": [[rule, index]...]}. With `--columns` the query also returns,
as an Arrow table, the event columns a tokenscan finding carries (FINDING_COLUMNS) for every hit:
the same information `tokenscan replay -f ndjson --no-context` writes out.
`engines.py versions` prints every engine's version; `engines.py duckdb-scans CAPTURE` how many
times DuckDB's plan (EXPLAIN ANALYZE) reads the file.
"""

import importlib
import json
import sys
import time

ELASTIC = "66229f32-c460-410d-bc37-4b32322cd4bb"
TRC = "TRC-108"
TOKEN = "/run/secrets/kubernetes.io/serviceaccount/token"
CACRT = "/run/secrets/kubernetes.io/serviceaccount/ca.crt"
FILE_PATHS = [
    "/var/run/secrets/kubernetes.io/serviceaccount/token",
    "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
    "/run/secrets/kubernetes.io/serviceaccount/token",
    "/run/secrets/kubernetes.io/serviceaccount/ca.crt",
]
READERS = ["cat", "head", "tail", "more", "less", "sed", "awk"]
READER_ARGS = [p + r for r in READERS for p in ("", "/bin/", "/usr/bin/", "/usr/local/bin/")]
ALLOWED = ["flanneld", "kube-proxy", "etcd", "kube-apiserver", "coredns", "kube-controller", "kubectl"]
REGEX = "secrets/kubernetes.io/serviceaccount.+token$"
COLUMNS = ["kind", "comm", "args", "path", "flags", "result", "tty", "container_id", "container_started"]
# The capture columns of a finding (docs/architecture.md, "Batches and projection").
FINDING_COLUMNS = ["time", "kind", "host", "container_id", "pid", "tid", "ppid", "uid", "comm", "exe", "args",
                   "path", "requested_path", "flags", "tty", "audit_user", "audit_pod_name", "audit_verb",
                   "audit_request_uri", "audit_response_code"]


def sql_list(values):
    """A SQL list literal of string values."""
    return ", ".join("'" + v + "'" for v in values)


# Shared SQL predicates (DuckDB and DataFusion agree on this subset).
SQL_OPEN_VISIBLE = "kind = 'open' AND (result >= 0 OR (result IS NULL AND path IS NOT NULL))"
SQL_EXEC_VISIBLE = "kind = 'exec' AND (result IS NULL OR result >= 0)"
SQL_ECS_COMMON = "container_id IS NOT NULL AND length(container_id) <= 1024 AND tty IS NOT NULL"
SQL_FILE_BRANCH = f"{SQL_OPEN_VISIBLE} AND (flags & 3) IN (1, 2) AND path IN ({sql_list(FILE_PATHS)})"
# `{regex}` is the engine's RE2/Rust-regex search function: DuckDB regexp_matches, DataFusion regexp_like.
SQL_TRC = (
    f"{SQL_OPEN_VISIBLE} AND container_id IS NOT NULL AND coalesce(container_started, true)"
    f" AND comm NOT IN ({sql_list(ALLOWED)}) AND path IS NOT NULL AND flags IS NOT NULL"
    f" AND (flags & 3) IN (0, 2) AND {{regex}}(path, '{REGEX}')"
)


def duckdb_sql(capture, columns=False):
    """One scan: both rules as columns, then the (few) hits split per rule.

    The hits CTE is MATERIALIZED so the two branches of the UNION read it, not the file
    (EXPLAIN ANALYZE shows a single READ_PARQUET). With `columns`, the hits carry the finding
    columns and are returned whole (one row per hit event, its rules in `e` and `t`)."""
    extra = "".join(f", {c}" for c in FINDING_COLUMNS) if columns else ""
    exec_branch = (
        f"{SQL_EXEC_VISIBLE} AND (comm IN ({sql_list(READERS)}) OR list_has_any(args, [{sql_list(READER_ARGS)}]))"
        f" AND list_bool_or(list_transform(args, lambda x: length(x) <= 1024"
        f" AND (contains(x, '{TOKEN}') OR contains(x, '{CACRT}'))))"
    )
    return f"""
WITH hits AS MATERIALIZED (
  SELECT i, e, t{extra} FROM (
    SELECT file_row_number AS i{extra},
      coalesce({SQL_ECS_COMMON} AND (({SQL_FILE_BRANCH}) OR ({exec_branch})), false) AS e,
      coalesce({SQL_TRC.format(regex='regexp_matches')}, false) AS t
    FROM read_parquet('{capture}', file_row_number = true)
    WHERE kind IN ('open', 'exec'))
  WHERE e OR t)
""" + ("SELECT * FROM hits" if columns else f"""
SELECT '{ELASTIC}' AS rule, i FROM hits WHERE e
UNION ALL
SELECT '{TRC}' AS rule, i FROM hits WHERE t
""")


def rows_of(table):
    """(rule, index) of every hit in an Arrow table with columns i, e, t."""
    d = table.select(["i", "e", "t"]).to_pydict()
    return [(ELASTIC, i) for i, e in zip(d["i"], d["e"]) if e] + [(TRC, i) for i, t in zip(d["i"], d["t"]) if t]


def run_duckdb(capture, columns=False):
    """DuckDB: the query above."""
    import duckdb

    con = duckdb.connect()
    if columns:
        return rows_of(con.sql(duckdb_sql(capture, True)).to_arrow_table())
    return [(r, int(i)) for r, i in con.sql(duckdb_sql(capture)).fetchall()]


def duckdb_plan(capture):
    """EXPLAIN ANALYZE of the DuckDB query, as text."""
    import duckdb

    con = duckdb.connect()
    return "\n".join(r[1] for r in con.sql("EXPLAIN ANALYZE " + duckdb_sql(capture)).fetchall())


def run_polars(capture, columns=False):
    """polars: a lazy scan_parquet with the row index pushed into the scan, one filter, collect.

    Rows only: the rules as two columns, then a filter on them (the faster form for that); with
    the finding columns, the rules in the scan's own filter (see below)."""
    import polars as pl

    c = pl.col
    open_vis = (c("kind") == "open") & ((c("result") >= 0) | (c("result").is_null() & c("path").is_not_null()))
    exec_vis = (c("kind") == "exec") & (c("result").is_null() | (c("result") >= 0))
    ecs_common = c("container_id").is_not_null() & (c("container_id").str.len_chars() <= 1024) & c("tty").is_not_null()
    file_branch = open_vis & (c("flags") & 3).is_in([1, 2]) & c("path").is_in(FILE_PATHS)
    el = pl.element()
    exec_branch = (
        exec_vis
        & (c("comm").is_in(READERS) | c("args").list.eval(el.is_in(READER_ARGS)).list.any())
        & c("args")
        .list.eval((el.str.len_chars() <= 1024) & (el.str.contains(TOKEN, literal=True) | el.str.contains(CACRT, literal=True)))
        .list.any()
    )
    elastic = ecs_common & (file_branch | exec_branch)
    trc = (
        open_vis
        & c("container_id").is_not_null()
        & c("container_started").fill_null(True)
        & ~c("comm").is_in(ALLOWED)
        & c("path").is_not_null()
        & c("flags").is_not_null()
        & (c("flags") & 3).is_in([0, 2])
        & c("path").str.contains(REGEX)
    )
    e, t = elastic.fill_null(False), trc.fill_null(False)
    scan = pl.scan_parquet(capture, row_index_name="i")
    if columns:
        # The rules in the scan's filter: polars then decodes the finding columns only for the
        # rows that pass (its Parquet prefilter); 0.45 s instead of 0.80 on low-card at 5M.
        df = scan.filter(c("kind").is_in(["open", "exec"]) & (e | t)).select(
            "i", e.alias("e"), t.alias("t"), *FINDING_COLUMNS).collect()
    else:
        df = scan.filter(c("kind").is_in(["open", "exec"])).select(
            "i", e.alias("e"), t.alias("t")).filter(c("e") | c("t")).collect()
    return [(ELASTIC, i) for i in df.filter(c("e"))["i"]] + [(TRC, i) for i in df.filter(c("t"))["i"]]


def run_datafusion(capture, columns=False):
    """DataFusion: one scan numbering rows, then the argv `like` on the few exec candidates.

    DataFusion 55 cannot read the Parquet row number (virtual columns are not plumbed into its
    scan, apache/datafusion#22517), so rows are numbered with row_number() OVER () over an
    unsplit scan of the file (repartition_file_scans off: one partition, file order). Step 1
    keeps the hits and the exec candidates (argv `in` already decided) in memory; step 2
    unnests their argv for the element-wise `like`, which DataFusion SQL has no lambda for. With
    `columns`, step 1 also keeps the finding columns of those rows."""
    from datafusion import SessionConfig, SessionContext

    cfg = SessionConfig().set("datafusion.optimizer.repartition_file_scans", "false")
    ctx = SessionContext(cfg)
    ctx.register_parquet("capture", capture)
    exec_pre = (
        f"{SQL_ECS_COMMON} AND {SQL_EXEC_VISIBLE} AND (comm IN ({sql_list(READERS)})"
        f" OR array_has_any(args, make_array({sql_list(READER_ARGS)})))"
    )
    extra = "".join(f", {c}" for c in FINDING_COLUMNS) if columns else ""
    step1 = f"""
SELECT i, e, t, x{extra} FROM (
  SELECT CAST(row_number() OVER () AS BIGINT) - 1 AS i{extra},
    coalesce({SQL_ECS_COMMON} AND {SQL_FILE_BRANCH}, false) AS e,
    coalesce({SQL_TRC.format(regex='regexp_like')}, false) AS t,
    CASE WHEN coalesce({exec_pre}, false) THEN args END AS x
  FROM capture)
WHERE e OR t OR x IS NOT NULL"""
    hits = ctx.sql(step1).to_arrow_table()
    if hits.num_rows == 0:
        return []
    ctx.register_record_batches("hits", [hits.to_batches()])
    step2 = f"""
SELECT DISTINCT i FROM (SELECT i, unnest(x) AS a FROM hits WHERE x IS NOT NULL)
WHERE length(a) <= 1024 AND (strpos(a, '{TOKEN}') > 0 OR strpos(a, '{CACRT}') > 0)"""
    ex = ctx.sql(step2).to_pydict()["i"]
    if columns:
        in_ex = f" OR i IN ({', '.join(map(str, ex))})" if ex else ""
        cols = ", ".join(["i", "e", "t"] + FINDING_COLUMNS)
        hits = ctx.sql(f"SELECT {cols} FROM hits WHERE e OR t{in_ex}").to_arrow_table()
    return [(ELASTIC, i) for i in ex] + rows_of(hits)


ENGINES = {"polars": run_polars, "duckdb": run_duckdb, "datafusion": run_datafusion}


def versions():
    """Every engine's version, as its package reports it."""
    import datafusion
    import duckdb
    import polars
    import pyarrow

    return {"polars": polars.__version__, "duckdb": duckdb.__version__, "datafusion": datafusion.__version__,
            "pyarrow": pyarrow.__version__}


def main():
    """Command line: see the module doc."""
    if sys.argv[1:] == ["versions"]:
        print(json.dumps(versions()))
        return
    if sys.argv[1] == "duckdb-scans":
        print(duckdb_plan(sys.argv[2]).count("READ_PARQUET"))
        return
    engine, capture, out = sys.argv[1:4]
    columns = sys.argv[4:] == ["--columns"]
    run = ENGINES[engine]
    importlib.import_module(engine)  # not timed: a user's session imports an engine once
    start = time.perf_counter()
    rows = run(capture, columns)
    seconds = time.perf_counter() - start
    with open(out, "w") as f:
        json.dump({"seconds": seconds, "rows": [[r, int(i)] for r, i in rows]}, f)


if __name__ == "__main__":
    main()
