//! Recorder benchmark (not a timed test): an open-heavy workload with and
//! without `tokenscan-record` running.
//!
//! ```sh
//! cargo bench -p tokenscan-record --bench recorder            # as root
//! cargo bench -p tokenscan-record --bench recorder -- --rates 100000,200000 --seconds 10
//! cargo bench -p tokenscan-record --bench recorder -- --workers 2   # the rate split over 2 processes
//! cargo bench -p tokenscan-record --bench recorder -- --ring-buffer 1M  # a smaller kernel buffer
//! cargo bench -p tokenscan-record --bench recorder -- --forks 1000  # plus 1000 fork+exit/s beside the opens
//! ```
//!
//! It reports, as a Markdown table for BENCHMARKS.md:
//! * the cost of one `open()` + `close()` without and with the recorder
//!   (a tight loop, best of 3), hence the cost the recorder adds per event;
//! * the average run time of each of the recorder's eBPF programs, from one
//!   more such loop with `kernel.bpf_stats_enabled` switched on (and restored
//!   after; the statistics slow the programs down, so the timed loops run
//!   without them);
//! * for each target rate, sustained for `--seconds`: the rate reached, the
//!   workload's events found in the capture, kernel records lost, and the
//!   recorder's CPU (user+system, % of one core) and peak RSS (VmHWM).
//!
//! * the user-space side alone: synthetic open records (entry + exit, realistic
//!   paths) decoded, joined, turned into Arrow and written to Parquet on one
//!   thread, in events per CPU-second: the ceiling of what the recorder can
//!   drain, independent of the kernel and of other load on the machine.
//!
//! The workload runs in a child process (this binary re-executed with
//! `--workload`), opening and closing one file in a loop paced in 1 ms slices.
//! With `--forks N`, another child (`--fork-workload`) forks N processes a
//! second during each sustained run, each exiting at once without exec (a
//! fork and an exit event each, read and assembled by the recorder); the
//! table then also shows the forks and exits the recorder counted.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokenscan_core::capture::{expand_paths, Capture, Column, Projection, DEFAULT_BATCH_SIZE};
use tokenscan_record::assemble::Assembler;
use tokenscan_record::event::{BatchBuilder, Event};
use tokenscan_record::output::{CaptureWriter, Layout, RotatePolicy};
use tokenscan_record::record::{encode, Flags, Kind, RawHeader, Syscall};

const RECORDER: &str = env!("CARGO_BIN_EXE_tokenscan-record");

fn open_close(path: &CString) {
    // SAFETY: path is a valid NUL-terminated string; the fd is closed right away.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd >= 0 {
            libc::close(fd);
        }
    }
}

/// The child: `--workload PATH RATE SECONDS` (RATE 0: as fast as possible for
/// COUNT = SECONDS opens). Prints `opens elapsed_ns cpu_ns` (its own CPU time,
/// user + system, which includes the eBPF programs run in its syscalls).
fn workload(args: &[String]) {
    let path = CString::new(args[0].as_str()).unwrap();
    let rate: u64 = args[1].parse().unwrap();
    let amount: u64 = args[2].parse().unwrap();
    let start = Instant::now();
    let mut done = 0u64;
    if rate == 0 {
        for _ in 0..amount {
            open_close(&path);
        }
        done = amount;
    } else {
        let total = rate * amount;
        let per_ms = rate / 1000;
        let mut slice = 0u64;
        while done < total {
            for _ in 0..per_ms.min(total - done) {
                open_close(&path);
            }
            done += per_ms.min(total - done);
            slice += 1;
            let due = Duration::from_millis(slice);
            let el = start.elapsed();
            if el < due {
                std::thread::sleep(due - el);
            }
        }
    }
    println!("{done} {} {}", start.elapsed().as_nanos(), cpu_ns());
}

/// The fork child: `--fork-workload RATE SECONDS`: RATE forks a second, each
/// child exiting at once; prints the number of forks.
fn fork_workload(args: &[String]) {
    let rate: u64 = args[0].parse().unwrap();
    let secs: u64 = args[1].parse().unwrap();
    let start = Instant::now();
    let total = rate * secs;
    let mut done = 0u64;
    let per_ms = (rate / 1000).max(1);
    let mut slice = 0u64;
    while done < total {
        for _ in 0..per_ms.min(total - done) {
            // SAFETY: the child only calls _exit (async-signal-safe); the parent reaps it.
            unsafe {
                let pid = libc::fork();
                if pid == 0 {
                    libc::_exit(0);
                }
                if pid > 0 {
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
            }
            done += 1;
        }
        slice += if rate >= 1000 { 1 } else { 1000 / rate.max(1) };
        let due = Duration::from_millis(slice);
        let el = start.elapsed();
        if el < due {
            std::thread::sleep(due - el);
        }
    }
    println!("{done}");
}

fn cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// (opens, wall time, CPU time) of one workload run.
fn run_workload(file: &Path, rate: u64, amount: u64) -> (u64, Duration, Duration) {
    run_workers(file, rate, amount, 1)
}

/// The workload split over `workers` processes (the rate shared between
/// them): total opens, the slowest one's wall time, total CPU time.
fn run_workers(file: &Path, rate: u64, amount: u64, workers: u64) -> (u64, Duration, Duration) {
    let children: Vec<Child> = (0..workers)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--workload", file.to_str().unwrap(), &(rate / workers).to_string(), &amount.to_string()])
                .stdout(Stdio::piped())
                .spawn()
                .expect("run the workload")
        })
        .collect();
    let (mut n, mut wall, mut cpu) = (0, Duration::ZERO, Duration::ZERO);
    for c in children {
        let out = c.wait_with_output().expect("run the workload");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text.split_whitespace();
        n += it.next().and_then(|v| v.parse::<u64>().ok()).expect("workload output");
        let ns: u64 = it.next().and_then(|v| v.parse().ok()).expect("workload output");
        let c: u64 = it.next().and_then(|v| v.parse().ok()).expect("workload output");
        wall = wall.max(Duration::from_nanos(ns));
        cpu += Duration::from_nanos(c);
    }
    (n, wall, cpu)
}

struct Recorder {
    child: Child,
    log: PathBuf,
}

impl Recorder {
    fn start(out: &Path, log: PathBuf, ring_buffer: &str) -> Recorder {
        let err = std::fs::File::create(&log).unwrap();
        let child = Command::new(RECORDER)
            .args(["-o", out.to_str().unwrap(), "--force", "--ring-buffer-size", ring_buffer])
            .stdin(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start tokenscan-record");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::fs::read_to_string(&log).unwrap_or_default().contains("\nrecording ") {
            assert!(Instant::now() < deadline, "the recorder did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Recorder { child, log }
    }

    fn proc_stat(&self) -> (u64, u64) {
        // (utime+stime in clock ticks, VmHWM in KiB)
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit(')').next().unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let hwm = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        (ticks, hwm)
    }

    fn stop(mut self) -> String {
        // SAFETY: kill has no memory arguments; the pid is our child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// (forks, exits) from the recorder's summary line `processes N forks, M exits, ...`.
fn forks_exits_of(log: &str) -> (u64, u64) {
    let line = log.lines().find_map(|l| l.trim_start().strip_prefix("processes")).unwrap_or("");
    let nums: Vec<u64> =
        line.split(|c: char| !c.is_ascii_digit() && c != ',').filter_map(|v| v.replace(',', "").parse().ok()).collect();
    (nums.first().copied().unwrap_or(0), nums.get(1).copied().unwrap_or(0))
}

fn lost_of(log: &str) -> u64 {
    log.lines()
        .find_map(|l| l.trim_start().strip_prefix("lost"))
        .and_then(|v| v.split_whitespace().next())
        .map(|v| v.replace(',', ""))
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Events of the workload in the capture: opens of `file`.
fn workload_events(out: &Path, file: &Path) -> u64 {
    let want = file.to_str().unwrap();
    let mut n = 0;
    for p in expand_paths(&[out]).unwrap() {
        let c = Capture::open(&p).unwrap();
        let proj: Projection = [Column::Path].into_iter().collect();
        for b in c.batches(proj, DEFAULT_BATCH_SIZE).unwrap() {
            let b = b.unwrap();
            n += (0..b.len()).filter(|&i| b.str_value(Column::Path, i) == Some(want)).count() as u64;
        }
    }
    n
}

/// Best of 3: (wall ns per op, CPU ns per op).
fn ns_per_op(file: &Path, count: u64) -> (f64, f64) {
    (0..3)
        .map(|_| {
            let (n, wall, cpu) = run_workload(file, 0, count);
            (wall.as_nanos() as f64 / n as f64, cpu.as_nanos() as f64 / n as f64)
        })
        .fold((f64::INFINITY, f64::INFINITY), |a, b| (a.0.min(b.0), a.1.min(b.1)))
}

/// Events per CPU-second of the user-space pipeline on synthetic open records.
fn user_space_rate(dir: &Path, events: u64) -> (f64, u64) {
    let comm = |s: &str| {
        let mut c = [0i8; 16];
        for (i, b) in s.bytes().take(15).enumerate() {
            c[i] = b as i8;
        }
        c
    };
    let paths: Vec<String> = (0..64)
        .map(|i| format!("/usr/lib/x86_64-linux-gnu/python3.11/lib-dynload/module_{i}.cpython-311-x86_64-linux-gnu.so"))
        .collect();
    let mut records = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let tid = 1000 + i as u32;
        let enter = RawHeader {
            kind: Kind::REC_OPEN_ENTER,
            syscall: Syscall::SC_OPENAT,
            pid: tid,
            tid,
            flags: 0o2000000,
            rflags: Flags::RF_REQ_FLAGS.0 | Flags::RF_REQ.0,
            req_len: p.len() as u16,
            ..Default::default()
        };
        let exit = RawHeader {
            kind: Kind::REC_OPEN_EXIT,
            syscall: Syscall::SC_OPENAT,
            pid: tid,
            tid,
            ppid: 1,
            ret: 3,
            flags: 0o100000,
            cgroup_id: 1,
            rflags: Flags::RF_PATH.0 | Flags::RF_FFLAGS.0 | Flags::RF_EXE.0,
            path_len: p.len() as u16,
            exe_len: 19,
            comm: comm("python3"),
            ..Default::default()
        };
        records.push((encode(&enter, &[p.as_bytes()]), encode(&exit, &[p.as_bytes(), b"/usr/bin/python3.11"])));
    }
    let out = dir.join("synthetic.parquet");
    let layout = Layout::plan(&out, false, true).unwrap();
    let mut writer = CaptureWriter::create(layout, RotatePolicy::default(), 131_072, Default::default(), true).unwrap();
    let mut assembler = Assembler::new(0);
    let mut batch = BatchBuilder::new("bench", 8192);
    let cpu0 = cpu_ns();
    for n in 0..events {
        let (enter, exit) = &records[(n % 64) as usize];
        let mut push = |e: &Event<'_>| batch.push(e, None);
        assembler.handle(enter, &mut push);
        assembler.handle(exit, &mut push);
        if batch.is_full() {
            writer.write(&batch.finish(), 0).unwrap();
        }
    }
    writer.write(&batch.finish(), 0).unwrap();
    let files = writer.finish(0).unwrap();
    let secs = (cpu_ns() - cpu0) as f64 / 1e9;
    (events as f64 / secs, files[0].bytes)
}

/// Ids of the eBPF programs loaded on the machine.
fn prog_ids() -> std::collections::HashSet<u32> {
    libbpf_rs::query::ProgInfoIter::default().map(|p| p.id).collect()
}

/// (name, runs, average ns per run) of the programs not in `before` that ran,
/// busiest first. Needs `kernel.bpf_stats_enabled=1` while they run.
fn prog_stats(before: &std::collections::HashSet<u32>) -> Vec<(String, u64, f64)> {
    let mut v: Vec<_> = libbpf_rs::query::ProgInfoIter::default()
        .filter(|p| !before.contains(&p.id) && p.run_cnt > 0)
        .map(|p| (p.name.to_string_lossy().into_owned(), p.run_cnt, p.run_time_ns as f64 / p.run_cnt as f64))
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// Switches `kernel.bpf_stats_enabled` on; puts the old value back on drop.
struct BpfStats(Option<String>);

impl BpfStats {
    const PATH: &'static str = "/proc/sys/kernel/bpf_stats_enabled";

    fn enable() -> BpfStats {
        let old = std::fs::read_to_string(Self::PATH).ok();
        if old.is_some() && std::fs::write(Self::PATH, "1").is_err() {
            return BpfStats(None);
        }
        BpfStats(old)
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            let _ = std::fs::write(Self::PATH, old.trim());
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--workload") {
        return workload(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("--fork-workload") {
        return fork_workload(&args[1..]);
    }
    // cargo bench passes --bench; accept our own flags and ignore the rest.
    let mut rates: Vec<u64> = vec![50_000, 100_000, 200_000, 300_000, 400_000];
    let mut seconds = 10u64;
    let mut workers = 1u64;
    let mut ring_buffer = "16M".to_string();
    let mut forks = 0u64;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rates" => {
                rates = it.next().expect("--rates LIST").split(',').map(|r| r.parse().expect("rate")).collect()
            }
            "--seconds" => seconds = it.next().expect("--seconds N").parse().expect("seconds"),
            "--workers" => workers = it.next().expect("--workers N").parse().expect("workers"),
            "--ring-buffer" => ring_buffer = it.next().expect("--ring-buffer SIZE").clone(),
            "--forks" => forks = it.next().expect("--forks N").parse().expect("forks per second"),
            _ => {}
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("the recorder benchmark needs root (it runs tokenscan-record)");
        std::process::exit(2);
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bench-target");
    std::fs::write(&file, b"x").unwrap();
    let out = tmp.path().join("bench.parquet");
    // SAFETY: sysconf has no memory arguments.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;

    let (_, release) = uname();
    println!("machine: {} CPUs, kernel {release}", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));
    println!("load average before: {}", loadavg());
    println!();

    let synthetic = 2_000_000;
    let (rate, bytes) = user_space_rate(tmp.path(), synthetic);
    println!(
        "user space alone (decode, join, Arrow, Parquet; one thread): {rate:.0} events per CPU-second \
         ({synthetic} synthetic opens, {:.1} bytes per event on disk)",
        bytes as f64 / synthetic as f64
    );
    println!();

    let count = 2_000_000;
    let (base_wall, base_cpu) = ns_per_op(&file, count);
    let before = prog_ids();
    let rec = Recorder::start(&out, tmp.path().join("cost.log"), &ring_buffer);
    let (with_wall, with_cpu) = ns_per_op(&file, count);
    // The statistics cost time themselves: one more loop, after the timed ones.
    let stats = BpfStats::enable();
    run_workload(&file, 0, count);
    let progs = prog_stats(&before);
    drop(stats);
    let log = rec.stop();
    println!("open()+close() in a tight loop, best of 3 x {count} (wall / CPU of the workload):");
    println!("- without the recorder: {base_wall:.0} ns / {base_cpu:.0} ns");
    println!("- with the recorder:    {with_wall:.0} ns / {with_cpu:.0} ns (lost {})", lost_of(&log));
    println!("- added per event:      {:.0} ns / {:.0} ns", with_wall - base_wall, with_cpu - base_cpu);
    println!();
    if progs.is_empty() {
        println!("(no eBPF program statistics: kernel.bpf_stats_enabled could not be switched on)");
    } else {
        println!("eBPF programs, one more loop of {count} with kernel.bpf_stats_enabled=1:");
        println!();
        println!("| program | runs | average per run |");
        println!("|---|---:|---:|");
        for (name, runs, ns) in progs {
            println!("| `{name}` | {runs} | {ns:.0} ns |");
        }
    }
    println!();

    println!(
        "sustained rates, {workers} workload process(es), {seconds} s each, ring buffer {ring_buffer}, \
         {forks} forks/s beside:"
    );
    println!();
    println!("| target rate (opens/s) | reached | workload events in capture | lost records | recorder CPU (% of one core) | recorder peak RSS | forks done / forks, exits recorded |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for rate in rates {
        let rec = Recorder::start(&out, tmp.path().join(format!("rate-{rate}.log")), &ring_buffer);
        let (t0, _) = rec.proc_stat();
        let w0 = Instant::now();
        let forker = (forks > 0).then(|| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--fork-workload", &forks.to_string(), &seconds.to_string()])
                .stdout(Stdio::piped())
                .spawn()
                .expect("run the fork workload")
        });
        let (n, d, _) = run_workers(&file, rate, seconds, workers);
        let forked: u64 = forker
            .map(|c| String::from_utf8_lossy(&c.wait_with_output().unwrap().stdout).trim().parse().unwrap_or(0))
            .unwrap_or(0);
        let wall = w0.elapsed();
        let (t1, hwm) = rec.proc_stat();
        let log = rec.stop();
        let found = workload_events(&out, &file);
        let cpu = (t1 - t0) as f64 / hz / wall.as_secs_f64() * 100.0;
        let (fk, ex) = forks_exits_of(&log);
        println!(
            "| {rate} | {:.0} | {found} / {n} | {} | {cpu:.0}% | {:.1} MiB | {forked} / {fk}, {ex} |",
            n as f64 / d.as_secs_f64(),
            lost_of(&log),
            hwm as f64 / 1024.0
        );
    }
    println!();
    println!("load average after: {}", loadavg());
}

fn uname() -> (String, String) {
    // SAFETY: utsname is plain data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is a valid, writable utsname.
    unsafe { libc::uname(&mut u) };
    let f = |a: &[libc::c_char]| {
        // SAFETY: uname NUL-terminates its fields.
        unsafe { std::ffi::CStr::from_ptr(a.as_ptr()) }.to_string_lossy().into_owned()
    };
    (f(&u.nodename), f(&u.release))
}
