//! One recording session: checks, load and attach, drop capabilities, the
//! ring buffer poll loop, the writer thread, the summary.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use arrow_array::RecordBatch;

use crate::assemble::{Assembler, AssemblerStats};
use crate::cgroup::{find_cgroup2_mount, CgroupResolver, Resolution, ResolverStats};
use crate::cli::Args;
use crate::event::{BatchBuilder, ContainerProcess, Event};
use crate::output::{now_rfc3339, CaptureWriter, Layout, RotatePolicy, WrittenFile};
use crate::pods::{PodAnswer, PodResolver, PodResolverOptions, PodStats, PodWarning, PodWarningKind, PodWorker};
use crate::probes::{ring_buffer_size, Counters, ProbeOptions, Probes};
use crate::snapshot::Snapshot;
use crate::system;

/// Rows per batch handed to the writer thread.
const BATCH_ROWS: usize = 8_192;
/// Messages queued for the writer thread. Small on purpose: when the writer
/// falls behind, the reader waits and the kernel counts lost records, rather
/// than user space buffering without bound (each batch is a few MiB).
const WRITER_QUEUE: usize = 4;
/// Longest a row waits in user space before it is handed to the writer.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Ring buffer poll timeout: the bound on stop latency and status staleness.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// Pod metadata requests waiting for the pod thread.
const POD_QUEUE: usize = 256;
/// Least time between two requests for a container not described yet (the
/// pod worker paces its own retries; this only spares the drain the calls).
const POD_ASK_EVERY: Duration = Duration::from_millis(200);

static STOP: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
    STOP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() -> Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is valid; on_signal only stores to atomics (async-signal-safe).
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("cannot install signal handlers");
        }
    }
    Ok(())
}

/// Why recording stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// A signal (SIGINT, SIGTERM, SIGHUP).
    Signal(&'static str),
    /// --duration elapsed.
    Duration,
}

/// What a session did.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Why it stopped.
    pub stop: StopReason,
    /// How long it recorded.
    pub elapsed: Duration,
    /// Events written.
    pub events: u64,
    /// Events of host processes dropped in user space (--containers-only).
    pub dropped_host_events: u64,
    /// Events of cgroups that were gone before they could be looked up
    /// (recorded without a container id).
    pub gone_cgroup_events: u64,
    /// `container` rows written (one per container the runtime described).
    pub container_rows: u64,
    /// Pod metadata lookups.
    pub pods: PodStats,
    /// Problems with the runtime's state files (examples; all are counted in `pods`).
    pub pod_warnings: Vec<PodWarning>,
    /// Processes read from /proc at the start.
    pub snapshot_processes: u64,
    /// Processes that exited while the snapshot read them (skipped).
    pub snapshot_vanished: u64,
    /// Assembly counters.
    pub assembler: AssemblerStats,
    /// Container resolution counters.
    pub resolver: ResolverStats,
    /// Kernel counters.
    pub kernel: Counters,
    /// Distinct containers seen.
    pub containers: usize,
    /// Files written.
    pub files: Vec<WrittenFile>,
    /// CPU time used by the recorder.
    pub cpu: Duration,
    /// Peak resident memory seen, in bytes.
    pub peak_rss: u64,
}

impl Summary {
    /// Kernel records lost (ring buffer full): the capture is incomplete when nonzero.
    pub fn lost(&self) -> u64 {
        self.kernel.lost_records
    }
}

enum ToWriter {
    Batch(RecordBatch),
    Tick { lost: u64 },
}

/// Events from records, with container ids, into batches for the writer.
struct Pipeline {
    assembler: Assembler,
    sink: EventSink,
}

/// Where events go: their container, the --containers-only filter, the batch.
struct EventSink {
    resolver: CgroupResolver,
    batch: BatchBuilder,
    containers_only: bool,
    /// Host cgroups not yet handed to the kernel's filter set.
    new_host_cgroups: Vec<u64>,
    host_cgroups: HashSet<u64>,
    containers: BTreeSet<Arc<str>>,
    events: u64,
    dropped_host: u64,
    /// Events of cgroups that were gone before they could be looked up.
    gone_events: u64,
    /// Resolves containers to pods off the drain thread.
    pods: Option<PodWorker>,
    /// Containers without a `container` row yet: their first process and
    /// when the pod worker was last asked.
    undescribed: HashMap<Arc<str>, (ContainerProcess, Option<Instant>)>,
    container_rows: u64,
    /// Unix time minus CLOCK_BOOTTIME, as the assembler stamps events.
    clock_offset_ns: i64,
}

impl Pipeline {
    fn on_record(&mut self, data: &[u8]) {
        let Pipeline { assembler, sink } = self;
        assembler.handle(data, &mut |e: &Event<'_>| sink.on_event(e));
    }

    /// Hands the /proc snapshot's rows to the batch, before any kernel event.
    fn on_snapshot(&mut self, snap: &Snapshot, clock_offset_ns: i64) {
        for p in &snap.processes {
            self.assembler.seed_process(p.pid, p.exe.as_deref(), p.cwd.as_deref());
        }
        let sink = &mut self.sink;
        snap.for_each_event(clock_offset_ns, &mut |e: &Event<'_>| sink.on_event(e));
    }
}

impl EventSink {
    fn on_event(&mut self, e: &Event<'_>) {
        if let Some((path, truncated)) = &e.cgroup_path {
            self.resolver.learn(e.cgroup_id, path, *truncated);
        }
        let resolution = self.resolver.resolve(e.cgroup_id, e.boot_ns, system::boottime_ns);
        let container = match &resolution {
            Resolution::Container(c) => {
                if !self.containers.contains(c) {
                    self.containers.insert(c.clone());
                    if self.pods.is_some() {
                        self.undescribed.insert(c.clone(), (ContainerProcess::of(e), None));
                    }
                }
                if !self.undescribed.is_empty() {
                    self.ask_pods(c, e.pid);
                }
                Some(&**c)
            }
            Resolution::Host => {
                if self.containers_only && self.host_cgroups.insert(e.cgroup_id) {
                    self.new_host_cgroups.push(e.cgroup_id);
                }
                None
            }
            Resolution::Pending => None,
            Resolution::Gone => {
                self.gone_events += 1;
                None
            }
        };
        // Only events of cgroups positively known not to be a container's
        // are dropped: a cgroup that is gone (or not found yet) may have been one.
        if self.containers_only && resolution == Resolution::Host {
            self.dropped_host += 1;
            return;
        }
        self.batch.push(e, container);
        self.events += 1;
    }

    /// Asks the pod worker about a container not described yet (without waiting).
    fn ask_pods(&mut self, container: &str, pid: u32) {
        let (Some(pods), Some((_, asked))) = (self.pods.as_mut(), self.undescribed.get_mut(container)) else {
            return;
        };
        if asked.is_some_and(|t| t.elapsed() < POD_ASK_EVERY) {
            return;
        }
        *asked = Some(Instant::now());
        pods.request(container, Some(pid));
    }

    /// Writes a `container` row for each container the pod worker described since the last call.
    fn take_pod_answers(&mut self) {
        let answers = match self.pods.as_mut() {
            Some(p) => p.try_answers(),
            None => return,
        };
        self.write_container_rows(answers);
    }

    fn write_container_rows(&mut self, answers: Vec<PodAnswer>) {
        for a in answers {
            let Some(meta) = a.metadata else { continue };
            let Some((first, _)) = self.undescribed.remove(a.container_id.as_str()) else { continue };
            let now = system::boottime_ns() as i64 + self.clock_offset_ns;
            self.batch.push_container(now, &first, &meta);
            self.container_rows += 1;
            self.events += 1;
        }
    }

    /// Stops the pod worker after the requests already queued; writes their
    /// rows. Returns its counters and warnings.
    fn finish_pods(&mut self) -> (PodStats, Vec<PodWarning>) {
        let Some(pods) = self.pods.take() else { return (PodStats::default(), Vec::new()) };
        let (answers, stats, warnings) = pods.finish();
        self.write_container_rows(answers);
        (stats, warnings)
    }
}

fn writer_thread(
    mut writer: CaptureWriter,
    rx: Receiver<ToWriter>,
    finished: Arc<AtomicBool>,
) -> JoinHandle<Result<Vec<WrittenFile>>> {
    std::thread::Builder::new()
        .name("capture-writer".into())
        .spawn(move || {
            let mut lost = 0;
            let result = (|| -> Result<()> {
                for msg in &rx {
                    match msg {
                        ToWriter::Batch(rb) => writer.write(&rb, lost)?,
                        ToWriter::Tick { lost: l } => {
                            lost = l;
                            writer.maybe_rotate(lost)?;
                        }
                    }
                }
                Ok(())
            })();
            finished.store(true, Ordering::SeqCst);
            if let Err(e) = result {
                // Say what survives: closed segments are complete files.
                let kept = match (writer.layout(), writer.written()) {
                    (Layout::Single(p), _) => {
                        format!("{} has no footer and cannot be replayed (use --rotate-size to bound the loss)", p.display())
                    }
                    (Layout::Rotating(d), []) => format!("no segment of {}/ was completed", d.display()),
                    (Layout::Rotating(d), w) => format!(
                        "the {} closed segment(s) in {}/ ({} events) are complete and replay with `tokenscan replay {}`",
                        w.len(),
                        d.display(),
                        w.iter().map(|f| f.rows).sum::<u64>(),
                        d.display()
                    ),
                };
                return Err(anyhow!("{e:#}; recording stopped; {kept}"));
            }
            writer.finish(lost)
        })
        .expect("spawning a thread does not fail on a sane system")
}

fn human_count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Records until stopped; prints progress and the summary on stderr.
pub fn record(args: &Args) -> Result<Summary> {
    // First thing, so that a signal during the (possibly slow) load is not
    // lost: recording then stops right after it starts, cleanly.
    install_signal_handlers()?;
    // Preflight: each check names what is missing and how to grant it (docs/recorder.md, "Requirements").
    system::require_root()?;
    system::require_host_pid_namespace()?;
    let mut warnings = system::check_capabilities()?;
    system::require_btf()?;
    let layout = Layout::plan(&args.output, args.rotating(), args.force)?;
    system::require_writable_dir(match &layout {
        Layout::Single(p) => p.parent().unwrap_or(Path::new(".")),
        Layout::Rotating(d) => d,
    })?;
    let tracefs = system::ensure_tracefs()?;
    let (uts_host, kernel) = system::host_identity();
    if args.hostname.is_none() {
        warnings.extend(system::uts_warning(&uts_host));
    }
    let host = args.hostname.clone().unwrap_or(uts_host);
    let offset = system::clock_offset_ns();
    let cgroup_root = std::fs::read_to_string("/proc/mounts").ok().and_then(|m| find_cgroup2_mount(&m));
    if args.containers_only && cgroup_root.is_none() {
        return Err(anyhow!(
            "--containers-only needs the cgroup v2 filesystem, and /proc/mounts lists no cgroup2 mount; in a pod \
             mount the host's /sys/fs/cgroup read-only (hostPath /sys/fs/cgroup)"
        ));
    }
    warnings.extend(system::cgroup_warning(cgroup_root.as_deref()));
    warnings.extend(system::runtime_state_warning(Path::new("/")));

    let mut err = std::io::stderr();
    let _ = writeln!(err, "tokenscan-record {}: host {host}, kernel {kernel}", env!("CARGO_PKG_VERSION"));
    for w in &warnings {
        let _ = writeln!(err, "warning: {w}");
    }
    if let system::Tracefs::Mounted(p) = &tracefs {
        let _ = writeln!(err, "mounted tracefs at {}", p.display());
    }

    let ring = ring_buffer_size(args.ring_buffer_size)?;
    let opts = ProbeOptions {
        self_tgid: std::process::id(),
        containers_only: args.containers_only,
        ring_buffer_bytes: ring,
        verbose: args.verbose,
    };
    let mut object = MaybeUninit::uninit();
    let probes = Probes::load(&mut object, &opts, &tracefs)?;
    let _ = writeln!(err, "attached {} programs (ring buffer {}):", probes.attached().len(), human_bytes(ring.into()));
    for h in probes.attached() {
        let _ = writeln!(err, "  {h}");
    }
    for h in probes.skipped() {
        let _ = writeln!(err, "  {h}: not on this kernel, skipped");
    }

    // The processes already running, read after attaching (so that none
    // starts unseen in between) and before dropping capabilities (reading
    // another user's /proc/PID/exe and cwd needs CAP_SYS_PTRACE).
    let snapshot = Snapshot::take(Path::new("/proc"), cgroup_root.as_deref());
    let _ = writeln!(
        err,
        "read {} running processes from /proc ({} vanished while being read)",
        snapshot.processes.len(),
        snapshot.vanished
    );

    // Everything privileged is done: the links keep the programs attached.
    let dropped = system::drop_capabilities().context("cannot drop capabilities after attaching")?;
    match dropped.warning() {
        None => {
            let _ = writeln!(err, "dropped all capabilities (the programs stay attached)");
        }
        Some(w) => {
            let _ = writeln!(err, "dropped all effective and permitted capabilities (the programs stay attached)");
            let _ = writeln!(err, "warning: {w}");
        }
    }

    let started = now_rfc3339();
    let metadata = BTreeMap::from([
        ("tokenscan.recorder".to_string(), "tokenscan-record".to_string()),
        ("tokenscan.recorder_version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ("tokenscan.kernel_release".to_string(), kernel.clone()),
        ("tokenscan.hostname".to_string(), host.clone()),
        ("tokenscan.recording_start_time".to_string(), started),
        ("tokenscan.containers_only".to_string(), args.containers_only.to_string()),
    ]);
    let policy = RotatePolicy { max_bytes: args.rotate_size, max_age: args.rotate_seconds.map(Duration::from_secs) };
    let row_group_rows = usize::try_from(args.row_group_rows).unwrap_or(usize::MAX);
    let writer = CaptureWriter::create(layout.clone(), policy, row_group_rows, metadata, args.force)?;
    let what = match &layout {
        Layout::Single(p) => format!("writing {} (mode 0600)", p.display()),
        Layout::Rotating(d) => format!("writing segments into {}/ (mode 0700, files 0600)", d.display()),
    };
    let _ = writeln!(err, "{what}");
    match &cgroup_root {
        Some(r) => {
            let _ = writeln!(
                err,
                "container ids from the kernel's cgroup names (looked up in {} when missing)",
                r.display()
            );
        }
        None => {
            let _ = writeln!(err, "no cgroup v2 mount here: container ids only from the kernel's cgroup names");
        }
    }
    let stop_hint = match args.duration {
        Some(d) => format!("for {}s (or Ctrl-C)", d.as_secs_f64()),
        None => "until Ctrl-C or SIGTERM".to_string(),
    };
    let _ = writeln!(err, "recording {stop_hint}{}", if args.containers_only { ", containers only" } else { "" });

    let (tx, rx) = sync_channel::<ToWriter>(WRITER_QUEUE);
    let writer_done = Arc::new(AtomicBool::new(false));
    let writer = writer_thread(writer, rx, writer_done.clone());

    let mut pipeline = Pipeline {
        assembler: Assembler::new(offset),
        sink: EventSink {
            resolver: CgroupResolver::new(cgroup_root),
            batch: BatchBuilder::new(host, BATCH_ROWS),
            containers_only: args.containers_only,
            new_host_cgroups: Vec::new(),
            host_cgroups: HashSet::new(),
            containers: BTreeSet::new(),
            events: 0,
            dropped_host: 0,
            gone_events: 0,
            pods: Some(
                PodWorker::spawn(PodResolver::new(PodResolverOptions::default()), POD_QUEUE)
                    .context("cannot start the pod metadata thread")?,
            ),
            undescribed: HashMap::new(),
            container_rows: 0,
            clock_offset_ns: offset,
        },
    };
    pipeline.on_snapshot(&snapshot, offset);
    let snapshot_processes = snapshot.processes.len() as u64;
    let snapshot_vanished = snapshot.vanished;
    drop(snapshot);
    let pipeline = std::cell::RefCell::new(pipeline);
    let ring_buffer = probes.ring_buffer(|data| {
        pipeline.borrow_mut().on_record(data);
        0
    })?;

    let start = Instant::now();
    let cpu0 = system::cpu_time_ns();
    let tty = err.is_terminal() && !args.quiet;
    let mut last_flush = Instant::now();
    let mut last_status = Instant::now();
    let mut last_status_events = 0u64;
    let mut last_resend = Instant::now();
    let mut peak_rss = system::rss_bytes().unwrap_or(0);
    let mut writer_gone = false;

    // Batches wait for room (back-pressure); ticks are advisory and skipped when the queue is full.
    let send = |tx: &SyncSender<ToWriter>, m: ToWriter, gone: &mut bool| {
        let r = match m {
            ToWriter::Tick { .. } => match tx.try_send(m) {
                Err(TrySendError::Disconnected(_)) => Err(()),
                _ => Ok(()),
            },
            m => tx.send(m).map_err(|_| ()),
        };
        if r.is_err() {
            *gone = true;
        }
    };

    let stop = loop {
        // The kernel only wakes us when 1/16 of the buffer is waiting; poll()
        // consumes only after a wake-up, so consume() picks up the rest.
        if let Err(e) = ring_buffer.poll(POLL_TIMEOUT).and_then(|()| ring_buffer.consume()) {
            if e.kind() != libbpf_rs::ErrorKind::Interrupted {
                return Err(anyhow!("reading the ring buffer failed: {e}"));
            }
        }
        let counters = probes.counters();
        {
            let mut p = pipeline.borrow_mut();
            for id in std::mem::take(&mut p.sink.new_host_cgroups) {
                probes.add_host_cgroup(id);
            }
            p.sink.take_pod_answers();
            if (p.sink.batch.is_full() || last_flush.elapsed() >= FLUSH_EVERY) && !p.sink.batch.is_empty() {
                let rb = p.sink.batch.finish();
                send(&tx, ToWriter::Batch(rb), &mut writer_gone);
                last_flush = Instant::now();
            }
            if last_resend.elapsed() >= Duration::from_secs(1) && p.assembler.take_exe_resend_request() {
                probes.bump_exe_generation();
                last_resend = Instant::now();
            }
        }
        send(&tx, ToWriter::Tick { lost: counters.lost_records }, &mut writer_gone);
        if writer_gone || writer_done.load(Ordering::SeqCst) {
            break None;
        }
        let status_every = if tty { Duration::from_secs(1) } else { Duration::from_secs(10) };
        if !args.quiet && last_status.elapsed() >= status_every {
            let events = pipeline.borrow().sink.events;
            let rate = (events - last_status_events) as f64 / last_status.elapsed().as_secs_f64();
            last_status = Instant::now();
            last_status_events = events;
            peak_rss = peak_rss.max(system::rss_bytes().unwrap_or(0));
            let line = format!(
                "{:>7.1}s  {} events  {:.0}/s  lost {}  rss {}",
                start.elapsed().as_secs_f64(),
                human_count(events),
                rate,
                human_count(counters.lost_records),
                human_bytes(peak_rss)
            );
            if tty {
                let _ = write!(err, "\r\x1b[K{line}");
            } else {
                let _ = writeln!(err, "{line}");
            }
        }
        if STOP.load(Ordering::SeqCst) {
            let name = match SIGNAL.load(Ordering::SeqCst) {
                libc::SIGINT => "SIGINT",
                libc::SIGTERM => "SIGTERM",
                _ => "SIGHUP",
            };
            break Some(StopReason::Signal(name));
        }
        if args.duration.is_some_and(|d| start.elapsed() >= d) {
            break Some(StopReason::Duration);
        }
    };
    let elapsed = start.elapsed();
    if tty {
        let _ = writeln!(err);
    }

    // Stop the events, then drain what the kernel already queued.
    probes.detach();
    let _ = ring_buffer.consume();
    let counters = probes.counters();
    let (pods, pod_warnings) = {
        let mut p = pipeline.borrow_mut();
        let pods = p.sink.finish_pods();
        if !p.sink.batch.is_empty() {
            let rb = p.sink.batch.finish();
            send(&tx, ToWriter::Batch(rb), &mut writer_gone);
        }
        pods
    };
    send(&tx, ToWriter::Tick { lost: counters.lost_records }, &mut writer_gone);
    drop(tx);
    let files = writer.join().map_err(|_| anyhow!("the capture writer thread panicked"))??;
    let stop = stop.ok_or_else(|| anyhow!("the capture writer stopped unexpectedly"))?;
    peak_rss = peak_rss.max(system::rss_bytes().unwrap_or(0));
    drop(ring_buffer);
    let p = pipeline.into_inner();
    Ok(Summary {
        stop,
        elapsed,
        events: p.sink.events,
        dropped_host_events: p.sink.dropped_host,
        gone_cgroup_events: p.sink.gone_events,
        container_rows: p.sink.container_rows,
        pods,
        pod_warnings,
        snapshot_processes,
        snapshot_vanished,
        assembler: p.assembler.stats(),
        resolver: p.sink.resolver.stats(),
        kernel: counters,
        containers: p.sink.containers.len(),
        files,
        cpu: Duration::from_nanos(system::cpu_time_ns().saturating_sub(cpu0)),
        peak_rss,
    })
}

/// The end-of-session report (stderr).
pub fn print_summary(s: &Summary, out: &mut dyn Write) -> std::io::Result<()> {
    let why = match &s.stop {
        StopReason::Signal(n) => format!("stopped by {n}"),
        StopReason::Duration => "duration reached".to_string(),
    };
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    writeln!(out, "tokenscan-record: {why} after {:.1}s", s.elapsed.as_secs_f64())?;
    writeln!(
        out,
        "  events      {} ({} opens, {} execs, {} file operations), {:.0}/s",
        human_count(s.events),
        human_count(s.assembler.opens),
        human_count(s.assembler.execs),
        human_count(s.assembler.file_ops),
        s.events as f64 / secs
    )?;
    writeln!(
        out,
        "  processes   {} forks, {} exits, {} running at the start (read from /proc; {} vanished while read)",
        human_count(s.assembler.forks),
        human_count(s.assembler.exits),
        human_count(s.snapshot_processes),
        s.snapshot_vanished
    )?;
    let pods = &s.pods;
    writeln!(
        out,
        "  pods        {} containers described ({} from containerd, {} from CRI-O, {} by the hostname fallback); \
         {} lookups found nothing",
        s.container_rows, pods.containerd, pods.crio, pods.fallback, pods.not_found
    )?;
    let warnings: u64 = pods.warnings.iter().sum::<u64>() + pods.queue_full;
    if warnings > 0 {
        writeln!(
            out,
            "  pod state   {} runtime state files skipped ({} unreadable, {} malformed, {} too large), {} lookups \
             dropped (queue full){}",
            pods.warnings.iter().sum::<u64>(),
            pods.warning_count(PodWarningKind::Unreadable),
            pods.warning_count(PodWarningKind::Malformed),
            pods.warning_count(PodWarningKind::TooLarge),
            pods.queue_full,
            s.pod_warnings.first().map(|w| format!("; e.g. {w}")).unwrap_or_default()
        )?;
    }
    if s.dropped_host_events > 0 {
        writeln!(out, "  host        {} events of host processes not recorded", human_count(s.dropped_host_events))?;
    }
    if s.lost() == 0 {
        writeln!(out, "  lost        0 (the capture is complete)")?;
    } else {
        writeln!(
            out,
            "  lost        {} kernel records: THE CAPTURE IS INCOMPLETE (the ring buffer was full; \
             try a larger --ring-buffer-size)",
            human_count(s.lost())
        )?;
    }
    let a = &s.assembler;
    if a.exits_without_entry + a.entries_without_exit + a.bad_records > 0 {
        writeln!(
            out,
            "  unpaired    {} exits without entry, {} entries without exit, {} undecodable records",
            a.exits_without_entry, a.entries_without_exit, a.bad_records
        )?;
    }
    if a.argv_truncated > 0 {
        writeln!(out, "  argv cut    {} execs (marked as the last element of args)", a.argv_truncated)?;
    }
    if a.path_truncated > 0 || s.kernel.path_truncated > 0 {
        writeln!(
            out,
            "  paths cut   {} (files unreachable from the root, like pipes reopened through /dev/fd, or over 64 \
             steps; marked with a [tokenscan:path-truncated] prefix)",
            a.path_truncated
        )?;
    }
    writeln!(
        out,
        "  containers  {} seen ({} cgroups: {} named by the kernel, {} unresolved; {} scans)",
        s.containers, s.resolver.ids_seen, s.resolver.from_kernel, s.resolver.unresolved, s.resolver.scans
    )?;
    if s.resolver.unresolved > 0 {
        writeln!(
            out,
            "  cgroups     {} disappeared before they could be looked up: their {} events are recorded \
             without a container id",
            human_count(s.resolver.unresolved),
            human_count(s.gone_cgroup_events)
        )?;
    }
    writeln!(
        out,
        "  recorder    cpu {:.2}s ({:.1}% of one core), peak rss {}",
        s.cpu.as_secs_f64(),
        100.0 * s.cpu.as_secs_f64() / secs,
        human_bytes(s.peak_rss)
    )?;
    let rows: u64 = s.files.iter().map(|f| f.rows).sum();
    let bytes: u64 = s.files.iter().map(|f| f.bytes).sum();
    match s.files.as_slice() {
        [f] => writeln!(
            out,
            "  written     {} ({} rows, {})",
            f.path.display(),
            human_count(f.rows),
            human_bytes(f.bytes)
        )?,
        files => {
            let dir = files.first().and_then(|f| f.path.parent()).map(PathBuf::from).unwrap_or_default();
            writeln!(
                out,
                "  written     {} segments in {}/ ({} rows, {})",
                files.len(),
                dir.display(),
                human_count(rows),
                human_bytes(bytes)
            )?
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_numbers() {
        assert_eq!(human_count(0), "0");
        assert_eq!(human_count(1234), "1,234");
        assert_eq!(human_count(1_234_567), "1,234,567");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(16 << 20), "16.0 MiB");
    }
}
