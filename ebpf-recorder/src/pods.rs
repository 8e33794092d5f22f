//! Pod metadata for container ids, from the container runtime's state on the node.
//!
//! For a container id (64 hex digits, as [`crate::cgroup`] parses it from a
//! cgroup path) [`PodResolver`] finds the pod name, namespace and uid, the
//! container name, the image (name and tag) and whether the container is
//! privileged, in this order:
//!
//! 1. **containerd**: the OCI bundle containerd-shim hands to runc,
//!    `run/containerd/io.containerd.runtime.v2.task/<namespace>/<id>/config.json`
//!    (any containerd namespace; Kubernetes uses `k8s.io`), whose annotations
//!    the CRI plugin writes: `io.kubernetes.cri.sandbox-name`,
//!    `io.kubernetes.cri.sandbox-namespace`, `io.kubernetes.cri.sandbox-uid`,
//!    `io.kubernetes.cri.container-name`, `io.kubernetes.cri.image-name`.
//! 2. **CRI-O**: the container's userdata directory,
//!    `run/containers/storage/overlay-containers/<id>/userdata/config.json`
//!    (then the same under `var/lib/containers/storage`), whose annotations
//!    carry the kubelet's labels `io.kubernetes.pod.name`,
//!    `io.kubernetes.pod.namespace`, `io.kubernetes.pod.uid`,
//!    `io.kubernetes.container.name` (directly, and inside the JSON of
//!    `io.kubernetes.cri-o.Labels`) and the image as
//!    `io.kubernetes.cri-o.ImageName` (else `io.kubernetes.cri-o.Image`).
//! 3. **Fallback**, when a pid of the container is known: through
//!    `proc/<pid>/root`, the container's `etc/hostname` (a pod's hostname is
//!    its name unless the pod sets `hostname`, or uses the host's network)
//!    and its service-account `namespace` file
//!    (`run/secrets/kubernetes.io/serviceaccount/namespace`, then under
//!    `var/run`). These are opened with `openat2(RESOLVE_IN_ROOT)`, so a
//!    symbolic link inside the container can never lead to a file of the host.
//!
//! Both runtimes' annotations are looked for in either file; the source
//! ([`MetadataSource`]) is where the file was found. Privileged is derived
//! from the OCI spec (the rule is in `docs/processes.md`). All paths are relative
//! to a root directory (`/` on a node; a temporary directory in tests).
//!
//! Every file is opened non-blocking, must be a regular file and is read up
//! to a bound ([`PodResolverOptions::max_file_bytes`], 1 MiB by default):
//! missing state is normal and counted once per container; unreadable,
//! malformed or oversized files are skipped with a counted [`PodWarning`],
//! and the next source is tried. Results (and misses) are cached per
//! container id; a miss is retried a few times, at most once per
//! [`PodResolverOptions::retry_after`], so a container created during the
//! recording is found once its bundle exists.
//!
//! [`PodResolver`] does file I/O on the calling thread. [`PodWorker`] runs
//! one on a thread of its own behind a bounded queue, so the ring-buffer
//! drain only ever does a `try_send` and a `try_recv`.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Where containerd-shim keeps the task bundles, relative to the root.
pub const CONTAINERD_TASK_DIR: &str = "run/containerd/io.containerd.runtime.v2.task";
/// Where CRI-O keeps containers' userdata, relative to the root (run state first, then persistent).
pub const CRIO_STORAGE_DIRS: [&str; 2] =
    ["run/containers/storage/overlay-containers", "var/lib/containers/storage/overlay-containers"];

/// Where the metadata came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetadataSource {
    /// containerd's task bundle `config.json`.
    Containerd,
    /// CRI-O's userdata `config.json`.
    CriO,
    /// The container's own `/etc/hostname` and service-account namespace file.
    Fallback,
}

impl MetadataSource {
    /// `containerd`, `cri-o` or `fallback`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetadataSource::Containerd => "containerd",
            MetadataSource::CriO => "cri-o",
            MetadataSource::Fallback => "fallback",
        }
    }
}

/// What the node says about one container. `None` is "not found", never a guess.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodMetadata {
    /// The container id.
    pub container_id: String,
    /// Pod name.
    pub pod_name: Option<String>,
    /// Pod namespace.
    pub pod_namespace: Option<String>,
    /// Pod uid.
    pub pod_uid: Option<String>,
    /// Container name within the pod.
    pub container_name: Option<String>,
    /// The image reference as the runtime wrote it (e.g. `docker.io/library/nginx:1.27`).
    pub image: Option<String>,
    /// The image name: the reference without tag and digest (`docker.io/library/nginx`).
    pub image_name: Option<String>,
    /// The image tag (`1.27`); `None` when the reference has none.
    pub image_tag: Option<String>,
    /// Whether the container is privileged, by the rule in `docs/processes.md` (privileged).
    pub privileged: Option<bool>,
    /// Where it came from.
    pub source: MetadataSource,
}

/// A kind of problem with a runtime state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PodWarningKind {
    /// The file exists but could not be opened or read (permissions, I/O, not a regular file).
    Unreadable,
    /// The file is not the JSON expected (or not UTF-8 text, for the fallback files).
    Malformed,
    /// The file is larger than [`PodResolverOptions::max_file_bytes`].
    TooLarge,
    /// The container id is not 64 hex digits (or similar); nothing was looked up.
    InvalidId,
}

impl PodWarningKind {
    /// All kinds.
    pub const ALL: [PodWarningKind; 4] =
        [PodWarningKind::Unreadable, PodWarningKind::Malformed, PodWarningKind::TooLarge, PodWarningKind::InvalidId];

    /// A short snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            PodWarningKind::Unreadable => "unreadable",
            PodWarningKind::Malformed => "malformed",
            PodWarningKind::TooLarge => "too_large",
            PodWarningKind::InvalidId => "invalid_id",
        }
    }
}

/// One problem, kept as an example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodWarning {
    /// What went wrong.
    pub kind: PodWarningKind,
    /// The file (or, for [`PodWarningKind::InvalidId`], the id).
    pub path: PathBuf,
    /// One sentence.
    pub message: String,
}

impl std::fmt::Display for PodWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({})", self.path.display(), self.message, self.kind.as_str())
    }
}

/// Counters for the recorder's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodStats {
    /// Containers resolved from containerd's bundle.
    pub containerd: u64,
    /// Containers resolved from CRI-O's userdata.
    pub crio: u64,
    /// Containers resolved by the fallback.
    pub fallback: u64,
    /// Lookups that found nothing (each attempt counts).
    pub not_found: u64,
    /// Lookups answered from the cache.
    pub cached: u64,
    /// Problems, per [`PodWarningKind`] in [`PodWarningKind::ALL`] order.
    pub warnings: [u64; 4],
    /// Requests a [`PodWorker`] dropped because its queue was full.
    pub queue_full: u64,
}

impl PodStats {
    /// The count of one kind of problem.
    pub fn warning_count(&self, kind: PodWarningKind) -> u64 {
        self.warnings[PodWarningKind::ALL.iter().position(|k| *k == kind).expect("in ALL")]
    }
}

/// Settings of a [`PodResolver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodResolverOptions {
    /// The directory the runtime paths are relative to: `/` on a node.
    pub root: PathBuf,
    /// Files larger than this are skipped (counted as [`PodWarningKind::TooLarge`]).
    pub max_file_bytes: u64,
    /// Lookups of a container that found nothing, after which it is given up on.
    pub max_attempts: u32,
    /// The least time between two lookups of a container not found.
    pub retry_after: Duration,
    /// At most this many containers are cached (later ones are looked up every time).
    pub max_cached: usize,
    /// At most this many warnings are kept in full (all are counted).
    pub max_warning_examples: usize,
}

impl Default for PodResolverOptions {
    fn default() -> Self {
        PodResolverOptions {
            root: PathBuf::from("/"),
            max_file_bytes: 1 << 20,
            max_attempts: 3,
            retry_after: Duration::from_secs(1),
            max_cached: 65_536,
            max_warning_examples: 32,
        }
    }
}

enum CacheEntry {
    Found(PodMetadata),
    Missing { attempts: u32, last: Instant },
}

/// Resolves container ids to [`PodMetadata`], with a cache (see the module docs).
pub struct PodResolver {
    opts: PodResolverOptions,
    cache: HashMap<String, CacheEntry>,
    namespaces: Vec<String>,
    stats: PodStats,
    examples: Vec<PodWarning>,
}

/// Why a file gave nothing.
enum ReadError {
    NotFound,
    Skipped,
}

impl PodResolver {
    /// A resolver reading the runtime state under `opts.root`.
    pub fn new(opts: PodResolverOptions) -> Self {
        PodResolver {
            opts,
            cache: HashMap::new(),
            namespaces: Vec::new(),
            stats: PodStats::default(),
            examples: Vec::new(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> PodStats {
        self.stats
    }

    /// The first problems met, in order.
    pub fn warnings(&self) -> &[PodWarning] {
        &self.examples
    }

    /// The metadata of a container; `pid`, a process in it, enables the
    /// fallback. `None` when nothing was found (now, or in earlier attempts
    /// that used up the retries).
    pub fn resolve(&mut self, container_id: &str, pid: Option<u32>) -> Option<PodMetadata> {
        match self.cache.get(container_id) {
            Some(CacheEntry::Found(m)) => {
                self.stats.cached += 1;
                return Some(m.clone());
            }
            Some(CacheEntry::Missing { attempts, last })
                if *attempts >= self.opts.max_attempts || last.elapsed() < self.opts.retry_after =>
            {
                self.stats.cached += 1;
                return None;
            }
            _ => {}
        }
        if !valid_id(container_id) {
            self.warn(
                PodWarningKind::InvalidId,
                PathBuf::from(container_id),
                "not a container id; not looked up".into(),
            );
            return None;
        }
        let found = self.lookup(container_id, pid);
        if self.cache.len() < self.opts.max_cached || self.cache.contains_key(container_id) {
            let entry = match &found {
                Some(m) => CacheEntry::Found(m.clone()),
                None => {
                    let attempts = match self.cache.get(container_id) {
                        Some(CacheEntry::Missing { attempts, .. }) => attempts + 1,
                        _ => 1,
                    };
                    CacheEntry::Missing { attempts, last: Instant::now() }
                }
            };
            self.cache.insert(container_id.to_string(), entry);
        }
        found
    }

    fn lookup(&mut self, id: &str, pid: Option<u32>) -> Option<PodMetadata> {
        if let Some(m) = self.read_containerd(id) {
            self.stats.containerd += 1;
            return Some(m);
        }
        for dir in CRIO_STORAGE_DIRS {
            let path = self.opts.root.join(dir).join(id).join("userdata/config.json");
            if let Some(m) = self.read_bundle(&path, id, MetadataSource::CriO) {
                self.stats.crio += 1;
                return Some(m);
            }
        }
        if let Some(pid) = pid {
            if let Some(m) = self.read_fallback(id, pid) {
                self.stats.fallback += 1;
                return Some(m);
            }
        }
        self.stats.not_found += 1;
        None
    }

    fn read_containerd(&mut self, id: &str) -> Option<PodMetadata> {
        // The namespaces (k8s.io, moby, ...) are listed once, and again when a
        // lookup misses; then only the new ones are tried.
        let known = std::mem::take(&mut self.namespaces);
        for ns in &known {
            let path = self.opts.root.join(CONTAINERD_TASK_DIR).join(ns).join(id).join("config.json");
            if let Some(m) = self.read_bundle(&path, id, MetadataSource::Containerd) {
                self.namespaces = known;
                return Some(m);
            }
        }
        self.namespaces = list_dirs(&self.opts.root.join(CONTAINERD_TASK_DIR), 1024);
        for ns in self.namespaces.clone() {
            if known.contains(&ns) {
                continue;
            }
            let path = self.opts.root.join(CONTAINERD_TASK_DIR).join(&ns).join(id).join("config.json");
            if let Some(m) = self.read_bundle(&path, id, MetadataSource::Containerd) {
                return Some(m);
            }
        }
        None
    }

    fn read_bundle(&mut self, path: &Path, id: &str, source: MetadataSource) -> Option<PodMetadata> {
        let bytes = match self.read_bounded(None, path) {
            Ok(b) => b,
            Err(_) => return None,
        };
        let spec: OciSpec = match serde_json::from_slice(&bytes) {
            Ok(s) => s,
            Err(e) => {
                self.warn(PodWarningKind::Malformed, path.to_path_buf(), format!("not an OCI config.json: {e}"));
                return None;
            }
        };
        Some(metadata_from_spec(id, &spec, source))
    }

    fn read_fallback(&mut self, id: &str, pid: u32) -> Option<PodMetadata> {
        let root_path = self.opts.root.join("proc").join(pid.to_string()).join("root");
        let root = match open_path(&root_path, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                self.warn(PodWarningKind::Unreadable, root_path, format!("cannot open the process's root: {e}"));
                return None;
            }
        };
        let hostname = self.small_text(&root, &root_path, "etc/hostname").filter(|h| valid_dns_name(h, 253));
        let mut namespace = None;
        for p in [
            "run/secrets/kubernetes.io/serviceaccount/namespace",
            "var/run/secrets/kubernetes.io/serviceaccount/namespace",
        ] {
            namespace = self.small_text(&root, &root_path, p).filter(|n| valid_dns_name(n, 63));
            if namespace.is_some() {
                break;
            }
        }
        if hostname.is_none() && namespace.is_none() {
            return None;
        }
        Some(PodMetadata {
            container_id: id.to_string(),
            pod_name: hostname,
            pod_namespace: namespace,
            pod_uid: None,
            container_name: None,
            image: None,
            image_name: None,
            image_tag: None,
            privileged: None,
            source: MetadataSource::Fallback,
        })
    }

    /// A short text file inside a container's root, trimmed; never leaves that root.
    fn small_text(&mut self, root: &OwnedFd, root_path: &Path, rel: &str) -> Option<String> {
        let shown = root_path.join(rel);
        let bytes = self.read_bounded(Some((root, rel)), &shown).ok()?;
        match String::from_utf8(bytes) {
            Ok(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
            Err(_) => {
                self.warn(PodWarningKind::Malformed, shown, "not UTF-8 text".into());
                None
            }
        }
    }

    /// Reads a regular file of at most `max_file_bytes`: `path` itself, or
    /// `rel` resolved inside the directory `at` (as if it were `/`).
    fn read_bounded(&mut self, at: Option<(&OwnedFd, &str)>, path: &Path) -> Result<Vec<u8>, ReadError> {
        let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
        let opened = match at {
            Some((dir, rel)) => open_in_root(dir, rel, flags),
            None => open_path(path, flags),
        };
        let fd = match opened {
            Ok(fd) => fd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {
                return Err(ReadError::NotFound)
            }
            Err(e) => {
                self.warn(PodWarningKind::Unreadable, path.to_path_buf(), format!("cannot open: {e}"));
                return Err(ReadError::Skipped);
            }
        };
        let mut file = File::from(fd);
        let meta = match file.metadata() {
            Ok(m) => m,
            Err(e) => {
                self.warn(PodWarningKind::Unreadable, path.to_path_buf(), format!("cannot stat: {e}"));
                return Err(ReadError::Skipped);
            }
        };
        if !meta.is_file() {
            self.warn(PodWarningKind::Unreadable, path.to_path_buf(), "not a regular file".into());
            return Err(ReadError::Skipped);
        }
        let max = self.opts.max_file_bytes;
        if meta.len() > max {
            self.warn(PodWarningKind::TooLarge, path.to_path_buf(), format!("{} bytes, more than {max}", meta.len()));
            return Err(ReadError::Skipped);
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        // A file that grows while read is still cut at the bound.
        if let Err(e) = (&mut file).take(max + 1).read_to_end(&mut bytes) {
            self.warn(PodWarningKind::Unreadable, path.to_path_buf(), format!("cannot read: {e}"));
            return Err(ReadError::Skipped);
        }
        if bytes.len() as u64 > max {
            self.warn(PodWarningKind::TooLarge, path.to_path_buf(), format!("more than {max} bytes"));
            return Err(ReadError::Skipped);
        }
        Ok(bytes)
    }

    fn warn(&mut self, kind: PodWarningKind, path: PathBuf, message: String) {
        let i = PodWarningKind::ALL.iter().position(|k| *k == kind).expect("in ALL");
        self.stats.warnings[i] += 1;
        if self.examples.len() < self.opts.max_warning_examples {
            self.examples.push(PodWarning { kind, path, message });
        }
    }
}

/// The parts of an OCI runtime spec (`config.json`) the resolver reads.
#[derive(Debug, Default, Deserialize)]
struct OciSpec {
    #[serde(default)]
    annotations: Option<HashMap<String, String>>,
    #[serde(default)]
    process: Option<OciProcess>,
    #[serde(default)]
    linux: Option<OciLinux>,
}

#[derive(Debug, Default, Deserialize)]
struct OciProcess {
    #[serde(default)]
    capabilities: Option<OciCapabilities>,
}

#[derive(Debug, Default, Deserialize)]
struct OciCapabilities {
    #[serde(default)]
    bounding: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct OciLinux {
    #[serde(default, rename = "maskedPaths")]
    masked_paths: Option<Vec<String>>,
    #[serde(default, rename = "readonlyPaths")]
    readonly_paths: Option<Vec<String>>,
}

/// The 38 capabilities every Linux since 3.16 knows (`CAP_CHOWN` = 0 to `CAP_AUDIT_READ` = 37).
const BASE_CAPABILITIES: [&str; 38] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
];

/// Whether an OCI spec describes a privileged container.
///
/// For `securityContext.privileged: true` both containerd's CRI plugin and
/// CRI-O grant every capability the runtime knows and clear the lists of
/// masked and read-only paths, which every unprivileged container has
/// (`/proc/kcore`, `/proc/sys`, ...). The rule: **privileged when the
/// bounding set holds all 38 capabilities `CAP_CHOWN`..`CAP_AUDIT_READ` and
/// `linux.maskedPaths` and `linux.readonlyPaths` are both absent or empty**;
/// not privileged otherwise; unknown (`None`) when the spec has no
/// `process.capabilities` to judge by.
fn privileged_from_spec(spec: &OciSpec) -> Option<bool> {
    let bounding = spec.process.as_ref()?.capabilities.as_ref()?.bounding.as_ref();
    let all_caps = bounding.is_some_and(|b| BASE_CAPABILITIES.iter().all(|c| b.iter().any(|x| x == c)));
    let empty = |v: Option<&Vec<String>>| v.is_none_or(|v| v.is_empty());
    let linux = spec.linux.as_ref();
    let unmasked = empty(linux.and_then(|l| l.masked_paths.as_ref()));
    let writable = empty(linux.and_then(|l| l.readonly_paths.as_ref()));
    Some(all_caps && unmasked && writable)
}

fn metadata_from_spec(id: &str, spec: &OciSpec, source: MetadataSource) -> PodMetadata {
    let empty = HashMap::new();
    let ann = spec.annotations.as_ref().unwrap_or(&empty);
    // CRI-O also keeps the kubelet's labels as one JSON object.
    let labels: HashMap<String, String> =
        ann.get("io.kubernetes.cri-o.Labels").and_then(|l| serde_json::from_str(l).ok()).unwrap_or_default();
    let pick = |keys: &[&str]| -> Option<String> {
        keys.iter()
            .find_map(|k| ann.get(*k).or_else(|| labels.get(*k)))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let image = pick(&["io.kubernetes.cri.image-name", "io.kubernetes.cri-o.ImageName", "io.kubernetes.cri-o.Image"]);
    let (image_name, image_tag) = match image.as_deref().map(split_image) {
        Some((n, t)) => (Some(n.to_string()), t.map(str::to_string)),
        None => (None, None),
    };
    PodMetadata {
        container_id: id.to_string(),
        pod_name: pick(&["io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"]),
        pod_namespace: pick(&["io.kubernetes.cri.sandbox-namespace", "io.kubernetes.pod.namespace"]),
        pod_uid: pick(&["io.kubernetes.cri.sandbox-uid", "io.kubernetes.pod.uid"]),
        container_name: pick(&["io.kubernetes.cri.container-name", "io.kubernetes.container.name"]),
        image,
        image_name,
        image_tag,
        privileged: privileged_from_spec(spec),
        source,
    }
}

/// Splits an image reference into name and tag (the core's rule, shared
/// with the Tracee importer).
pub use tokenscan_core::import::split_image;

/// Container ids as runtimes write them: hex digits, at most 128 (never a path).
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A DNS name or label as Kubernetes allows for pod names and namespaces.
fn valid_dns_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// Up to `max` subdirectory names of `dir`, sorted; empty when it cannot be read.
fn list_dirs(dir: &Path, max: usize) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<String> = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .take(max)
        .collect();
    out.sort();
    out
}

fn cstring(p: &[u8]) -> std::io::Result<CString> {
    CString::new(p).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path holds a NUL byte"))
}

fn open_path(path: &Path, flags: libc::c_int) -> std::io::Result<OwnedFd> {
    let c = cstring(path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid NUL-terminated string; the returned descriptor is owned below.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `rel` inside the directory `dir` as if `dir` were the root: `..`
/// and absolute symbolic links stay inside it (`RESOLVE_IN_ROOT`), and magic
/// links (`/proc/self/root`, ...) are refused.
fn open_in_root(dir: &OwnedFd, rel: &str, flags: libc::c_int) -> std::io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let c = cstring(rel.as_bytes())?;
    /// The kernel's `struct open_how` (linux/openat2.h); libc's is non-exhaustive.
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: the arguments follow openat2(2): a directory descriptor, a
    // NUL-terminated path, a pointer to an `open_how` and its size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// One answer of a [`PodWorker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodAnswer {
    /// The container asked about.
    pub container_id: String,
    /// What was found; `None` when nothing was (it may be asked again later).
    pub metadata: Option<PodMetadata>,
}

struct PodRequest {
    container_id: String,
    pid: Option<u32>,
}

/// What a [`PodWorker`] knows of a container it was asked about.
#[derive(Debug, Clone, Copy)]
enum Asked {
    /// A request is out; `misses` answers "not found" came before it.
    Pending { misses: u32 },
    /// Found: never asked again.
    Found,
    /// Not found `misses` times, the last at `last`.
    Missed { last: Instant, misses: u32 },
}

/// A [`PodResolver`] on a thread of its own behind a bounded queue: the
/// caller (the ring-buffer drain) never waits for file I/O.
pub struct PodWorker {
    tx: Option<SyncSender<PodRequest>>,
    rx: Receiver<PodAnswer>,
    handle: Option<JoinHandle<PodResolver>>,
    asked: HashMap<String, Asked>,
    retry_after: Duration,
    max_attempts: u32,
    queue_full: u64,
}

impl PodWorker {
    /// Starts the thread; at most `capacity` requests wait at a time.
    pub fn spawn(mut resolver: PodResolver, capacity: usize) -> std::io::Result<PodWorker> {
        let (retry_after, max_attempts) = (resolver.opts.retry_after, resolver.opts.max_attempts);
        let (tx, requests) = mpsc::sync_channel::<PodRequest>(capacity.max(1));
        let (answers, rx) = mpsc::channel();
        let handle = std::thread::Builder::new().name("tokenscan-pods".into()).spawn(move || {
            for r in requests {
                let metadata = resolver.resolve(&r.container_id, r.pid);
                if answers.send(PodAnswer { container_id: r.container_id, metadata }).is_err() {
                    break;
                }
            }
            resolver
        })?;
        Ok(PodWorker {
            tx: Some(tx),
            rx,
            handle: Some(handle),
            asked: HashMap::new(),
            retry_after,
            max_attempts,
            queue_full: 0,
        })
    }

    /// Asks for a container's metadata without waiting; cheap enough to call
    /// for every event. A container is asked about once; after a "not found"
    /// again only when the resolver would look again (after `retry_after`,
    /// `max_attempts` lookups in all). Returns false when the request was
    /// dropped because the queue is full (counted; a later call asks again).
    pub fn request(&mut self, container_id: &str, pid: Option<u32>) -> bool {
        let misses = match self.asked.get(container_id) {
            None => 0,
            Some(Asked::Pending { .. }) | Some(Asked::Found) => return true,
            Some(Asked::Missed { last, misses }) => {
                if *misses >= self.max_attempts || last.elapsed() < self.retry_after {
                    return true;
                }
                *misses
            }
        };
        let Some(tx) = &self.tx else { return false };
        match tx.try_send(PodRequest { container_id: container_id.to_string(), pid }) {
            Ok(()) => {
                self.asked.insert(container_id.to_string(), Asked::Pending { misses });
                true
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.queue_full += 1;
                false
            }
        }
    }

    /// The answers ready now, without waiting.
    pub fn try_answers(&mut self) -> Vec<PodAnswer> {
        let mut out = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(a) => {
                    let misses = match self.asked.get(&a.container_id) {
                        Some(Asked::Pending { misses }) => *misses,
                        _ => 0,
                    };
                    let state = match a.metadata {
                        Some(_) => Asked::Found,
                        None => Asked::Missed { last: Instant::now(), misses: misses + 1 },
                    };
                    self.asked.insert(a.container_id.clone(), state);
                    out.push(a);
                }
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => return out,
            }
        }
    }

    /// Stops the thread after the queued requests and returns the answers
    /// not yet taken and the resolver's counters (with `queue_full`) and warnings.
    pub fn finish(mut self) -> (Vec<PodAnswer>, PodStats, Vec<PodWarning>) {
        self.tx = None;
        let resolver = self.handle.take().and_then(|h| h.join().ok());
        let answers = self.try_answers();
        let (mut stats, warnings) = match resolver {
            Some(r) => (r.stats(), r.warnings().to_vec()),
            None => (PodStats::default(), Vec::new()),
        };
        stats.queue_full = self.queue_full;
        (answers, stats, warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const ID2: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    fn resolver(root: &Path) -> PodResolver {
        PodResolver::new(PodResolverOptions {
            root: root.to_path_buf(),
            retry_after: Duration::ZERO,
            ..PodResolverOptions::default()
        })
    }

    fn write(root: &Path, rel: &str, text: &str) -> PathBuf {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        p
    }

    /// An unprivileged container's spec as containerd's CRI plugin writes it
    /// (abridged: the fields the resolver reads and some it must ignore).
    fn containerd_spec(image: &str) -> String {
        format!(
            r#"{{
  "ociVersion": "1.1.0",
  "process": {{
    "user": {{"uid": 0, "gid": 0}},
    "args": ["sh"],
    "cwd": "/",
    "capabilities": {{
      "bounding": ["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FSETID","CAP_FOWNER","CAP_MKNOD","CAP_NET_RAW",
                   "CAP_SETGID","CAP_SETUID","CAP_SETFCAP","CAP_SETPCAP","CAP_NET_BIND_SERVICE",
                   "CAP_SYS_CHROOT","CAP_KILL","CAP_AUDIT_WRITE"]
    }}
  }},
  "root": {{"path": "rootfs"}},
  "hostname": "web-7d4b9c-x2x9z",
  "annotations": {{
    "io.kubernetes.cri.container-type": "container",
    "io.kubernetes.cri.container-name": "web",
    "io.kubernetes.cri.image-name": "{image}",
    "io.kubernetes.cri.sandbox-id": "{ID2}",
    "io.kubernetes.cri.sandbox-name": "web-7d4b9c-x2x9z",
    "io.kubernetes.cri.sandbox-namespace": "shop",
    "io.kubernetes.cri.sandbox-uid": "1f0c4e2a-57a9-4a3e-9d1c-0b7f6a1e2d3c"
  }},
  "linux": {{
    "cgroupsPath": "/kubepods/besteffort/pod1f0c4e2a-57a9-4a3e-9d1c-0b7f6a1e2d3c/{ID}",
    "maskedPaths": ["/proc/acpi","/proc/kcore","/proc/keys"],
    "readonlyPaths": ["/proc/bus","/proc/fs","/proc/sys"]
  }}
}}"#
        )
    }

    fn all_caps_json() -> String {
        let caps: Vec<String> = BASE_CAPABILITIES.iter().map(|c| format!("\"{c}\"")).collect();
        format!("[{},\"CAP_PERFMON\",\"CAP_BPF\",\"CAP_CHECKPOINT_RESTORE\"]", caps.join(","))
    }

    #[test]
    fn containerd_bundle_gives_pod_container_and_image() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            &format!("{CONTAINERD_TASK_DIR}/k8s.io/{ID}/config.json"),
            &containerd_spec("registry.example:5000/shop/web:1.4.2"),
        );
        let mut r = resolver(tmp.path());
        let m = r.resolve(ID, None).expect("found");
        assert_eq!(m.source, MetadataSource::Containerd);
        assert_eq!(m.pod_name.as_deref(), Some("web-7d4b9c-x2x9z"));
        assert_eq!(m.pod_namespace.as_deref(), Some("shop"));
        assert_eq!(m.pod_uid.as_deref(), Some("1f0c4e2a-57a9-4a3e-9d1c-0b7f6a1e2d3c"));
        assert_eq!(m.container_name.as_deref(), Some("web"));
        assert_eq!(m.image_name.as_deref(), Some("registry.example:5000/shop/web"));
        assert_eq!(m.image_tag.as_deref(), Some("1.4.2"));
        assert_eq!(m.privileged, Some(false));
        // Cached: the file may go, the answer stays.
        fs::remove_dir_all(tmp.path().join("run")).unwrap();
        assert_eq!(r.resolve(ID, None), Some(m));
        assert_eq!(r.stats().containerd, 1);
        assert_eq!(r.stats().cached, 1);
    }

    #[test]
    fn privileged_container_spec() {
        // As containerd writes it for securityContext.privileged: every
        // capability, no masked or read-only paths.
        let tmp = tempfile::tempdir().unwrap();
        let spec = format!(
            r#"{{"process": {{"capabilities": {{"bounding": {caps}, "effective": {caps}}}}},
                "annotations": {{"io.kubernetes.cri.sandbox-name": "p"}},
                "linux": {{"maskedPaths": [], "readonlyPaths": []}}}}"#,
            caps = all_caps_json()
        );
        write(tmp.path(), &format!("{CONTAINERD_TASK_DIR}/k8s.io/{ID}/config.json"), &spec);
        assert_eq!(resolver(tmp.path()).resolve(ID, None).unwrap().privileged, Some(true));

        // All capabilities but masked paths kept: not privileged.
        let spec = format!(
            r#"{{"process": {{"capabilities": {{"bounding": {caps}}}}}, "linux": {{"maskedPaths": ["/proc/kcore"]}}}}"#,
            caps = all_caps_json()
        );
        write(tmp.path(), &format!("{CONTAINERD_TASK_DIR}/k8s.io/{ID2}/config.json"), &spec);
        assert_eq!(resolver(tmp.path()).resolve(ID2, None).unwrap().privileged, Some(false));

        // Nothing masked (procMount: Unmasked) but the default capabilities: not privileged.
        const ID3: &str = "3333333333333333333333333333333333333333333333333333333333333333";
        let spec = r#"{"process": {"capabilities": {"bounding": ["CAP_CHOWN","CAP_KILL","CAP_SETUID"]}},
                       "linux": {"maskedPaths": [], "readonlyPaths": []}}"#;
        write(tmp.path(), &format!("{CONTAINERD_TASK_DIR}/k8s.io/{ID3}/config.json"), spec);
        assert_eq!(resolver(tmp.path()).resolve(ID3, None).unwrap().privileged, Some(false));

        // No capabilities in the spec: nothing to judge by.
        const ID4: &str = "4444444444444444444444444444444444444444444444444444444444444444";
        write(tmp.path(), &format!("{CONTAINERD_TASK_DIR}/k8s.io/{ID4}/config.json"), r#"{"linux": {}}"#);
        assert_eq!(resolver(tmp.path()).resolve(ID4, None).unwrap().privileged, None);
    }

    #[test]
    fn crio_userdata_gives_pod_from_kubelet_labels() {
        let tmp = tempfile::tempdir().unwrap();
        // CRI-O: pod labels both as annotations and inside io.kubernetes.cri-o.Labels;
        // here only the Labels JSON carries the uid.
        let spec = r#"{
          "process": {"capabilities": {"bounding": ["CAP_CHOWN"]}},
          "annotations": {
            "io.container.manager": "cri-o",
            "io.kubernetes.cri-o.ContainerType": "container",
            "io.kubernetes.cri-o.ImageName": "quay.io/crio/redis:alpine",
            "io.kubernetes.cri-o.Labels": "{\"io.kubernetes.container.name\":\"redis\",\"io.kubernetes.pod.name\":\"cache-0\",\"io.kubernetes.pod.namespace\":\"db\",\"io.kubernetes.pod.uid\":\"4d2e\"}",
            "io.kubernetes.pod.name": "cache-0",
            "io.kubernetes.pod.namespace": "db",
            "io.kubernetes.container.name": "redis"
          },
          "linux": {"maskedPaths": ["/proc/acpi"], "readonlyPaths": ["/proc/bus"]}
        }"#;
        write(tmp.path(), &format!("run/containers/storage/overlay-containers/{ID}/userdata/config.json"), spec);
        let m = resolver(tmp.path()).resolve(ID, None).expect("found");
        assert_eq!(m.source, MetadataSource::CriO);
        assert_eq!(m.pod_name.as_deref(), Some("cache-0"));
        assert_eq!(m.pod_namespace.as_deref(), Some("db"));
        assert_eq!(m.pod_uid.as_deref(), Some("4d2e"));
        assert_eq!(m.container_name.as_deref(), Some("redis"));
        assert_eq!((m.image_name.as_deref(), m.image_tag.as_deref()), (Some("quay.io/crio/redis"), Some("alpine")));
        assert_eq!(m.privileged, Some(false));
    }

    #[test]
    fn fallback_reads_hostname_and_namespace_inside_the_container_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = "proc/4242/root";
        write(tmp.path(), &format!("{root}/etc/hostname"), "web-0\n");
        // As kubelet lays it out: namespace -> ..data/namespace, ..data -> ..<timestamp>.
        let sa = tmp.path().join(root).join("run/secrets/kubernetes.io/serviceaccount");
        write(tmp.path(), &format!("{root}/run/secrets/kubernetes.io/serviceaccount/..2026_12_04/namespace"), "shop");
        std::os::unix::fs::symlink("..2026_12_04", sa.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/namespace", sa.join("namespace")).unwrap();
        let mut r = resolver(tmp.path());
        let m = r.resolve(ID, Some(4242)).expect("found");
        assert_eq!(m.source, MetadataSource::Fallback);
        assert_eq!(m.pod_name.as_deref(), Some("web-0"));
        assert_eq!(m.pod_namespace.as_deref(), Some("shop"));
        assert_eq!(m.image_name, None);
        assert_eq!(m.privileged, None);
        // Without a pid there is no fallback.
        assert_eq!(resolver(tmp.path()).resolve(ID, None), None);
    }

    #[test]
    fn fallback_never_follows_a_link_out_of_the_container() {
        // The container's /etc/hostname is an absolute link to a host file:
        // resolved inside the container's root, it names a file that does not exist there.
        let tmp = tempfile::tempdir().unwrap();
        let host_secret = write(tmp.path(), "host-secret", "hostsecret");
        let root = tmp.path().join("proc/7/root");
        fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink(&host_secret, root.join("etc/hostname")).unwrap();
        let mut r = resolver(tmp.path());
        assert_eq!(r.resolve(ID, Some(7)), None);
        assert_eq!(r.stats().not_found, 1);
    }

    #[test]
    fn bad_files_are_skipped_and_counted() {
        let tmp = tempfile::tempdir().unwrap();
        // Malformed containerd bundle, oversized CRI-O file: both skipped, the fallback answers.
        write(tmp.path(), &format!("{CONTAINERD_TASK_DIR}/k8s.io/{ID}/config.json"), "{\"annotations\": [1,2");
        let big = format!("{{\"annotations\": {{\"x\": \"{}\"}}}}", "a".repeat(2048));
        write(tmp.path(), &format!("run/containers/storage/overlay-containers/{ID}/userdata/config.json"), &big);
        write(tmp.path(), "proc/9/root/etc/hostname", "pod-a");
        // A directory where a config.json should be: unreadable.
        fs::create_dir_all(tmp.path().join(format!("{CONTAINERD_TASK_DIR}/k8s.io/{ID2}/config.json"))).unwrap();
        let mut r = PodResolver::new(PodResolverOptions {
            root: tmp.path().to_path_buf(),
            max_file_bytes: 1024,
            retry_after: Duration::ZERO,
            ..PodResolverOptions::default()
        });
        let m = r.resolve(ID, Some(9)).expect("the fallback still answers");
        assert_eq!(m.pod_name.as_deref(), Some("pod-a"));
        assert_eq!(r.resolve(ID2, None), None);
        assert_eq!(r.resolve("../../etc", None), None);
        let s = r.stats();
        assert_eq!(s.warning_count(PodWarningKind::Malformed), 1);
        assert_eq!(s.warning_count(PodWarningKind::TooLarge), 1);
        assert_eq!(s.warning_count(PodWarningKind::Unreadable), 1);
        assert_eq!(s.warning_count(PodWarningKind::InvalidId), 1);
        assert!(r.warnings()[0].to_string().contains("config.json"));
    }

    #[test]
    fn a_fifo_does_not_block() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(format!("{CONTAINERD_TASK_DIR}/k8s.io/{ID}"));
        fs::create_dir_all(&dir).unwrap();
        let c = CString::new(dir.join("config.json").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid path string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let mut r = resolver(tmp.path());
        assert_eq!(r.resolve(ID, None), None);
        assert!(r.stats().warning_count(PodWarningKind::Unreadable) >= 1);
    }

    #[test]
    fn misses_are_retried_a_bounded_number_of_times() {
        let tmp = tempfile::tempdir().unwrap();
        let mut r = resolver(tmp.path());
        assert_eq!(r.resolve(ID, None), None);
        // The container appears during the recording: the next attempt finds it.
        write(tmp.path(), &format!("{CONTAINERD_TASK_DIR}/k8s.io/{ID}/config.json"), &containerd_spec("nginx"));
        let m = r.resolve(ID, None).expect("found on retry");
        assert_eq!((m.image_name.as_deref(), m.image_tag.as_deref()), (Some("nginx"), None));
        // Another container never appears: looked up max_attempts times, then cached.
        for _ in 0..10 {
            assert_eq!(r.resolve(ID2, None), None);
        }
        assert_eq!(r.stats().not_found, 1 + 3);
    }

    #[test]
    fn image_references_split_into_name_and_tag() {
        assert_eq!(split_image("docker.io/library/nginx:1.27"), ("docker.io/library/nginx", Some("1.27")));
        assert_eq!(split_image("registry:5000/app"), ("registry:5000/app", None));
        assert_eq!(split_image("registry:5000/app:v1@sha256:abcd"), ("registry:5000/app", Some("v1")));
        assert_eq!(split_image("busybox@sha256:abcd"), ("busybox", None));
        assert_eq!(split_image("busybox"), ("busybox", None));
    }

    #[test]
    fn worker_answers_without_blocking_the_caller() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), &format!("{CONTAINERD_TASK_DIR}/k8s.io/{ID}/config.json"), &containerd_spec("nginx:1"));
        let mut w = PodWorker::spawn(resolver(tmp.path()), 4).unwrap();
        assert!(w.request(ID, None));
        assert!(w.request(ID, None), "asked already: not queued again");
        let mut answers = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while answers.is_empty() && Instant::now() < deadline {
            answers.extend(w.try_answers());
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].metadata.as_ref().unwrap().pod_namespace.as_deref(), Some("shop"));
        assert!(w.request(ID, None), "found: not asked again");
        // A container that is nowhere: asked at most max_attempts (3) times,
        // however often the drain calls request (retry_after is 0 here).
        let mut missed = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && missed < 5 {
            w.request(ID2, None);
            missed += w.try_answers().iter().filter(|a| a.container_id == ID2).count();
            std::thread::sleep(Duration::from_millis(2));
            if missed == 3 {
                // More calls must not send a fourth request; give one time to be answered.
                for _ in 0..5 {
                    w.request(ID2, None);
                    std::thread::sleep(Duration::from_millis(20));
                    missed += w.try_answers().len();
                }
                break;
            }
        }
        assert_eq!(missed, 3);
        let (rest, stats, _) = w.finish();
        assert!(rest.is_empty());
        assert_eq!(stats.containerd, 1);
        assert_eq!(stats.not_found, 3);
        assert_eq!(stats.queue_full, 0);
    }
}
