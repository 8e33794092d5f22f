//! The core's error type.
//!
//! Every variant names what the user gave (a capture file, a rule file) and,
//! where it applies, the column, the event or the line and column in a rule
//! file, so the CLI and the Python module can print one clear sentence.

use std::path::PathBuf;

/// A result with the core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in a text file something is: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Everything that can go wrong in the core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error (already part of the message).
        error: std::io::Error,
    },
    /// A capture file is unusable: not Parquet, truncated, corrupt, wrong schema, bad value.
    #[error("{}: {message}", path.display())]
    Capture {
        /// The capture file.
        path: PathBuf,
        /// One sentence saying what is wrong, naming the column or line where there is one.
        message: String,
    },
    /// A rule file is unusable.
    #[error("{}{}: {message}", path.display(), position.map(|p| format!(":{p}")).unwrap_or_default())]
    Rule {
        /// The rule file (or `<builtin>/NAME` for a built-in rule, `<query>` for an ad-hoc query).
        path: PathBuf,
        /// Line and column in the file, when the problem has a place.
        position: Option<Position>,
        /// One sentence saying what is wrong.
        message: String,
    },
    /// A rule could not evaluate an event and `strict` mode was on.
    #[error("{}: event {event_index}: rule {rule_id} cannot evaluate it: {message}", capture.display())]
    Unevaluable {
        /// The capture file.
        capture: PathBuf,
        /// The event's index in its capture.
        event_index: u64,
        /// The rule.
        rule_id: String,
        /// Why.
        message: String,
    },
    /// Writing output (findings or a converted capture) failed.
    #[error("{}: {message}", path.display())]
    Output {
        /// The output file (`-` for stdout).
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl Error {
    pub(crate) fn capture(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Capture { path: path.into(), message: message.into() }
    }
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), error: source }
    }
    pub(crate) fn rule(path: impl Into<PathBuf>, position: Option<Position>, message: impl Into<String>) -> Self {
        Error::Rule { path: path.into(), position, message: message.into() }
    }
}
