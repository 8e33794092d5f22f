//! What every target shares: sample events to evaluate rules on, in both the
//! plain (NDJSON) and the dictionary-encoded (Parquet) layout, and a scratch
//! file per process for targets that read files. Each target uses part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use tokenscan_core::capture::{
    events_from_ndjson, Capture, EventBatch, ParquetCaptureWriter, Projection, WriterOptions,
};
use tokenscan_core::replay::{ReplayOptions, Replayer};
use tokenscan_core::rules::Rule;

const EVENTS: &str = concat!(
    r#"{"time":1,"kind":"exec","host":"n","pid":1,"tid":1,"ppid":1,"uid":0,"gid":0,"comm":"cat","exe":"/bin/cat","args":["cat","/run/secrets/kubernetes.io/serviceaccount/token"],"path":"/bin/cat","result":0,"tty":"pts/0","cgroup_id":1,"container_id":"c1"}"#,
    "\n",
    r#"{"time":2,"kind":"open","host":"n","pid":2,"tid":2,"ppid":1,"uid":0,"gid":0,"comm":"CAT","path":"/run/secrets/kubernetes.io/serviceaccount/..2026_11_20/token","flags":2,"result":3,"cgroup_id":1,"container_id":""}"#,
    "\n",
    r#"{"time":3,"kind":"open","host":"n","pid":3,"tid":3,"ppid":1,"uid":7,"gid":7,"comm":"猫𝒸","path":null,"flags":null,"result":null,"cgroup_id":1}"#,
    "\n",
    r#"{"time":4,"kind":"exec","host":"n","pid":4,"tid":4,"ppid":1,"uid":0,"gid":0,"comm":"sh","args":[],"result":-2,"cgroup_id":1}"#,
    "\n",
    r#"{"time":5,"kind":"open","host":"n","pid":5,"tid":5,"ppid":1,"uid":0,"gid":0,"comm":"a*?","path":"/tmp/ß","flags":0,"result":4,"tty":"","cgroup_id":1,"container_id":"c2"}"#,
    "\n",
);

/// A file in the temporary directory unique to this process, named `name`.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tokenscan-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir.join(name)
}

/// The sample events as plain batches (sizes 5 and 2) and as dictionary-encoded Parquet batches.
pub fn samples() -> &'static [EventBatch] {
    static SAMPLES: OnceLock<Vec<EventBatch>> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let mut out = events_from_ndjson(EVENTS, "sample", 5).expect("sample events");
        out.extend(events_from_ndjson(EVENTS, "sample", 2).expect("sample events"));
        let path = scratch("sample.parquet");
        let file = std::fs::File::create(&path).expect("create");
        let options = WriterOptions { row_group_rows: 3, ..Default::default() };
        let mut w = ParquetCaptureWriter::new(file, &path, options).expect("writer");
        for b in events_from_ndjson(EVENTS, "sample", 5).expect("sample events") {
            w.write(&b).expect("write");
        }
        w.close().expect("close");
        let capture = Capture::open(&path).expect("open");
        for b in capture.batches(Projection::all(), 4).expect("batches") {
            out.push(b.expect("decode"));
        }
        out
    })
}

/// Evaluates one rule on `batch` and builds every reason and "why not": none may panic.
pub fn exercise(rule: &Rule, batch: &EventBatch) {
    let verdict = rule.evaluate(batch);
    for row in verdict.fires.set_indices() {
        rule.why(batch, row);
    }
    for (row, _) in &verdict.unevaluable {
        assert!(*row < batch.len());
    }
    for row in 0..batch.len() {
        rule.why_not(batch, row);
    }
}

/// The built-in rules, to run over whatever a capture target decoded.
pub fn builtin() -> &'static Replayer {
    static REPLAYER: OnceLock<Replayer> = OnceLock::new();
    REPLAYER.get_or_init(|| {
        let rules = tokenscan_core::rules::RuleSet::builtin(&Default::default()).expect("built-in rules");
        Replayer::new(rules, ReplayOptions::default())
    })
}
