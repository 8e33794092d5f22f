//! Hostile input and faults: every test feeds tokenscan something an attacker
//! (or a broken disk) could hand it and checks that the answer is a clear
//! error or the right result, within a deadline (a hang fails the test instead
//! of blocking CI). See docs/robustness.md for the table these tests back.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, DictionaryArray, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::file::metadata::ParquetMetaDataReader;
use tokenscan_core::capture::{
    events_from_ndjson, Capture, EventBatch, ParquetCaptureWriter, Projection, WriterOptions,
};
use tokenscan_core::diff::SavedFindings;
use tokenscan_core::eql::{CompileOptions, EqlQuery};
use tokenscan_core::replay::{CollectSink, ReplayOptions, ReplaySummary, Replayer};
use tokenscan_core::rules::RuleSet;

// ============================================================================
// Helpers
// ============================================================================

const TOKEN: &str = "/run/secrets/kubernetes.io/serviceaccount/token";
const CONTAINER: &str = "d4556e77887e082d5e6a7fa2998c06ceee646c98f81eb1e724017a6a768c5dca";

/// Runs `f` on a thread with `stack` bytes of stack and fails the test if it
/// takes longer than `secs` seconds (or panics, or overflows its stack, which
/// aborts the whole test binary: that too fails CI).
fn within<T: Send + 'static>(what: &str, secs: u64, stack: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name(what.to_string())
        .stack_size(stack)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn");
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => {
            handle.join().expect("joined");
            v
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("{what}: still running after {secs} s (a hang)"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!("the thread sends before it ends"),
        },
    }
}

const MIB: usize = 1 << 20;

/// One NDJSON capture line with the fields every event needs, plus `extra` (`,"k":v...`).
fn line(kind: &str, comm: &str, extra: &str) -> String {
    format!(
        r#"{{"time":1,"kind":"{kind}","host":"h","pid":1,"tid":1,"ppid":1,"uid":0,"gid":0,"comm":"{comm}","cgroup_id":1{extra}}}"#
    )
}

/// An interactive `cat` of the token in a container: both built-in rules fire (EQL on the exec, TRC-108 on the open).
fn token_read() -> String {
    let c = format!(r#","tty":"pts/0","container_id":"{CONTAINER}""#);
    let exec =
        line("exec", "cat", &format!(r#","exe":"/bin/cat","args":["cat","{TOKEN}"],"path":"/bin/cat","result":0{c}"#));
    let open = line("open", "cat", &format!(r#","exe":"/bin/cat","path":"{TOKEN}","flags":0,"result":3{c}"#));
    format!("{exec}\n{open}\n")
}

/// `n` harmless events, then a token read.
fn capture_text(n: usize) -> String {
    let mut s: String =
        (0..n).map(|i| line("open", "ls", &format!(r#","path":"/etc/f{i}","flags":0,"result":3"#)) + "\n").collect();
    s.push_str(&token_read());
    s
}

/// Writes NDJSON events to a Parquet capture at `path` (row groups of `rows` events).
fn write_parquet(path: &Path, ndjson: &str, rows: usize) {
    let file = std::fs::File::create(path).expect("create capture");
    let options = WriterOptions { row_group_rows: rows, ..Default::default() };
    let mut w = ParquetCaptureWriter::new(file, path, options).expect("writer");
    for b in events_from_ndjson(ndjson, "events", 4096).expect("valid events") {
        w.write(&b).expect("write");
    }
    w.close().expect("close");
}

/// Writes `rb` to `path` with plain Arrow-writer settings (as another tool
/// would), the column `field` names replaced by `field` and `array`.
fn write_with_column(path: &Path, rb: &RecordBatch, field: Field, array: ArrayRef) {
    let i = rb.schema().index_of(field.name()).expect("column");
    let mut fields: Vec<Field> = rb.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns = rb.columns().to_vec();
    fields[i] = field;
    columns[i] = array;
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch");
    let file = std::fs::File::create(path).expect("create");
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

fn parquet_batches(path: &Path, batch_size: usize) -> Vec<EventBatch> {
    let capture = Capture::open(path).expect("open");
    capture.batches(Projection::all(), batch_size).expect("batches").collect::<Result<_, _>>().expect("decode")
}

fn builtin(skip_unreadable: bool) -> Replayer {
    let rules = RuleSet::builtin(&CompileOptions::default()).expect("built-in rules");
    Replayer::new(rules, ReplayOptions { skip_unreadable, ..Default::default() })
}

/// Replays `paths` through the built-in rules; the summary or the error message.
fn replay(paths: &[PathBuf], skip_unreadable: bool) -> Result<ReplaySummary, String> {
    builtin(skip_unreadable).replay(paths, &mut CollectSink::default()).map_err(|e| e.to_string())
}

/// Everything a reader of `path` can get out of it: the events decoded with
/// every column, and the first error. Also replays it through the built-in rules.
fn read_all(path: &Path) -> (u64, Option<String>) {
    let capture = match Capture::open(path) {
        Ok(c) => c,
        Err(e) => return (0, Some(e.to_string())),
    };
    let mut events = 0;
    let mut error = None;
    match capture.batches(Projection::all(), 1000) {
        Ok(batches) => {
            for b in batches {
                match b {
                    Ok(b) => events += b.len() as u64,
                    Err(e) => {
                        error = Some(e.to_string());
                        break;
                    }
                }
            }
        }
        Err(e) => error = Some(e.to_string()),
    }
    let _ = replay(&[path.to_owned()], false);
    (events, error)
}

/// Splits a Parquet file into its data (with the leading magic) and its footer metadata.
fn split_footer(bytes: &[u8]) -> (&[u8], &[u8]) {
    assert_eq!(&bytes[bytes.len() - 4..], b"PAR1");
    let len = u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().expect("4 bytes")) as usize;
    let start = bytes.len() - 8 - len;
    (&bytes[..start], &bytes[start..bytes.len() - 8])
}

/// A Parquet file from data and footer metadata, with a correct footer length.
fn join_footer(data: &[u8], meta: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    out.extend_from_slice(meta);
    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(b"PAR1");
    out
}

/// Thrift compact encoding of an i64: zigzag, then LEB128.
fn varint(n: i64) -> Vec<u8> {
    uleb(((n << 1) ^ (n >> 63)) as u64)
}

/// LEB128 of an unsigned number (Thrift's lengths and collection sizes).
fn uleb(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out
}

/// The footer metadata with every i64 field holding `from` set to `to`
/// (an i64 field is a short field header, low nibble 6, then the varint).
fn replace_i64(meta: &[u8], from: i64, to: i64) -> (Vec<u8>, usize) {
    replace_i64_n(meta, from, to, usize::MAX)
}

/// [`replace_i64`] for the first `n` such fields only (column chunk metadata
/// comes before the key-value metadata, whose text may look like a field too).
fn replace_i64_n(meta: &[u8], from: i64, to: i64, n: usize) -> (Vec<u8>, usize) {
    let (old, new) = (varint(from), varint(to));
    let mut out = Vec::with_capacity(meta.len() + 16);
    let mut hits = 0;
    let mut i = 0;
    while i < meta.len() {
        if hits < n && meta[i] & 0x0f == 6 && meta[i] >> 4 != 0 && meta[i + 1..].starts_with(&old) {
            out.push(meta[i]);
            out.extend_from_slice(&new);
            i += 1 + old.len();
            hits += 1;
        } else {
            out.push(meta[i]);
            i += 1;
        }
    }
    (out, hits)
}

// ============================================================================
// Wrong answers found by the differential tests (regressions)
// ============================================================================

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

#[test]
fn signature_verdicts_are_not_reused_by_a_later_signature_at_the_same_address() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("c.parquet");
    let paths = ["/a/token", "/b/other", "/c/token"];
    let text: String = paths
        .iter()
        .map(|p| line("open", "cat", &format!(r#","path":"{p}","flags":0,"result":3,"container_id":"c""#)) + "\n")
        .collect();
    write_parquet(&path, &text, 1024);
    let batches = parquet_batches(&path, 1024);
    for (regex, allow, expected) in [("token$", "x", vec![0, 2]), ("other$", "x", vec![1]), ("token$", "cat", vec![])] {
        let text = format!(
            "[signature]\nid = \"S\"\nversion = \"1\"\nname = \"s\"\nseverity = 1\n[selector]\nevent = \"security_file_open\"\n\
             origin = \"container\"\n[match]\nallow_processes = [\"{allow}\"]\npath_regex = '{regex}'\naccess = \"read\"\n"
        );
        let set = RuleSet::from_sources(&[("s.toml", text.as_str())], &CompileOptions::default()).expect("loads");
        let s = &set.rules()[0];
        assert_eq!(s.kind(), "signature");
        let got: Vec<usize> = s.evaluate(&batches[0]).fires.set_indices().collect();
        assert_eq!(got, expected, "path_regex {regex:?}, allow-list [{allow:?}]");
    }
}

// ============================================================================
// Corrupt and lying Parquet files
// ============================================================================

/// A Parquet capture of 777 events (a row count whose encoding is unique in
/// the footer) in row groups of 259, ending with a token read; its bytes.
fn lying_base(dir: &Path) -> Vec<u8> {
    let path = dir.join("base.parquet");
    write_parquet(&path, &capture_text(775), 259);
    std::fs::read(&path).expect("read")
}

#[test]
fn truncated_parquet_is_an_error_naming_the_file_at_every_length() {
    within("truncated parquet", 120, 8 * MIB, || {
        let dir = tempfile::tempdir().expect("tmp");
        let bytes = lying_base(dir.path());
        let path = dir.path().join("cut.parquet");
        for len in (0..bytes.len()).step_by(97).chain([bytes.len() - 1, bytes.len() - 8, 4, 3]) {
            std::fs::write(&path, &bytes[..len]).expect("write");
            let (events, error) = read_all(&path);
            let error = error.unwrap_or_else(|| panic!("{len} of {} bytes read as {events} events", bytes.len()));
            let expected = match len {
                0 => "cut.parquet: the file is empty",
                1..=3 => "cut.parquet: not a Parquet file",
                _ => "cut.parquet: cannot read the Parquet footer",
            };
            assert!(error.contains(expected), "{len}: {error}");
        }
    });
}

#[test]
fn parquet_with_bytes_cut_from_the_middle_fails_cleanly() {
    within("parquet with a hole", 120, 8 * MIB, || {
        let dir = tempfile::tempdir().expect("tmp");
        let bytes = lying_base(dir.path());
        let (data, meta) = split_footer(&bytes);
        let path = dir.path().join("hole.parquet");
        for at in (4..data.len()).step_by(331) {
            for cut in [1, 16, 1000] {
                let mut holed = data[..at].to_vec();
                holed.extend_from_slice(&data[(at + cut).min(data.len())..]);
                std::fs::write(&path, join_footer(&holed, meta)).expect("write");
                let (events, error) = read_all(&path);
                // The footer points past the hole. What a user needs is the whole
                // capture or an error naming the file: never fewer events in silence.
                match error {
                    Some(error) => assert!(
                        error.contains("hole.parquet: cannot decode events after event ")
                            || error.contains("hole.parquet: row group 0, column `")
                                && error.contains("`: the dictionary page at byte "),
                        "{error}"
                    ),
                    None => assert_eq!(events, 777, "a hole of {cut} bytes at {at}: a silent partial read"),
                }
            }
        }
    });
}

#[test]
fn footer_length_that_lies_is_an_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let bytes = lying_base(dir.path());
    let path = dir.path().join("footer.parquet");
    let real = u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().expect("4"));
    for claimed in [0, 1, real - 1, real + 1, bytes.len() as u32 - 8, bytes.len() as u32, 1 << 31, u32::MAX] {
        let mut lie = bytes.clone();
        let at = lie.len() - 8;
        lie[at..at + 4].copy_from_slice(&claimed.to_le_bytes());
        std::fs::write(&path, &lie).expect("write");
        let p = path.clone();
        let error =
            within("footer length", 30, 8 * MIB, move || Capture::open(&p).map(|_| ()).map_err(|e| e.to_string()))
                .expect_err(&format!("a footer length of {claimed} instead of {real} is refused"));
        assert!(error.contains("footer.parquet: cannot read the Parquet footer"), "{claimed}: {error}");
    }
}

#[test]
fn footer_sizes_and_offsets_that_lie_are_errors_not_crashes() {
    let dir = tempfile::tempdir().expect("tmp");
    let bytes = lying_base(dir.path());
    let (data, meta) = split_footer(&bytes);
    let md = ParquetMetaDataReader::decode_metadata(meta).expect("our own footer parses");
    let mut lies: Vec<(String, i64, i64)> = Vec::new();
    let huge = [1 << 40, i64::MAX, -1, 0, data.len() as i64 + 100];
    for rg in md.row_groups().iter().take(1) {
        for c in rg.columns().iter().take(18) {
            let name = c.column_path().string();
            for to in huge {
                lies.push((format!("{name}: compressed size {to}"), c.compressed_size(), to));
                lies.push((format!("{name}: data page offset {to}"), c.data_page_offset(), to));
                lies.push((format!("{name}: value count {to}"), c.num_values(), to));
            }
            if let Some(d) = c.dictionary_page_offset() {
                lies.push((format!("{name}: dictionary page offset"), d, data.len() as i64 - 3));
            }
        }
    }
    let path = dir.path().join("lie.parquet");
    let mut tried = 0;
    for (what, from, to) in lies {
        let (lie, hits) = replace_i64(meta, from, to);
        if hits == 0 || from == to {
            continue;
        }
        tried += 1;
        std::fs::write(&path, join_footer(data, &lie)).expect("write");
        let p = path.clone();
        let (events, error) = within(&what, 60, 8 * MIB, move || read_all(&p));
        match &error {
            Some(error) => assert!(error.contains("lie.parquet"), "{what}: {error}"),
            // A field the reader does not rely on: the file reads whole, never partly without an error.
            None => assert_eq!(events, 777, "{what}: read without an error"),
        }
        assert!(events <= 777, "{what}: {events} events out of 777");
    }
    assert!(tried >= 250, "only {tried} lies could be told");
}

#[test]
fn row_group_declaring_a_billion_rows_does_not_allocate_for_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("one-group.parquet");
    write_parquet(&path, &capture_text(775), 1 << 20);
    let bytes = std::fs::read(&path).expect("read");
    let (data, meta) = split_footer(&bytes);
    // The file's num_rows, the row group's num_rows and every column chunk's value count say 777.
    let (lie, hits) = replace_i64(meta, 777, 1_000_000_000);
    assert!(hits >= 3, "{hits} fields held 777");
    let lying = dir.path().join("billion.parquet");
    std::fs::write(&lying, join_footer(data, &lie)).expect("write");
    let capture = Capture::open(&lying).expect("the footer itself is well-formed");
    assert_eq!(capture.num_rows(), Some(1_000_000_000), "the lie is what the footer says");
    let p = lying.clone();
    // Allocating for a billion rows would take minutes and gigabytes; reading what is there takes milliseconds.
    let (events, error) = within("billion rows", 60, 8 * MIB, move || read_all(&p));
    assert!(events <= 777, "{events} events");
    let error = error.expect("the pages hold 777 rows, not a billion: decoding stops with an error");
    assert!(error.contains("billion.parquet"), "{error}");
    // Replay with skip_unreadable keeps the events that were decoded, and says what went wrong.
    let summary = replay(&[lying], true).expect("replays what can be read");
    assert_eq!(summary.unreadable.len(), 1, "{:?}", summary.unreadable);
    assert_eq!(summary.unreadable[0].events_read, summary.events);
}

#[test]
fn column_of_the_wrong_type_is_named() {
    let dir = tempfile::tempdir().expect("tmp");
    let events = events_from_ndjson(&token_read(), "t", 10).expect("events");
    let rb = events[0].to_record_batch();
    let n = rb.num_rows();
    let wrong: [(&str, DataType, ArrayRef, &str); 5] = [
        ("pid", DataType::Utf8, Arc::new(StringArray::from(vec!["1"; n])), "column `pid` has type Utf8"),
        ("time", DataType::Int64, Arc::new(Int64Array::from(vec![1; n])), "column `time` has type Int64"),
        ("kind", DataType::Int32, Arc::new(Int32Array::from(vec![1; n])), "column `kind` has type Int32"),
        ("args", DataType::Utf8, Arc::new(StringArray::from(vec!["cat"; n])), "column `args` has type Utf8"),
        ("flags", DataType::Utf8, Arc::new(StringArray::from(vec!["0"; n])), "column `flags` has type Utf8"),
    ];
    for (column, ty, array, message) in wrong {
        let path = dir.path().join(format!("wrong-{column}.parquet"));
        write_with_column(&path, &rb, Field::new(column, ty, true), array);
        let error = Capture::open(&path).map(|_| ()).expect_err("refused").to_string();
        assert!(error.contains(message) && error.contains(&format!("wrong-{column}.parquet")), "{error}");
    }
}

#[test]
fn a_kind_no_capture_version_has_is_named_at_its_event() {
    // `kind` as plain strings and dictionary-encoded (as pyarrow and polars
    // write it), "clone" at the sixth event of the file.
    let dir = tempfile::tempdir().expect("tmp");
    let text: String = (0..8).map(|_| token_read()).collect();
    let events = events_from_ndjson(&text, "t", 100).expect("events");
    let rb = events[0].to_record_batch();
    let n = rb.num_rows();
    let kinds: Vec<&str> = (0..n).map(|i| if i == 5 { "clone" } else { "open" }).collect();
    let dictionary: ArrayRef = Arc::new(kinds.iter().copied().collect::<DictionaryArray<Int32Type>>());
    for (name, array) in [("plain", Arc::new(StringArray::from(kinds.clone())) as ArrayRef), ("dictionary", dictionary)]
    {
        let path = dir.path().join(format!("kind-{name}.parquet"));
        write_with_column(&path, &rb, Field::new("kind", array.data_type().clone(), false), array);
        let error = replay(std::slice::from_ref(&path), false).expect_err("refused");
        assert!(
            error.contains(&format!("kind-{name}.parquet"))
                && error.contains("column `kind` holds \"clone\" at event 5; expected one of"),
            "{name}: {error}"
        );
    }
}

// ============================================================================
// Huge values
// ============================================================================

#[test]
fn exec_with_a_million_arguments_is_found_by_the_seed_rule() {
    within("a million args", 300, 8 * MIB, || {
        let dir = tempfile::tempdir().expect("tmp");
        let mut args: Vec<String> = vec!["cat".into()];
        args.extend((0..1_000_000).map(|i| format!("-{i}")));
        args.push(TOKEN.into());
        let args = serde_json::to_string(&args).expect("json");
        let c = format!(r#","tty":"pts/0","container_id":"{CONTAINER}""#);
        let text =
            line("exec", "cat", &format!(r#","exe":"/bin/cat","args":{args},"path":"/bin/cat","result":0{c}"#)) + "\n";
        let ndjson = dir.path().join("million.ndjson");
        std::fs::write(&ndjson, &text).expect("write");
        let parquet = dir.path().join("million.parquet");
        write_parquet(&parquet, &text, 1 << 20);
        for path in [ndjson, parquet] {
            let mut sink = CollectSink::default();
            let summary = builtin(false).replay(&[&path], &mut sink).expect("replays");
            assert_eq!(summary.events, 1);
            assert_eq!(summary.rules[0].findings, 1, "{}: the seed rule's exec branch", path.display());
            let reason = sink.batches[0].column_by_name("reason").expect("reason");
            let reason = arrow_array::cast::AsArray::as_string::<i32>(reason.as_ref()).value(0);
            assert!(reason.contains(TOKEN), "{reason}");
        }
    });
}

#[test]
fn one_mib_path_is_read_and_trc108_fires_on_it() {
    within("1 MiB path", 120, 8 * MIB, || {
        let dir = tempfile::tempdir().expect("tmp");
        let long = format!("/run/secrets/kubernetes.io/serviceaccount/{}/token", "a/".repeat(MIB / 2));
        let c = format!(r#","tty":"pts/0","container_id":"{CONTAINER}""#);
        let text =
            line("open", "cat", &format!(r#","path":"{long}","requested_path":"{long}","flags":2,"result":3{c}"#));
        let path = dir.path().join("long.parquet");
        write_parquet(&path, &(text + "\n"), 1 << 20);
        let summary = replay(&[path], false).expect("replays");
        // TRC-108 has no length limit, as in Tracee; the EQL rule's file.path is over
        // Elasticsearch's ignore_above and can never match, as in Elasticsearch.
        assert_eq!(summary.rules.iter().map(|r| r.findings).collect::<Vec<_>>(), vec![0, 1]);
    });
}

#[test]
fn invalid_utf8_in_ndjson_names_the_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("bad.ndjson");
    let mut bytes = capture_text(2).into_bytes();
    let second = bytes.iter().position(|&b| b == b'\n').expect("line") + 20;
    bytes[second] = 0xff;
    std::fs::write(&path, &bytes).expect("write");
    let error = replay(std::slice::from_ref(&path), false).expect_err("refused");
    assert!(error.contains("bad.ndjson") && error.contains("line 2: not valid UTF-8"), "{error}");
    // Raw bytes that are not UTF-8 belong in a capture as \xNN escapes (capture-format.md): those read fine.
    std::fs::write(&path, capture_text(2).replace("/etc/f1", "/etc/\\\\xff")).expect("write");
    assert_eq!(replay(&[path], false).expect("escaped bytes are fine").events, 4);
}

#[test]
fn deeply_nested_json_in_ndjson_is_an_error_not_a_stack_overflow() {
    within("nested json", 60, 2 * MIB, || {
        let deep = format!("{}\"cat\"{}", "[".repeat(100_000), "]".repeat(100_000));
        // `time` (a number or a text) is buffered as an arbitrary JSON value before its type is known:
        // the nesting is followed there until serde_json's recursion limit.
        let text = line("exec", "cat", "").replace(r#""time":1"#, &format!(r#""time":{deep}"#));
        let error = events_from_ndjson(&text, "deep.ndjson", 10).map(|_| ()).expect_err("refused").to_string();
        assert!(error.contains("deep.ndjson: line 1: recursion limit exceeded"), "{error}");
        // `args` (a list of strings) refuses a list in a list at once.
        let text = line("exec", "cat", &format!(r#","args":{deep}"#));
        let error = events_from_ndjson(&text, "deep.ndjson", 10).map(|_| ()).expect_err("refused").to_string();
        assert!(error.contains("deep.ndjson: line 1: invalid type: sequence, expected a string"), "{error}");
    });
}

// ============================================================================
// Hostile queries
// ============================================================================

const TOO_DEEP: &str = "expression nested too deeply (more than 256 levels)";

#[test]
fn ten_thousand_nested_parentheses_are_an_error_not_a_stack_overflow() {
    // 2 MiB of stack, the least of any thread tokenscan compiles or evaluates queries on (rayon
    // workers); an unoptimized build needs under 1 MiB for the 256 levels the parser allows.
    within("10,000 parentheses", 60, 2 * MIB, || {
        for src in [
            format!("any where {}process.name == \"a\"{}", "(".repeat(10_000), ")".repeat(10_000)),
            format!("any where {}process.interactive", "not ".repeat(10_000)),
            format!("any where {}process.name{}", "startsWith(".repeat(10_000), ", \"a\")".repeat(10_000)),
            format!("any where {}", "not (".repeat(10_000)),
        ] {
            let e = EqlQuery::compile(&src, &CompileOptions::default()).expect_err("too deep");
            assert_eq!(e.message, TOO_DEEP);
        }
    });
}

/// A condition nested `depth` levels deep, alternating `not`, `and` and `or`.
fn nested(depth: usize) -> String {
    let mut s = "process.name == \"cat\"".to_string();
    for level in 0..depth {
        s = match level % 3 {
            0 => format!("not ({s})"),
            1 => format!("(process.pid != 7 and ({s}))"),
            _ => format!("(process.args like \"x\" or ({s}))"),
        };
    }
    s
}

#[test]
fn deepest_allowed_nesting_compiles_evaluates_and_explains_on_a_small_stack() {
    // 2 MiB is the stack of rayon's worker threads, where replay evaluates row groups.
    within("deep but allowed", 120, 2 * MIB, || {
        let batches = events_from_ndjson(&capture_text(3), "t", 64).expect("events");
        // `not (x)` counts two levels (the `not` and the parentheses), the others one or two:
        // find the deepest text the parser accepts and use it.
        let mut depth = 1;
        while EqlQuery::compile(&format!("any where {}", nested(depth + 1)), &CompileOptions::default()).is_ok() {
            depth += 1;
        }
        assert!(depth >= 80, "only {depth} levels compile");
        let src = format!("any where {}", nested(depth));
        let q = EqlQuery::compile(&src, &CompileOptions::default()).expect("compiles");
        let again = EqlQuery::compile(&q.to_string(), &CompileOptions::default()).expect("its Display compiles");
        for b in &batches {
            let hits = q.evaluate(b);
            assert_eq!(hits, again.evaluate(b));
            for row in 0..b.len() {
                let text = if hits.value(row) { q.explain(b, row) } else { q.why_not(b, row) };
                assert!(!text.is_empty());
            }
        }
        let too_deep = format!("any where {}", nested(depth + 1));
        assert_eq!(EqlQuery::compile(&too_deep, &CompileOptions::default()).expect_err("too deep").message, TOO_DEEP);
    });
}

#[test]
fn flat_chains_of_100k_terms_compile_and_evaluate() {
    within("100k terms", 240, 2 * MIB, || {
        // Every event has pid 1; the last two are the token read by `cat`.
        let batch = &events_from_ndjson(&capture_text(30), "t", 64).expect("events")[0];
        let and: Vec<String> = (2..100_002).map(|i| format!("process.pid != {i}")).collect();
        let or: Vec<String> = (2..100_002).map(|i| format!("process.pid == {i}")).collect();
        let and = format!("any where {} and process.name == \"cat\"", and.join(" and "));
        let or = format!("any where {} or process.name == \"cat\"", or.join(" or "));
        for src in [and, or] {
            let q = EqlQuery::compile(&src, &CompileOptions::default()).expect("a flat chain compiles");
            let hits: Vec<usize> = q.evaluate(batch).set_indices().collect();
            assert_eq!(hits, vec![30, 31]);
            assert!(!q.explain(batch, 30).is_empty());
            assert!(!q.why_not(batch, 0).is_empty());
        }
    });
}

#[test]
fn pathological_regexes_run_in_linear_time() {
    within("pathological regex", 120, 8 * MIB, || {
        let a = "a".repeat(MIB);
        let text = line("exec", &a, &format!(r#","args":["{a}"],"tty":"pts/0""#)) + "\n";
        let batches = events_from_ndjson(&text, "t", 10).expect("events");
        let no_limit = CompileOptions { ignore_above: None };
        for p in ["(a*)*b", "(a|aa)*c", "(a+a+)+b", "(.*a){20}b", "(?:a?){30}a{30}b"] {
            let q = EqlQuery::compile(
                &format!(r#"any where process.name regex "{p}" or process.args regex~ "{p}""#),
                &no_limit,
            )
            .expect("a valid regex");
            assert_eq!(q.evaluate(&batches[0]).count_set_bits(), 0, "{p} on a MiB of a");
        }
        let q =
            EqlQuery::compile(r#"any where process.args like "*a*a*a*a*a*a*a*a*a*a*b""#, &no_limit).expect("compiles");
        assert_eq!(q.evaluate(&batches[0]).count_set_bits(), 0);
    });
}

#[test]
fn huge_regexes_are_refused_cleanly() {
    within("huge regex", 120, 8 * MIB, || {
        let opts = CompileOptions::default();
        for src in [
            r#"any where process.name regex "(?:a{1000}){1000}""#.to_string(),
            r#"any where process.name regex~ "\\w{1000}\\w{1000}\\w{1000}""#.to_string(),
            format!("any where process.name like \"{}\"", "ab?*".repeat(500_000)),
        ] {
            let e = EqlQuery::compile(&src, &opts).map(|_| ()).expect_err("too big");
            assert!(e.message.contains("size limit") || e.message.contains("too large"), "{}", e.message);
        }
        let sig = "[signature]\nid = \"S\"\nversion = \"1\"\nname = \"s\"\nseverity = 1\n[selector]\n\
                   event = \"security_file_open\"\norigin = \"*\"\n[match]\npath_regex = '(?:\\w{1000}){100}'\naccess = \"any\"\n";
        let e = RuleSet::from_sources(&[("big.toml", sig)], &opts).map(|_| ()).expect_err("too big").to_string();
        assert!(e.starts_with("big.toml:") && e.contains("invalid path_regex") && e.contains("size limit"), "{e}");
    });
}

// ============================================================================
// Capture directories and rule directories with one bad file
// ============================================================================

/// A directory with a good Parquet segment, a truncated one and a good NDJSON one.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let good = dir.join("seg-1.parquet");
    write_parquet(&good, &capture_text(10), 1 << 20);
    let bad = dir.join("seg-2.parquet");
    let bytes = std::fs::read(&good).expect("read");
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).expect("write");
    let ndjson = dir.join("seg-3.ndjson");
    std::fs::write(&ndjson, capture_text(5)).expect("write");
    tokenscan_core::capture::expand_paths(&[dir]).expect("three segments")
}

#[test]
fn capture_directory_with_a_corrupt_segment_replays_the_others() {
    let dir = tempfile::tempdir().expect("tmp");
    let paths = segments(dir.path());
    assert_eq!(paths.len(), 3);
    let summary = replay(&paths, true).expect("the good segments replay");
    assert_eq!(summary.events, 12 + 7, "both good segments, every event");
    assert_eq!(summary.findings(), 4, "a token read in each good segment, seen by both rules");
    assert_eq!(summary.unreadable.len(), 1);
    assert_eq!(summary.unreadable[0].capture, paths[1]);
    assert_eq!(summary.unreadable[0].events_read, 0);
    assert!(summary.unreadable[0].message.contains("seg-2.parquet"), "{:?}", summary.unreadable);
    // Without skipping (the library default, and the CLI's --strict) the first bad segment fails the replay.
    let error = replay(&paths, false).expect_err("strict");
    assert!(error.contains("seg-2.parquet"), "{error}");
    // A directory where nothing opens is an error either way.
    let error = replay(&paths[1..2], true).expect_err("nothing to replay");
    assert!(error.contains("seg-2.parquet"), "{error}");
}

#[test]
fn a_capture_that_breaks_part_way_keeps_the_events_before_the_break() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("broken.ndjson");
    std::fs::write(&path, capture_text(5) + "{\"time\": oops}\n" + &capture_text(5)).expect("write");
    let summary = replay(std::slice::from_ref(&path), true).expect("replays");
    assert_eq!(summary.events, 7, "the events before the bad line");
    assert_eq!(summary.findings(), 2, "the token read before the bad line is found");
    assert_eq!(summary.unreadable.len(), 1);
    assert_eq!(summary.unreadable[0].events_read, 7);
    assert!(summary.unreadable[0].message.contains("broken.ndjson: line 8"), "{:?}", summary.unreadable);
    assert!(replay(&[path], false).is_err());
}

#[test]
fn rule_directory_with_one_bad_file_fails_naming_it() {
    let dir = tempfile::tempdir().expect("tmp");
    for (name, text) in tokenscan_core::rules::builtin_sources() {
        std::fs::write(dir.path().join(name.file_name().expect("name")), text).expect("write");
    }
    std::fs::write(dir.path().join("zz-bad.toml"), "[rule]\nname = \"x\"\nrule_id = \"x\"\nseverity = \"low\"\nquery = '''\nprocess where process.nmae == \"cat\"\n'''\n").expect("write");
    let error = RuleSet::load(&[dir.path()], &CompileOptions::default()).map(|_| ()).expect_err("refused").to_string();
    assert!(error.contains("zz-bad.toml:6:15: in `query`: unknown field `process.nmae`"), "{error}");
}

// ============================================================================
// Regressions for crashes the lying-footer tests found
// ============================================================================

/// The first column chunk's metadata and the footer of a small capture.
fn small_capture(dir: &Path) -> (Vec<u8>, parquet::file::metadata::ParquetMetaData) {
    let path = dir.join("small.parquet");
    write_parquet(&path, &capture_text(20), 1 << 20);
    let bytes = std::fs::read(&path).expect("read");
    let md = ParquetMetaDataReader::decode_metadata(split_footer(&bytes).1).expect("parses");
    (bytes, md)
}

#[test]
fn negative_offset_or_size_in_the_footer_is_an_error_not_a_panic() {
    // The Parquet reader asserts that a column chunk's offset and size are not
    // negative: a capture saying otherwise made tokenscan panic while decoding.
    let dir = tempfile::tempdir().expect("tmp");
    let (bytes, md) = small_capture(dir.path());
    let (data, meta) = split_footer(&bytes);
    let c = md.row_group(0).column(0);
    let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
    for (from, to) in [(c.compressed_size(), -1), (start, -5), (c.compressed_size(), 1 << 40)] {
        let (lie, hits) = replace_i64_n(meta, from, to, 1);
        assert_eq!(hits, 1);
        let path = dir.path().join("negative.parquet");
        std::fs::write(&path, join_footer(data, &lie)).expect("write");
        let error = Capture::open(&path).map(|_| ()).expect_err("refused when opened").to_string();
        assert!(error.contains("the Parquet footer places its data outside the file"), "{error}");
    }
}

#[test]
fn row_counts_that_overflow_are_an_error_not_a_panic() {
    // The Parquet reader adds up row-group row counts as i64; counts near
    // i64::MAX overflowed (a panic in debug builds, nonsense in release).
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("two-groups.parquet");
    write_parquet(&path, &capture_text(775), 259);
    let bytes = std::fs::read(&path).expect("read");
    let (data, meta) = split_footer(&bytes);
    let (lie, hits) = replace_i64(meta, 259, i64::MAX / 2 + 1);
    assert!(hits >= 3, "the row groups' num_rows");
    let lying = dir.path().join("overflow.parquet");
    std::fs::write(&lying, join_footer(data, &lie)).expect("write");
    let error = Capture::open(&lying).map(|_| ()).expect_err("refused").to_string();
    assert!(error.contains("row counts in the Parquet footer overflow"), "{error}");
}

#[test]
fn a_footer_whose_collections_count_more_elements_than_its_bytes_is_refused_at_once() {
    // Found by fuzzing: the Parquet reader skips an unknown list of booleans without reading a
    // byte per element, so a 7 KB footer declaring lists of 2^31 booleans kept it spinning (0.65 s
    // a list in a release build, 15 s under the fuzz build); and it reserves memory for as many
    // row groups as the row-group list declares before reading one. In Thrift's compact protocol
    // a boolean in a list takes a byte, like every other element: a list counting more elements
    // than the footer has bytes cannot be there.
    // A field header in the long form: the type in the low nibble, then the id as a zigzag varint.
    let field = |ty: u8, id: i64| [vec![ty], varint(id)].concat();
    // A list header with its count after it: 0xF in the high nibble, the element type in the low.
    let list = |element: u8, n: u64| [vec![0xf0 | element], uleb(n)].concat();
    let one = [field(9, 100), list(1, i32::MAX as u64)].concat();
    let booleans: Vec<u8> = (0..16).flat_map(|i| [field(9, 100 + i), list(1, i32::MAX as u64)].concat()).collect();
    // Field 4 is FileMetaData.row_groups, a list of structs (12); a second one replaces the first.
    let row_groups = [field(9, 4), list(12, i32::MAX as u64)].concat();
    // The walk stops after the first list's count (where its elements would begin).
    let stops = [one.len(), row_groups.len()];
    let dir = tempfile::tempdir().expect("tmp");
    let (bytes, _) = small_capture(dir.path());
    let (data, meta) = split_footer(&bytes);
    assert_eq!(meta.last(), Some(&0), "FileMetaData ends with the stop byte of its struct");
    for ((what, extra), stop) in [("booleans", booleans), ("row groups", row_groups)].into_iter().zip(stops) {
        let lie = [&meta[..meta.len() - 1], &extra, &[0]].concat();
        let path = dir.path().join("collections.parquet");
        let file = join_footer(data, &lie);
        std::fs::write(&path, &file).expect("write");
        let p = path.clone();
        let error = within(what, 10, 8 * MIB, move || Capture::open(&p).map(|_| ()).map_err(|e| e.to_string()))
            .expect_err(&format!("{what}: a footer holding more than its bytes is refused"));
        let (start, at) = (data.len(), data.len() + meta.len() - 1 + stop);
        let expected = format!(
            "collections.parquet: cannot read the Parquet footer ({} bytes at byte {start}): it ends inside a value, \
             or a collection in it counts more elements than its bytes hold (at byte {at}; the file looks corrupt)",
            lie.len()
        );
        assert!(error.contains(&expected), "{what}: {error}");
        // `tokenscan diff` reads a findings file given back to it the same way.
        let p = path.clone();
        let error = within(what, 10, 8 * MIB, move || SavedFindings::load(&p).map(|_| ()).map_err(|e| e.to_string()))
            .expect_err(&format!("{what}: refused as a findings file too"));
        assert!(error.contains(&expected), "{what} (findings): {error}");
    }
}

// ============================================================================
// Regressions for crashes fuzzing found (inputs under fuzz/corpus/)
// ============================================================================

#[test]
fn a_corrupt_embedded_arrow_schema_is_not_decoded() {
    // fixtures/edge-cases.parquet with 5 bytes changed by the `parquet` fuzz target, one of them
    // in the footer's `ARROW:schema` value: a field of Arrow type 197, which does not exist. The
    // Arrow IPC decoder panicked on it (`not implemented: Type <UNKNOWN 197> not supported`)
    // when the capture was opened; tokenscan now reads the Parquet schema only.
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("arrow-schema.parquet");
    std::fs::write(&path, include_bytes!("../../fuzz/corpus/parquet/crash-arrow-schema-unknown-type.parquet"))
        .expect("write");
    let p = path.clone();
    let (events, error) = within("corrupt Arrow schema", 60, 8 * MIB, move || read_all(&p));
    // Its other changed bytes are in the data pages: a clean decoding error, no event.
    let error = error.expect("a decoding error");
    assert!(error.contains("arrow-schema.parquet: cannot decode events after event 0"), "{error}");
    assert_eq!(events, 0);
    // The fixture it was mutated from reads whole.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/edge-cases.parquet");
    assert_eq!(read_all(&fixture), (30, None));
}

#[test]
fn corrupt_bit_widths_in_data_pages_are_errors_not_panics() {
    // Inputs of the `parquet` fuzz target (fixtures with a few bytes changed in their data pages):
    // the Parquet decoder asserted (`num_bits <= size_of::<T>() * 8`) or overflowed a shift while
    // decoding, and the panic ended the replay. Now a decoding error at the event, as for other corrupt pages.
    let dir = tempfile::tempdir().expect("tmp");
    for (name, bytes) in [
        ("bit-width.parquet", &include_bytes!("../../fuzz/corpus/parquet/crash-bit-width-over-64.parquet")[..]),
        ("bit-shift.parquet", &include_bytes!("../../fuzz/corpus/parquet/crash-bit-shift-overflow.parquet")[..]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        let p = path.clone();
        let (events, error) = within(name, 60, 8 * MIB, move || read_all(&p));
        let error = error.unwrap_or_else(|| panic!("{name}: {events} events and no error"));
        assert!(
            error.contains(&format!("{name}: cannot decode events after event 0: the Parquet decoder failed")),
            "{error}"
        );
        assert_eq!(events, 0);
    }
}

#[test]
fn a_dictionary_page_declaring_two_billion_values_is_refused_before_they_are_allocated() {
    // The `parquet` fuzz target's out-of-memory find (CI, 2026-12-07): the Parquet decoder sizes
    // a dictionary by the count its page header declares, allocating and filling
    // `num_values × width` bytes before reading a value, so a small capture whose dictionary
    // page header says 2^31 - 1 values took 8 GiB (pid, 4 bytes each). A PLAIN dictionary
    // of n values of a 4-byte type takes 4n bytes (the Parquet format): the header is refused.
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("plain.parquet");
    // Uncompressed: a page's bytes are its declared sizes, both of them.
    let options = WriterOptions { compression: parquet::basic::Compression::UNCOMPRESSED, ..Default::default() };
    let mut w = ParquetCaptureWriter::new(std::fs::File::create(&path).expect("create"), &path, options).expect("w");
    for b in events_from_ndjson(&capture_text(20), "events", 4096).expect("valid events") {
        w.write(&b).expect("write");
    }
    w.close().expect("close");
    let bytes = std::fs::read(&path).expect("read");
    let (data, meta) = split_footer(&bytes);
    let md = ParquetMetaDataReader::decode_metadata(meta).expect("parses");
    let rg = md.row_group(0);
    let at = rg.columns().iter().position(|c| c.column_path().string() == "pid").expect("pid");
    let c = rg.column(at);
    let dict = c.dictionary_page_offset().expect("pid is dictionary-encoded") as usize;
    let page = c.data_page_offset() as usize;
    // The dictionary page's values, read by the parquet crate itself.
    let file = Arc::new(std::fs::File::open(&path).expect("open"));
    let mut pages = parquet::file::serialized_reader::SerializedPageReader::new(file, c, rg.num_rows() as usize, None)
        .expect("page reader");
    let values = match parquet::column::page::PageReader::get_next_page(&mut pages).expect("page").expect("a page") {
        parquet::column::page::Page::DictionaryPage { buf, .. } => buf.len(),
        other => panic!("the first page of pid is {:?}, not its dictionary", other.page_type()),
    };
    let old_header = page - dict - values;
    // The same header, by hand (Thrift compact, the format's PageHeader): type DICTIONARY_PAGE,
    // both sizes `values`, and a DictionaryPageHeader of 2^31 - 1 values, PLAIN.
    let mut header = vec![0x15];
    header.extend(varint(2));
    for _ in 0..2 {
        header.push(0x15);
        header.extend(varint(values as i64));
    }
    header.extend([0x4c, 0x15]);
    header.extend(varint(i64::from(i32::MAX)));
    header.extend([0x15, 0x00, 0x00, 0x00]);
    // The column chunk with the new header goes after the others (the old one stays where it
    // was, unreferenced), so that no other offset moves; the footer points pid at it.
    let end = c.dictionary_page_offset().expect("dict") + c.compressed_size();
    let mut out = data.to_vec();
    let moved = out.len() as i64;
    out.extend_from_slice(&header);
    out.extend_from_slice(&bytes[dict + old_header..end as usize]);
    let grown = header.len() as i64 - old_header as i64;
    let lying_column = c
        .clone()
        .into_builder()
        .set_dictionary_page_offset(Some(moved))
        .set_data_page_offset(moved + (page - dict) as i64 + grown)
        .set_total_compressed_size(c.compressed_size() + grown)
        .build()
        .expect("column chunk");
    let mut columns = rg.columns().to_vec();
    columns[at] = lying_column;
    let lying_group = rg.clone().into_builder().set_column_metadata(columns).build().expect("row group");
    let lying_meta = md.clone().into_builder().set_row_groups(vec![lying_group]).build();
    parquet::file::metadata::ParquetMetaDataWriter::new(&mut out, &lying_meta).finish().expect("footer");
    let lying = dir.path().join("two-billion.parquet");
    std::fs::write(&lying, out).expect("write");

    let p = lying.clone();
    let (events, error) = within("two billion dictionary values", 60, 8 * MIB, move || read_all(&p));
    assert_eq!(events, 0);
    let error = error.expect("refused");
    assert!(
        error.contains(&format!(
            "two-billion.parquet: row group 0, column `pid`: the dictionary page at byte {moved} declares 2147483647 values but holds {values} bytes"
        )),
        "{error}"
    );
    // The late read of a row group (the findings' columns) is checked the same way, and a
    // directory's other captures are still replayed.
    let summary = replay(&[lying, path], true).expect("replays what can be read");
    assert_eq!(summary.unreadable.len(), 1, "{:?}", summary.unreadable);
    assert_eq!(summary.events, capture_text(20).lines().count() as u64);
    // The unchanged header (the capture as written) passes the check.
    let fixture = dir.path().join("plain.parquet");
    assert_eq!(read_all(&fixture), (capture_text(20).lines().count() as u64, None));
}
