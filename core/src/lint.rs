//! `rules check`: lints rule files beyond what loading them checks.
//!
//! Loading already rejects syntax errors, unknown fields and unknown
//! functions. The lint adds what can never work on tokenscan's captures; each
//! engine knows what that is for its rules ([`crate::engine::CompiledRule::lint`]:
//! for EQL, `crate::eql::lint`; for signatures, allow-list entries longer than
//! the 15-byte kernel `comm`). This module loads the file and turns the
//! engine's warnings into positioned diagnostics.

use std::path::{Path, PathBuf};

use crate::eql::CompileOptions;
use crate::error::{Error, Position};
use crate::rules::{parse_rule_all, position, Rule};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The rule is usable but part of it can never match.
    Warning,
    /// The rule cannot be loaded.
    Error,
}

/// One problem found in a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The rule file.
    pub path: PathBuf,
    /// Where in it.
    pub position: Option<Position>,
    /// Error or warning.
    pub severity: Severity,
    /// One sentence.
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(p) = self.position {
            write!(f, ":{p}")?;
        }
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, ": {sev}: {}", self.message)
    }
}

/// Lints one loaded rule whose source text is `text`.
pub fn lint_rule(rule: &Rule, text: &str) -> Vec<Diagnostic> {
    rule.logic
        .lint(text, rule.query_offset.unwrap_or(0))
        .into_iter()
        .map(|w| Diagnostic {
            path: rule.source.clone(),
            position: w.offset.map(|o| position(text, o)),
            severity: Severity::Warning,
            message: w.message,
        })
        .collect()
}

/// Loads and lints a rule file; a file that does not load yields an error
/// diagnostic for each problem found ([`parse_rule_all`]).
pub fn check_file(path: &Path, options: &CompileOptions) -> Vec<Diagnostic> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return vec![Diagnostic {
                path: path.to_owned(),
                position: None,
                severity: Severity::Error,
                message: e.to_string(),
            }]
        }
    };
    match parse_rule_all(path, &text, options) {
        Ok(rule) => lint_rule(&rule, &text),
        Err(errors) => errors
            .into_iter()
            .map(|e| match e {
                Error::Rule { path, position, message } => {
                    Diagnostic { path, position, severity: Severity::Error, message }
                }
                e => Diagnostic {
                    path: path.to_owned(),
                    position: None,
                    severity: Severity::Error,
                    message: e.to_string(),
                },
            })
            .collect(),
    }
}
