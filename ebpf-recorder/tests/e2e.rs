//! End to end, for real: start `tokenscan-record`, simulate a Kubernetes pod on
//! this machine, read its service-account token in the ways an attacker or a
//! tool would, stop the recorder, replay the capture through both built-in
//! rules and check the exact findings and the recorded field values.
//!
//! The pod: a cgroup v2 directory `kubepods.slice/cri-containerd-<64 hex>.scope`
//! (so the recorder resolves a container id), a private mount namespace
//! (`unshare -m`) with a tmpfs on `/run` and kubelet's projected-volume layout
//! under `/run/secrets/kubernetes.io/serviceaccount` (`..<timestamp>/token`,
//! `..data -> ..<timestamp>`, `token -> ..data/token`, ...), and `script` for a
//! controlling terminal. Nothing of the host's `/run` is touched.
//!
//! These tests need root and a kernel that loads the recorder (CI runs them
//! as root). Without either they FAIL, with the reason, unless
//! `TOKENSCAN_SKIP_EBPF=1` is set, in which case they print a loud SKIPPED
//! line: a skipped recorder test must never look like a passing one.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampNanosecondType, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use tokenscan_core::capture::{expand_paths, Capture, Column, EventBatch, Projection};
use tokenscan_core::eql::CompileOptions;
use tokenscan_core::replay::{CollectSink, ReplayOptions, Replayer};
use tokenscan_core::rules::RuleSet;
use tokenscan_record::cgroup::find_cgroup2_mount;

const SA: &str = "/run/secrets/kubernetes.io/serviceaccount";
const VSA: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const TS: &str = "..2026_11_22_10_00_00.123456789";
const ELASTIC: &str = "66229f32-c460-410d-bc37-4b32322cd4bb";
const TRC108: &str = "TRC-108";

/// One recorder at a time: a second one would see the first one's pod.
static SERIAL: Mutex<()> = Mutex::new(());

/// Whether the machine can run the recorder; the reason when not.
fn unsupported_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root (the recorder loads eBPF programs)".into());
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Some("the kernel has no BTF (/sys/kernel/btf/vmlinux)".into());
    }
    for tool in ["unshare", "script", "setsid", "mount"] {
        if which(tool).is_none() {
            return Some(format!("`{tool}` (util-linux) is not installed"));
        }
    }
    None
}

/// Returns false (after printing why) when the test must not run; panics
/// when it cannot run and skipping was not asked for.
fn should_run(test: &str) -> bool {
    let Some(reason) = unsupported_reason() else { return true };
    if std::env::var("TOKENSCAN_SKIP_EBPF").as_deref() == Ok("1") {
        eprintln!("\n!!!!!!!!!! SKIPPED {test}: {reason} (TOKENSCAN_SKIP_EBPF=1) !!!!!!!!!!\n");
        return false;
    }
    panic!("{test} cannot run: {reason}. Run the tests as root, or set TOKENSCAN_SKIP_EBPF=1 to skip them explicitly.");
}

fn which(tool: &str) -> Option<PathBuf> {
    ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

/// The system's Python (not a version manager's shim on PATH, which runs a
/// shell script first).
fn python3() -> &'static str {
    ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("python3 (the tests read files with Python's open())")
}

fn random_hex64() -> String {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).expect("read /dev/urandom");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A cgroup v2 directory named like a containerd container, removed on drop.
struct PodCgroup {
    dir: PathBuf,
    created_parent: Option<PathBuf>,
    id: String,
    cgroup_id: u64,
}

impl PodCgroup {
    fn create() -> PodCgroup {
        let mounts = std::fs::read_to_string("/proc/mounts").expect("read /proc/mounts");
        let root = find_cgroup2_mount(&mounts).expect("a cgroup2 mount (see /proc/mounts)");
        let parent = root.join("kubepods.slice");
        let created_parent = if parent.exists() { None } else { Some(parent.clone()) };
        std::fs::create_dir_all(&parent).expect("create kubepods.slice");
        let id = random_hex64();
        let dir = parent.join(format!("cri-containerd-{id}.scope"));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let cgroup_id = std::fs::metadata(&dir).unwrap().ino();
        PodCgroup { dir, created_parent, id, cgroup_id }
    }
}

impl Drop for PodCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Some(p) = &self.created_parent {
            let _ = std::fs::remove_dir(p);
        }
    }
}

/// The recorder as a child process, its stderr in a file.
struct Recorder {
    child: Child,
    log: PathBuf,
}

impl Recorder {
    fn start(args: &[&str], log: PathBuf) -> Recorder {
        let err = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tokenscan-record"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start tokenscan-record");
        let mut r = Recorder { child, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = r.log_text();
            if text.contains("\nrecording ") {
                break;
            }
            if let Some(status) = r.child.try_wait().unwrap() {
                panic!("tokenscan-record exited ({status}) before recording:\n{text}");
            }
            assert!(Instant::now() < deadline, "tokenscan-record did not start within 60s:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The recorder's effective capabilities, from /proc.
    fn cap_eff(&self) -> String {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap().trim().to_string()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory arguments; the pid is our child's.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits up to `timeout` for the recorder to exit; its status and log.
    fn wait(&mut self, timeout: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("tokenscan-record did not exit within {timeout:?}:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (status, self.log_text())
    }

    /// SIGINT, then the exit status and the log.
    fn stop_with_status(mut self) -> (std::process::ExitStatus, String) {
        self.signal(libc::SIGINT);
        self.wait(Duration::from_secs(60))
    }

    /// SIGINT, then wait for a clean exit; returns the log.
    fn stop(self) -> String {
        let (status, log) = self.stop_with_status();
        assert!(status.success(), "tokenscan-record exited with {status}:\n{log}");
        log
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Shell lines that build kubelet's projected service-account volume in a
/// private mount namespace (the caller runs the script under `unshare -m`).
fn kubelet_layout() -> String {
    format!(
        "mount --make-rprivate /\n\
         mount -t tmpfs -o mode=755 tmpfs /run\n\
         mkdir -p {SA}\n\
         mount -t tmpfs -o mode=755 tmpfs {SA}\n\
         cd {SA}\n\
         mkdir {TS}\n\
         printf 'eyJhbGciOiJSUzI1NiJ9.e2e-token' > {TS}/token\n\
         printf 'e2e-ca\\n' > {TS}/ca.crt\n\
         printf 'default' > {TS}/namespace\n\
         ln -s {TS} ..data\n\
         ln -s ..data/token token\n\
         ln -s ..data/ca.crt ca.crt\n\
         ln -s ..data/namespace namespace\n\
         cd /\n"
    )
}

/// Runs `script_body` with sh in a new session and private mount namespace,
/// first moving itself into `cgroup` when given.
fn run_scenario(dir: &Path, name: &str, cgroup: Option<&Path>, script_body: &str) {
    let script = dir.join(format!("{name}.sh"));
    std::fs::write(&script, format!("set -eu\n{}{script_body}", kubelet_layout())).unwrap();
    let join = match cgroup {
        Some(cg) => format!("echo $$ > '{}' && ", cg.join("cgroup.procs").display()),
        None => String::new(),
    };
    let cmd = format!("{join}exec setsid -w unshare -m sh '{}'", script.display());
    let out = Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .env("SHELL", "/bin/sh")
        .env("TERM", "dumb")
        .stdin(Stdio::null())
        .output()
        .expect("run the scenario");
    assert!(
        out.status.success(),
        "scenario {name} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One event of the capture, owned.
#[derive(Debug, Clone, PartialEq)]
struct Ev {
    index: usize,
    /// Nanoseconds since the epoch.
    time: i64,
    kind: String,
    pid: u32,
    ppid: u32,
    uid: u32,
    comm: String,
    exe: Option<String>,
    args: Option<Vec<String>>,
    path: Option<String>,
    requested_path: Option<String>,
    flags: Option<i32>,
    result: Option<i64>,
    tty: Option<String>,
    cgroup_id: u64,
    container_id: Option<String>,
    tid: u32,
    sid: Option<u32>,
    pgid: Option<u32>,
    start: Option<i64>,
    parent_start: Option<i64>,
    cwd: Option<String>,
    pod_name: Option<String>,
    pod_namespace: Option<String>,
    pod_uid: Option<String>,
    container_name: Option<String>,
    image: Option<String>,
    image_name: Option<String>,
    image_tag: Option<String>,
    privileged: Option<bool>,
    old_path: Option<String>,
}

fn events_of(batch: &EventBatch, first: usize) -> Vec<Ev> {
    let s = |c: Column, i: usize| batch.str_value(c, i).map(str::to_owned);
    let u32s = |c: Column| batch.column(c).unwrap().as_primitive::<UInt32Type>().clone();
    let (pid, ppid, uid) = (u32s(Column::Pid), u32s(Column::Ppid), u32s(Column::Uid));
    let flags = batch.column(Column::Flags).unwrap().as_primitive::<Int32Type>().clone();
    let result = batch.column(Column::Result).unwrap().as_primitive::<Int64Type>().clone();
    let cg = batch.column(Column::CgroupId).unwrap().as_primitive::<UInt64Type>().clone();
    let args = batch.column(Column::Args).unwrap().as_list::<i32>().clone();
    let (tid, sid, pgid) = (u32s(Column::Tid), u32s(Column::Sid), u32s(Column::Pgid));
    let times = |c: Column| batch.column(c).unwrap().as_primitive::<TimestampNanosecondType>().clone();
    let (start, parent_start) = (times(Column::Start), times(Column::ParentStart));
    let opt = |a: &arrow_array::PrimitiveArray<_>, i: usize| a.is_valid(i).then(|| a.value(i));
    let time = times(Column::Time);
    (0..batch.len())
        .map(|i| Ev {
            index: first + i,
            time: time.value(i),
            kind: s(Column::Kind, i).unwrap(),
            pid: pid.value(i),
            ppid: ppid.value(i),
            uid: uid.value(i),
            comm: s(Column::Comm, i).unwrap(),
            exe: s(Column::Exe, i),
            args: (!args.is_null(i))
                .then(|| args.value(i).as_string::<i32>().iter().map(|v| v.unwrap_or("").to_string()).collect()),
            path: s(Column::Path, i),
            requested_path: s(Column::RequestedPath, i),
            flags: flags.is_valid(i).then(|| flags.value(i)),
            result: result.is_valid(i).then(|| result.value(i)),
            tty: s(Column::Tty, i),
            cgroup_id: cg.value(i),
            container_id: s(Column::ContainerId, i),
            tid: tid.value(i),
            sid: sid.is_valid(i).then(|| sid.value(i)),
            pgid: pgid.is_valid(i).then(|| pgid.value(i)),
            start: start.is_valid(i).then(|| start.value(i)),
            parent_start: opt(&parent_start, i),
            cwd: s(Column::Cwd, i),
            pod_name: s(Column::PodName, i),
            pod_namespace: s(Column::PodNamespace, i),
            pod_uid: s(Column::PodUid, i),
            container_name: s(Column::ContainerName, i),
            image: s(Column::Image, i),
            image_name: s(Column::ImageName, i),
            image_tag: s(Column::ImageTag, i),
            privileged: {
                let p = batch.column(Column::Privileged).unwrap().as_boolean();
                p.is_valid(i).then(|| p.value(i))
            },
            old_path: s(Column::OldPath, i),
        })
        .collect()
}

fn read_events(path: &Path) -> (Vec<Ev>, BTreeMap<String, String>) {
    let capture = Capture::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut out = Vec::new();
    for batch in capture.batches(Projection::all(), 8192).unwrap() {
        let batch = batch.unwrap();
        let first = out.len();
        out.extend(events_of(&batch, first));
    }
    (out, capture.metadata().clone())
}

/// A finding, reduced to what the assertions compare.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Finding {
    rule: String,
    kind: String,
    comm: String,
    path: Option<String>,
    requested_path: Option<String>,
    args: Option<Vec<String>>,
    pid: u32,
    container_id: Option<String>,
}

fn replay(paths: &[PathBuf]) -> Vec<Finding> {
    let rules = RuleSet::builtin(&CompileOptions::default()).unwrap();
    let mut sink = CollectSink::default();
    Replayer::new(rules, ReplayOptions::default()).replay(paths, &mut sink).unwrap();
    let mut out = Vec::new();
    for b in &sink.batches {
        out.extend(findings_of(b));
    }
    out
}

fn findings_of(b: &RecordBatch) -> Vec<Finding> {
    let col = |n: &str| b.column_by_name(n).unwrap_or_else(|| panic!("findings have no column {n}"));
    let s = |n: &str, i: usize| {
        let a = col(n);
        (!a.is_null(i)).then(|| a.as_string::<i32>().value(i).to_string())
    };
    let args = col("args").as_list::<i32>().clone();
    let pid = col("pid").as_primitive::<UInt32Type>().clone();
    (0..b.num_rows())
        .map(|i| Finding {
            rule: s("rule_id", i).unwrap(),
            kind: s("kind", i).unwrap(),
            comm: s("comm", i).unwrap(),
            path: s("path", i),
            requested_path: s("requested_path", i),
            args: (!args.is_null(i))
                .then(|| args.value(i).as_string::<i32>().iter().map(|v| v.unwrap_or("").to_string()).collect()),
            pid: pid.value(i),
            container_id: s("container_id", i),
        })
        .collect()
}

fn is_pts(t: &Option<String>) -> bool {
    t.as_deref()
        .and_then(|t| t.strip_prefix("pts/"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
}

fn one<'a>(events: &'a [Ev], what: &str, f: impl Fn(&Ev) -> bool) -> &'a Ev {
    let found: Vec<&Ev> = events.iter().filter(|e| f(e)).collect();
    assert_eq!(found.len(), 1, "expected exactly one event: {what}; found {found:#?}");
    found[0]
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn records_a_simulated_pod_and_replays_both_rules() {
    if !should_run("records_a_simulated_pod_and_replays_both_rules") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let capture = tmp.path().join("capture.parquet");
    let recorder = Recorder::start(&["-o", capture.to_str().unwrap()], tmp.path().join("recorder.log"));
    assert_eq!(recorder.cap_eff(), "0000000000000000", "the recorder must run without capabilities once attached");

    let pod = PodCgroup::create();
    let kube_proxy = tmp.path().join("bin/kube-proxy");
    std::fs::create_dir_all(kube_proxy.parent().unwrap()).unwrap();
    std::fs::copy("/usr/bin/cat", &kube_proxy).unwrap();
    std::fs::set_permissions(&kube_proxy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let python = python3();

    // The pod's session. `script -qec CMD /dev/null` runs `$SHELL -c CMD` on a fresh pty.
    let pod_body = format!(
        "script -qec 'cat {VSA}/token' /dev/null\n\
         head -c 8 {SA}/token\n\
         {python} -c \"open('{VSA}/token').read()\"\n\
         script -qec 'cd {VSA} && cat token' /dev/null\n\
         script -qec 'cat {SA}/ca.crt' /dev/null\n\
         script -qec 'echo x >> {VSA}/token' /dev/null\n\
         script -qec 'rm {SA}/ca.crt && echo x | tee {SA}/ca.crt' /dev/null\n\
         '{}' {SA}/token\n\
         /bin/true \"$(head -c 10000 /dev/zero | tr '\\0' a)\"\n\
         bad=\"$(printf '/run/bad-\\377-name')\"\n\
         printf x > \"$bad\"\n\
         cat \"$bad\" > /dev/null\n",
        kube_proxy.display()
    );
    run_scenario(tmp.path(), "pod", Some(&pod.dir), &pod_body);
    // The same interactive read on the host: same paths, no container.
    run_scenario(tmp.path(), "host", None, &format!("script -qec 'cat {VSA}/token' /dev/null\n"));

    std::thread::sleep(Duration::from_millis(300));
    let log = recorder.stop();
    assert!(log.contains("lost        0 (the capture is complete)"), "{log}");
    assert!(log.contains("tracepoint syscalls/sys_enter_openat"), "{log}");
    assert!(log.contains("raw_tracepoint sched_process_exec"), "{log}");

    let mode = std::fs::metadata(&capture).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the capture must be private");
    let (events, metadata) = read_events(&capture);
    assert_eq!(metadata.get("tokenscan.capture_version").map(String::as_str), Some("3"));
    assert_eq!(metadata.get("tokenscan.lost_events").map(String::as_str), Some("0"));
    for key in [
        "tokenscan.recorder_version",
        "tokenscan.kernel_release",
        "tokenscan.hostname",
        "tokenscan.start_time",
        "tokenscan.stop_time",
    ] {
        assert!(metadata.contains_key(key), "metadata {key} missing: {metadata:?}");
    }

    let cid = Some(pod.id.clone());
    let in_pod = |e: &Ev| e.container_id == cid;
    let token = format!("{SA}/{TS}/token");

    // --- recorded fields ---
    let cat_exec = one(&events, "the interactive cat exec", |e| {
        in_pod(e) && e.kind == "exec" && e.args.as_deref() == Some(&strs(&["cat", &format!("{VSA}/token")])[..])
    });
    assert_eq!(cat_exec.cgroup_id, pod.cgroup_id);
    assert_eq!(cat_exec.comm, "cat");
    assert_eq!(cat_exec.exe.as_deref(), Some("/usr/bin/cat"));
    assert_eq!(cat_exec.path.as_deref(), Some("/usr/bin/cat"));
    assert_eq!(cat_exec.result, Some(0));
    assert_eq!(cat_exec.flags, None);
    assert_eq!(cat_exec.uid, 0);
    assert!(is_pts(&cat_exec.tty), "tty {:?}", cat_exec.tty);
    let cat_open = one(&events, "the interactive cat's token open", |e| {
        e.pid == cat_exec.pid && e.kind == "open" && e.requested_path.as_deref() == Some(&format!("{VSA}/token"))
    });
    assert_eq!(cat_open.path.as_deref(), Some(token.as_str()), "/var/run -> /run and ..data resolved in the kernel");
    assert_eq!(cat_open.flags.map(|f| f & 3), Some(0));
    assert!(cat_open.result.is_some_and(|r| r >= 0));
    assert_eq!(cat_open.tty, cat_exec.tty);
    assert_eq!(cat_open.exe.as_deref(), Some("/usr/bin/cat"));
    assert_eq!(cat_open.ppid, cat_exec.ppid);

    // --- capture v2: the cat's process context, its fork and its exit ---
    assert!(cat_exec.sid.is_some() && cat_exec.pgid.is_some(), "{cat_exec:?}");
    assert!(cat_exec.start.is_some() && cat_exec.parent_start.is_some(), "{cat_exec:?}");
    assert_eq!(cat_exec.cwd.as_deref(), Some("/"), "the scenario runs in /");
    assert_eq!((cat_open.sid, cat_open.start, cat_open.cwd.clone()), (cat_exec.sid, cat_exec.start, Some("/".into())));
    let cat_fork = one(&events, "the cat process's fork", |e| {
        e.kind == "fork" && e.pid == cat_exec.pid && e.tid == cat_exec.pid && e.start == cat_exec.start
    });
    assert_eq!(cat_fork.container_id, cid, "forked inside the pod");
    assert_eq!((cat_fork.ppid, cat_fork.parent_start), (cat_exec.ppid, cat_exec.parent_start));
    assert_eq!((cat_fork.args.clone(), cat_fork.path.clone(), cat_fork.result), (None, None, None));
    assert!(cat_fork.index < cat_exec.index);
    let cat_exit = one(&events, "the cat process's exit", |e| {
        e.kind == "exit" && e.pid == cat_exec.pid && e.tid == cat_exec.pid && e.start == cat_exec.start
    });
    assert_eq!(cat_exit.result, Some(0), "cat exited 0: wait status 0");
    assert_eq!((cat_exit.sid, cat_exit.pgid, cat_exit.comm.as_str()), (cat_exec.sid, cat_exec.pgid, "cat"));
    assert_eq!(cat_exit.container_id, cid);
    assert!(cat_exit.index > cat_open.index);
    // The recorder's own start: a /proc snapshot row for pid 1.
    let init = one(&events, "pid 1's snapshot row", |e| e.kind == "process" && e.pid == 1);
    assert!(init.start.is_some() && init.sid.is_some(), "{init:?}");
    // At most one container row per container; the simulated pod has no
    // runtime state, so whether the hostname fallback describes it depends
    // on timing: only what such a row must hold is checked.
    let rows: Vec<&Ev> = events.iter().filter(|e| e.kind == "container" && e.container_id == cid).collect();
    assert!(rows.len() <= 1, "{rows:?}");
    for r in rows {
        assert_eq!((r.image.clone(), r.path.clone(), r.args.clone()), (None, None, None), "{r:?}");
    }
    assert!(log.contains("  pods        "), "{log}");
    assert!(!log.contains("not written"), "{log}");

    let relative = one(&events, "the relative read after cd", |e| {
        in_pod(e) && e.kind == "open" && e.requested_path.as_deref() == Some("token")
    });
    assert_eq!(relative.path.as_deref(), Some(token.as_str()));
    assert_eq!(relative.comm, "cat");
    assert!(is_pts(&relative.tty));

    let head = one(&events, "head's open", |e| {
        in_pod(e) && e.kind == "open" && e.comm == "head" && e.path.as_deref() == Some(&token)
    });
    assert_eq!(head.tty, None, "head ran without a terminal");
    assert_eq!(head.requested_path.as_deref(), Some(&format!("{SA}/token")[..]));

    let py = one(&events, "Python's open()", |e| {
        in_pod(e) && e.kind == "open" && e.comm == "python3" && e.path.as_deref() == Some(&token)
    });
    assert_eq!(py.requested_path.as_deref(), Some(&format!("{VSA}/token")[..]));

    let write = one(&events, "the shell's write-intent open", |e| {
        in_pod(e)
            && e.kind == "open"
            && e.comm == "sh"
            && e.path.as_deref() == Some(&token)
            && e.requested_path.as_deref() == Some(&format!("{VSA}/token")[..])
    });
    assert!(is_pts(&write.tty));
    assert_eq!(write.flags.map(|f| f & 3), Some(1), "O_WRONLY");
    assert_ne!(write.flags.unwrap() & 0o2000, 0, "O_APPEND");

    let ca_open = one(&events, "cat's read of ca.crt", |e| {
        in_pod(e)
            && e.kind == "open"
            && e.comm == "cat"
            && e.requested_path.as_deref() == Some(&format!("{SA}/ca.crt")[..])
    });
    assert_eq!(ca_open.path.as_deref(), Some(&format!("{SA}/{TS}/ca.crt")[..]), "ca.crt -> ..data/ca.crt resolved");
    assert!(is_pts(&ca_open.tty));

    // argv over 8 KiB: kept up to the limit, the cut marked as the last element.
    let long =
        one(&events, "the exec with a 10000-byte argument", |e| in_pod(e) && e.kind == "exec" && e.comm == "true");
    let args = long.args.as_ref().unwrap();
    assert_eq!(args.len(), 3, "{args:?}");
    assert_eq!(args[0], "/bin/true");
    // "/bin/true\0" + 10000 bytes + "\0" = 10011 bytes; 8192 recorded, NUL included.
    assert_eq!(args[1].len(), 8192 - 10, "the argument is cut at the limit");
    assert!(args[1].bytes().all(|b| b == b'a'));
    assert_eq!(args[2], "[tokenscan:argv-truncated: 8192 of 10011 bytes recorded]");

    // A file name that is not UTF-8 is kept, escaped losslessly, in both path columns.
    let bad = one(&events, "cat's open of a non-UTF-8 name", |e| {
        in_pod(e) && e.kind == "open" && e.comm == "cat" && e.requested_path.as_deref() == Some("/run/bad-\\xff-name")
    });
    assert_eq!(bad.path.as_deref(), Some("/run/bad-\\xff-name"));
    assert_eq!(
        tokenscan_core::capture::unescape_to_bytes(bad.path.as_deref().unwrap()),
        b"/run/bad-\xff-name".to_vec()
    );
    let bad_exec = one(&events, "cat's exec with a non-UTF-8 argument", |e| {
        in_pod(e) && e.kind == "exec" && e.args.as_ref().is_some_and(|a| a.get(1).is_some_and(|x| x.contains("\\xff")))
    });
    assert_eq!(bad_exec.args.as_deref(), Some(&strs(&["cat", "/run/bad-\\xff-name"])[..]));

    let kp = one(&events, "kube-proxy's open", |e| {
        in_pod(e) && e.kind == "open" && e.comm == "kube-proxy" && e.path.as_deref() == Some(&token)
    });
    assert_eq!(kp.exe.as_deref(), Some(kube_proxy.to_str().unwrap()));

    let host_cat = one(&events, "the host's interactive cat exec", |e| {
        e.container_id.is_none()
            && e.kind == "exec"
            && e.args.as_deref() == Some(&strs(&["cat", &format!("{VSA}/token")])[..])
    });
    assert!(is_pts(&host_cat.tty));
    let host_open = one(&events, "the host cat's open", |e| {
        e.pid == host_cat.pid && e.kind == "open" && e.path.as_deref() == Some(&token)
    });
    assert_eq!(host_open.container_id, None);

    // --- findings: exactly these, for this pod; none for the host's read ---
    let findings = replay(std::slice::from_ref(&capture));
    let mut pod_findings: Vec<Finding> = findings.iter().filter(|f| f.container_id == cid).cloned().collect();
    pod_findings.sort();
    let f = |rule: &str, kind: &str, comm: &str, path: &str, req: &str, args: Option<&[&str]>| Finding {
        rule: rule.into(),
        kind: kind.into(),
        comm: comm.into(),
        path: Some(path.into()),
        requested_path: Some(req.into()),
        args: args.map(strs),
        pid: 0,
        container_id: cid.clone(),
    };
    let ca = format!("{SA}/ca.crt");
    let mut expected = vec![
        // Elastic, exec branch: listed name + token path in argv, interactive, in a container.
        f(ELASTIC, "exec", "cat", "/usr/bin/cat", "/usr/bin/cat", Some(&["cat", &format!("{VSA}/token")])),
        f(ELASTIC, "exec", "cat", "/usr/bin/cat", "/usr/bin/cat", Some(&["cat", &ca])),
        // Elastic, file branch: tee's write-intent open of the (now plain) ca.crt.
        f(ELASTIC, "open", "tee", &ca, &ca, None),
        // TRC-108: every successful read of the resolved token path by a non-allow-listed comm.
        f(TRC108, "open", "cat", &token, &format!("{VSA}/token"), None),
        f(TRC108, "open", "cat", &token, "token", None),
        f(TRC108, "open", "head", &token, &format!("{SA}/token"), None),
        f(TRC108, "open", "python3", &token, &format!("{VSA}/token"), None),
    ];
    expected.sort();
    let without_pid = |v: &[Finding]| v.iter().map(|x| Finding { pid: 0, ..x.clone() }).collect::<Vec<_>>();
    let mut got = without_pid(&pod_findings);
    got.sort();
    assert_eq!(got, expected, "findings for the pod");
    assert!(pod_findings.iter().any(|x| x.pid == cat_exec.pid && x.rule == ELASTIC));
    assert!(pod_findings.iter().any(|x| x.pid == cat_exec.pid && x.rule == TRC108));
    assert!(!findings.iter().any(|x| x.pid == host_cat.pid), "the host's read must not be a finding: {findings:#?}");
    assert!(!findings.iter().any(|x| x.comm == "kube-proxy" && x.container_id == cid), "kube-proxy is allow-listed");
}

#[test]
fn containers_only_with_rotation_keeps_pod_events_in_segments() {
    if !should_run("containers_only_with_rotation_keeps_pod_events_in_segments") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("capture.parquet");
    let recorder = Recorder::start(
        &["-o", out.to_str().unwrap(), "--containers-only", "--rotate-seconds", "1"],
        tmp.path().join("recorder.log"),
    );
    let pod = PodCgroup::create();
    run_scenario(tmp.path(), "pod", Some(&pod.dir), &format!("cat {SA}/token\nsleep 1.5\nhead -c 1 {VSA}/token\n"));
    run_scenario(tmp.path(), "host", None, &format!("cat {VSA}/token\n"));
    std::thread::sleep(Duration::from_millis(300));
    let log = recorder.stop();

    let dir = tmp.path().join("capture");
    let segments = expand_paths(&[&dir]).unwrap();
    assert!(segments.len() >= 2, "at least two 1-second segments: {segments:?}\n{log}");
    for (i, s) in segments.iter().enumerate() {
        assert_eq!(s.file_name().unwrap().to_str().unwrap(), format!("segment-{:06}.parquet", i + 1));
        assert_eq!(std::fs::metadata(s).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(!std::fs::read_dir(&dir).unwrap().any(|e| e.unwrap().path().to_string_lossy().ends_with(".partial")));
    let mut events = Vec::new();
    for s in &segments {
        events.extend(read_events(s).0);
    }
    let token = format!("{SA}/{TS}/token");
    assert!(events.iter().all(|e| e.container_id.is_some()), "--containers-only recorded a host event");
    let cid = Some(pod.id.clone());
    one(&events, "the pod's cat", |e| {
        e.container_id == cid && e.comm == "cat" && e.kind == "open" && e.path.as_deref() == Some(&token)
    });
    one(&events, "the pod's head", |e| {
        e.container_id == cid && e.comm == "head" && e.kind == "open" && e.path.as_deref() == Some(&token)
    });
    let findings = replay(&segments);
    let trc: Vec<&Finding> = findings.iter().filter(|f| f.rule == TRC108 && f.container_id == cid).collect();
    assert_eq!(trc.iter().map(|f| f.comm.as_str()).collect::<Vec<_>>(), ["cat", "head"], "{findings:#?}");
}

/// The README's self-check: the recorder, then `scripts/simulate-pod-token-read.sh`,
/// then a replay that finds the script's three reads (and the exec naming the
/// token) in the container the script reports.
#[test]
fn readme_simulated_pod_script_is_found_by_both_rules() {
    if !should_run("readme_simulated_pod_script_is_found_by_both_rules") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("node.parquet");
    let recorder = Recorder::start(&["-o", out.to_str().unwrap()], tmp.path().join("recorder.log"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/simulate-pod-token-read.sh");
    let run = Command::new("sh")
        .arg(&script)
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .output()
        .expect("run the script");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{} failed: {stdout}\n{}", script.display(), String::from_utf8_lossy(&run.stderr));
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("simulated pod: container id "))
        .unwrap_or_else(|| panic!("the script names its container id:\n{stdout}"))
        .to_string();
    assert_eq!(stdout.matches("eyJhbGciOiJSUzI1NiJ9.simulated-token").count(), 2, "both cats printed the token");
    std::thread::sleep(Duration::from_millis(300));
    let log = recorder.stop();
    assert!(log.contains("lost        0"), "{log}");

    let findings = replay(std::slice::from_ref(&out));
    let mine: Vec<&Finding> = findings.iter().filter(|f| f.container_id.as_deref() == Some(&*id)).collect();
    let of = |rule: &str| {
        mine.iter().filter(|f| f.rule == rule).map(|f| (f.kind.as_str(), f.comm.as_str())).collect::<Vec<_>>()
    };
    assert_eq!(of(ELASTIC), [("exec", "cat")], "{findings:#?}");
    assert_eq!(of(TRC108), [("open", "cat"), ("open", "cat"), ("open", "python3")], "{findings:#?}");
    let trc: Vec<&&Finding> = mine.iter().filter(|f| f.rule == TRC108).collect();
    assert_eq!(trc[0].requested_path.as_deref(), Some(&*format!("{VSA}/token")));
    assert_eq!(trc[1].requested_path.as_deref(), Some("token"), "the relative read after cd");
    for f in &trc {
        let path = f.path.as_deref().unwrap_or("");
        assert!(path.starts_with(&format!("{SA}/..")) && path.ends_with("/token"), "resolved through ..data: {path}");
    }
    // The script removed its cgroup: nothing of the pod is left behind.
    let root = find_cgroup2_mount(&std::fs::read_to_string("/proc/mounts").unwrap()).unwrap();
    assert!(!root.join(format!("kubepods.slice/cri-containerd-{id}.scope")).exists());
}

// ---------------------------------------------------------------------------
// Recorder faults (docs/robustness.md, "Recorder faults").

/// `n` opens of distinct, nonexistent paths under `prefix`, as fast as Python
/// goes: a burst of failed opens whose requested paths do not compress away.
fn open_burst(prefix: &str, n: u32) {
    let code = format!(
        "import os\nfor i in range({n}):\n    try:\n        os.close(os.open('{prefix}-%08d-%s' % (i, os.urandom(8).hex()), os.O_RDONLY))\n    except OSError:\n        pass\n"
    );
    let st = Command::new(python3()).arg("-c").arg(code).status().expect("run python3");
    assert!(st.success(), "the open burst failed: {st}");
}

/// Segment files of a rotation directory: (closed `*.parquet`, `*.partial`).
fn segments_in(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut closed = Vec::new();
    let mut partial = Vec::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display())) {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".parquet.partial") {
            partial.push(p);
        } else if name.ends_with(".parquet") {
            closed.push(p);
        }
    }
    closed.sort();
    (closed, partial)
}

#[test]
fn fault_sigkill_with_rotation_loses_at_most_the_open_segment() {
    if !should_run("fault_sigkill_with_rotation_loses_at_most_the_open_segment") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("capture.parquet");
    let mut recorder =
        Recorder::start(&["-o", out.to_str().unwrap(), "--rotate-seconds", "1"], tmp.path().join("recorder.log"));
    let pod = PodCgroup::create();
    // The read, then long enough for its segment to be closed (1 s rotation, 1 s flush).
    run_scenario(tmp.path(), "pod", Some(&pod.dir), &format!("cat {SA}/token\nsleep 3\n"));
    open_burst(&tmp.path().join("after").display().to_string(), 20_000);
    // Rotation happens as events arrive after the deadline; on an idle machine the
    // burst can fit in one segment. Keep a trickle of opens going until at least two
    // segments are closed (at most 10 s), so the kill always lands mid-recording with
    // closed segments behind it.
    let dir = tmp.path().join("capture");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while segments_in(&dir).0.len() < 2 && std::time::Instant::now() < deadline {
        open_burst(&tmp.path().join("trickle").display().to_string(), 200);
        std::thread::sleep(Duration::from_millis(200));
    }
    recorder.signal(libc::SIGKILL);
    let (status, log) = recorder.wait(Duration::from_secs(30));
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{log}");

    let (closed, partial) = segments_in(&dir);
    assert!(closed.len() >= 2, "closed segments before the kill: {closed:?}\n{log}");
    assert!(partial.len() <= 1, "at most the open segment is left unfinished: {partial:?}");
    for p in &closed {
        Capture::open(p).unwrap_or_else(|e| panic!("closed segment {} must be complete: {e}", p.display()));
    }
    // The directory replays as one capture (what `tokenscan replay DIR` does):
    // the unfinished segment is not a *.parquet file and is not read.
    let findings = replay(&expand_paths(&[&dir]).unwrap());
    let cid = Some(pod.id.clone());
    let trc: Vec<&Finding> = findings.iter().filter(|f| f.rule == TRC108 && f.container_id == cid).collect();
    assert_eq!(trc.len(), 1, "the pod's read, recorded before the kill, replays: {findings:#?}");
    assert_eq!(trc[0].comm, "cat");
    assert_eq!(trc[0].path.as_deref(), Some(&format!("{SA}/{TS}/token")[..]));
    // And so does the CLI, when it is built next to the recorder.
    let cli = Path::new(env!("CARGO_BIN_EXE_tokenscan-record")).with_file_name("tokenscan");
    if cli.is_file() {
        let o = Command::new(&cli).arg("replay").arg(&dir).output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "tokenscan replay {}: {}\n{text}", dir.display(), o.status);
        assert!(text.contains("TRC-108") && text.contains(&pod.id), "{text}");
    } else {
        eprintln!("note: {} not built; replayed the directory through the library only", cli.display());
    }
}

/// A small tmpfs mounted for one test, unmounted on drop.
struct SmallFs(PathBuf);

impl SmallFs {
    fn mount(at: PathBuf, size: &str) -> SmallFs {
        std::fs::create_dir_all(&at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=700"), "tmpfs"])
            .arg(&at)
            .status();
        assert!(st.is_ok_and(|s| s.success()), "mount a {size} tmpfs at {}", at.display());
        SmallFs(at)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn fault_disk_full_stops_cleanly_and_keeps_closed_segments() {
    if !should_run("fault_disk_full_stops_cleanly_and_keeps_closed_segments") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let fs = SmallFs::mount(tmp.path().join("small"), "3m");
    let out = fs.0.join("capture.parquet");
    // Segments close at 256 KiB (estimated) or every second, so some are closed before the disk fills.
    let mut recorder = Recorder::start(
        &["-o", out.to_str().unwrap(), "--rotate-size", "256k", "--rotate-seconds", "1", "-q"],
        tmp.path().join("recorder.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut round = 0;
    let (status, log) = loop {
        if let Some(st) = recorder.child.try_wait().unwrap() {
            break (st, recorder.log_text());
        }
        assert!(Instant::now() < deadline, "the disk never filled:\n{}", recorder.log_text());
        round += 1;
        open_burst(&format!("/nonexistent/fill-{round}"), 50_000);
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status.code(), Some(2), "an error exit:\n{log}");
    let last = log.lines().last().unwrap_or("");
    assert!(last.starts_with("tokenscan-record: error: "), "one error line last:\n{log}");
    assert!(last.contains("No space left on device"), "the cause is named:\n{log}");
    assert!(last.contains("recording stopped;") && last.contains("closed segment(s)"), "what survives:\n{log}");
    assert!(!log.contains("panicked"), "{log}");

    let dir = fs.0.join("capture");
    let (closed, partial) = segments_in(&dir);
    assert!(!closed.is_empty(), "segments closed before the disk filled: {log}");
    assert!(partial.len() <= 1, "{partial:?}");
    let mut rows = 0;
    for p in &closed {
        let c = Capture::open(p).unwrap_or_else(|e| panic!("closed segment {} must be intact: {e}", p.display()));
        rows += c.num_rows().unwrap();
    }
    assert!(last.contains(&format!("({rows} events)")), "the message counts what was kept ({rows}):\n{log}");
    replay(&expand_paths(&[&dir]).unwrap());
}

#[test]
fn fault_ring_buffer_overflow_is_counted_and_recording_goes_on() {
    if !should_run("fault_ring_buffer_overflow_is_counted_and_recording_goes_on") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("capture.parquet");
    let recorder =
        Recorder::start(&["-o", out.to_str().unwrap(), "--ring-buffer-size", "1M"], tmp.path().join("recorder.log"));
    // The burst arrives while the reader cannot drain (stopped): 2 x 40,000
    // records of ~150 bytes cannot fit in 1 MiB, whatever the machine's speed.
    recorder.signal(libc::SIGSTOP);
    open_burst(&tmp.path().join("burst").display().to_string(), 40_000);
    recorder.signal(libc::SIGCONT);
    std::thread::sleep(Duration::from_millis(500));
    // Recording goes on after the overflow.
    let marker = tmp.path().join("after-the-burst");
    std::fs::write(&marker, b"x").unwrap();
    let _ = std::fs::read(&marker).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (status, log) = recorder.stop_with_status();
    assert_eq!(status.code(), Some(1), "exit code 1: written, but records were lost:\n{log}");
    assert!(log.contains("THE CAPTURE IS INCOMPLETE"), "{log}");
    let lost: u64 = log
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("lost "))
        .and_then(|v| v.split_whitespace().next())
        .map(|v| v.replace(',', ""))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a lost line in the summary:\n{log}"));
    assert!(lost > 1000, "lost {lost}");
    let (events, metadata) = read_events(&out);
    assert_eq!(metadata.get("tokenscan.lost_events"), Some(&lost.to_string()), "metadata matches the summary");
    let m = marker.to_str().unwrap();
    assert!(
        events.iter().any(|e| e.kind == "open" && e.path.as_deref() == Some(m)),
        "the open after the burst is recorded"
    );
    let burst = events.iter().filter(|e| e.requested_path.as_deref().is_some_and(|p| p.contains("/burst-"))).count();
    assert!(burst > 0 && burst < 40_000, "part of the burst recorded ({burst}), the rest lost");
}

#[test]
fn fault_pod_cgroup_removed_before_lookup_keeps_its_container_id() {
    if !should_run("fault_pod_cgroup_removed_before_lookup_keeps_its_container_id") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("capture.parquet");
    let recorder =
        Recorder::start(&["-o", out.to_str().unwrap(), "--containers-only"], tmp.path().join("recorder.log"));
    // Pod A: looked up while it exists, then removed, as a runtime does when the container exits.
    let a = PodCgroup::create();
    run_scenario(tmp.path(), "a", Some(&a.dir), &format!("cat {SA}/token\n"));
    std::thread::sleep(Duration::from_millis(500));
    let a_id = a.id.clone();
    drop(a);
    // Pod B: created and removed while the recorder cannot look (stopped), so
    // its cgroup is gone when its events are read: a short-lived container.
    // The kernel side sent the cgroup's names with B's first event.
    recorder.signal(libc::SIGSTOP);
    let b = PodCgroup::create();
    run_scenario(tmp.path(), "b", Some(&b.dir), &format!("head -c 4 {SA}/token\n"));
    let (b_cgroup, b_id) = (b.cgroup_id, b.id.clone());
    drop(b);
    recorder.signal(libc::SIGCONT);
    // Pod C, after both are gone: the recorder still resolves new containers.
    std::thread::sleep(Duration::from_millis(300));
    let c = PodCgroup::create();
    run_scenario(tmp.path(), "c", Some(&c.dir), &format!("cat {VSA}/token\n"));
    std::thread::sleep(Duration::from_millis(300));
    let log = recorder.stop();
    assert!(log.contains("lost        0"), "{log}");
    assert!(log.contains(" 0 unresolved"), "every cgroup was named by the kernel:\n{log}");
    assert!(!log.contains("disappeared before they could be looked up"), "{log}");

    let (events, _) = read_events(&out);
    let token = format!("{SA}/{TS}/token");
    let read = |comm: &str, e: &Ev| e.kind == "open" && e.comm == comm && e.path.as_deref() == Some(&token);
    one(&events, "pod A's read, with A's container id", |e| read("cat", e) && e.container_id.as_deref() == Some(&a_id));
    let b_read = one(&events, "pod B's read", |e| read("head", e));
    assert_eq!(b_read.cgroup_id, b_cgroup);
    assert_eq!(b_read.container_id.as_deref(), Some(&*b_id), "B's cgroup was gone, its id came from the kernel");
    one(&events, "pod C's read", |e| read("cat", e) && e.container_id.as_deref() == Some(&c.id));
}

/// One event as the assembler hands it over, owned (with `thread`, which the
/// capture does not hold).
#[derive(Debug, Clone, PartialEq)]
struct ProcEv {
    kind: &'static str,
    pid: u32,
    tid: u32,
    ppid: u32,
    thread: bool,
    sid: Option<u32>,
    pgid: Option<u32>,
    start: Option<i64>,
    parent_start: Option<i64>,
    cwd: Option<String>,
    path: Option<String>,
    result: Option<i64>,
}

/// The kernel side loaded into this test process, its records assembled
/// here (clock offset 0: times stay CLOCK_BOOTTIME nanoseconds), while
/// `scenario` runs; the events of processes other than this one.
fn record_in_process(scenario: impl FnOnce() + Send) -> Vec<ProcEv> {
    use std::mem::MaybeUninit;
    use tokenscan_record::assemble::Assembler;
    use tokenscan_record::event::Event;
    use tokenscan_record::probes::{ProbeOptions, Probes};

    let tracefs = tokenscan_record::system::ensure_tracefs().expect("tracefs");
    let opts = ProbeOptions {
        self_tgid: std::process::id(),
        containers_only: false,
        ring_buffer_bytes: 16 << 20,
        verbose: false,
    };
    let mut object = MaybeUninit::uninit();
    let probes = Probes::load(&mut object, &opts, &tracefs).expect("load the recorder's programs");
    let events = std::cell::RefCell::new(Vec::new());
    let mut assembler = Assembler::new(0);
    let rb = probes
        .ring_buffer(|data| {
            assembler.handle(data, &mut |e: &Event<'_>| {
                events.borrow_mut().push(ProcEv {
                    kind: e.kind.as_str(),
                    pid: e.pid,
                    tid: e.tid,
                    ppid: e.ppid,
                    thread: e.thread,
                    sid: e.sid,
                    pgid: e.pgid,
                    start: e.process_start_ns,
                    parent_start: e.parent_start_ns,
                    cwd: e.cwd.map(str::to_owned),
                    path: e.path.map(|p| p.to_text().into_owned()),
                    result: e.result,
                })
            });
            0
        })
        .unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            scenario();
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            rb.poll(Duration::from_millis(50)).unwrap();
            rb.consume().unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    probes.detach();
    rb.consume().unwrap();
    assert_eq!(probes.counters().lost_records, 0);
    drop(rb);
    events.into_inner()
}

#[test]
fn records_fork_exit_threads_sessions_and_cwd() {
    if !should_run("records_fork_exit_threads_sessions_and_cwd") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().canonicalize().unwrap();
    let work = d.join("work dir");
    std::fs::create_dir(&work).unwrap();
    // sh in a new session (setsid makes it session and group leader): it
    // writes its pid and /proc start time (stat field 22, split by hand
    // with cut: sh's comm has no space), then forks a subshell that opens a
    // file and exits 3 without exec, then runs python, whose second thread
    // opens a file; last, python chroots into `root`, changes into /sub
    // and opens /sub/f there (cwd and path relative to the task's root).
    let script = format!(
        "cd '{w}'\n\
         echo $$ > pid\n\
         cut -d' ' -f22 /proc/$$/stat > start\n\
         ( : < /etc/hostname; exit 3 ) || true\n\
         {py} -c 'import threading, time; t = threading.Thread(target=lambda: open(\"/etc/passwd\").close()); t.start(); t.join(); time.sleep(0.3)'\n\
         mkdir -p root/sub && echo x > root/sub/f\n\
         {py} -c 'import os; os.chroot(\"root\"); os.chdir(\"/sub\"); open(\"f\").close()'\n",
        w = work.display(),
        py = python3()
    );
    std::fs::write(d.join("s.sh"), script).unwrap();
    let events = record_in_process(|| {
        let st = Command::new("setsid").arg("-w").arg("sh").arg(d.join("s.sh")).status().unwrap();
        assert!(st.success());
    });
    let sh: u32 = std::fs::read_to_string(work.join("pid")).unwrap().trim().parse().unwrap();
    let ticks: u64 = std::fs::read_to_string(work.join("start")).unwrap().trim().parse().unwrap();
    let mine: Vec<&ProcEv> = events.iter().filter(|e| e.sid == Some(sh)).collect();
    let cwd = Some(work.to_str().unwrap().to_string());

    // sh's own events: session and group leader, its start to the tick as /proc says.
    let sh_ev = mine.iter().find(|e| e.pid == sh && e.kind == "open").expect("an open of sh");
    assert_eq!((sh_ev.sid, sh_ev.pgid), (Some(sh), Some(sh)));
    let tick = tokenscan_record::snapshot::tick_ns();
    let sh_start = sh_ev.start.unwrap();
    assert_eq!(tokenscan_record::snapshot::tick_floor(sh_start as u64, tick), ticks * tick);

    // The subshell: a fork of sh without exec, in sh's session, group and cwd.
    let fork = mine
        .iter()
        .find(|e| {
            e.kind == "fork" && e.ppid == sh && !e.thread && {
                let p = e.pid;
                mine.iter().any(|o| o.pid == p && o.path.as_deref() == Some("/etc/hostname"))
            }
        })
        .expect("the subshell's fork");
    let sub = fork.pid;
    assert_eq!((fork.tid, fork.sid, fork.pgid), (sub, Some(sh), Some(sh)));
    assert_eq!(fork.cwd, cwd);
    assert_eq!(fork.parent_start, Some(sh_start));
    assert!(fork.start.unwrap() > sh_start);
    let open = mine.iter().find(|e| e.pid == sub && e.kind == "open").unwrap();
    assert_eq!((open.start, open.parent_start, open.cwd.clone()), (fork.start, Some(sh_start), cwd.clone()));
    assert!(!mine.iter().any(|e| e.pid == sub && e.kind == "exec"), "the subshell never execs");
    let exit = mine.iter().find(|e| e.pid == sub && e.kind == "exit").expect("the subshell's exit");
    assert_eq!((exit.thread, exit.result), (false, Some(3 << 8)), "process exit, status 3");

    // python: a thread is forked, opens /etc/passwd and exits; then the process exits 0.
    // (python sleeps after join(): join() may return before the thread has
    // left the kernel, and whichever thread leaves last ends the process.)
    let t_open = mine.iter().find(|e| e.path.as_deref() == Some("/etc/passwd")).expect("the thread's open");
    let (py, tid) = (t_open.pid, t_open.tid);
    assert_ne!(py, tid, "opened by a thread that is not the leader");
    let t_fork = mine.iter().find(|e| e.kind == "fork" && e.tid == tid).expect("the thread's fork");
    assert_eq!((t_fork.pid, t_fork.thread, t_fork.cwd.clone()), (py, true, cwd.clone()));
    assert_eq!(t_open.cwd, cwd);
    let t_exit = mine.iter().find(|e| e.kind == "exit" && e.tid == tid).expect("the thread's exit");
    assert!(t_exit.thread, "a thread exit, the process goes on");
    let p_exit = mine.iter().find(|e| e.kind == "exit" && e.tid == py).expect("python's exit");
    assert_eq!((p_exit.thread, p_exit.result), (false, Some(0)));
    let p_fork = mine.iter().find(|e| e.kind == "fork" && e.pid == py && !e.thread).expect("python's fork");
    assert_eq!((p_fork.ppid, p_fork.parent_start), (sh, Some(sh_start)));
    assert_eq!(p_exit.start, p_fork.start, "one process, one start");

    // In the chroot: path and cwd relative to the new root.
    let chrooted = mine.iter().find(|e| e.path.as_deref() == Some("/sub/f")).expect("the open in the chroot");
    assert_eq!(chrooted.cwd.as_deref(), Some("/sub"));
}

/// A container started by runc from a bundle laid out where containerd-shim
/// puts one (`/run/containerd/io.containerd.runtime.v2.task/k8s.io/<id>`),
/// with the CRI plugin's annotations; killed and removed on drop.
struct RuncContainer {
    id: String,
    bundle: PathBuf,
    /// The pod's cgroup directory (`/kubepods/besteffort/pod<uid>`), which
    /// runc creates in every hierarchy and `runc delete` leaves behind.
    pod_cgroup: String,
}

const RUNC_ROOT: &str = "/run/containerd/runc/k8s.io";

impl RuncContainer {
    fn start(annotations: serde_json::Value) -> RuncContainer {
        let id = random_hex64();
        let bundle = Path::new("/run/containerd/io.containerd.runtime.v2.task/k8s.io").join(&id);
        let rootfs = bundle.join("rootfs");
        let bin = rootfs.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy(which("busybox").expect("busybox-static"), bin.join("busybox")).unwrap();
        for applet in ["sh", "cat", "sleep", "mv", "ln", "chmod", "chown", "truncate", "rm", "mkdir", "rmdir"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        // The root is read-only: /tmp is a tmpfs of its own, as in most images run by Kubernetes.
        std::fs::create_dir_all(rootfs.join("tmp")).unwrap();
        let sa = rootfs.join(SA.trim_start_matches('/'));
        std::fs::create_dir_all(&sa).unwrap();
        std::fs::write(sa.join("token"), "eyJhbGciOiJSUzI1NiJ9.runc-token").unwrap();
        let pod_uid = annotations["io.kubernetes.cri.sandbox-uid"].as_str().unwrap().replace('-', "_");
        let pod_cgroup = format!("/kubepods/besteffort/pod{pod_uid}");
        let c = RuncContainer { id: id.clone(), bundle: bundle.clone(), pod_cgroup: pod_cgroup.clone() };
        let spec = Command::new("runc").arg("spec").current_dir(&bundle).status().expect("runc spec");
        assert!(spec.success(), "runc spec failed");
        let path = bundle.join("config.json");
        let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        config["process"]["terminal"] = false.into();
        config["process"]["args"] = serde_json::json!(["sleep", "60"]);
        config["process"]["env"] = serde_json::json!(["PATH=/bin"]);
        config["root"] = serde_json::json!({"path": "rootfs", "readonly": true});
        config["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]
        }));
        config["linux"]["cgroupsPath"] = format!("{pod_cgroup}/{id}").into();
        config["annotations"] = annotations;
        std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        // The detached container keeps runc's stdio: a file, not a pipe
        // (reading a pipe to its end would wait for the container).
        let err_path = bundle.join("runc-run.err");
        let status = Command::new("runc")
            .args(["--root", RUNC_ROOT, "run", "-d", "-b"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .status()
            .expect("runc run");
        assert!(status.success(), "runc run failed: {}", std::fs::read_to_string(&err_path).unwrap_or_default());
        c
    }

    /// `runc exec` of `args` in the container; its stdout.
    fn exec(&self, args: &[&str]) -> String {
        let out = Command::new("runc")
            .args(["--root", RUNC_ROOT, "exec", &self.id])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("runc exec");
        assert!(out.status.success(), "runc exec {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RuncContainer {
    fn drop(&mut self) {
        let runc = |args: &[&str]| {
            let _ = Command::new("runc").args(["--root", RUNC_ROOT]).args(args).stderr(Stdio::null()).status();
        };
        runc(&["kill", &self.id, "KILL"]);
        std::thread::sleep(Duration::from_millis(200));
        runc(&["delete", "-f", &self.id]);
        let _ = std::fs::remove_dir_all(&self.bundle);
        // The (now empty) pod directory in each cgroup hierarchy; rmdir
        // fails harmlessly on anything still in use.
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        for line in mounts.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 2 && (f[2] == "cgroup" || f[2] == "cgroup2") {
                let _ = std::fs::remove_dir(format!("{}{}", f[1], self.pod_cgroup));
            }
        }
    }
}

/// The CRI annotations of container `web` of pod shop/web-0 (image
/// `registry.example:5000/shop/web:1.4.2`) whose pod uid is `uid`.
fn web_0_annotations(uid: &str) -> serde_json::Value {
    serde_json::json!({
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.sandbox-name": "web-0",
        "io.kubernetes.cri.sandbox-namespace": "shop",
        "io.kubernetes.cri.sandbox-uid": uid,
        "io.kubernetes.cri.container-name": "web",
        "io.kubernetes.cri.image-name": "registry.example:5000/shop/web:1.4.2",
    })
}

/// [`should_run`], and runc with busybox installed (a loud skip or a failure
/// otherwise, as there).
fn should_run_runc(test: &str) -> bool {
    if !should_run(test) {
        return false;
    }
    if which("runc").is_some() && which("busybox").is_some() {
        return true;
    }
    let reason = "runc and busybox are not installed (apt-get install runc busybox-static)";
    if std::env::var("TOKENSCAN_SKIP_EBPF").as_deref() == Ok("1") {
        eprintln!("\n!!!!!!!!!! SKIPPED {test}: {reason} !!!!!!!!!!\n");
        return false;
    }
    panic!("{test} cannot run: {reason}");
}

#[test]
fn records_a_runc_container_with_its_pod_metadata() {
    if !should_run_runc("records_a_runc_container_with_its_pod_metadata") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let capture = tmp.path().join("capture.parquet");
    let recorder = Recorder::start(&["-o", capture.to_str().unwrap()], tmp.path().join("recorder.log"));
    let uid = "6f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";
    let container = RuncContainer::start(web_0_annotations(uid));
    let token = container.exec(&["cat", &format!("{SA}/token")]);
    assert_eq!(token, "eyJhbGciOiJSUzI1NiJ9.runc-token");
    // The pod thread answers within a poll or two.
    std::thread::sleep(Duration::from_millis(1500));
    let log = recorder.stop();
    drop(container);
    assert!(log.contains("lost        0 (the capture is complete)"), "{log}");
    assert!(log.contains("1 from containerd"), "{log}");

    let (events, _) = read_events(&capture);
    let id = container_id_of(&events, "cat");
    let row = one(&events, "the container's row", |e| e.kind == "container" && e.container_id.as_deref() == Some(&id));
    let got = (
        row.pod_name.as_deref(),
        row.pod_namespace.as_deref(),
        row.pod_uid.as_deref(),
        row.container_name.as_deref(),
        row.image.as_deref(),
        row.image_name.as_deref(),
        row.image_tag.as_deref(),
    );
    let want = (
        Some("web-0"),
        Some("shop"),
        Some(uid),
        Some("web"),
        Some("registry.example:5000/shop/web:1.4.2"),
        Some("registry.example:5000/shop/web"),
        Some("1.4.2"),
    );
    assert_eq!(got, want);
    // runc's default spec keeps a short capability list and masks /proc paths.
    assert_eq!(row.privileged, Some(false));
    assert!(events.iter().any(|e| e.container_id.as_deref() == Some(&id) && e.pid == row.pid && e.kind != "container"));
    // The read, in the container: the path as the container sees it.
    let read = one(&events, "cat's read of the token", |e| {
        e.kind == "open"
            && e.comm == "cat"
            && e.container_id.as_deref() == Some(&id)
            && e.path.as_deref() == Some(&format!("{SA}/token")[..])
    });
    assert!(read.start.is_some() && read.cwd.as_deref() == Some("/"), "{read:?}");
}

/// A file operation as the e2e test compares it: kind, comm, path, old_path, sign of result.
type FileOpRow<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>, Option<i64>);

/// Every file operation a dropper makes, in a real runc container: a shell
/// writes a new file in /tmp and appends to it, then busybox renames, links,
/// symlinks, chmods, chowns, executes, truncates and deletes it, and makes and
/// removes a directory. Each operation must be in the capture once, with the
/// paths derived by hand from the commands (relative names joined with the
/// shell's working directory, /tmp), and a rule over D4C's file actions must
/// fire on exactly the matching rows.
#[test]
fn records_file_operations_in_a_runc_container() {
    if !should_run_runc("records_file_operations_in_a_runc_container") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let capture = tmp.path().join("capture.parquet");
    let recorder = Recorder::start(&["-o", capture.to_str().unwrap()], tmp.path().join("recorder.log"));
    let container = RuncContainer::start(web_0_annotations("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"));
    let script = "cd /tmp && echo '#!/bin/sh' > payload && echo 'echo ran' >> payload && mv payload /tmp/run.sh \
                  && ln run.sh /tmp/hard && ln -s run.sh soft && chmod 755 /tmp/run.sh && chown 0:0 /tmp/run.sh \
                  && /tmp/run.sh && truncate -s 0 hard && rm /tmp/run.sh hard soft && mkdir d && rmdir /tmp/d";
    let out = container.exec(&["sh", "-c", script]);
    assert_eq!(out, "ran\n");
    std::thread::sleep(Duration::from_millis(500));
    let log = recorder.stop();
    drop(container);
    assert!(log.contains("lost        0 (the capture is complete)"), "{log}");

    let (events, _) = read_events(&capture);
    let id = container_id_of(&events, "mv");
    let ops: Vec<FileOpRow<'_>> = events
        .iter()
        .filter(|e| e.container_id.as_deref() == Some(&id))
        // The scenario's own tools (runc's init also opens files in the container).
        .filter(|e| ["sh", "mv", "ln", "chmod", "chown", "truncate", "rm", "mkdir", "rmdir"].contains(&&*e.comm))
        .filter(|e| ["create", "modify", "delete", "rename", "link", "symlink", "chmod", "chown"].contains(&&*e.kind))
        // The sign of the result: 1 for an open's descriptor, 0 for the other calls' success.
        .map(|e| {
            (e.kind.as_str(), e.comm.as_str(), e.path.as_deref(), e.old_path.as_deref(), e.result.map(i64::signum))
        })
        .collect();
    let want: Vec<FileOpRow<'_>> = vec![
        // `> payload`: the shell's open created the file (after its `open` row).
        ("create", "sh", Some("/tmp/payload"), None, Some(1)),
        // `>> payload`: a write open of a file that exists.
        ("modify", "sh", Some("/tmp/payload"), None, Some(1)),
        ("rename", "mv", Some("/tmp/run.sh"), Some("/tmp/payload"), Some(0)),
        ("link", "ln", Some("/tmp/hard"), Some("/tmp/run.sh"), Some(0)),
        ("symlink", "ln", Some("/tmp/soft"), Some("run.sh"), Some(0)),
        ("chmod", "chmod", Some("/tmp/run.sh"), None, Some(0)),
        ("chown", "chown", Some("/tmp/run.sh"), None, Some(0)),
        // busybox truncate opens the file for writing, then ftruncate()s the descriptor.
        ("modify", "truncate", Some("/tmp/hard"), None, Some(1)),
        ("modify", "truncate", Some("/tmp/hard"), None, Some(0)),
        ("delete", "rm", Some("/tmp/run.sh"), None, Some(0)),
        ("delete", "rm", Some("/tmp/hard"), None, Some(0)),
        ("delete", "rm", Some("/tmp/soft"), None, Some(0)),
        ("create", "mkdir", Some("/tmp/d"), None, Some(0)),
        ("delete", "rmdir", Some("/tmp/d"), None, Some(0)),
    ];
    assert_eq!(
        ops,
        want,
        "{:#?}",
        events.iter().filter(|e| e.container_id.as_deref() == Some(&id)).collect::<Vec<_>>()
    );
    let create = one(&events, "the creating open", |e| e.kind == "create" && e.comm == "sh");
    assert_eq!(create.requested_path.as_deref(), Some("payload"));
    let exec = one(&events, "the exec of the dropped file", |e| {
        e.kind == "exec" && e.requested_path.as_deref() == Some("/tmp/run.sh")
    });
    assert_eq!(exec.container_id.as_deref(), Some(&id[..]));

    // The ECS view maps them to D4C's actions: a rule in the style of D4C's
    // file rules fires on the creation, the rename and the deletions in /tmp.
    let index = |kind: &str, path: &str| {
        one(&events, kind, |e| {
            e.kind == kind && e.path.as_deref() == Some(path) && e.container_id.as_deref() == Some(&id)
        })
        .index as u64
    };
    // (In this container only: the machine's other processes write /tmp too.)
    let rules = [
        probe_rule(
            "created",
            &format!(r#"file where event.action == "creation" and file.path like "/tmp/*" and container.id == "{id}""#),
        ),
        probe_rule(
            "renamed",
            &format!(
                r#"file where event.action == "rename" and file.Ext.original.path == "/tmp/payload" and container.id == "{id}""#
            ),
        ),
        probe_rule(
            "deleted",
            &format!(
                r#"file where event.type == "deletion" and file.name in ("run.sh", "hard", "soft") and container.id == "{id}""#
            ),
        ),
    ];
    let got = fired(&capture, &rules);
    let mut created = vec![index("create", "/tmp/payload"), index("create", "/tmp/d")];
    created.sort_unstable();
    assert_eq!(got["created"], created);
    assert_eq!(got["renamed"], vec![index("rename", "/tmp/run.sh")]);
    let mut deleted = vec![index("delete", "/tmp/run.sh"), index("delete", "/tmp/hard"), index("delete", "/tmp/soft")];
    deleted.sort_unstable();
    assert_eq!(got["deleted"], deleted);
}

/// The container id of the events of `comm` that have one (exactly one id).
fn container_id_of(events: &[Ev], comm: &str) -> String {
    let ids: std::collections::BTreeSet<&str> =
        events.iter().filter(|e| e.comm == comm).filter_map(|e| e.container_id.as_deref()).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids.into_iter().next().unwrap().to_string()
}

/// Types lines into an interactive `runc exec -t ID sh` on a fresh pty (as
/// `kubectl exec -it` gives one), each followed by an `echo` of a marker it
/// waits for; lists the container's processes with `runc ps` once the shell
/// prompts; then `exit`. Prints one JSON line: the pid of `runc exec` (the pty
/// child), the `runc ps` pids, the wait status and the terminal's text.
const PTY_DRIVER: &str = r##"
import json, os, pty, select, subprocess, sys, time
runc, root, cid = sys.argv[1:4]
lines = sys.argv[4:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(runc, ["runc", "--root", root, "exec", "-t", cid, "sh"])
out = b""
def read_until(token):
    global out
    end = time.monotonic() + 30
    while token not in out:
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            sys.exit("timed out waiting for %r; the terminal showed %r" % (token, out))
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            sys.exit("the terminal closed while waiting for %r: %r" % (token, out))
        out += data
read_until(b"# ")
ps = subprocess.run([runc, "--root", root, "ps", "--format", "json", cid], check=True, capture_output=True).stdout
for n, line in enumerate(lines):
    os.write(fd, (line + '; echo "mark""%d"\n' % n).encode())
    read_until(b"mark%d" % n)
os.write(fd, b"exit\n")
while True:
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
_, status = os.waitpid(pid, 0)
print(json.dumps({"runc": pid, "ps": json.loads(ps), "status": status, "terminal": out.decode(errors="replace")}))
"##;

/// What [`RuncContainer::interactive`] saw.
struct Session {
    /// The pid of `runc exec -t` (on the host).
    runc: u32,
    /// The container's processes while the shell ran (`runc ps`: host pids).
    ps: Vec<u32>,
    /// Everything the terminal showed.
    terminal: String,
}

impl RuncContainer {
    /// The host pid of the container's first process (`runc state`).
    fn init_pid(&self) -> u32 {
        let out = Command::new("runc").args(["--root", RUNC_ROOT, "state", &self.id]).output().expect("runc state");
        assert!(out.status.success(), "runc state: {}", String::from_utf8_lossy(&out.stderr));
        let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        state["pid"].as_u64().expect("runc state names the pid") as u32
    }

    /// An interactive `runc exec -t ID sh` on a pty, `lines` typed into it.
    fn interactive(&self, lines: &[&str]) -> Session {
        let runc = which("runc").unwrap();
        let out = Command::new(python3())
            .arg("-c")
            .arg(PTY_DRIVER)
            .arg(&runc)
            .args([RUNC_ROOT, &self.id])
            .args(lines)
            .stdin(Stdio::null())
            .output()
            .expect("run the pty driver");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "the interactive session failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        assert_eq!(v["status"], 0, "runc exec -t exited 0: {v}");
        Session {
            runc: v["runc"].as_u64().unwrap() as u32,
            ps: v["ps"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap() as u32).collect(),
            terminal: v["terminal"].as_str().unwrap().to_string(),
        }
    }

    /// A non-interactive `runc exec` of `args`: the pid of `runc exec` and its stdout.
    fn exec_with_pid(&self, args: &[&str]) -> (u32, String) {
        let child = Command::new("runc")
            .args(["--root", RUNC_ROOT, "exec", &self.id])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runc exec");
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "runc exec {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        (pid, String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Event indexes each rule of `rules` (rule id, rule file text) fires on in `capture`.
fn fired(capture: &Path, rules: &[(String, String)]) -> BTreeMap<String, Vec<u64>> {
    let sources: Vec<(PathBuf, &str)> =
        rules.iter().map(|(id, text)| (PathBuf::from(format!("{id}.toml")), text.as_str())).collect();
    let set = RuleSet::from_sources(&sources, &CompileOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let mut sink = CollectSink::default();
    Replayer::new(set, ReplayOptions::default()).replay(&[capture], &mut sink).unwrap();
    let mut out: BTreeMap<String, Vec<u64>> = rules.iter().map(|(id, _)| (id.clone(), Vec::new())).collect();
    for b in &sink.batches {
        let ids = b.column_by_name("rule_id").unwrap().as_string::<i32>().clone();
        let ix = b.column_by_name("event_index").unwrap().as_primitive::<UInt64Type>().clone();
        for i in 0..b.num_rows() {
            out.get_mut(ids.value(i)).unwrap().push(ix.value(i));
        }
    }
    for v in out.values_mut() {
        v.sort_unstable();
    }
    out
}

/// A rule file with `query`, named `id`.
fn probe_rule(id: &str, query: &str) -> (String, String) {
    (id.to_string(), format!("[rule]\nname = \"{id}\"\nrule_id = \"{id}\"\nseverity = \"low\"\nlanguage = \"eql\"\nquery = '''\n{query}\n'''\n"))
}

/// A `kubectl exec -it`-like session and a `kubectl exec`-like command in a
/// real runc container of pod shop/web-0, recorded; then the ECS view's
/// process and pod fields, tuned variants of the Elastic rule, and
/// `tokenscan tree`, each against what the scenario says by hand.
///
/// Who is who (runc 1.1: `runc exec` starts `runc init`, whose last stage is
/// cloned with CLONE_PARENT, calls setsid() and execs the command, so the
/// command's parent is the `runc exec` process on the host and it leads a
/// session of its own; with `-t` the session has the container's pty):
/// - `sh`: the interactive shell; parent `runc exec -t` (host), session
///   leader of its own session on a pty, so the entry leader of itself and of
///   everything it starts (its parent is outside the container);
/// - E1 `/bin/cat SA/token`, typed after `cd SA`: a child of sh;
/// - E2 `cat token`: busybox sh runs applets by exec'ing itself
///   (`/proc/self/exe`, argv `cat token`): a child of sh reading the token by
///   a relative path;
/// - E3 `sh -c '/bin/cat SA/token; echo'`: a child of sh, and E4, its `/bin/cat`;
/// - E5 `runc exec ID cat SA/token` without a terminal: parent `runc exec`
///   (host), its own session leader, no tty, working directory `/` (the spec's cwd).
#[test]
fn records_a_runc_exec_session_and_replays_tuned_rules() {
    if !should_run_runc("records_a_runc_exec_session_and_replays_tuned_rules") {
        return;
    }
    let cli = Path::new(env!("CARGO_BIN_EXE_tokenscan-record")).with_file_name("tokenscan");
    assert!(cli.is_file(), "{} is missing: build the CLI first (cargo build -p tokenscan-cli)", cli.display());
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let capture = tmp.path().join("capture.parquet");
    let recorder = Recorder::start(&["-o", capture.to_str().unwrap()], tmp.path().join("recorder.log"));
    let container = RuncContainer::start(web_0_annotations("0d3c2b1a-5e4f-4a6b-8c7d-9e0f1a2b3c4d"));
    let id = container.id.clone();
    let init = container.init_pid();
    let token = format!("{SA}/token");
    let inner = format!("/bin/cat {token}; echo");
    let session = container.interactive(&[
        &format!("cd {SA}"),
        &format!("/bin/cat {token}"),
        "cat token",
        &format!("sh -c '{inner}'"),
    ]);
    assert_eq!(session.terminal.matches("eyJhbGciOiJSUzI1NiJ9.runc-token").count(), 3, "{}", session.terminal);
    let shells: Vec<u32> = session.ps.iter().copied().filter(|&p| p != init).collect();
    assert_eq!(shells.len(), 1, "runc ps while the shell ran: init {init} and the shell: {:?}", session.ps);
    let sh = shells[0];
    let (runc_n, out) = container.exec_with_pid(&["cat", &token]);
    assert_eq!(out, "eyJhbGciOiJSUzI1NiJ9.runc-token");
    std::thread::sleep(Duration::from_millis(1500));
    let log = recorder.stop();
    drop(container);
    assert!(log.contains("lost        0 (the capture is complete)"), "{log}");

    // --- which event is which, from the recorded columns (pids, argv) ---
    let (events, _) = read_events(&capture);
    let in_c = |e: &Ev| e.container_id.as_deref() == Some(&*id);
    let exec_of =
        |what: &str, f: &dyn Fn(&Ev) -> bool| one(&events, what, |e| e.kind == "exec" && in_c(e) && f(e)).clone();
    let sh_exec = exec_of("the shell's exec", &|e| e.pid == sh);
    assert_eq!((sh_exec.ppid, sh_exec.args.clone()), (session.runc, Some(strs(&["sh"]))));
    assert!(is_pts(&sh_exec.tty), "{sh_exec:?}");
    let tty = sh_exec.tty.clone().unwrap();
    let cat_abs = strs(&["/bin/cat", &token]);
    let e1 = exec_of("E1", &|e| e.ppid == sh && e.args.as_ref() == Some(&cat_abs));
    let e2 = exec_of("E2", &|e| e.ppid == sh && e.args.as_deref() == Some(&strs(&["cat", "token"])[..]));
    let e3 = exec_of("E3", &|e| e.ppid == sh && e.args.as_deref() == Some(&strs(&["sh", "-c", &inner])[..]));
    let e4 = exec_of("E4", &|e| e.ppid == e3.pid && e.args.as_ref() == Some(&cat_abs));
    let e5 = exec_of("E5", &|e| e.ppid == runc_n && e.args.as_deref() == Some(&strs(&["cat", &token])[..]));
    let open_of = |e: &Ev| {
        one(&events, "the token's open", |o| o.kind == "open" && o.pid == e.pid && o.path.as_deref() == Some(&*token))
            .index as u64
    };
    let ix = |e: &Ev| e.index as u64;

    // --- the ECS view: field values as the scenario gives them ---
    let pod = format!(
        r#"orchestrator.resource.name == "web-0" and orchestrator.resource.type == "pod" and orchestrator.namespace == "shop" and container.image.name == "registry.example:5000/shop/web" and container.image.tag == "1.4.2" and container.id == "{id}""#
    );
    let probes = vec![
        probe_rule(
            "the-shell",
            &format!(
                r#"process where event.action == "exec" and process.pid == {sh} and process.name == "sh" and process.interactive == true and process.parent.pid == {r} and process.parent.name == "runc" and process.parent.args == "-t" and process.session_leader.same_as_process == true and process.entry_leader.same_as_process == true and process.entry_leader.entry_meta.type == "container" and process.working_directory == "/" and {pod}"#,
                r = session.runc
            ),
        ),
        probe_rule(
            "children-of-the-shell",
            &format!(
                r#"process where event.action == "exec" and process.parent.pid == {sh} and process.parent.name == "sh" and process.parent.args == "sh" and process.interactive == true and process.session_leader.pid == {sh} and process.session_leader.name == "sh" and process.session_leader.interactive == true and process.session_leader.same_as_process == false and process.entry_leader.pid == {sh} and process.entry_leader.name == "sh" and process.entry_leader.interactive == true and process.entry_leader.entry_meta.type == "container" and process.working_directory == "{SA}" and {pod}"#
            ),
        ),
        probe_rule(
            "grandchild-of-the-shell",
            &format!(
                r#"process where event.action == "exec" and process.parent.pid == {p} and process.parent.args == "-c" and process.parent.args == "{inner}" and process.session_leader.pid == {sh} and process.session_leader.interactive == true and process.entry_leader.pid == {sh} and process.entry_leader.entry_meta.type == "container" and process.working_directory == "{SA}" and {pod}"#,
                p = e3.pid
            ),
        ),
        probe_rule(
            "non-interactive-exec",
            &format!(
                r#"process where event.action == "exec" and process.parent.pid == {runc_n} and process.parent.name == "runc" and process.parent.args == "exec" and process.interactive == false and process.session_leader.same_as_process == true and process.session_leader.interactive == false and process.entry_leader.same_as_process == true and process.entry_leader.entry_meta.type == "container" and process.working_directory == "/" and {pod}"#
            ),
        ),
    ];
    let got = fired(&capture, &probes);
    let want: BTreeMap<String, Vec<u64>> = [
        ("the-shell", vec![ix(&sh_exec)]),
        ("children-of-the-shell", vec![ix(&e1), ix(&e2), ix(&e3)]),
        ("grandchild-of-the-shell", vec![ix(&e4)]),
        ("non-interactive-exec", vec![ix(&e5)]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(got, want, "E1..E5 = {:?}", [&e1, &e2, &e3, &e4, &e5].map(|e| (e.index, e.pid)));

    // The container's name, from its metadata row as the core reads it.
    let trees = tokenscan_core::process::process_trees(
        &RuleSet::builtin(&CompileOptions::default()).unwrap(),
        std::slice::from_ref(&capture),
        &ReplayOptions::default(),
        &tokenscan_core::process::TreeFilter { pod: Some("web-0".into()), ..Default::default() },
    )
    .unwrap();
    let meta = trees[0].context.container(&id).expect("the container's metadata").clone();
    assert_eq!(
        (meta.pod_name.as_deref(), meta.pod_namespace.as_deref(), meta.container_name.as_deref()),
        (Some("web-0"), Some("shop"), Some("web"))
    );

    // --- the seed rule (v5: no process.interactive) tuned as a team would ---
    let v5 = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/rules/elastic-d4c-token-read-v5.toml"),
    )
    .unwrap();
    let tuned = |name: &str, extra: &str| {
        let text = v5.replace(ELASTIC, name).replace("\n)\n'''", &format!("\n) and {extra}\n'''"));
        assert!(text.contains(extra) && text.contains(name), "the v5 query ends with `\\n)\\n'''`");
        (name.to_string(), text)
    };
    let rules = vec![
        tuned("v5", "true"),
        tuned("not-runc-parent", r#"not process.parent.name in ("runc")"#),
        tuned("not-sh-parent", r#"not process.parent.name in ("sh")"#),
        tuned("interactive-leader", "process.session_leader.interactive == true"),
        tuned("namespace-shop", r#"orchestrator.namespace == "shop""#),
        tuned("namespace-kube-system", r#"orchestrator.namespace == "kube-system""#),
        tuned("image-name", r#"container.image.name == "registry.example:5000/shop/web""#),
        tuned("image-name-with-tag", r#"container.image.name == "registry.example:5000/shop/web:1.4.2""#),
    ];
    // The exec branch needs the token's absolute path in argv: E1, E4, E5
    // (never E2's relative `token`, nor E3's `sh`, whose name and argv hold no reader).
    let (i1, i4, i5) = (ix(&e1), ix(&e4), ix(&e5));
    let want: BTreeMap<String, Vec<u64>> = [
        ("v5", vec![i1, i4, i5]),
        ("not-runc-parent", vec![i1, i4]),
        ("not-sh-parent", vec![i5]),
        ("interactive-leader", vec![i1, i4]),
        ("namespace-shop", vec![i1, i4, i5]),
        ("namespace-kube-system", vec![]),
        ("image-name", vec![i1, i4, i5]),
        ("image-name-with-tag", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(fired(&capture, &rules), want, "E1, E4, E5 = {i1}, {i4}, {i5}");

    // --- `tokenscan tree --pod web-0`, built-in rules (the seed: interactive only; TRC-108) ---
    let o = Command::new(&cli).arg("tree").arg(&capture).args(["--pod", "web-0"]).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "tokenscan tree: {}\n{text}", String::from_utf8_lossy(&o.stderr));
    let c = format!("(pod shop/web-0, container {})", &id[..12]);
    let elastic = |e: u64| format!("! {ELASTIC} #{e}: exec branch: ");
    let trc = |e: u64| format!("! TRC-108 #{e}: security_file_open from container: ");
    // (indent, start of the line): the shell and what it ran, in order.
    let session_block = vec![
        (2, format!("{sh} sh [{tty}] {c}: sh")),
        (4, format!("{} cat [{tty}] {c}: /bin/cat {token}", e1.pid)),
        (6, elastic(i1)),
        (6, trc(open_of(&e1))),
        (4, format!("{} cat [{tty}] {c}: cat token", e2.pid)),
        (6, trc(open_of(&e2))),
        (4, format!("{} sh [{tty}] {c}: sh -c {inner}", e3.pid)),
        (6, format!("{} cat [{tty}] {c}: /bin/cat {token}", e4.pid)),
        (8, elastic(i4)),
        (8, trc(open_of(&e4))),
    ];
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with(&format!("  {sh} sh ")))
        .unwrap_or_else(|| panic!("the shell in the tree:\n{text}"));
    for (k, (indent, want)) in session_block.iter().enumerate() {
        let line = lines.get(start + k).copied().unwrap_or("");
        let full = format!("{}{want}", " ".repeat(*indent));
        assert!(line.starts_with(&full), "tree line {}: want {full:?}, got {line:?}\n{text}", start + k);
        if !want.starts_with('!') {
            assert_eq!(line, full, "a process line is exactly pid, name, [tty], pod and argv\n{text}");
        }
    }
    let after = lines.get(start + session_block.len()).copied().unwrap_or("  ");
    assert!(after.starts_with("  ") && !after.starts_with("   "), "the session ends there: {after:?}\n{text}");
    // The non-interactive exec: a root of its own (its parent is on the host),
    // no terminal, so only TRC-108 marks it (the seed requires process.interactive).
    let e5_line = format!("  {} cat {c}: cat {token}", e5.pid);
    let at = lines.iter().position(|l| *l == e5_line).unwrap_or_else(|| panic!("{e5_line:?} in\n{text}"));
    assert!(lines[at + 1].starts_with(&format!("    {}", trc(open_of(&e5)))), "{text}");
    assert!(!lines.get(at + 2).is_some_and(|l| l.starts_with("    ")), "one mark only\n{text}");
    // The container's init, a root too.
    assert!(lines.contains(&&*format!("  {init} sleep {c}: sleep 60")), "{text}");
}

/// A second pod's container (shop/api-0), for scenarios with two pods.
fn api_0_annotations(uid: &str) -> serde_json::Value {
    let mut a = web_0_annotations(uid);
    a["io.kubernetes.cri.sandbox-name"] = "api-0".into();
    a["io.kubernetes.cri.container-name"] = "api".into();
    a
}

/// One `audit.k8s.io/v1` Event line, as kube-apiserver writes it with
/// `--audit-log-path`: a `list secrets` request made with `pod`'s token.
fn audit_line(id: &str, stage: &str, pod: &str, at_ns: i64) -> String {
    let at = tokenscan_core::display::rfc3339(at_ns);
    let mut e = serde_json::json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": id,
        "stage": stage, "requestURI": "/api/v1/namespaces/shop/secrets", "verb": "list",
        "user": {"username": "system:serviceaccount:shop:default",
                 "extra": {"authentication.kubernetes.io/pod-name": [pod]}},
        "sourceIPs": ["10.244.1.17"], "userAgent": "curl/8.5.0",
        "objectRef": {"resource": "secrets", "namespace": "shop", "apiVersion": "v1"},
        "requestReceivedTimestamp": at, "stageTimestamp": at,
    });
    if stage != "RequestReceived" {
        e["responseStatus"] = serde_json::json!({"metadata": {}, "code": 200});
    }
    format!("{e}\n")
}

/// Issue 19's end-to-end proof on a real runtime, with two rules of our own
/// in the grammar of detection-rules' D4C pack:
/// - `cradle` (after "File Creation, Execution and Deletion Cradle"): in pod
///   web-0, a download-like tool (a script named `curl`: its shell writes
///   the file, so the creating process is `curl`) drops /tmp/x, which runs
///   and is deleted: one sequence of exactly those three events, joined as
///   upstream joins them, the file's name to the process's name (a script's
///   executable is its interpreter, /bin/busybox here; its name is `x`);
/// - `token-then-api` (after "Service Account Token Access Followed by
///   Kubernetes API Request"): web-0's interactive shell reads the token,
///   and a hand-written audit log in kube-apiserver's format has a request
///   made with web-0's token 1 s later: one sequence, the open and the
///   response, across the node capture and the audit capture.
///
/// Around them, what must not fire: pod api-0 reads its token without a
/// terminal and its token is used (no interactive read: no sequence); a
/// request with pod db-0's token (it read nothing); the request's
/// `RequestReceived` stage; `/tmp/curl` itself is created by `sh`, not by a
/// download tool, and run; and the whole machine's other activity.
///
/// Our rule's file stage omits the upstream rule's `event.type == "change"`:
/// D4C logs write-intent opens only, and a write-intent open of a token on
/// Kubernetes' read-only token volume fails (EROFS here, the root being
/// read-only) before any LSM hook, so that condition cannot hold on a
/// standard pod; the recorder sees the read.
#[test]
fn replays_the_d4c_cradle_and_the_cross_platform_token_theft_on_runc() {
    if !should_run_runc("replays_the_d4c_cradle_and_the_cross_platform_token_theft_on_runc") {
        return;
    }
    let cli = Path::new(env!("CARGO_BIN_EXE_tokenscan-record")).with_file_name("tokenscan");
    assert!(cli.is_file(), "{} is missing: build the CLI first (cargo build -p tokenscan-cli)", cli.display());
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let capture = tmp.path().join("node.parquet");
    let recorder = Recorder::start(&["-o", capture.to_str().unwrap()], tmp.path().join("recorder.log"));
    let web = RuncContainer::start(web_0_annotations("1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b"));
    let api = RuncContainer::start(api_0_annotations("2f3e4d5c-6b7a-4899-8a1b-2c3d4e5f6a7b"));
    let token = format!("{SA}/token");
    // api-0 reads its token from a script, without a terminal.
    assert_eq!(api.exec(&["cat", &token]), "eyJhbGciOiJSUzI1NiJ9.runc-token");
    // web-0: the cradle, then an interactive read of the token.
    let cradle =
        "echo '#!/bin/sh' > /tmp/curl && echo 'echo \"#!/bin/sh\" > \"$1\"; echo \"echo ran\" >> \"$1\"' >> /tmp/curl \
                  && chmod 755 /tmp/curl && /tmp/curl /tmp/x && chmod 755 /tmp/x && /tmp/x && rm /tmp/x";
    assert_eq!(web.exec(&["sh", "-c", cradle]), "ran\n");
    let session = web.interactive(&[&format!("cat {token}")]);
    assert!(session.terminal.contains("eyJhbGciOiJSUzI1NiJ9.runc-token"), "{}", session.terminal);
    std::thread::sleep(Duration::from_millis(1000));
    let log = recorder.stop();
    let (web_id, api_id) = (web.id.clone(), api.id.clone());
    drop(web);
    drop(api);
    assert!(log.contains("lost        0 (the capture is complete)"), "{log}");

    // Which event is which, from the recorded columns.
    let (events, _) = read_events(&capture);
    let in_web = |e: &Ev| e.container_id.as_deref() == Some(&*web_id);
    let created = one(&events, "curl creating /tmp/x", |e| {
        e.kind == "create" && e.comm == "curl" && e.path.as_deref() == Some("/tmp/x") && in_web(e)
    });
    let ran = one(&events, "the exec of /tmp/x", |e| {
        e.kind == "exec" && e.requested_path.as_deref() == Some("/tmp/x") && e.result == Some(0) && in_web(e)
    });
    let deleted = one(&events, "rm /tmp/x", |e| e.kind == "delete" && e.path.as_deref() == Some("/tmp/x") && in_web(e));
    let read = one(&events, "web-0's interactive token read", |e| {
        e.kind == "open" && e.path.as_deref() == Some(&*token) && in_web(e) && is_pts(&e.tty)
    });
    let api_read = one(&events, "api-0's token read", |e| {
        e.kind == "open" && e.path.as_deref() == Some(&*token) && e.container_id.as_deref() == Some(&*api_id)
    });
    assert_eq!(api_read.tty, None, "api-0 read without a terminal");

    // The audit log: web-0's token used 1 s after its read (two stages),
    // api-0's 1.5 s after, db-0's (which read nothing) 2 s after.
    let sec = 1_000_000_000;
    let audit_log = tmp.path().join("audit.log");
    let lines = [
        audit_line("a-1", "RequestReceived", "web-0", read.time + sec),
        audit_line("a-1", "ResponseComplete", "web-0", read.time + sec + 5_000_000),
        audit_line("b-2", "ResponseComplete", "api-0", read.time + 3 * sec / 2),
        audit_line("c-3", "ResponseComplete", "db-0", read.time + 2 * sec),
    ];
    std::fs::write(&audit_log, lines.concat()).unwrap();
    let audit = tmp.path().join("audit.parquet");
    let out = Command::new(&cli).args(["import", "k8s-audit"]).arg(&audit_log).arg("-o").arg(&audit).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let rules = [
        probe_rule(
            "cradle",
            r#"sequence by container.id, user.id with maxspan=30s
  [file where event.action == "creation" and process.name in ("curl", "wget")] by file.name
  [process where event.type == "start" and event.action == "exec"] by process.name
  [file where event.action == "deletion" and file.path like "/tmp/*"] by file.name"#,
        ),
        probe_rule(
            "token-then-api",
            r#"sequence with maxspan=60s
  [file where host.os.type == "linux" and event.action == "open" and
   file.path in ("/var/run/secrets/kubernetes.io/serviceaccount/token",
                 "/run/secrets/kubernetes.io/serviceaccount/token") and
   process.interactive == true and container.id like "*"] by orchestrator.resource.name
  [any where data_stream.dataset == "kubernetes.audit_logs" and
   kubernetes.audit.stage in ("ResponseComplete", "ResponseStarted")]
   by `kubernetes.audit.user.extra.authentication.kubernetes.io/pod-name`"#,
        ),
    ];
    let mut args = vec!["replay".to_string(), "-f".into(), "ndjson".into(), "-q".into()];
    for (id, text) in &rules {
        let path = tmp.path().join(format!("{id}.toml"));
        std::fs::write(&path, text).unwrap();
        args.extend(["--rules".to_string(), path.display().to_string()]);
    }
    let out = Command::new(&cli).args(&args).arg(&capture).arg(&audit).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut got: Vec<(String, String, u64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let cap = Path::new(v["capture"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned();
            (v["rule_id"].as_str().unwrap().to_string(), cap, v["event_index"].as_u64().unwrap())
        })
        .collect();
    got.sort();
    let node = |e: &Ev| e.index as u64;
    let mut want = vec![
        ("cradle".to_string(), "node.parquet".to_string(), node(created)),
        ("cradle".to_string(), "node.parquet".to_string(), node(ran)),
        ("cradle".to_string(), "node.parquet".to_string(), node(deleted)),
        ("token-then-api".to_string(), "audit.parquet".to_string(), 1),
        ("token-then-api".to_string(), "node.parquet".to_string(), node(read)),
    ];
    want.sort();
    assert_eq!(got, want, "{}", String::from_utf8_lossy(&out.stdout));
}
