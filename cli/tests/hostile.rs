//! Hostile input and faults, end to end: what `tokenscan` prints and how it
//! exits when a capture directory holds a corrupt segment, when a capture's
//! footer lies (under a memory limit), and when rules are hostile. Every run
//! has a deadline: a hang fails the test. See docs/robustness.md.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use insta_cmd::get_cargo_bin;
use tokenscan_core::capture::{events_from_ndjson, ParquetCaptureWriter, WriterOptions};

const TOKEN: &str = "/run/secrets/kubernetes.io/serviceaccount/token";

/// Runs `tokenscan args...` (through `sh -c` with `limits` prepended, e.g.
/// `ulimit -v 1048576;`) and kills it after `secs` seconds.
fn run(args: &[&str], limits: &str, secs: u64) -> Output {
    let bin = get_cargo_bin("tokenscan");
    let quoted: Vec<String> = args.iter().map(|a| format!("'{}'", a.replace('\'', "'\\''"))).collect();
    let script = format!("{limits} exec '{}' {}", bin.display(), quoted.join(" "));
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tokenscan");
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("tokenscan {args:?} still running after {secs} s: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The repository's root (fixtures, the fuzz corpus).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("cli/ has a parent").to_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Exit code 2, no panic or abort, and `needle` in stderr.
fn assert_error(out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "exit status {:?}; stderr: {err}", out.status);
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE") && !err.contains("memory allocation"),
        "{err}"
    );
}

fn line(kind: &str, comm: &str, extra: &str) -> String {
    format!(
        r#"{{"time":1,"kind":"{kind}","host":"h","pid":1,"tid":1,"ppid":1,"uid":0,"gid":0,"comm":"{comm}","cgroup_id":1{extra}}}"#
    )
}

/// `n` harmless events, then an interactive `cat` of the token in a container (both built-in rules fire).
fn capture_text(n: usize) -> String {
    let mut s: String =
        (0..n).map(|i| line("open", "ls", &format!(r#","path":"/etc/f{i}","flags":0,"result":3"#)) + "\n").collect();
    let c = r#","tty":"pts/0","container_id":"c0ffee""#;
    s += &(line("exec", "cat", &format!(r#","exe":"/bin/cat","args":["cat","{TOKEN}"],"result":0{c}"#)) + "\n");
    s += &(line("open", "cat", &format!(r#","path":"{TOKEN}","flags":0,"result":3{c}"#)) + "\n");
    s
}

fn write_parquet(path: &Path, ndjson: &str) {
    let file = std::fs::File::create(path).expect("create");
    let mut w = ParquetCaptureWriter::new(file, path, WriterOptions::default()).expect("writer");
    for b in events_from_ndjson(ndjson, "events", 4096).expect("events") {
        w.write(&b).expect("write");
    }
    w.close().expect("close");
}

/// A capture directory: a good Parquet segment, a truncated one, a good NDJSON one.
fn segments(dir: &Path) -> PathBuf {
    let segs = dir.join("segments");
    std::fs::create_dir(&segs).expect("mkdir");
    write_parquet(&segs.join("seg-1.parquet"), &capture_text(10));
    let bytes = std::fs::read(segs.join("seg-1.parquet")).expect("read");
    std::fs::write(segs.join("seg-2.parquet"), &bytes[..bytes.len() / 2]).expect("write");
    std::fs::write(segs.join("seg-3.ndjson"), capture_text(5)).expect("write");
    segs
}

#[test]
fn a_corrupt_segment_is_reported_and_the_others_replayed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = segments(tmp.path());
    let d = dir.to_str().expect("utf-8 path");
    let out = run(&["replay", d, "-f", "ndjson", "-q"], "", 60);
    assert_error(&out, "seg-2.parquet: cannot read the Parquet footer");
    assert!(stderr(&out).contains("(0 events of it were replayed)"), "{}", stderr(&out));
    assert!(stderr(&out).contains("1 of 3 captures could not be read completely"), "{}", stderr(&out));
    // The findings of both good segments are all there.
    let findings: Vec<serde_json::Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).expect("one finding per line")).collect();
    assert_eq!(findings.len(), 4, "{}", stdout(&out));
    for seg in ["seg-1.parquet", "seg-3.ndjson"] {
        assert_eq!(
            findings.iter().filter(|f| f["capture"].as_str().is_some_and(|c| c.ends_with(seg))).count(),
            2,
            "{seg}"
        );
    }
    // The JSON summary lists it.
    let out = run(&["replay", d, "-f", "json", "-q"], "", 60);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["summary"]["findings"], 4);
    assert_eq!(doc["summary"]["unreadable"][0]["events_read"], 0);
    assert!(doc["summary"]["unreadable"][0]["capture"].as_str().is_some_and(|c| c.ends_with("seg-2.parquet")));
}

#[test]
fn strict_stops_at_the_corrupt_segment() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = segments(tmp.path());
    let out = run(&["replay", dir.to_str().expect("utf-8"), "--strict", "-f", "ndjson"], "", 60);
    assert_error(&out, "seg-2.parquet: cannot read the Parquet footer");
    assert_eq!(stderr(&out).trim_end().lines().count(), 1, "one line: {}", stderr(&out));
    assert_eq!(stdout(&out), "", "nothing is replayed");
}

/// Thrift compact encoding of an i64: zigzag, then LEB128.
fn varint(n: i64) -> Vec<u8> {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    let mut out = Vec::new();
    loop {
        let b = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

#[test]
fn a_footer_declaring_a_billion_rows_fails_cleanly_in_a_gigabyte() {
    let tmp = tempfile::tempdir().expect("tmp");
    let good = tmp.path().join("good.parquet");
    // 777 events: a row count whose encoding appears in the footer only as row counts.
    write_parquet(&good, &capture_text(775));
    let bytes = std::fs::read(&good).expect("read");
    let n = bytes.len();
    let len = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().expect("4 bytes")) as usize;
    let (data, meta) = bytes[..n - 8].split_at(n - 8 - len);
    let (from, to) = (varint(777), varint(1_000_000_000));
    let mut lie = Vec::new();
    let mut i = 0;
    while i < meta.len() {
        if meta[i] & 0x0f == 6 && meta[i] >> 4 != 0 && meta[i + 1..].starts_with(&from) {
            lie.push(meta[i]);
            lie.extend_from_slice(&to);
            i += 1 + from.len();
        } else {
            lie.push(meta[i]);
            i += 1;
        }
    }
    let mut file = data.to_vec();
    file.extend_from_slice(&lie);
    file.extend_from_slice(&(lie.len() as u32).to_le_bytes());
    file.extend_from_slice(b"PAR1");
    let billion = tmp.path().join("billion.parquet");
    std::fs::write(&billion, file).expect("write");
    // 1 GiB of address space: decoding a billion rows would need tens of gigabytes.
    let out = run(&["replay", billion.to_str().expect("utf-8"), "-q"], "ulimit -v 1048576;", 60);
    assert_error(&out, "billion.parquet: the Parquet footer declares 1000000000 events here but the data holds 777");
    // Skipped (a capture among several), it is one unreadable row group,
    // however many threads read pieces of it.
    let (billion, good) = (billion.to_str().expect("utf-8"), good.to_str().expect("utf-8"));
    let out = run(&["replay", billion, good, "-q"], "ulimit -v 1048576;", 60);
    let err = stderr(&out);
    assert!(err.contains("declares 1000000000 events here but the data holds 777"), "{err}");
    assert!(!err.contains("more row group"), "one row group is reported as several: {err}");
}

#[test]
fn a_decoder_panic_on_a_corrupt_page_prints_only_the_error() {
    // The `parquet` crate asserts on these pages (fuzz finds, docs/robustness.md fix 7: the
    // first one panics in every build, the second in debug builds); the panic is caught and
    // reported as the capture's error. The user sees that one line, not the crate's
    // assertion and a backtrace before it (RUST_BACKTRACE set to make sure).
    for name in ["crash-bit-width-over-64.parquet", "crash-bit-shift-overflow.parquet"] {
        let path = root().join("fuzz/corpus/parquet").join(name);
        let out = run(&["replay", path.to_str().expect("utf-8")], "export RUST_BACKTRACE=1;", 60);
        assert_error(&out, "cannot decode events after event 0: the Parquet decoder failed on corrupt data (");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
    }
}

#[test]
fn invalid_utf8_in_an_ndjson_capture_names_the_line() {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = tmp.path().join("bad.ndjson");
    let mut bytes = capture_text(3).into_bytes();
    let third = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(1).expect("lines").0 + 30;
    bytes[third] = 0xc3;
    std::fs::write(&p, bytes).expect("write");
    let out = run(&["replay", p.to_str().expect("utf-8")], "", 60);
    assert_error(&out, "bad.ndjson: line 3: not valid UTF-8");
}

#[test]
fn hostile_rules_are_clean_errors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let capture = tmp.path().join("c.ndjson");
    std::fs::write(&capture, capture_text(1)).expect("write");
    let rule = |name: &str, query: &str| -> PathBuf {
        let p = tmp.path().join(name);
        std::fs::write(
            &p,
            format!("[rule]\nname = \"n\"\nrule_id = \"{name}\"\nseverity = \"low\"\nquery = '''\n{query}\n'''\n"),
        )
        .expect("write");
        p
    };
    let deep = rule("deep.toml", &format!("any where {}process.name == \"a\"", "(".repeat(10_000)));
    let huge = rule("huge.toml", "any where process.name regex \"(?:a{1000}){1000}\"");
    let c = capture.to_str().expect("utf-8");
    for (path, needle) in [
        (&deep, "deep.toml:6:267: in `query`: expression nested too deeply (more than 256 levels)"),
        (&huge, "huge.toml:6:"),
        (&huge, "exceeds size limit"),
    ] {
        let out = run(&["replay", c, "--rules", path.to_str().expect("utf-8")], "", 60);
        assert_error(&out, needle);
        assert_eq!(stderr(&out).trim_end().lines().count(), 1, "one line: {}", stderr(&out));
    }
    // A rule directory with one bad file: with --strict-rules it fails as a whole, naming the
    // file (no half-loaded rule set); by default the bad file is named and the other rule runs.
    let dir = tmp.path().join("rules");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::copy(&huge, dir.join("b.toml")).expect("copy");
    std::fs::write(dir.join("a.toml"), include_str!("../../core/rules/tracee-trc-108-k8s-service-account-token.toml"))
        .expect("write");
    let out = run(&["replay", c, "--strict-rules", "--rules", dir.to_str().expect("utf-8")], "", 60);
    assert_error(&out, "b.toml:6:");
    assert_eq!(stdout(&out), "");
    let out = run(&["replay", c, "--rules", dir.to_str().expect("utf-8")], "", 60);
    assert_error(&out, "1 rule file could not be loaded (1 problem)");
    assert!(stderr(&out).starts_with("warning: rule skipped: "), "{}", stderr(&out));
    assert!(stderr(&out).contains("b.toml:6:"), "{}", stderr(&out));
    assert!(stdout(&out).contains("rule TRC-108 | severity info | 1 finding"), "{}", stdout(&out));
}
