//! The self-contained recorder in a pod-like container, for real (issue 20).
//!
//! The statically linked `tokenscan-record` (as `./dev.sh dist` builds it) runs
//! in a runc container whose read-only rootfs holds that one file and
//! nothing else (no libc, no libbpf, no libelf), configured like
//! `deploy/tokenscan-recorder.yaml`'s pod: the host PID namespace, the
//! manifest's mounts (the host's /sys/kernel/btf, /sys/kernel/tracing,
//! /sys/fs/cgroup and /run/containerd read-only, the output directory
//! read-write) and its capabilities (CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE)
//! and no others, so also no CAP_SETPCAP: the recorder cannot shrink its
//! bounding set and must record anyway. While it records, a second runc
//! container, laid out where containerd-shim puts one, reads its token on a
//! terminal (as `kubectl exec -it` would); the capture replays to both rules'
//! findings with that container's id. Then the same pod with CAP_PERFMON
//! removed, and with the tracefs mount removed: the recorder stops with its
//! own message naming what is missing.
//!
//! Needs root, runc and busybox-static (`./dev.sh` installs them), a kernel
//! with BTF, and tracefs on the host (mounted here when it is not). Without
//! them the test prints a loud SKIPPED line, except under `CI=true`, where
//! it fails. The static binary is `TOKENSCAN_DIST_RECORDER` when set
//! (`./dev.sh test` sets it to `dist/tokenscan-record` after `./dev.sh dist`),
//! else it is built here with the same command as `./dev.sh dist`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::Array;
use tokenscan_core::eql::CompileOptions;
use tokenscan_core::replay::{CollectSink, ReplayOptions, Replayer};
use tokenscan_core::rules::RuleSet;

const SA: &str = "/run/secrets/kubernetes.io/serviceaccount";
const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.node-test-token";
const ELASTIC: &str = "66229f32-c460-410d-bc37-4b32322cd4bb";
const TRC108: &str = "TRC-108";
const RUNC_ROOT: &str = "/run/containerd/runc/k8s.io";
const TASKS: &str = "/run/containerd/io.containerd.runtime.v2.task/k8s.io";
/// The manifest's capabilities (deploy/tokenscan-recorder.yaml).
const POD_CAPS: [&str; 3] = ["CAP_BPF", "CAP_PERFMON", "CAP_SYS_PTRACE"];
const DIST_TARGET: &str = "x86_64-unknown-linux-gnu";
/// The recorder pods' parent cgroup.
const CGROUP_PARENT: &str = "tokenscan-node-test";

fn which(tool: &str) -> Option<PathBuf> {
    ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

/// Whether the test can run here; the reason when not.
fn missing_prerequisite() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root (runc and the recorder need it)".into());
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Some("the kernel has no BTF (/sys/kernel/btf/vmlinux)".into());
    }
    for tool in ["runc", "busybox", "script"] {
        if which(tool).is_none() {
            return Some(format!("`{tool}` is not installed (apt-get install runc busybox-static)"));
        }
    }
    None
}

/// False (after a loud line) when the test cannot run; under CI=true it fails instead.
fn should_run(test: &str) -> bool {
    let Some(reason) = missing_prerequisite() else { return true };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test} must run in CI (CI=true) but cannot: {reason}");
    }
    eprintln!("\n!!!!!!!!!! SKIPPED {test}: {reason} (it runs as root, and must under CI=true) !!!!!!!!!!\n");
    false
}

/// Mounts tracefs on the host when it is not (the pod binds the host's).
fn ensure_host_tracefs() {
    if Path::new("/sys/kernel/tracing/events").is_dir() {
        return;
    }
    let st = Command::new("mount").args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"]).status().unwrap();
    assert!(st.success(), "mount -t tracefs nodev /sys/kernel/tracing failed");
}

/// The statically linked recorder: `TOKENSCAN_DIST_RECORDER`, or built here
/// as `./dev.sh dist` builds it (a no-op when that build is fresh).
fn static_recorder() -> PathBuf {
    if let Some(p) = std::env::var_os("TOKENSCAN_DIST_RECORDER") {
        return PathBuf::from(p);
    }
    // This test binary is <target>/debug/deps/node-<hash>.
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let t0 = Instant::now();
    let out = Command::new(cargo)
        .current_dir(workspace)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env("LIBBPF_SYS_LIBRARY_PATH", "/usr/lib/x86_64-linux-gnu")
        .args(["build", "--release", "--locked", "--target", DIST_TARGET, "--target-dir"])
        .arg(&target)
        .args(["-p", "tokenscan-record", "--features", "tokenscan-record/static", "--bin", "tokenscan-record"])
        .output()
        .expect("run cargo");
    assert!(out.status.success(), "building the static recorder failed:\n{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("static recorder built in {:.1}s", t0.elapsed().as_secs_f64());
    target.join(DIST_TARGET).join("release/tokenscan-record")
}

fn random_hex64() -> String {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn runc(args: &[&str]) -> Command {
    let mut c = Command::new("runc");
    c.args(["--root", RUNC_ROOT]).args(args);
    c
}

/// `runc spec`'s config.json in `bundle`, parsed.
fn default_spec(bundle: &Path) -> serde_json::Value {
    let st = Command::new("runc").arg("spec").current_dir(bundle).status().expect("runc spec");
    assert!(st.success(), "runc spec failed");
    serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap()
}

/// A host bind mount in runc's config.json form.
fn bind(src: &str, dst: &str, rw: bool) -> serde_json::Value {
    let mode = if rw { "rw" } else { "ro" };
    serde_json::json!({"destination": dst, "type": "bind", "source": src, "options": ["rbind", mode, "nosuid", "nodev"]})
}

/// The recorder pod, as runc runs it: what to leave out of the manifest's set.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Without {
    Nothing,
    Capability(&'static str),
    Mount(&'static str),
}

/// The recorder in its own container (foreground `runc run`, stderr to a file).
struct RecorderPod {
    id: String,
    child: Child,
    log: PathBuf,
    _bundle: tempfile::TempDir,
}

impl RecorderPod {
    fn start(binary: &Path, out: &Path, without: Without) -> RecorderPod {
        let bundle = tempfile::tempdir().unwrap();
        let rootfs = bundle.path().join("rootfs");
        std::fs::create_dir(&rootfs).unwrap();
        // The rootfs holds the binary and nothing else.
        std::fs::copy(binary, rootfs.join("tokenscan-record")).unwrap();
        let mut config = default_spec(bundle.path());
        let id = format!("tokenscan-recorder-{}", &random_hex64()[..12]);
        config["process"]["terminal"] = false.into();
        // As the manifest does: the pod's host name is its own, --hostname gives the node's.
        let node = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        config["process"]["args"] =
            serde_json::json!(["/tokenscan-record", "-o", "/out/capture.parquet", "--hostname", node.trim()]);
        config["process"]["env"] = serde_json::json!([]);
        let caps: Vec<&str> = POD_CAPS.iter().copied().filter(|c| without != Without::Capability(c)).collect();
        config["process"]["capabilities"] = serde_json::json!({
            "bounding": caps, "effective": caps, "permitted": caps, "inheritable": [], "ambient": []
        });
        config["root"] = serde_json::json!({"path": "rootfs", "readonly": true});
        // hostPID: no pid namespace; the rest (mount, network, ipc, uts, cgroup) stays the pod's own.
        let ns: Vec<serde_json::Value> =
            config["linux"]["namespaces"].as_array().unwrap().iter().filter(|n| n["type"] != "pid").cloned().collect();
        config["linux"]["namespaces"] = ns.into();
        config["linux"]["cgroupsPath"] = format!("/{CGROUP_PARENT}/{id}").into();
        // runc's defaults (/proc, /dev, a read-only sysfs) minus its namespaced
        // cgroup mount, then the manifest's volumes.
        let mut mounts: Vec<serde_json::Value> = config["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["destination"] != "/sys/fs/cgroup")
            .cloned()
            .collect();
        let out_dir = out.to_str().unwrap();
        for (src, dst, rw) in [
            ("/sys/kernel/btf", "/sys/kernel/btf", false),
            ("/sys/kernel/tracing", "/sys/kernel/tracing", false),
            ("/sys/fs/cgroup", "/sys/fs/cgroup", false),
            ("/run/containerd", "/run/containerd", false),
            (out_dir, "/out", true),
        ] {
            if without != Without::Mount(dst) {
                mounts.push(bind(src, dst, rw));
            }
        }
        config["mounts"] = mounts.into();
        std::fs::write(bundle.path().join("config.json"), serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let log = bundle.path().join("recorder.log");
        let child = runc(&["run", "-b", bundle.path().to_str().unwrap(), &id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("runc run");
        RecorderPod { id, child, log, _bundle: bundle }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until it records (or exits: then its status).
    fn wait_recording(&mut self) -> Option<ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.log_text().contains("\nrecording ") {
                return None;
            }
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            assert!(Instant::now() < deadline, "the recorder did not start within 60s:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGINT through runc, then the exit status and the log.
    fn stop(mut self) -> (ExitStatus, String) {
        let st = runc(&["kill", &self.id, "INT"]).status().unwrap();
        assert!(st.success(), "runc kill INT failed");
        (self.wait_exit(), self.log_text())
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "the recorder did not exit within 60s:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RecorderPod {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = runc(&["kill", &self.id, "KILL"]).stderr(Stdio::null()).status();
            let _ = self.child.wait();
        }
        let _ = runc(&["delete", "-f", &self.id]).stderr(Stdio::null()).status();
        // runc removes the pod's cgroup, not its parent: remove that once empty
        // (in every hierarchy; it fails harmlessly while another pod uses it).
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        for m in mounts.lines().map(|l| l.split(' ').collect::<Vec<_>>()) {
            if m.len() > 2 && (m[2] == "cgroup" || m[2] == "cgroup2") {
                let _ = std::fs::remove_dir(Path::new(m[1]).join(CGROUP_PARENT));
            }
        }
    }
}

/// The workload: a busybox container in a bundle where containerd-shim puts
/// one, with the CRI plugin's annotations and a service-account token.
struct Workload {
    id: String,
    bundle: PathBuf,
}

impl Workload {
    fn start() -> Workload {
        let id = random_hex64();
        let bundle = Path::new(TASKS).join(&id);
        let bin = bundle.join("rootfs/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy(which("busybox").unwrap(), bin.join("busybox")).unwrap();
        for applet in ["sh", "cat", "sleep"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        let sa = bundle.join("rootfs").join(SA.trim_start_matches('/'));
        std::fs::create_dir_all(&sa).unwrap();
        std::fs::write(sa.join("token"), TOKEN).unwrap();
        let w = Workload { id: id.clone(), bundle: bundle.clone() };
        let mut config = default_spec(&bundle);
        config["process"]["terminal"] = false.into();
        config["process"]["args"] = serde_json::json!(["sleep", "120"]);
        config["process"]["env"] = serde_json::json!(["PATH=/bin"]);
        config["root"] = serde_json::json!({"path": "rootfs", "readonly": true});
        let uid = "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6";
        config["linux"]["cgroupsPath"] = format!("/kubepods/besteffort/pod{}/{id}", uid.replace('-', "_")).into();
        config["annotations"] = serde_json::json!({
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.sandbox-name": "api-7",
            "io.kubernetes.cri.sandbox-namespace": "payments",
            "io.kubernetes.cri.sandbox-uid": uid,
            "io.kubernetes.cri.container-name": "api",
            "io.kubernetes.cri.image-name": "registry.example/payments/api:2.0",
        });
        std::fs::write(bundle.join("config.json"), serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let err = bundle.join("runc-run.err");
        let st = runc(&["run", "-d", "-b", bundle.to_str().unwrap(), &id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        assert!(st.success(), "runc run failed: {}", std::fs::read_to_string(&err).unwrap_or_default());
        w
    }

    /// `cat` of the token on a terminal, as `kubectl exec -it POD -- cat ...` does.
    fn read_token_on_a_tty(&self) -> String {
        let cmd = format!("runc --root {RUNC_ROOT} exec -t {} cat {SA}/token", self.id);
        let out = Command::new("script").args(["-qc", &cmd, "/dev/null"]).stdin(Stdio::null()).output().unwrap();
        assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = runc(&["kill", &self.id, "KILL"]).stderr(Stdio::null()).status();
        std::thread::sleep(Duration::from_millis(200));
        let _ = runc(&["delete", "-f", &self.id]).stderr(Stdio::null()).status();
        let _ = std::fs::remove_dir_all(&self.bundle);
    }
}

/// (rule id, kind, comm, path of opens) of each finding in `container`.
fn findings_in(capture: &Path, container: &str) -> Vec<(String, String, String, Option<String>)> {
    let rules = RuleSet::builtin(&CompileOptions::default()).unwrap();
    let mut sink = CollectSink::default();
    Replayer::new(rules, ReplayOptions::default()).replay(&[capture.to_path_buf()], &mut sink).unwrap();
    let mut out = Vec::new();
    for b in &sink.batches {
        let col = |n: &str| b.column_by_name(n).unwrap_or_else(|| panic!("findings have no column {n}")).clone();
        let (rule, kind, comm, path, cid) =
            (col("rule_id"), col("kind"), col("comm"), col("path"), col("container_id"));
        for i in 0..b.num_rows() {
            if cid.is_null(i) || cid.as_string::<i32>().value(i) != container {
                continue;
            }
            out.push((
                rule.as_string::<i32>().value(i).to_string(),
                kind.as_string::<i32>().value(i).to_string(),
                comm.as_string::<i32>().value(i).to_string(),
                (!path.is_null(i) && kind.as_string::<i32>().value(i) == "open")
                    .then(|| path.as_string::<i32>().value(i).to_string()),
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn static_recorder_in_a_pod_like_container_records_a_token_read() {
    if !should_run("static_recorder_in_a_pod_like_container_records_a_token_read") {
        return;
    }
    ensure_host_tracefs();
    let binary = static_recorder();
    // Self-contained: no program interpreter and no shared library needed
    // (the container's rootfs has neither anyway; this names the cause if it fails).
    let readelf = |flag: &str| {
        let o = Command::new("readelf").args([flag, "-W"]).arg(&binary).output().expect("readelf (binutils)");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(!readelf("-l").contains("program interpreter"), "{} needs a dynamic loader", binary.display());
    assert!(!readelf("-d").contains("(NEEDED)"), "{} needs shared libraries", binary.display());

    let out = tempfile::tempdir().unwrap();
    let mut pod = RecorderPod::start(&binary, out.path(), Without::Nothing);
    if let Some(st) = pod.wait_recording() {
        panic!("the recorder exited ({st}) before recording:\n{}", pod.log_text());
    }
    let workload = Workload::start();
    let read = workload.read_token_on_a_tty();
    assert!(read.contains(TOKEN), "{read:?}");
    // The drain hands rows to the writer at least once a second.
    std::thread::sleep(Duration::from_millis(1500));
    let (status, log) = pod.stop();
    let id = workload.id.clone();
    drop(workload);
    assert_eq!(status.code(), Some(0), "{log}");
    // No CAP_SETPCAP in the pod: the bounding set stays, one warning, and recording went on.
    assert!(log.contains("dropped all effective and permitted capabilities (the programs stay attached)"), "{log}");
    let warning: Vec<&str> =
        log.lines().filter(|l| l.starts_with("warning: the capability bounding set keeps")).collect();
    assert_eq!(warning, ["warning: the capability bounding set keeps CAP_SYS_PTRACE, CAP_PERFMON, CAP_BPF (shrinking it needs CAP_SETPCAP, which this process does not have: PR_CAPBSET_DROP failed with EPERM); recording goes on: the effective, permitted, inheritable and ambient sets are empty and no_new_privs is set, so neither this process nor anything it could run can use them"], "{log}");
    assert!(log.contains("lost        0 (the capture is complete)"), "{log}");

    // Expected from the rules' texts: Elastic's exec branch (interactive
    // `cat` whose args name the token) and TRC-108's read-only open of a path
    // matching secrets/kubernetes.io/serviceaccount.+token$, both in that container.
    let token = format!("{SA}/token");
    let got = findings_in(&out.path().join("capture.parquet"), &id);
    let want = vec![
        (ELASTIC.to_string(), "exec".to_string(), "cat".to_string(), None),
        (TRC108.to_string(), "open".to_string(), "cat".to_string(), Some(token)),
    ];
    assert_eq!(got, want, "recorder log:\n{log}");
}

#[test]
fn static_recorder_names_a_missing_capability_or_mount() {
    if !should_run("static_recorder_names_a_missing_capability_or_mount") {
        return;
    }
    ensure_host_tracefs();
    let binary = static_recorder();
    let cases = [
        (
            Without::Capability("CAP_PERFMON"),
            "tokenscan-record: error: missing capabilities: CAP_PERFMON (it attaches the programs to tracepoints",
        ),
        (
            Without::Mount("/sys/kernel/tracing"),
            "tokenscan-record: error: tracefs is not mounted at /sys/kernel/tracing or /sys/kernel/debug/tracing \
             and mounting it at /sys/kernel/tracing failed: Operation not permitted (os error 1) (mounting needs \
             CAP_SYS_ADMIN)",
        ),
    ];
    for (without, want) in cases {
        let out = tempfile::tempdir().unwrap();
        let mut pod = RecorderPod::start(&binary, out.path(), without);
        let status = pod.wait_recording().unwrap_or_else(|| panic!("it recorded anyway:\n{}", pod.log_text()));
        let log = pod.log_text();
        assert_eq!(status.code(), Some(2), "{log}");
        assert!(log.lines().any(|l| l.starts_with(want)), "wanted a line starting {want:?}, got:\n{log}");
        assert!(!out.path().join("capture.parquet").exists(), "no capture is written");
    }
}
