//! Hostile input and faults: every test feeds tokenscan something an attacker
//! (or a broken disk) could hand it and checks that the answer is a clear
//! error or the right result, within bounded time. See docs/robustness.md.

use std::path::Path;

use tokenscan_core::capture::{events_from_ndjson, Capture, EventBatch, ParquetCaptureWriter, Projection, WriterOptions};
use tokenscan_core::eql::{CompileOptions, EqlQuery};

/// One NDJSON capture line with the fields every event needs.
fn line(kind: &str, comm: &str, extra: &str) -> String {
    format!(
        r#"{{"time":1,"kind":"{kind}","host":"h","pid":1,"tid":1,"ppid":1,"uid":0,"gid":0,"comm":"{comm}","cgroup_id":1{extra}}}"#
    )
}

/// Writes NDJSON events to a Parquet capture at `path` (row groups of `rows` events).
fn write_parquet(path: &Path, ndjson: &str, rows: usize) {
    let file = std::fs::File::create(path).expect("create capture");
    let options = WriterOptions { row_group_rows: rows, ..Default::default() };
    let mut w = ParquetCaptureWriter::new(file, path, options).expect("writer");
    for b in events_from_ndjson(ndjson, "events", 1024).expect("valid events") {
        w.write(&b).expect("write");
    }
    w.close().expect("close");
}

fn parquet_batches(path: &Path, batch_size: usize) -> Vec<EventBatch> {
    let capture = Capture::open(path).expect("open");
    capture.batches(Projection::all(), batch_size).expect("batches").collect::<Result<_, _>>().expect("decode")
}

#[test]
fn dictionary_verdicts_are_not_reused_by_a_later_query_at_the_same_address() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("c.parquet");
    let text: String = ["cat", "head", "cat", "tail"].iter().map(|c| line("exec", c, "") + "\n").collect();
    write_parquet(&path, &text, 1024);
    let batches = parquet_batches(&path, 1024);
    for (name, expected) in [("cat", vec![0, 2]), ("head", vec![1]), ("tail", vec![3]), ("cat", vec![0, 2])] {
        // Each query lives on the stack only for this iteration, as in a loop
        // over ad-hoc queries (the Python API, a notebook).
        let q = EqlQuery::compile(&format!("process where process.name == \"{name}\""), &CompileOptions::default())
            .expect("compiles");
        let got: Vec<usize> = q.evaluate(&batches[0]).set_indices().collect();
        assert_eq!(got, expected, "process.name == {name:?}");
    }
}
