//! Command-line flags of `tokenscan-record` and their value parsers.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// The version with the commit and build options (`--version`), set by `build.rs`.
pub const VERSION: &str = env!("TOKENSCAN_VERSION_LONG");

/// Record every file open and process exec on this node into a tokenscan capture.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "tokenscan-record",
    version = VERSION,
    about = "Record every file open and process exec on this node into a tokenscan capture (eBPF, run as root)",
    long_about = "Record every file open (open, openat, openat2, creat, open_by_handle_at) and every \
                  process exec (execve, execveat) on this node into a tokenscan capture, using eBPF \
                  tracepoints. Stop with Ctrl-C (SIGINT) or SIGTERM, or give --duration; the capture \
                  is flushed and closed either way. Replay it with `tokenscan replay`."
)]
pub struct Args {
    /// Output capture: a .parquet file, or with --rotate-size/--rotate-seconds a directory of segments.
    ///
    /// With rotation, `-o capture.parquet` writes `capture/segment-000001.parquet`,
    /// `capture/segment-000002.parquet`, ... (the segment being written is named
    /// `*.parquet.partial` until it is closed). Files are created mode 0600.
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    pub output: PathBuf,

    /// Stop after this long (e.g. 30s, 5m, 1h30m; a bare number is seconds).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Record only processes in containers (cgroups named like a container runtime's).
    ///
    /// Host processes are filtered in the kernel once user space has classified
    /// their cgroup; their first events are dropped in user space.
    #[arg(long)]
    pub containers_only: bool,

    /// Start a new segment when the current one reaches this size (e.g. 256M, 1G).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub rotate_size: Option<u64>,

    /// Start a new segment every N seconds.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub rotate_seconds: Option<u64>,

    /// Replace an existing output file (or the segments in an existing output directory).
    #[arg(long)]
    pub force: bool,

    /// Size of the kernel ring buffer (rounded up to a power of two, at least 1M).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "16M")]
    pub ring_buffer_size: u64,

    /// Rows per Parquet row group.
    #[arg(long, value_name = "N", default_value_t = 131_072, value_parser = clap::value_parser!(u64).range(1_000..))]
    pub row_group_rows: u64,

    /// The node name to record as every event's host (default: this machine's host name).
    ///
    /// In a pod the host name is the pod's, not the node's: pass the node's
    /// name, e.g. from the downward API (`--hostname=$(NODE_NAME)` with
    /// `NODE_NAME` from `spec.nodeName`, as deploy/tokenscan-recorder.yaml does).
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,

    /// No live status line (the attach list and the summary are still printed).
    #[arg(short, long)]
    pub quiet: bool,

    /// Print libbpf's messages (the verifier log when a program is refused).
    #[arg(short, long)]
    pub verbose: bool,
}

impl Args {
    /// Whether the output is a directory of rotating segments.
    pub fn rotating(&self) -> bool {
        self.rotate_size.is_some() || self.rotate_seconds.is_some()
    }
}

/// Parses `30s`, `5m`, `1h30m`, `2h`, `1d`, `500ms` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid duration {s:?}: expected a number before {rest:?} (e.g. 30s, 5m, 1h30m)"));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| format!("invalid duration {s:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86_400)),
            "" => return Err(format!("invalid duration {s:?}: a unit (ms, s, m, h, d) must follow {n}")),
            other => return Err(format!("invalid duration {s:?}: unknown unit {other:?} (use ms, s, m, h, d)")),
        };
        total = total.saturating_add(part);
    }
    if total.is_zero() {
        return Err(format!("invalid duration {s:?}: must be longer than zero"));
    }
    Ok(total)
}

/// Parses a byte size: `1048576`, `512k`, `64M`, `1G`, `2GiB`, `100MB` (binary multiples throughout).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if digits == 0 {
        return Err(format!("invalid size {s:?}: expected a number, e.g. 64M or 1G"));
    }
    let n: u64 = t[..digits].parse().map_err(|_| format!("invalid size {s:?}: number too large"))?;
    let unit = t[digits..].trim().to_ascii_lowercase();
    let mult: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("invalid size {s:?}: unknown unit {other:?} (use k, M, G, T)")),
    };
    let v = n.checked_mul(mult).ok_or_else(|| format!("invalid size {s:?}: too large"))?;
    if v == 0 {
        return Err(format!("invalid size {s:?}: must be larger than zero"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("m5").unwrap_err().contains("expected a number"));
        assert!(parse_duration("0s").unwrap_err().contains("longer than zero"));
        assert!(parse_duration("1h30").unwrap_err().contains("a unit"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("100MB").unwrap(), 100 << 20);
        assert!(parse_size("M").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("3X").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn flags_parse() {
        let a = Args::try_parse_from(["tokenscan-record", "-o", "c.parquet"]).unwrap();
        assert!(!a.rotating() && !a.force && !a.containers_only && a.duration.is_none());
        assert_eq!(a.ring_buffer_size, 16 << 20);
        assert_eq!(a.row_group_rows, 131_072);
        let a = Args::try_parse_from([
            "tokenscan-record",
            "-o",
            "c.parquet",
            "--duration",
            "5m",
            "--containers-only",
            "--rotate-size",
            "256M",
            "--rotate-seconds",
            "60",
            "--force",
        ])
        .unwrap();
        assert!(a.rotating() && a.force && a.containers_only);
        assert_eq!(a.hostname, None);
        assert_eq!(a.duration, Some(Duration::from_secs(300)));
        assert_eq!(a.rotate_size, Some(256 << 20));
        assert_eq!(a.rotate_seconds, Some(60));
        let a = Args::try_parse_from(["tokenscan-record", "-o", "c.parquet", "--hostname", "node-7"]).unwrap();
        assert_eq!(a.hostname.as_deref(), Some("node-7"));
        assert!(Args::try_parse_from(["tokenscan-record"]).is_err(), "-o is required");
        assert!(Args::try_parse_from(["tokenscan-record", "-o", "x", "--rotate-seconds", "0"]).is_err());
    }
}
