//! Import throughput: `cargo bench -p tokenscan-core --bench import`.
//!
//! Generates large, realistic inputs once (Tracee `--output json` lines with
//! every context field Tracee writes, `env` on execs, other event types
//! mixed in; Defend for Containers ECS documents with their agent, cloud,
//! orchestrator and session-leader fields), then times the importers on one
//! thread, reading the files through the page cache:
//!
//! * `parse`: lines to capture rows in Arrow batches, handed to a sink that drops them;
//! * `parquet`: the same, written as a zstd Parquet capture to a sink that discards the bytes;
//! * `gzip`: the `parse` case on a gzip-compressed copy (MB/s of decompressed JSON).
//!
//! Each case prints wall-clock MB/s (best and median of the runs) and MB per
//! CPU second of the process (best run), which is the one-core figure that
//! holds on a machine shared with other work. MB are MiB of (decompressed)
//! JSON text. `json floor` is serde_json reading each line as `IgnoredAny`:
//! the cost of merely parsing the JSON, for scale.
//!
//! Environment: `TOKENSCAN_BENCH_MB` (size of each input, default 512),
//! `TOKENSCAN_BENCH_DIR` (where inputs go, default `target/import-bench`),
//! `TOKENSCAN_BENCH_RUNS` (runs per case, default 3; the best and the median are shown),
//! `TOKENSCAN_BENCH_ONLY` (run only the cases whose name contains this text).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use tokenscan_core::capture::{EventBatch, ParquetCaptureWriter, WriterOptions};
use tokenscan_core::import::{CaptureSink, ImportFormat, ImportOptions, Importer};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const PATHS: &[&str] = &[
    "/etc/ld.so.cache",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/lib/x86_64-linux-gnu/libselinux.so.1",
    "/usr/lib/x86_64-linux-gnu/libpcre2-8.so.0",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/proc/self/status",
    "/proc/meminfo",
    "/sys/fs/cgroup/cpu.max",
    "/app/config/settings.yaml",
    "/app/static/index.html",
    "/var/log/app/access.log",
    "/tmp/.tmpXk2Jq9/cache.db",
    "/usr/share/zoneinfo/Europe/Berlin",
    "/run/secrets/kubernetes.io/serviceaccount/..2026_11_20_09_58_11.1829374651/token",
    "/etc/ssl/certs/ca-certificates.crt",
    "/usr/lib/python3.11/json/__init__.py",
    "/node_modules/express/lib/router/index.js",
    "/dev/null",
];
const FLAGS: &[(i32, &str)] = &[
    (32768, "O_RDONLY|O_LARGEFILE"),
    (557056, "O_RDONLY|O_LARGEFILE|O_CLOEXEC"),
    (624640, "O_RDONLY|O_NONBLOCK|O_LARGEFILE|O_DIRECTORY|O_CLOEXEC"),
    (33345, "O_WRONLY|O_CREAT|O_TRUNC|O_LARGEFILE"),
    (33793, "O_WRONLY|O_APPEND|O_LARGEFILE"),
    (557058, "O_RDWR|O_LARGEFILE|O_CLOEXEC"),
];
const COMMS: &[(&str, &str)] = &[
    ("nginx", "/usr/sbin/nginx"),
    ("python3", "/usr/bin/python3.11"),
    ("node", "/usr/local/bin/node"),
    ("java", "/opt/java/openjdk/bin/java"),
    ("sh", "/usr/bin/dash"),
    ("cat", "/usr/bin/cat"),
    ("kube-proxy", "/usr/local/bin/kube-proxy"),
    ("coredns", "/coredns"),
];

fn container(i: usize) -> String {
    format!("{:016x}{:016x}{:016x}{:016x}", i as u64 * 0x9E37_79B9, 0x48c9dfca9bda9dfau64, i as u64, 0x29c31adu64)
}

fn tracee_line(rng: &mut Rng, ts: u64, out: &mut String, parsed_flags: bool) {
    use std::fmt::Write as _;
    let c = rng.below(200);
    let cid = container(c);
    let (comm, exe) = *rng.pick(COMMS);
    let pid = 10_000 + rng.below(50_000);
    let ns = 1 + rng.below(200);
    let kind = rng.below(100);
    let (name, id) = match kind {
        0..=87 => ("security_file_open", 730),
        88..=92 => ("sched_process_exec", 715),
        93..=96 => ("sched_process_fork", 1002),
        _ => ("openat", 257),
    };
    let _ = write!(
        out,
        r#"{{"timestamp":{ts},"threadStartTime":{},"processorId":{},"processId":{ns},"cgroupId":{},"threadId":{ns},"parentProcessId":1,"hostProcessId":{pid},"hostThreadId":{pid},"hostParentProcessId":{},"userId":{},"mountNamespace":4026532731,"pidNamespace":4026532734,"processName":"{comm}","executable":{{"path":"{exe}"}},"hostName":"node-{}","containerId":"{cid}","container":{{"id":"{cid}","name":"app-{c}","image":"registry.example.com/team/app-{c}:1.4.{c}","imageDigest":"sha256:2f1b6a3f0e7cbd7e9d8a41e1c5a4a2b4f3b9a0d6c1e2f3a4b5c6d7e8f9a0b1c2"}},"kubernetes":{{"podName":"app-{c}-7d9f8c6b5-x2k4p","podNamespace":"default","podUID":"7c1e4b2a-93f0-4d7e-b1a5-2f6c8d9e{c:04x}"}},"eventId":"{id}","eventName":"{name}","matchedPolicies":["default"],"argsNum":6,"returnValue":0,"syscall":"openat","stackAddresses":null,"contextFlags":{{"containerStarted":true,"isCompat":false}},"threadEntityId":{},"processEntityId":{},"parentEntityId":{},"args":["#,
        ts - 1_000_000,
        rng.below(2),
        10_000 + c,
        pid - 1,
        if c % 7 == 0 { 1000 } else { 0 },
        c % 12,
        rng.next() as u32,
        rng.next() as u32,
        rng.next() as u32,
    );
    match name {
        "security_file_open" => {
            let path = rng.pick(PATHS);
            let (flags, names) = *rng.pick(FLAGS);
            let _ = write!(out, r#"{{"name":"pathname","type":"const char*","value":"{path}"}},"#);
            if parsed_flags {
                let _ = write!(out, r#"{{"name":"flags","type":"string","value":"{names}"}},"#);
            } else {
                let _ = write!(out, r#"{{"name":"flags","type":"int","value":{flags}}},"#);
            }
            let _ = write!(
                out,
                r#"{{"name":"dev","type":"dev_t","value":64768}},{{"name":"inode","type":"unsigned long","value":{}}},{{"name":"ctime","type":"unsigned long","value":1731312000000000000}},{{"name":"syscall_pathname","type":"const char*","value":"{path}"}}]}}"#,
                rng.below(5_000_000)
            );
        }
        "sched_process_exec" => {
            let path = rng.pick(PATHS);
            let _ = write!(
                out,
                r#"{{"name":"cmdpath","type":"const char*","value":"{exe}"}},{{"name":"pathname","type":"const char*","value":"{exe}"}},{{"name":"dev","type":"dev_t","value":64768}},{{"name":"inode","type":"unsigned long","value":1572913}},{{"name":"ctime","type":"unsigned long","value":1731312000000000000}},{{"name":"inode_mode","type":"umode_t","value":33261}},{{"name":"interpreter_pathname","type":"const char*","value":"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"}},{{"name":"interpreter_dev","type":"dev_t","value":64768}},{{"name":"interpreter_inode","type":"unsigned long","value":1573120}},{{"name":"interpreter_ctime","type":"unsigned long","value":1731312000000000000}},{{"name":"argv","type":"const char**","value":["{comm}","--config","/app/config/settings.yaml","{path}"]}},{{"name":"interp","type":"const char*","value":"{exe}"}},{{"name":"stdin_type","type":"string","value":"S_IFCHR"}},{{"name":"stdin_path","type":"const char*","value":"/dev/null"}},{{"name":"invoked_from_kernel","type":"int","value":0}},{{"name":"env","type":"const char**","value":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","HOSTNAME=app-{c}-7d9f8c6b5-x2k4p","KUBERNETES_SERVICE_HOST=10.96.0.1","KUBERNETES_SERVICE_PORT=443","KUBERNETES_PORT=tcp://10.96.0.1:443","APP_ENV=production","LANG=C.UTF-8","HOME=/root"]}}]}}"#
            );
        }
        "sched_process_fork" => {
            let _ = write!(
                out,
                r#"{{"name":"parent_tid","type":"int","value":{pid}}},{{"name":"parent_ns_tid","type":"int","value":{ns}}},{{"name":"parent_pid","type":"int","value":{pid}}},{{"name":"parent_ns_pid","type":"int","value":{ns}}},{{"name":"child_tid","type":"int","value":{}}},{{"name":"child_ns_tid","type":"int","value":{}}},{{"name":"start_time","type":"unsigned long","value":{ts}}}]}}"#,
                pid + 1,
                ns + 1
            );
        }
        _ => {
            let _ = write!(
                out,
                r#"{{"name":"dirfd","type":"int","value":-100}},{{"name":"pathname","type":"const char*","value":"{}"}},{{"name":"flags","type":"int","value":0}},{{"name":"mode","type":"mode_t","value":0}}]}}"#,
                rng.pick(PATHS)
            );
        }
    }
    out.push('\n');
}

fn ecs_line(rng: &mut Rng, ts: u64, out: &mut String) {
    use std::fmt::Write as _;
    let c = rng.below(200);
    let cid = container(c);
    let (comm, exe) = *rng.pick(COMMS);
    let pid = 10_000 + rng.below(50_000);
    let secs = ts / 1_000_000_000;
    let time = format!(
        "2026-11-20T{:02}:{:02}:{:02}.{:03}Z",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        (ts / 1_000_000) % 1000
    );
    let kind = rng.below(100);
    let (category, action, ty, dataset, selector) = match kind {
        0..=59 => ("file", "open", "change", "file", "sensitiveFiles"),
        60..=89 => ("process", "exec", "start", "process", "allProcesses"),
        90..=96 => ("process", "fork", "start", "process", "allProcesses"),
        _ => ("process", "end", "end", "process", "allProcesses"),
    };
    let _ = write!(
        out,
        r#"{{"@timestamp":"{time}","agent":{{"id":"f3c1a7e2-0b4d-4e8a-9c6f-2d1e5b7a9c30","type":"cloud-defend","version":"8.16.1"}},"cloud":{{"provider":"gcp","region":"europe-west1","account":{{"id":"prod-4471"}}}},"cloud_defend":{{"package_policy_id":"8e2a4c6b-1f3d-4b5a-9c7e-0d2f4a6b8c1e","package_policy_revision":3,"matched_selectors":["{selector}"],"trace_point":"security_file_open"}},"container":{{"id":"{cid}","name":"app-{c}","image":{{"name":"registry.example.com/team/app-{c}","tag":["1.4.{c}"]}}}},"data_stream":{{"dataset":"cloud_defend.{dataset}","namespace":"default","type":"logs"}},"ecs":{{"version":"8.7.0"}},"event":{{"kind":"event","category":["{category}"],"type":["{ty}"],"action":"{action}","id":"{:016x}","ingested":"{time}"}},"host":{{"name":"node-{}","hostname":"node-{}","os":{{"type":"linux","kernel":"6.8.0-45-generic","name":"Ubuntu"}},"architecture":"x86_64","pid_ns_ino":"4026531836","boot":{{"id":"5b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"}}}},"orchestrator":{{"cluster":{{"name":"prod-eu-1","id":"c-81c2"}},"namespace":"default","resource":{{"name":"app-{c}-7d9f8c6b5-x2k4p","type":"pod","ip":["10.244.{}.{}"],"label":{{"app":"app-{c}"}}}}}},"process":{{"entity_id":"{:016x}","pid":{pid},"thread":{{"id":{pid}}},"name":"{comm}","executable":"{exe}","working_directory":"/app","start":"{time}","interactive":{},"parent":{{"pid":{},"entity_id":"{:016x}","name":"sh","executable":"/usr/bin/dash"}},"session_leader":{{"pid":{},"entity_id":"{:016x}","same_as_process":false,"start":"{time}"}},"entry_leader":{{"pid":1,"entity_id":"YWJj","same_as_process":false}},"user":{{"id":"0","name":"root"}},"group":{{"id":"0","name":"root"}}"#,
        rng.next(),
        c % 12,
        c % 12,
        c % 250,
        rng.below(250),
        rng.next(),
        c % 50 == 0,
        pid - 1,
        rng.next(),
        pid - 1,
        rng.next(),
    );
    if action == "exec" {
        let _ = write!(
            out,
            r#","args":["{comm}","--config","/app/config/settings.yaml","{}"],"args_count":4"#,
            rng.pick(PATHS)
        );
    }
    out.push('}');
    if category == "file" {
        let path = rng.pick(PATHS);
        let name = path.rsplit('/').next().unwrap_or(path);
        let _ = write!(out, r#","file":{{"path":"{path}","name":"{name}"}}"#);
    }
    out.push_str("}\n");
}

fn generate(path: &Path, mb: u64, f: impl Fn(&mut Rng, u64, &mut String)) -> u64 {
    if let Ok(m) = std::fs::metadata(path) {
        if m.len() >= mb << 20 {
            return m.len();
        }
    }
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path).expect("create input"));
    let mut rng = Rng(7);
    let mut line = String::with_capacity(4096);
    let mut written = 0u64;
    let mut ts = 1_795_169_700_000_000_000u64;
    while written < mb << 20 {
        line.clear();
        ts += 1_000 + rng.below(200_000) as u64;
        f(&mut rng, ts, &mut line);
        w.write_all(line.as_bytes()).expect("write input");
        written += line.len() as u64;
    }
    w.flush().expect("flush input");
    written
}

fn gzip(src: &Path, dst: &Path) {
    if dst.exists() {
        return;
    }
    let mut input = File::open(src).expect("open");
    let out = BufWriter::new(File::create(dst).expect("create gz"));
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    std::io::copy(&mut input, &mut gz).expect("compress");
    gz.finish().expect("finish gz");
}

struct Drop;
impl CaptureSink for Drop {
    fn write_batch(&mut self, batch: &EventBatch) -> tokenscan_core::Result<()> {
        std::hint::black_box(batch.len());
        Ok(())
    }
}

/// CPU seconds (user + system) this process has used: on a shared machine,
/// MB per CPU second is the figure that does not depend on the neighbours.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    // Fields 14 and 15 of stat(5) (utime, stime, in clock ticks of 1/100 s) come 11 and 12
    // places after the state, field 3.
    let f: Vec<&str> = after.split_whitespace().collect();
    match (f.get(11).and_then(|x| x.parse::<u64>().ok()), f.get(12).and_then(|x| x.parse::<u64>().ok())) {
        (Some(u), Some(s)) => (u + s) as f64 / 100.0,
        _ => f64::NAN,
    }
}

/// The floor: serde_json reading every line as `IgnoredAny`, nothing else.
fn json_floor(input: &Path) -> (u64, u64) {
    use std::io::BufRead;
    let mut r = std::io::BufReader::with_capacity(1 << 20, File::open(input).unwrap());
    let mut line = Vec::new();
    let (mut bytes, mut n) = (0u64, 0u64);
    loop {
        line.clear();
        let k = r.read_until(b'\n', &mut line).unwrap();
        if k == 0 {
            break;
        }
        bytes += k as u64;
        let text = std::str::from_utf8(&line).unwrap();
        if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
            n += 1;
        }
    }
    (bytes, n)
}

/// Runs one import; returns (seconds, JSON bytes, rows, unmapped).
fn run(format: ImportFormat, input: &Path, parquet: bool) -> (f64, u64, u64, u64) {
    let start = Instant::now();
    let report = if parquet {
        let mut w = ParquetCaptureWriter::new(std::io::sink(), "bench.parquet", WriterOptions::default()).unwrap();
        let mut imp = Importer::new(format, ImportOptions::default(), &mut w);
        imp.read(input, File::open(input).unwrap()).unwrap();
        let r = imp.finish().unwrap();
        w.close().unwrap();
        r
    } else {
        let mut sink = Drop;
        let mut imp = Importer::new(format, ImportOptions::default(), &mut sink);
        imp.read(input, File::open(input).unwrap()).unwrap();
        imp.finish().unwrap()
    };
    (start.elapsed().as_secs_f64(), report.bytes, report.events, report.unmapped)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful either: ignore args.
    let mb: u64 = std::env::var("TOKENSCAN_BENCH_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(512);
    let runs: usize = std::env::var("TOKENSCAN_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1);
    let dir = std::env::var_os("TOKENSCAN_BENCH_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into())).join("import-bench")
    });
    let only = std::env::var("TOKENSCAN_BENCH_ONLY").unwrap_or_default();
    std::fs::create_dir_all(&dir).expect("bench dir");
    let tracee = dir.join(format!("tracee-{mb}mb.json"));
    let tracee_named = dir.join(format!("tracee-parsed-{mb}mb.json"));
    let ecs = dir.join(format!("ecs-{mb}mb.ndjson"));
    eprintln!("generating inputs in {} ({mb} MB each, reused when present)", dir.display());
    generate(&tracee, mb, |r, t, o| tracee_line(r, t, o, false));
    generate(&tracee_named, mb, |r, t, o| tracee_line(r, t, o, true));
    generate(&ecs, mb, ecs_line);
    let tracee_gz = dir.join(format!("tracee-{mb}mb.json.gz"));
    gzip(&tracee, &tracee_gz);

    println!(
        "{:<34} {:>9} {:>11} {:>11} {:>10} {:>10} {:>10}",
        "case", "MB", "rows", "unmapped", "best MB/s", "median", "MB/cpu-s"
    );
    for (name, path) in [("json floor (IgnoredAny)  tracee ", &tracee), ("json floor (IgnoredAny)  ecs    ", &ecs)] {
        if !name.contains(only.as_str()) {
            continue;
        }
        let mut times = Vec::new();
        let mut cpu = f64::INFINITY;
        let mut last = (0, 0);
        for _ in 0..runs {
            let (t0, c0) = (Instant::now(), cpu_seconds());
            last = json_floor(path);
            times.push(t0.elapsed().as_secs_f64());
            cpu = cpu.min(cpu_seconds() - c0);
        }
        times.sort_by(f64::total_cmp);
        let mbytes = last.0 as f64 / (1 << 20) as f64;
        println!(
            "{name:<34} {mbytes:>9.0} {:>11} {:>11} {:>10.0} {:>10.0} {:>10.0}",
            last.1,
            "",
            mbytes / times[0],
            mbytes / times[times.len() / 2],
            mbytes / cpu
        );
    }
    let cases: &[(&str, ImportFormat, &Path, bool)] = &[
        ("tracee (integer flags)   parse  ", ImportFormat::Tracee, &tracee, false),
        ("tracee (flag names)      parse  ", ImportFormat::Tracee, &tracee_named, false),
        ("tracee (integer flags)   parquet", ImportFormat::Tracee, &tracee, true),
        ("tracee gzip              parse  ", ImportFormat::Tracee, &tracee_gz, false),
        ("ecs (D4C, nested)        parse  ", ImportFormat::Ecs, &ecs, false),
        ("ecs (D4C, nested)        parquet", ImportFormat::Ecs, &ecs, true),
    ];
    for (name, format, path, parquet) in cases {
        if !name.contains(only.as_str()) {
            continue;
        }
        let mut times = Vec::new();
        let mut cpu = f64::INFINITY;
        let mut last = (0.0, 0, 0, 0);
        for _ in 0..runs {
            let c0 = cpu_seconds();
            last = run(*format, path, *parquet);
            cpu = cpu.min(cpu_seconds() - c0);
            times.push(last.0);
        }
        times.sort_by(f64::total_cmp);
        let mbytes = last.1 as f64 / (1 << 20) as f64;
        println!(
            "{name:<34} {mbytes:>9.0} {:>11} {:>11} {:>10.0} {:>10.0} {:>10.0}",
            last.2,
            last.3,
            mbytes / times[0],
            mbytes / times[times.len() / 2],
            mbytes / cpu
        );
    }
}
