//! Where the capture goes: one Parquet file, or a directory of rotating segments.
//!
//! * Single file (`-o capture.parquet`): written in place, created mode 0600;
//!   the footer is written when recording stops. A crash or SIGKILL leaves a
//!   file without footer, which readers reject as truncated: use rotation for
//!   anything long.
//! * Rotation (`--rotate-size` / `--rotate-seconds`): `-o capture.parquet`
//!   becomes the directory `capture/` (mode 0700; any other name is used as
//!   the directory name as is) holding `segment-000001.parquet`,
//!   `segment-000002.parquet`, ... Each segment is written as
//!   `segment-NNNNNN.parquet.partial` and renamed when closed, so a crash
//!   loses at most the segment being written and the directory always replays
//!   (`tokenscan replay capture/` reads `*.parquet` only).
//!
//! Nothing existing is ever replaced without `--force`.

use std::collections::BTreeMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{BufWriter, ErrorKind};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use arrow_array::RecordBatch;
use tokenscan_core::capture::{ParquetCaptureWriter, WriterOptions};

/// Metadata key: lost kernel records while this file was written.
pub const LOST_EVENTS_KEY: &str = "tokenscan.lost_events";

/// Where segments go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// One file.
    Single(PathBuf),
    /// A directory of segments.
    Rotating(PathBuf),
}

impl Layout {
    /// Decides the layout for `-o output`, refusing to replace anything
    /// without `force`. Creates nothing.
    pub fn plan(output: &Path, rotating: bool, force: bool) -> Result<Layout> {
        if !rotating {
            if output.is_dir() {
                bail!(
                    "{} is a directory: give a file name (or --rotate-size/--rotate-seconds to write segments into a directory)",
                    output.display()
                );
            }
            if output.exists() && !force {
                bail!("{} already exists (use --force to replace it)", output.display());
            }
            return Ok(Layout::Single(output.to_owned()));
        }
        let dir = if output.extension().is_some_and(|e| e == "parquet") {
            output.with_extension("")
        } else {
            output.to_owned()
        };
        if dir.exists() {
            if !dir.is_dir() {
                bail!("{} exists and is not a directory (use another -o)", dir.display());
            }
            let existing = segment_files(&dir)?;
            if !existing.is_empty() && !force {
                bail!(
                    "{} already holds {} capture segment(s) (use --force to replace them)",
                    dir.display(),
                    existing.len()
                );
            }
        }
        Ok(Layout::Rotating(dir))
    }

    /// The path shown to the user.
    pub fn display_path(&self) -> &Path {
        match self {
            Layout::Single(p) | Layout::Rotating(p) => p,
        }
    }
}

/// Segment files (finished or partial) in a directory.
fn segment_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let p = entry.with_context(|| format!("cannot list {}", dir.display()))?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("segment-") && (name.ends_with(".parquet") || name.ends_with(".parquet.partial")) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// When to start a new segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotatePolicy {
    /// Size (estimated encoded bytes) at which a segment is closed.
    pub max_bytes: Option<u64>,
    /// Age at which a segment is closed.
    pub max_age: Option<Duration>,
}

/// A closed output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// Its path.
    pub path: PathBuf,
    /// Events in it.
    pub rows: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// Kernel records lost while it was being written.
    pub lost: u64,
}

struct Segment {
    writer: ParquetCaptureWriter<BufWriter<File>>,
    writing: PathBuf,
    final_path: PathBuf,
    opened: Instant,
    lost_at_open: u64,
}

/// Writes record batches to the layout, rotating segments per the policy.
pub struct CaptureWriter {
    layout: Layout,
    policy: RotatePolicy,
    row_group_rows: usize,
    metadata: BTreeMap<String, String>,
    force: bool,
    segment: Option<Segment>,
    next_index: u32,
    written: Vec<WrittenFile>,
}

impl CaptureWriter {
    /// Creates the output (the file, or the directory and its first segment).
    /// `metadata` goes into every file, with `tokenscan.start_time`,
    /// `tokenscan.stop_time`, `tokenscan.lost_events` (and, with rotation,
    /// `tokenscan.segment`) added per file.
    pub fn create(
        layout: Layout,
        policy: RotatePolicy,
        row_group_rows: usize,
        metadata: BTreeMap<String, String>,
        force: bool,
    ) -> Result<CaptureWriter> {
        if let Layout::Rotating(dir) = &layout {
            match DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists && dir.is_dir() => {
                    if force {
                        for f in segment_files(dir)? {
                            std::fs::remove_file(&f).with_context(|| format!("cannot remove {}", f.display()))?;
                        }
                    }
                }
                Err(e) => return Err(e).with_context(|| format!("cannot create directory {}", dir.display())),
            }
        }
        let mut w = CaptureWriter {
            layout,
            policy,
            row_group_rows,
            metadata,
            force,
            segment: None,
            next_index: 1,
            written: Vec::new(),
        };
        w.open_segment(0)?;
        Ok(w)
    }

    fn open_segment(&mut self, lost_now: u64) -> Result<()> {
        let mut metadata = self.metadata.clone();
        metadata.insert("tokenscan.start_time".into(), now_rfc3339());
        let (writing, final_path) = match &self.layout {
            Layout::Single(p) => (p.clone(), p.clone()),
            Layout::Rotating(dir) => {
                let name = format!("segment-{:06}.parquet", self.next_index);
                metadata.insert("tokenscan.segment".into(), self.next_index.to_string());
                (dir.join(format!("{name}.partial")), dir.join(name))
            }
        };
        let file = create_private(&writing, self.force)?;
        let options = WriterOptions { row_group_rows: self.row_group_rows, metadata, ..Default::default() };
        let writer = ParquetCaptureWriter::new(BufWriter::with_capacity(1 << 20, file), &writing, options)
            .with_context(|| format!("cannot start the capture in {}", writing.display()))?;
        self.next_index += 1;
        self.segment = Some(Segment { writer, writing, final_path, opened: Instant::now(), lost_at_open: lost_now });
        Ok(())
    }

    /// Appends a batch; `lost_now` is the kernel's lost-record counter now.
    pub fn write(&mut self, rb: &RecordBatch, lost_now: u64) -> Result<()> {
        if self.segment.is_none() {
            self.open_segment(lost_now)?;
        }
        let seg = self.segment.as_mut().expect("a segment was just opened");
        seg.writer.write_record_batch(rb).with_context(|| format!("cannot write to {}", seg.writing.display()))?;
        self.maybe_rotate(lost_now)
    }

    /// Closes the current segment if the policy says so (also called without data).
    pub fn maybe_rotate(&mut self, lost_now: u64) -> Result<()> {
        let Some(seg) = &self.segment else { return Ok(()) };
        if !matches!(self.layout, Layout::Rotating(_)) {
            return Ok(());
        }
        let by_size = self.policy.max_bytes.is_some_and(|m| seg.writer.size_estimate() >= m);
        let by_age = self.policy.max_age.is_some_and(|a| seg.opened.elapsed() >= a);
        if by_size || by_age {
            self.close_segment(lost_now)?;
        }
        Ok(())
    }

    fn close_segment(&mut self, lost_now: u64) -> Result<()> {
        let Some(mut seg) = self.segment.take() else { return Ok(()) };
        let lost = lost_now.saturating_sub(seg.lost_at_open);
        seg.writer.append_metadata("tokenscan.stop_time", now_rfc3339());
        seg.writer.append_metadata(LOST_EVENTS_KEY, lost.to_string());
        let rows = seg.writer.rows();
        let buf = seg.writer.close().with_context(|| format!("cannot finish {}", seg.writing.display()))?;
        let file = buf
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", seg.writing.display()))?;
        file.sync_all().with_context(|| format!("cannot sync {}", seg.writing.display()))?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        drop(file);
        if seg.writing != seg.final_path {
            std::fs::rename(&seg.writing, &seg.final_path)
                .with_context(|| format!("cannot rename {} to {}", seg.writing.display(), seg.final_path.display()))?;
        }
        self.written.push(WrittenFile { path: seg.final_path, rows, bytes, lost });
        Ok(())
    }

    /// Where the capture goes.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Files closed so far.
    pub fn written(&self) -> &[WrittenFile] {
        &self.written
    }

    /// Closes the last segment and returns every file written.
    pub fn finish(mut self, lost_now: u64) -> Result<Vec<WrittenFile>> {
        self.close_segment(lost_now)?;
        Ok(self.written)
    }
}

/// Creates `path` mode 0600; an existing file is an error unless `force`.
fn create_private(path: &Path, force: bool) -> Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).mode(0o600);
    if force {
        // Replace: remove first so the new file gets our mode and owner.
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot replace {}", path.display())),
        }
    }
    o.create_new(true);
    o.open(path).map_err(|e| {
        if e.kind() == ErrorKind::AlreadyExists {
            anyhow::anyhow!("{} already exists (use --force to replace it)", path.display())
        } else {
            anyhow::Error::new(e).context(format!("cannot create {}", path.display()))
        }
    })
}

/// Now, RFC 3339 with nanoseconds, UTC.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use tokenscan_core::capture::{expand_paths, Capture};

    use super::*;
    use crate::event::{BatchBuilder, Event};

    fn batch(n: usize) -> RecordBatch {
        let mut b = BatchBuilder::new("h", n);
        for i in 0..n {
            let e = Event {
                time_ns: i as i64,
                boot_ns: i as u64,
                kind: tokenscan_core::capture::EventKind::Open,
                pid: 1,
                tid: 1,
                ppid: 0,
                uid: 0,
                gid: 0,
                comm: b"x",
                exe: None,
                args: None,
                path: None,
                requested_path: None,
                flags: None,
                result: Some(-2),
                tty: None,
                cgroup_id: 1,
                cgroup_path: None,
                sid: None,
                pgid: None,
                process_start_ns: None,
                parent_start_ns: None,
                cwd: None,
                old_path: None,
                thread: false,
            };
            b.push(&e, None);
        }
        b.finish()
    }

    fn meta() -> BTreeMap<String, String> {
        BTreeMap::from([("tokenscan.recorder_version".to_string(), "test".to_string())])
    }

    #[test]
    fn single_file_is_private_and_never_replaced_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.parquet");
        let layout = Layout::plan(&p, false, false).unwrap();
        let mut w = CaptureWriter::create(layout, RotatePolicy::default(), 1000, meta(), false).unwrap();
        w.write(&batch(3), 0).unwrap();
        let files = w.finish(2).unwrap();
        assert_eq!(files, [WrittenFile { path: p.clone(), rows: 3, bytes: files[0].bytes, lost: 2 }]);
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        let c = Capture::open(&p).unwrap();
        assert_eq!(c.metadata().get(LOST_EVENTS_KEY).map(String::as_str), Some("2"));
        assert_eq!(c.metadata().get("tokenscan.recorder_version").map(String::as_str), Some("test"));
        assert!(c.metadata().contains_key("tokenscan.stop_time"));
        assert_eq!(c.metadata().get("tokenscan.capture_version").map(String::as_str), Some("3"));

        let e = Layout::plan(&p, false, false).unwrap_err().to_string();
        assert!(e.contains("already exists (use --force"), "{e}");
        let layout = Layout::plan(&p, false, true).unwrap();
        CaptureWriter::create(layout, RotatePolicy::default(), 1000, meta(), true).unwrap().finish(0).unwrap();
        assert_eq!(Capture::open(&p).unwrap().num_rows(), Some(0));
    }

    #[test]
    fn rotation_writes_numbered_segments_into_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cap.parquet");
        let layout = Layout::plan(&p, true, false).unwrap();
        assert_eq!(layout, Layout::Rotating(dir.path().join("cap")));
        let policy = RotatePolicy { max_bytes: Some(1), max_age: None };
        let mut w = CaptureWriter::create(layout.clone(), policy, 1000, meta(), false).unwrap();
        assert!(dir.path().join("cap/segment-000001.parquet.partial").exists());
        w.write(&batch(2), 0).unwrap(); // closes segment 1 (size >= 1 byte)
        assert!(dir.path().join("cap/segment-000001.parquet").exists());
        w.write(&batch(3), 5).unwrap(); // opens and closes segment 2
        w.maybe_rotate(5).unwrap();
        let files = w.finish(7).unwrap();
        assert_eq!(files.iter().map(|f| f.rows).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(files.iter().map(|f| f.lost).collect::<Vec<_>>(), [0, 0]);
        let mode = std::fs::metadata(dir.path().join("cap")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let paths = expand_paths(&[dir.path().join("cap")]).unwrap();
        assert_eq!(paths.len(), 2);
        let seg2 = Capture::open(&paths[1]).unwrap();
        assert_eq!(seg2.metadata().get("tokenscan.segment").map(String::as_str), Some("2"));

        let e = Layout::plan(&p, true, false).unwrap_err().to_string();
        assert!(e.contains("already holds 2 capture segment(s)"), "{e}");
        let w = CaptureWriter::create(Layout::plan(&p, true, true).unwrap(), policy, 1000, meta(), true).unwrap();
        let files = w.finish(0).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(expand_paths(&[dir.path().join("cap")]).unwrap().len(), 1, "--force removed the old segments");
    }

    #[test]
    fn a_directory_is_not_a_single_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = Layout::plan(dir.path(), false, false).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
    }
}
