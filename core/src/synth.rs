//! Deterministic synthetic captures for benchmarks: millions of events with a
//! realistic mix (mostly opens of a few tens of thousands of distinct paths,
//! a few percent execs with argv, many containers and processes, rare
//! service-account token reads), identical for the same seed.

use crate::capture::{BuilderSizing, CaptureBuilder, EventBatch, EventKind};

/// SplitMix64: small, fast, good enough for workload generation.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    /// A skewed pick in `0..n`: small indexes are much more likely (popular files).
    pub fn skewed(&mut self, n: usize) -> usize {
        let a = self.below(n);
        let b = self.below(n);
        a.min(b).min(self.below(n))
    }
}

/// Shape of a synthetic capture.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Number of events.
    pub events: u64,
    /// PRNG seed.
    pub seed: u64,
    /// Distinct file paths opened.
    pub paths: usize,
    /// Containers (and one host cgroup).
    pub containers: usize,
    /// Processes.
    pub processes: usize,
    /// Fraction of events that are execs.
    pub exec_fraction: f64,
    /// Token-read episodes per million events.
    pub token_reads_per_million: f64,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            events: 1_000_000,
            seed: 1,
            paths: 30_000,
            containers: 200,
            processes: 5_000,
            exec_fraction: 0.03,
            token_reads_per_million: 5.0,
        }
    }
}

struct Process {
    pid: u32,
    ppid: u32,
    uid: u32,
    comm: &'static str,
    exe: &'static str,
    container: Option<usize>,
    tty: Option<String>,
    host: usize,
}

const COMMS: &[(&str, &str)] = &[
    ("java", "/usr/lib/jvm/java-17/bin/java"),
    ("python3", "/usr/bin/python3.11"),
    ("node", "/usr/local/bin/node"),
    ("nginx", "/usr/sbin/nginx"),
    ("envoy", "/usr/local/bin/envoy"),
    ("postgres", "/usr/lib/postgresql/15/bin/postgres"),
    ("sh", "/bin/sh"),
    ("bash", "/bin/bash"),
    ("app", "/app/server"),
    ("coredns", "/coredns"),
    ("kube-proxy", "/usr/local/bin/kube-proxy"),
    ("containerd-shim", "/usr/bin/containerd-shim-runc-v2"),
];

const EXECS: &[(&str, &str, &[&str])] = &[
    ("sh", "/bin/sh", &["sh", "-c", "/app/healthcheck.sh"]),
    ("curl", "/usr/bin/curl", &["curl", "-fsS", "http://localhost:8080/healthz"]),
    ("ls", "/bin/ls", &["ls", "-la", "/tmp"]),
    ("ps", "/bin/ps", &["ps", "aux"]),
    ("grep", "/bin/grep", &["grep", "-r", "ERROR", "/var/log/app"]),
    ("cat", "/bin/cat", &["cat", "/etc/resolv.conf"]),
    ("date", "/bin/date", &["date", "+%s"]),
    ("python3", "/usr/bin/python3.11", &["python3", "/app/job.py", "--batch", "42"]),
    ("tail", "/usr/bin/tail", &["tail", "-n", "100", "/var/log/app/app.log"]),
    ("sed", "/bin/sed", &["sed", "-n", "1p", "/etc/hostname"]),
];

const TOKEN_DIR: &str = "/run/secrets/kubernetes.io/serviceaccount";

fn hex64(rng: &mut Rng) -> String {
    (0..4).map(|_| format!("{:016x}", rng.next_u64())).collect()
}

fn build_paths(rng: &mut Rng, n: usize) -> Vec<String> {
    let dirs = [
        "/usr/lib/x86_64-linux-gnu",
        "/etc",
        "/proc/self",
        "/app/static",
        "/app/data",
        "/var/log/app",
        "/tmp",
        "/usr/share/zoneinfo",
        "/usr/lib/python3.11",
        "/sys/fs/cgroup",
    ];
    (0..n)
        .map(|i| {
            let d = dirs[rng.below(dirs.len())];
            format!("{d}/f{i:05}-{:04x}.dat", rng.below(65536))
        })
        .collect()
}

/// Generates a capture batch by batch (bounded memory): call [`Synth::next_batch`] until it returns `None`.
pub struct Synth {
    opts: SynthOptions,
    rng: Rng,
    paths: Vec<String>,
    procs: Vec<Process>,
    containers: Vec<(String, u64)>,
    hosts: Vec<String>,
    emitted: u64,
    time: i64,
    pending: Vec<Ev>,
}

/// One event before it is appended to builders.
struct Ev {
    kind: EventKind,
    proc_idx: usize,
    comm: &'static str,
    exe: &'static str,
    args: Option<Vec<String>>,
    path: Option<String>,
    requested: String,
    flags: Option<i32>,
    result: i64,
}

impl Synth {
    /// A generator for `opts`.
    pub fn new(opts: SynthOptions) -> Self {
        let mut rng = Rng::new(opts.seed);
        let paths = build_paths(&mut rng, opts.paths.max(1));
        let hosts: Vec<String> = (0..4).map(|i| format!("node-{i}")).collect();
        let containers: Vec<(String, u64)> =
            (0..opts.containers.max(1)).map(|i| (hex64(&mut rng), 10_000 + i as u64)).collect();
        let procs = (0..opts.processes.max(1))
            .map(|i| {
                let (comm, exe) = COMMS[rng.below(COMMS.len())];
                let container = (!rng.chance(0.05)).then(|| rng.below(containers.len()));
                Process {
                    pid: 1000 + i as u32,
                    ppid: 1 + rng.below(1000) as u32,
                    uid: if rng.chance(0.7) { 0 } else { 1000 + rng.below(100) as u32 },
                    comm,
                    exe,
                    host: container.map_or(rng.below(4), |c| c % 4),
                    container,
                    tty: rng.chance(0.01).then(|| format!("pts/{}", rng.below(8))),
                }
            })
            .collect();
        Synth {
            rng,
            paths,
            procs,
            containers,
            hosts,
            emitted: 0,
            time: 1_763_632_800_000_000_000,
            pending: Vec::new(),
            opts,
        }
    }

    fn token_episode(&mut self) {
        let p = self.rng.below(self.procs.len());
        let (comm, exe) =
            [("cat", "/bin/cat"), ("head", "/usr/bin/head"), ("python3", "/usr/bin/python3.11")][self.rng.below(3)];
        let requested =
            if self.rng.chance(0.5) { format!("/var{TOKEN_DIR}/token") } else { format!("{TOKEN_DIR}/token") };
        let args = if comm == "python3" {
            vec!["python3".to_string(), "-c".into(), format!("print(open('{requested}').read())")]
        } else {
            vec![comm.to_string(), requested.clone()]
        };
        self.pending.push(Ev {
            kind: EventKind::Exec,
            proc_idx: p,
            comm,
            exe,
            args: Some(args),
            path: Some(exe.to_string()),
            requested: exe.to_string(),
            flags: None,
            result: 0,
        });
        self.pending.push(Ev {
            kind: EventKind::Open,
            proc_idx: p,
            comm,
            exe,
            args: None,
            path: Some(format!("{TOKEN_DIR}/..2026_11_20_09_58_11.1829374651/token")),
            requested,
            flags: Some(32768),
            result: 3,
        });
    }

    fn random_event(&mut self) -> Ev {
        let p = self.rng.below(self.procs.len());
        if self.rng.chance(self.opts.exec_fraction) {
            let (comm, exe, args) = EXECS[self.rng.below(EXECS.len())];
            return Ev {
                kind: EventKind::Exec,
                proc_idx: p,
                comm,
                exe,
                args: Some(args.iter().map(|s| s.to_string()).collect()),
                path: Some(exe.to_string()),
                requested: exe.to_string(),
                flags: None,
                result: 0,
            };
        }
        let path = self.paths[self.rng.skewed(self.paths.len())].clone();
        let failed = self.rng.chance(0.03);
        let flags = match self.rng.below(10) {
            0 => 32769,
            1 => 33793,
            2..=4 => 557056,
            _ => 32768,
        };
        Ev {
            kind: EventKind::Open,
            proc_idx: p,
            comm: self.procs[p].comm,
            exe: self.procs[p].exe,
            args: None,
            path: (!failed).then(|| path.clone()),
            requested: path,
            flags: Some(flags),
            result: if failed { -2 } else { 3 + self.rng.below(60) as i64 },
        }
    }

    /// The next batch of at most `size` events, or `None` when done.
    pub fn next_batch(&mut self, size: usize) -> Option<EventBatch> {
        let remaining = self.opts.events - self.emitted;
        if remaining == 0 {
            return None;
        }
        let n = remaining.min(size.max(1) as u64) as usize;
        // Strings dictionary-encoded, as a Parquet reader would hand them out.
        let mut b = CaptureBuilder::with_sizing(BuilderSizing { rows: n, string_bytes: 0, dictionary: true });
        let per_event = self.opts.token_reads_per_million / 1_000_000.0;
        for _ in 0..n {
            if self.pending.is_empty() && self.rng.chance(per_event) {
                self.token_episode();
            }
            let ev = if self.pending.is_empty() { self.random_event() } else { self.pending.remove(0) };
            let pr = &self.procs[ev.proc_idx];
            self.time += 1 + self.rng.below(20_000) as i64;
            b.time.append(self.time);
            b.kind.append(ev.kind);
            b.host.append(&self.hosts[pr.host]);
            b.pid.append(pr.pid);
            b.tid.append(pr.pid);
            b.ppid.append(pr.ppid);
            b.uid.append(pr.uid);
            b.gid.append(pr.uid);
            b.comm.append(ev.comm);
            b.exe.append(Some(ev.exe));
            b.args.append(ev.args.map(|a| a.into_iter().map(Some)));
            b.path.append(ev.path);
            b.requested_path.append(Some(ev.requested));
            b.flags.append(ev.flags);
            b.result.append(Some(ev.result));
            b.tty.append(pr.tty.as_deref());
            match pr.container {
                Some(c) => {
                    b.cgroup_id.append(self.containers[c].1);
                    b.container_id.append(Some(&self.containers[c].0));
                }
                None => {
                    b.cgroup_id.append(1);
                    b.container_id.append(None::<&str>);
                }
            }
            // Opens and execs only, without process context: the rows of a
            // seed stay those of version 1.
            b.append_v2_nulls();
            b.append_v3_nulls();
        }
        let first = self.emitted;
        self.emitted += n as u64;
        Some(b.finish(first))
    }
}
