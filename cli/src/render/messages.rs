//! What goes to stderr: the progress bar, warnings about unevaluable events
//! and unreadable captures, and the one-paragraph summaries of the commands
//! that write files (`import`, `convert`, `export`, `rules check`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use tokenscan_core::import::{ImportFormat, ImportReport};
use tokenscan_core::replay::{ReplaySummary, RuleSummary, Unreadable};

/// A progress bar on stderr, when `enabled` and stderr is a terminal.
pub fn progress_bar(enabled: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {human_pos}/{human_len} events {wide_bar} {per_sec} eta {eta}",
        )
        .expect("a valid template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(bar)
}

/// Warns about events a rule could not evaluate, with examples, and about
/// sequence rules that dropped partial sequences at their bound.
pub fn unevaluable(summary: &ReplaySummary) -> String {
    let mut out = String::new();
    for r in summary.rules.iter().filter(|r| r.sequences_dropped > 0) {
        let _ = writeln!(
            out,
            "tokenscan: warning: sequence rule {} dropped {} at its bound on pending sequences: sequences that \
             would have completed may be missing",
            r.rule_id,
            plural(r.sequences_dropped, "partial sequence", "partial sequences")
        );
    }
    for r in &summary.rules {
        if r.unevaluable == 0 {
            continue;
        }
        let _ = writeln!(
            out,
            "tokenscan: warning: rule {} could not evaluate {} event{} (use --strict to make this an error); for example:",
            r.rule_id,
            r.unevaluable,
            if r.unevaluable == 1 { "" } else { "s" }
        );
        for e in &r.examples {
            let _ = writeln!(out, "  {} event {}: {}", e.capture.display(), e.event_index, e.message);
        }
    }
    out
}

/// One error line per capture that could not be read completely.
pub fn unreadable(summary: &ReplaySummary) -> String {
    unreadable_as(&summary.unreadable, "replayed")
}

/// Warns about events a rule of one side of a diff could not evaluate, as [`unevaluable`] does for a replay.
pub fn unevaluable_side(side: &str, rules: &[RuleSummary]) -> String {
    let mut out = String::new();
    for r in rules.iter().filter(|r| r.unevaluable > 0) {
        let _ = writeln!(
            out,
            "tokenscan: warning: {side} rule {} could not evaluate {}; for example:",
            r.rule_id,
            plural(r.unevaluable, "event", "events")
        );
        for e in &r.examples {
            let _ = writeln!(out, "  {} event {}: {}", e.capture.display(), e.event_index, e.message);
        }
    }
    out
}

/// One error line per capture that could not be read completely; `verb` says
/// what the command did with the events it read (`replayed`, `compared`, `searched`).
pub fn unreadable_as(unreadable: &[Unreadable], verb: &str) -> String {
    unreadable
        .iter()
        .map(|u| format!("tokenscan: error: {} ({} events of it were {verb})\n", u.message, u.events_read))
        .collect()
}

/// `N thing(s)`.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What an import read and wrote, what it could not map and why.
pub fn import(format: ImportFormat, inputs: &[PathBuf], output: &Path, r: &ImportReport) -> String {
    let mut s = String::new();
    let inputs = inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
    // An audit log holds audit events only; the node importers, opens and execs.
    let what = match format {
        ImportFormat::K8sAudit => plural(r.audits, "audit event", "audit events"),
        ImportFormat::Tracee | ImportFormat::Ecs => {
            format!("{}, {}", plural(r.opens, "open", "opens"), plural(r.execs, "exec", "execs"))
        }
    };
    let _ = writeln!(
        s,
        "tokenscan: imported {} ({what}) from {} of {} {inputs}{} into {}",
        plural(r.events, "event", "events"),
        plural(r.lines, "line", "lines"),
        format.as_str(),
        if r.gzip { " (gzip)" } else { "" },
        output.display()
    );
    if r.unmapped > 0 {
        let reasons: Vec<String> = r.unmapped_by_reason.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let _ = writeln!(
            s,
            "tokenscan: {} could not be mapped to capture rows ({}){}",
            plural(r.unmapped, "line", "lines"),
            reasons.join(", "),
            if r.examples.is_empty() {
                String::new()
            } else if r.examples.len() as u64 == r.unmapped {
                ":".to_string()
            } else {
                format!("; the first {}:", r.examples.len())
            }
        );
        for e in &r.examples {
            let _ = writeln!(s, "  {e}");
        }
    }
    for (note, n) in &r.notes {
        let _ = writeln!(s, "tokenscan: note: {note}: {n}");
    }
    s
}

/// `tokenscan: wrote N events to FILE`, for `convert` and `export` (only shown on a terminal).
pub fn wrote(events: u64, path: &Path) -> String {
    format!("tokenscan: wrote {} to {}\n", plural(events, "event", "events"), path.display())
}

/// The closing line of `rules check`.
pub fn checked(files: usize, errors: usize, warnings: usize) -> String {
    format!("tokenscan: checked {files} rule file(s): {errors} error(s), {warnings} warning(s)\n")
}
