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

/// A file being written under the policy: created only if it does not exist
/// (or truncated when forced), and removed again when dropped before
/// [`OutputFile::keep`], so that an error or a panic halfway leaves nothing
/// that looks like a finished output.
#[derive(Debug)]
pub struct OutputFile {
    path: PathBuf,
    keep: bool,
}

impl OutputFile {
    /// Creates `path` for writing. An existing file is an [`Error::Io`] of kind
    /// `AlreadyExists` unless `force`, in which case it is truncated.
    pub fn create(path: &Path, force: bool) -> Result<(OutputFile, File)> {
        let mut options = OpenOptions::new();
        options.write(true);
        if force {
            options.create(true).truncate(true);
        } else {
            options.create_new(true);
        }
        let file = options.open(path).map_err(|e| Error::io(path, e))?;
        Ok((OutputFile { path: path.to_owned(), keep: false }, file))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The output is complete (or worth keeping as it is): do not remove it.
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Creates `path` under the policy and runs `write` on it; the file is removed
/// if `write` fails.
pub fn write_new<T, E: From<Error>>(
    path: &Path,
    force: bool,
    write: impl FnOnce(File) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    let (guard, file) = OutputFile::create(path, force)?;
    let value = write(file)?;
    guard.keep();
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
