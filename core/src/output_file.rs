//! The output-file policy, shared by the CLI and the Python module: never
//! replace an existing file unless forced, never write onto one of the inputs,
//! never leave a half-written file behind, and take a capture's format from
//! the output's extension unless one is named.
//!
//! The rest of the core writes into any `std::io::Write` and never decides
//! where output goes; the callers apply this policy to the files they create.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::capture::{CaptureFormat, NDJSON_EXTENSIONS};
use crate::{Error, Result};

/// A capture format by name, case-insensitively: `parquet`, or `ndjson` and its
/// other extensions (`jsonl`).
pub fn capture_format_named(name: &str) -> Option<CaptureFormat> {
    let name = name.to_ascii_lowercase();
    if name == "parquet" {
        Some(CaptureFormat::Parquet)
    } else if NDJSON_EXTENSIONS.contains(&name.as_str()) {
        Some(CaptureFormat::Ndjson)
    } else {
        None
    }
}

/// The capture format an output file's extension asks for (`.parquet`,
/// `.ndjson`, `.jsonl`), if any.
pub fn capture_format_of(path: &Path) -> Option<CaptureFormat> {
    path.extension().and_then(|e| e.to_str()).and_then(capture_format_named)
}

/// Whether two paths name the same existing file (after following links).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Fails with [`Error::Output`] when `output` is one of `inputs` (a path that
/// does not exist yet is never an input). `what` names the inputs in the
/// message: "the output would overwrite the `what` INPUT".
pub fn refuse_inputs<P: AsRef<Path>>(output: &Path, inputs: &[P], what: &str) -> Result<()> {
    match inputs.iter().map(AsRef::as_ref).find(|input| same_file(output, input)) {
        Some(input) => Err(Error::Output {
            path: output.to_owned(),
            message: format!("the output would overwrite the {what} {}", input.display()),
        }),
        None => Ok(()),
    }
}

/// A file being written under the policy.
///
/// - A path that does not exist is created (never one that appeared
///   meanwhile, unless forced) and removed again when dropped before
///   [`OutputFile::keep`], so that an error or a panic halfway leaves nothing
///   that looks like a finished output.
/// - An existing regular file is an error unless forced; when forced, the
///   output is written to a temporary file beside it (same directory, so the
///   same file system) that [`OutputFile::keep`] renames over it. Until then
///   the old file is untouched: a run that fails keeps the previous output. A
///   symbolic link is followed: the file it names is replaced, the link stays.
///   The new file gets the old one's permission bits (and owner, when the
///   process may set it). In a directory where no file may be created, the
///   file is truncated and written in place instead.
/// - An existing file that is not a regular file (`/dev/null`, a named pipe,
///   a terminal) is written through, forced or not: nothing is replaced, and
///   it is never removed. `/dev/stdout`, `/dev/stderr`, `/dev/fd/N` and
///   `/proc/self/fd/N` are the process's own descriptor, whatever it is open
///   on: a file redirected with `>>` is appended to, not replaced.
/// - In a process that called [`remove_partial_outputs_on_signals`] (the
///   CLI), an interrupt (Ctrl-C), `SIGTERM` or `SIGHUP` before
///   [`OutputFile::keep`] removes what a failure would remove, then ends the
///   process as the signal would have.
#[derive(Debug)]
pub struct OutputFile {
    path: PathBuf,
    state: State,
    /// Where the file to remove on a signal is registered ([`PARTIAL`]).
    slot: Option<usize>,
}

#[derive(Debug)]
enum State {
    /// A file this run created at `path`: removed unless kept.
    Created,
    /// Written to `temp`, renamed over `target` when kept, removed otherwise.
    Replacing { temp: PathBuf, target: PathBuf },
    /// A pipe, a device, a terminal: left alone either way.
    Special,
    /// Kept (or, for `Replacing`, renamed into place).
    Done,
}

impl OutputFile {
    /// Opens `path` for writing under the policy. An existing regular file is
    /// an [`Error::Io`] of kind `AlreadyExists` unless `force`.
    pub fn create(path: &Path, force: bool) -> Result<(OutputFile, File)> {
        let io = |e| Error::io(path, e);
        if let Some(fd) = inherited_descriptor(path) {
            // Not the file the descriptor is open on, reopened (which would write from its
            // start, whatever the shell's `>>` asked): the descriptor itself.
            // SAFETY: fcntl on any number is sound; a closed one fails with EBADF.
            let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
            if copy < 0 {
                return Err(io(std::io::Error::last_os_error()));
            }
            // SAFETY: `copy` is a new descriptor that nothing else owns.
            let file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(copy) };
            return Ok((OutputFile { path: path.to_owned(), state: State::Special, slot: None }, file));
        }
        match std::fs::metadata(path) {
            Ok(meta) if !meta.is_file() => {
                // A directory fails here with the system's own message.
                let file = OpenOptions::new().write(true).open(path).map_err(io)?;
                Ok((OutputFile { path: path.to_owned(), state: State::Special, slot: None }, file))
            }
            // The system's own error (EEXIST), as `create_new` would give: callers tell it by kind or code.
            Ok(_) if !force => Err(io(std::io::Error::from_raw_os_error(libc::EEXIST))),
            Ok(meta) => {
                let target = std::fs::canonicalize(path).map_err(io)?;
                let (temp, file, slot) = match temp_beside(&target) {
                    Ok(created) => created,
                    // A directory where only the file may be written: replace it in
                    // place, as the shell's `>` does (a failure then loses the old file).
                    Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                        let open = || OpenOptions::new().write(true).truncate(true).open(path);
                        let (file, slot) = open_registered(path, open).map_err(io)?;
                        return Ok((OutputFile { path: path.to_owned(), state: State::Created, slot }, file));
                    }
                    Err(e) => return Err(io(e)),
                };
                let guard = OutputFile { path: path.to_owned(), state: State::Replacing { temp, target }, slot };
                // The replacement keeps the old file's permission bits and, when this
                // process may give them (root), its owner and group.
                use std::os::unix::fs::MetadataExt;
                let _ = std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()));
                file.set_permissions(meta.permissions()).map_err(io)?;
                Ok((guard, file))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut options = OpenOptions::new();
                options.write(true);
                if force {
                    // Also follows a dangling link, as the shell's `>` does.
                    options.create(true).truncate(true);
                } else {
                    options.create_new(true);
                }
                let (file, slot) = open_registered(path, || options.open(path)).map_err(io)?;
                Ok((OutputFile { path: path.to_owned(), state: State::Created, slot }, file))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The file's path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The output is complete (or worth keeping as it is): do not remove it,
    /// and when it replaces an existing file, move it into place now. Fails
    /// only if that rename fails (the old file is then left as it was).
    pub fn keep(mut self) -> Result<()> {
        // A replacement's hidden file leaves the signal handler's table only
        // once renamed (the handler's unlink of its old name then finds
        // nothing), so a signal in between leaves no hidden file behind.
        let kept = match std::mem::replace(&mut self.state, State::Done) {
            State::Replacing { temp, target } => std::fs::rename(&temp, &target).map_err(|e| {
                let _ = std::fs::remove_file(&temp);
                Error::io(&self.path, e)
            }),
            _ => Ok(()),
        };
        unregister_partial(self.slot.take());
        kept
    }
}

/// The descriptor of this process that `path` names: `/dev/stdout`,
/// `/dev/stderr`, `/dev/fd/N`, `/proc/self/fd/N`.
fn inherited_descriptor(path: &Path) -> Option<i32> {
    match path.to_str()? {
        "/dev/stdout" => Some(1),
        "/dev/stderr" => Some(2),
        p => p.strip_prefix("/dev/fd/").or_else(|| p.strip_prefix("/proc/self/fd/"))?.parse().ok(),
    }
}

/// Creates a new, empty file in `target`'s directory with a hidden name
/// derived from it, the process id and a counter; registered for removal on
/// a signal ([`open_registered`]).
fn temp_beside(target: &Path) -> std::io::Result<(PathBuf, File, Option<usize>)> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = target.parent().unwrap_or(Path::new("."));
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temp = dir.join(format!(".{name}.{}.{n}.tokenscan-partial", std::process::id()));
        match open_registered(&temp, || OpenOptions::new().write(true).create_new(true).open(&temp)) {
            Ok((file, slot)) => return Ok((temp, file, slot)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Opens (creates) `path` with `open`, registered for removal on a signal
/// before it exists, so that no signal finds it created and unregistered;
/// unregistered again when `open` fails. Returns the file and its slot.
fn open_registered(
    path: &Path,
    open: impl FnOnce() -> std::io::Result<File>,
) -> std::io::Result<(File, Option<usize>)> {
    let slot = register_partial(path);
    match open() {
        Ok(file) => Ok((file, slot)),
        Err(e) => {
            unregister_partial(slot);
            Err(e)
        }
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        // Removed before it leaves the signal handler's table, so that a
        // signal arriving in between still finds it.
        match &self.state {
            State::Created => {
                let _ = std::fs::remove_file(&self.path);
            }
            State::Replacing { temp, .. } => {
                let _ = std::fs::remove_file(temp);
            }
            State::Special | State::Done => {}
        }
        unregister_partial(self.slot.take());
    }
}

/// Files being written that a signal ending the process removes: the
/// paths, as C strings, of outputs not yet kept. A signal handler may only
/// read them (a load and `unlink`), so a path is never freed once
/// registered, only taken out of its slot (a few bytes per output, and a
/// process writes a handful). Beyond [`PARTIAL_SLOTS`] outputs at once, the
/// others are removed on failure only.
static PARTIAL: [std::sync::atomic::AtomicPtr<libc::c_char>; PARTIAL_SLOTS] =
    [const { std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()) }; PARTIAL_SLOTS];
const PARTIAL_SLOTS: usize = 16;

/// Registers `path` for removal on a signal; its slot, if one was free.
fn register_partial(path: &Path) -> Option<usize> {
    use std::os::unix::ffi::OsStrExt;
    use std::sync::atomic::Ordering;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let ptr = c.into_raw();
    let slot = PARTIAL
        .iter()
        .position(|s| s.compare_exchange(std::ptr::null_mut(), ptr, Ordering::SeqCst, Ordering::SeqCst).is_ok());
    if slot.is_none() {
        // SAFETY: `ptr` came from `into_raw` above and was published nowhere.
        drop(unsafe { std::ffi::CString::from_raw(ptr) });
    }
    slot
}

/// Takes a path out of its slot (the path itself is leaked, see [`PARTIAL`]).
fn unregister_partial(slot: Option<usize>) {
    if let Some(s) = slot {
        PARTIAL[s].store(std::ptr::null_mut(), std::sync::atomic::Ordering::SeqCst);
    }
}

/// Runs on SIGINT, SIGTERM and SIGHUP: removes the outputs not yet kept,
/// then ends the process by the same signal (its default action). Only
/// async-signal-safe calls: `unlink`, `signal`, `raise`.
extern "C" fn remove_partial_and_die(signal: libc::c_int) {
    for slot in &PARTIAL {
        let path = slot.load(std::sync::atomic::Ordering::SeqCst);
        if !path.is_null() {
            // SAFETY: a registered path is a NUL-terminated string never freed.
            unsafe { libc::unlink(path) };
        }
    }
    // SAFETY: restoring the default action and raising the signal again.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

/// Makes an interrupt (Ctrl-C), `SIGTERM` or `SIGHUP` remove the outputs not
/// yet complete before the process ends, as a failure would: a killed
/// `replay -o findings.ndjson` otherwise left a truncated file under the
/// name a finished one takes (or, replacing one, a hidden partial file
/// beside it). For programs that own their signals (the CLI); the Python
/// module leaves the interpreter's alone. Signals already ignored stay
/// ignored (`nohup`).
pub fn remove_partial_outputs_on_signals() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: sigaction with a handler that only makes async-signal-safe calls.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut old) != 0 || old.sa_sigaction == libc::SIG_IGN {
                continue;
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = remove_partial_and_die as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// Creates `path` under the policy and runs `write` on it; the file is removed
/// (or, when replacing one, the old file left as it was) if `write` fails.
pub fn write_new<T, E: From<Error>>(
    path: &Path,
    force: bool,
    write: impl FnOnce(File) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    let (guard, file) = OutputFile::create(path, force)?;
    let value = write(file)?;
    guard.keep()?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn an_existing_file_is_replaced_only_when_forced() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("out.ndjson");
        std::fs::write(&p, "old").expect("write");
        let err = OutputFile::create(&p, false).expect_err("exists");
        assert!(matches!(&err, Error::Io { error, .. } if error.kind() == std::io::ErrorKind::AlreadyExists));
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "old");
        write_new(&p, true, |mut f| f.write_all(b"new").map_err(|e| Error::io(&p, e))).expect("forced");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "new");
    }

    #[test]
    fn a_failed_write_leaves_no_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("out.parquet");
        let r: Result<()> = write_new(&p, false, |mut f| {
            f.write_all(b"PAR1 half").expect("write");
            Err(Error::Output { path: p.clone(), message: "disk full".into() })
        });
        assert!(r.is_err());
        assert!(!p.exists());
    }

    /// The names in `dir`, sorted.
    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_forced_replacement_that_fails_keeps_the_old_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("findings.ndjson");
        std::fs::write(&p, "old findings\n").expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let r: Result<()> = write_new(&p, true, |mut f| {
            f.write_all(b"half of the new").expect("write");
            Err(Error::Output { path: p.clone(), message: "the capture could not be read".into() })
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "old findings\n");
        assert_eq!(listing(dir.path()), ["findings.ndjson"], "no partial file left beside it");
        // When it succeeds, the new output takes the old one's place and mode.
        write_new(&p, true, |mut f| f.write_all(b"new findings\n").map_err(|e| Error::io(&p, e))).expect("forced");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "new findings\n");
        assert_eq!(std::fs::metadata(&p).expect("stat").permissions().mode() & 0o777, 0o640);
        assert_eq!(listing(dir.path()), ["findings.ndjson"]);
    }

    #[test]
    fn a_forced_replacement_through_a_link_replaces_the_file_it_names() {
        let dir = tempfile::tempdir().expect("tmp");
        let real = dir.path().join("real.ndjson");
        let link = dir.path().join("latest.ndjson");
        std::fs::write(&real, "old").expect("write");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        write_new(&link, true, |mut f| f.write_all(b"new").map_err(|e| Error::io(&link, e))).expect("forced");
        assert!(std::fs::symlink_metadata(&link).expect("lstat").file_type().is_symlink(), "the link stays a link");
        assert_eq!(std::fs::read_to_string(&real).expect("read"), "new");
    }

    #[test]
    fn a_pipe_is_written_through_without_force_and_never_removed() {
        let dir = tempfile::tempdir().expect("tmp");
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("c string");
        // SAFETY: a valid, NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read_to_string(fifo).expect("read the pipe"))
        };
        // Not forced (nothing is replaced), and the write fails halfway.
        let r: Result<()> = write_new(&fifo, false, |mut f| {
            f.write_all(b"first findings").expect("write");
            Err(Error::Output { path: fifo.clone(), message: "the capture could not be read".into() })
        });
        assert!(r.is_err());
        assert_eq!(reader.join().expect("reader"), "first findings");
        let kind = std::fs::symlink_metadata(&fifo).expect("the pipe is still there").file_type();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&kind));
    }

    #[test]
    fn an_input_is_never_an_output() {
        let dir = tempfile::tempdir().expect("tmp");
        let input = dir.path().join("in.parquet");
        std::fs::write(&input, "x").expect("write");
        let via_dot = dir.path().join(".").join("in.parquet");
        let err = refuse_inputs(&via_dot, &[&input], "capture").expect_err("same file");
        assert!(err.to_string().ends_with(&format!("the output would overwrite the capture {}", input.display())));
        assert!(refuse_inputs(&dir.path().join("new.parquet"), &[&input], "input").is_ok());
    }

    #[test]
    fn the_format_follows_the_extension() {
        assert_eq!(capture_format_of(Path::new("a/b.PARQUET")), Some(CaptureFormat::Parquet));
        assert_eq!(capture_format_of(Path::new("b.jsonl")), Some(CaptureFormat::Ndjson));
        assert_eq!(capture_format_of(Path::new("b.ndjson")), Some(CaptureFormat::Ndjson));
        assert_eq!(capture_format_of(Path::new("b.json")), None);
        assert_eq!(capture_format_of(Path::new("noext")), None);
    }
}
