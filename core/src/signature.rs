//! Tracee-style file-open signatures, declared in TOML.
//!
//! The format captures what TRC-108 and its kin do in Go: select
//! `security_file_open` events of an origin, skip an allow-list of process
//! names, read the `pathname` and `flags` arguments (an event that lacks one
//! cannot be evaluated, as in Tracee, where the signature returns an error),
//! then fire when the access mode matches and the path regex (Go RE2 syntax,
//! unanchored) matches the pathname. See `docs/rule-semantics.md`.

use std::collections::{BTreeMap, HashSet};

use arrow_array::Array;
use arrow_buffer::BooleanBuffer;
use regex::Regex;
use serde::Deserialize;

use crate::capture::{str_at, Column, EventBatch, EventKind, Projection};
use crate::engine::{CompiledRule, LintWarning, Verdict};
use crate::kernels::{any_str, any_str_among, valid_bits, verdict_key};
use crate::view::tracee::{Origin, TraceeView};

/// The access modes a signature can require, as Tracee's helpers define them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// `IsFileRead`: `flags & O_ACCMODE` is O_RDONLY (0) or O_RDWR (2).
    Read,
    /// `IsFileWrite`: `flags & O_ACCMODE` is O_WRONLY (1) or O_RDWR (2).
    Write,
    /// Any access mode.
    Any,
}

impl Access {
    /// Whether open flags satisfy the access mode.
    pub fn allows(self, flags: i32) -> bool {
        let mode = crate::display::AccessMode::of(flags);
        match self {
            Access::Any => true,
            Access::Read => mode.reads(),
            Access::Write => mode.writes(),
        }
    }
    fn helper(self) -> &'static str {
        match self {
            Access::Read => "IsFileRead",
            Access::Write => "IsFileWrite",
            Access::Any => "any access",
        }
    }
}

/// Which origins a signature selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OriginSelector {
    /// Events from containers that have started (Tracee's `container`
    /// origin: the entry point ran; not `container-init`).
    Container,
    /// Events from the host only.
    Host,
    /// Every origin (`*` in Tracee).
    #[serde(rename = "*")]
    Any,
}

/// The signature file's shape (see `docs/rule-semantics.md`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignatureFile {
    pub(crate) signature: Header,
    pub(crate) selector: Selector,
    #[serde(rename = "match")]
    pub(crate) logic: Logic,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Header {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) version: String,
    #[serde(default)]
    pub(crate) event_name: Option<String>,
    #[serde(default)]
    pub(crate) description: Option<String>,
    pub(crate) severity: u8,
    #[serde(default)]
    pub(crate) properties: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub(crate) source: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Selector {
    pub(crate) event: toml::Spanned<String>,
    pub(crate) origin: OriginSelector,
}

/// What an allow-list entry is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AllowBy {
    /// The kernel's comm (`processName`), exactly: the signature generation of TRC-108.
    #[default]
    Comm,
    /// The file name of the executable (`filepath.Base` of `executable.path`):
    /// the detector generation of TRC-108 (Tracee `detectors/`, 2025-12).
    ExecutableBasename,
}

/// What a missing `pathname` or `flags` argument means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MissingArgument {
    /// The event cannot be evaluated (counted, or fatal under strict): the
    /// Go signature returns an error.
    #[default]
    Error,
    /// No finding, silently: the detector returns nothing.
    NoFinding,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Logic {
    #[serde(default)]
    pub(crate) allow_processes: Vec<String>,
    #[serde(default)]
    pub(crate) allow_by: AllowBy,
    #[serde(default)]
    pub(crate) missing_argument: MissingArgument,
    pub(crate) path_regex: toml::Spanned<String>,
    pub(crate) access: Access,
}

/// A compiled Tracee-style file-open signature.
#[derive(Debug, Clone)]
pub struct Signature {
    /// `TRC-108`.
    pub id: String,
    /// Signature version (`1`).
    pub version: String,
    /// Human name.
    pub name: String,
    /// The name of the finding event Tracee emits (`k8s_service_account_token`).
    pub event_name: Option<String>,
    /// Tracee severity, 0 (info) to 4 (critical).
    pub severity: u8,
    /// Description shown with findings.
    pub description: Option<String>,
    /// Where the signature comes from (upstream file), as the rule file says.
    pub upstream: Option<String>,
    /// Tracee metadata properties (Category, Technique, external_id, ...).
    pub properties: BTreeMap<String, String>,
    /// Origin selector.
    pub origin: OriginSelector,
    /// Process names (kernel comm or executable file name, exact, see
    /// [`Signature::allow_by`]) that never produce a finding.
    pub allow_processes: HashSet<String>,
    /// What the allow-list is compared with.
    pub allow_by: AllowBy,
    /// What a missing argument means.
    pub missing_argument: MissingArgument,
    allow_list: Vec<String>,
    /// The path regex as written.
    pub path_regex: String,
    regex: Regex,
    /// The literals every match ends the path with, when the regex is
    /// anchored at the end (`$`): a path ending with none of them is
    /// rejected without running the regex ([`required_endings`]).
    endings: Option<Vec<Vec<u8>>>,
    /// Required access mode.
    pub access: Access,
    /// Dictionary-verdict cache keys of the allow-list and the regex (see `kernels::verdict_key`).
    verdict_keys: [usize; 2],
}

/// Tracee's severity names, indexed by severity number.
pub const TRACEE_SEVERITIES: [&str; 5] = ["info", "low", "medium", "high", "critical"];

impl Signature {
    pub(crate) fn from_file(f: SignatureFile) -> Result<Signature, (Option<std::ops::Range<usize>>, String)> {
        if f.selector.event.get_ref() != "security_file_open" {
            return Err((
                Some(f.selector.event.span()),
                format!(
                    "unsupported selected event {:?}: tokenscan's signatures select security_file_open",
                    f.selector.event.get_ref()
                ),
            ));
        }
        if f.signature.severity as usize >= TRACEE_SEVERITIES.len() {
            return Err((None, format!("severity {} is out of range 0..=4", f.signature.severity)));
        }
        let src = f.logic.path_regex.get_ref().clone();
        let regex = regex::RegexBuilder::new(&src)
            .size_limit(1 << 24)
            .build()
            .map_err(|e| (Some(f.logic.path_regex.span()), format!("invalid path_regex: {e}")))?;
        let properties = f
            .signature
            .properties
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    toml::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect();
        Ok(Signature {
            id: f.signature.id,
            version: f.signature.version,
            name: f.signature.name,
            event_name: f.signature.event_name,
            severity: f.signature.severity,
            description: f.signature.description,
            upstream: f.signature.source,
            properties,
            origin: f.selector.origin,
            allow_processes: f.logic.allow_processes.iter().cloned().collect(),
            allow_list: f.logic.allow_processes,
            allow_by: f.logic.allow_by,
            missing_argument: f.logic.missing_argument,
            endings: required_endings(&src),
            path_regex: src,
            regex,
            access: f.logic.access,
            verdict_keys: [verdict_key(), verdict_key()],
        })
    }

    /// Tracee's name for the severity (`info` for 0).
    pub fn severity_name(&self) -> &'static str {
        TRACEE_SEVERITIES[self.severity as usize]
    }

    /// The events the selector takes, except that a container event's
    /// container may still be starting: [`Signature::evaluate`] checks that
    /// (a look-up per event) last, on the rows still in question.
    fn selected_but_start_up(&self, view: &TraceeView<'_>) -> BooleanBuffer {
        let candidates = view.file_opens();
        match self.origin {
            OriginSelector::Any => candidates,
            OriginSelector::Container => &candidates & &view.in_container(),
            OriginSelector::Host => &candidates & &!&view.in_container(),
        }
    }

    /// Whether each event's processName (or executable file name) is
    /// allow-listed (judged once per distinct value). A missing executable
    /// path is never allow-listed.
    fn allow_listed(&self, view: &TraceeView<'_>) -> BooleanBuffer {
        match self.allow_by {
            AllowBy::Comm => {
                any_str(view.process_name().as_ref(), None, self.verdict_keys[0], &|s| self.allow_processes.contains(s))
            }
            AllowBy::ExecutableBasename => any_str(view.executable_path().as_ref(), None, self.verdict_keys[0], &|s| {
                self.allow_processes.contains(basename(s))
            }),
        }
    }

    /// The name the allow-list is compared with for event `row` of `view`.
    fn allow_name<'v>(&self, view: &TraceeView<'v>, row: usize) -> (&'static str, Option<&'v str>) {
        match self.allow_by {
            AllowBy::Comm => ("processName", str_at(view.process_name().as_ref(), row)),
            AllowBy::ExecutableBasename => {
                ("basename(executable.path)", str_at(view.executable_path().as_ref(), row).map(basename))
            }
        }
    }

    /// Whether the path regex matches `path` (unanchored, as Go's MatchString).
    pub fn path_matches(&self, path: &str) -> bool {
        let ends_right = |e: &Vec<Vec<u8>>| e.iter().any(|l| path.as_bytes().ends_with(l));
        self.endings.as_ref().is_none_or(ends_right) && self.regex.is_match(path)
    }

    /// The allow-list in file order.
    pub fn allow_list(&self) -> &[String] {
        &self.allow_list
    }
}

impl CompiledRule for Signature {
    fn kind(&self) -> &'static str {
        "signature"
    }

    /// The columns of the Tracee view fields the signature reads.
    fn projection(&self) -> Projection {
        let mut p: Projection =
            [Column::Kind, Column::Result, Column::Path, Column::Flags, Column::Comm, Column::ContainerId]
                .into_iter()
                .collect();
        if self.allow_by == AllowBy::ExecutableBasename {
            p.insert(Column::Exe);
        }
        if self.origin == OriginSelector::Container {
            p.insert(Column::ContainerStarted);
        }
        p
    }

    /// Selecting `container` tells started containers from starting ones.
    fn needs_container_starts(&self) -> bool {
        self.origin == OriginSelector::Container
    }

    /// The rows that fire, and the rows that were selected but cannot be
    /// evaluated (a missing argument, where Tracee's signature returns an error).
    fn evaluate(&self, batch: &EventBatch) -> Verdict {
        let view = TraceeView::new(batch);
        let selected = self.selected_but_start_up(&view);
        if selected.count_set_bits() == 0 {
            return Verdict { fires: selected, unevaluable: Vec::new() };
        }
        let candidates = &selected & &!&self.allow_listed(&view);
        if candidates.count_set_bits() == 0 {
            return Verdict { fires: candidates, unevaluable: Vec::new() };
        }
        let path = view.pathname();
        let flags = view.flags();
        let mut unevaluable = Vec::new();
        let values = flags.values();
        let flags_valid = valid_bits(&flags);
        let access = &flags_valid & &BooleanBuffer::collect_bool(batch.len(), |i| self.access.allows(values[i]));
        // The regex last, on the candidates whose access mode matches.
        let mut fires = any_str_among(
            path.as_ref(),
            None,
            self.verdict_keys[1],
            &|s| self.path_matches(s),
            &(&candidates & &access),
        );
        let path_valid = valid_bits(path.as_ref());
        // Selected, not allow-listed, but an argument is missing: Tracee's signature
        // returns an error; its detector returns no finding.
        let mut missing = &candidates & &!&(&path_valid & &flags_valid);
        if self.origin == OriginSelector::Container {
            // The order of the checks does not change the answer (each is
            // per event); the start-up look-up runs on the few rows left.
            let open = &fires | &missing;
            let started = view.started_among(&open);
            fires = &fires & &started;
            missing = &missing & &started;
        }
        if self.missing_argument == MissingArgument::NoFinding {
            return Verdict { fires, unevaluable };
        }
        for i in missing.set_indices() {
            let message = if !path_valid.value(i) {
                "argument \"pathname\" is missing (path is null)"
            } else {
                "argument \"flags\" is missing (flags is null)"
            };
            unevaluable.push((i, message.into()));
        }
        Verdict { fires, unevaluable }
    }

    /// Origin, allow-list, access mode and the path match.
    fn why(&self, batch: &EventBatch, row: usize) -> String {
        self.why_rows(batch, &[row]).pop().expect("one row, one reason")
    }

    /// [`CompiledRule::why`] for each row, over one view of just those rows.
    fn why_rows(&self, batch: &EventBatch, rows: &[usize]) -> Vec<String> {
        let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        // Only the columns evaluate reads: the others are not looked at.
        let hits = batch.take_columns(&idx, self.projection());
        let view = TraceeView::new(&hits);
        let (paths, all_flags) = (view.pathname(), view.flags());
        (0..rows.len())
            .map(|row| {
                let (what, name) = self.allow_name(&view, row);
                let path = str_at(paths.as_ref(), row).unwrap_or("");
                let flags = all_flags.value(row);
                let origin = view.origin(row).as_str();
                let mode = crate::display::AccessMode::of(flags).constant().unwrap_or("access mode 3");
                format!(
                    "security_file_open from {origin}: {what} {} not in allow-list; {}(flags={flags:#x}: {mode}); pathname {} matches {}",
                    serde_json::Value::String(name.unwrap_or("").to_string()),
                    self.access.helper(),
                    serde_json::Value::String(path.to_string()),
                    self.path_regex
                )
            })
            .collect()
    }

    /// Which step of the signature's logic stops event `row`.
    fn why_not(&self, batch: &EventBatch, row: usize) -> String {
        let one = batch.slice(row, 1);
        let view = TraceeView::new(&one);
        match one.kinds()[0] {
            EventKind::Open => {}
            EventKind::Exec => return "not a security_file_open event (execs are sched_process_exec)".into(),
            other => return format!("not a security_file_open event (a `{}` row reaches no rule)", other.as_str()),
        }
        if !view.file_opens().value(0) {
            return "a failed open never reaches security_file_open".into();
        }
        let origin = view.origin(0);
        let selected = match self.origin {
            OriginSelector::Any => true,
            OriginSelector::Container => origin == Origin::Container,
            OriginSelector::Host => origin == Origin::Host,
        };
        if !selected {
            return format!("origin is {}; the signature selects {:?} events", origin.as_str(), self.origin)
                .to_lowercase();
        }
        let (what, name) = self.allow_name(&view, 0);
        if let Some(name) = name.filter(|n| self.allow_processes.contains(*n)) {
            return format!("{what} {} is allow-listed", serde_json::Value::String(name.into()));
        }
        let missing = match self.missing_argument {
            MissingArgument::Error => "cannot evaluate",
            MissingArgument::NoFinding => "no finding",
        };
        let Some(path) = str_at(view.pathname().as_ref(), 0) else {
            return format!("{missing}: argument \"pathname\" is missing");
        };
        let flags = view.flags();
        if flags.is_null(0) {
            return format!("{missing}: argument \"flags\" is missing");
        }
        let f = flags.value(0);
        if !self.access.allows(f) {
            return format!("{}(flags={f:#x}) is false", self.access.helper());
        }
        if !self.path_matches(path) {
            return format!("pathname {} does not match {}", serde_json::Value::String(path.into()), self.path_regex);
        }
        "it fires".into()
    }

    fn describe(&self) -> serde_json::Value {
        if self.allow_by != AllowBy::Comm || self.missing_argument != MissingArgument::Error {
            return serde_json::json!({
                "origin": format!("{:?}", self.origin).to_lowercase(), "allow_processes": self.allow_list(),
                "allow_by": match self.allow_by { AllowBy::Comm => "comm", AllowBy::ExecutableBasename => "executable_basename" },
                "missing_argument": match self.missing_argument {
                    MissingArgument::Error => "error", MissingArgument::NoFinding => "no_finding" },
                "path_regex": self.path_regex, "access": format!("{:?}", self.access).to_lowercase()});
        }
        serde_json::json!({
            "origin": format!("{:?}", self.origin).to_lowercase(), "allow_processes": self.allow_list(),
            "path_regex": self.path_regex, "access": format!("{:?}", self.access).to_lowercase()})
    }

    /// Allow-list entries longer than the 15-byte kernel comm never match.
    fn lint(&self, text: &str, _query_offset: usize) -> Vec<LintWarning> {
        let mut out = Vec::new();
        for name in self.allow_list() {
            if name.len() > 15 {
                let cut: String = name.bytes().take(15).map(char::from).collect();
                out.push(LintWarning {
                    offset: text.find(&format!("\"{name}\"")),
                    message: format!("allow-list entry {name:?} is longer than the 15-byte kernel comm it is compared with, so it never matches; the kernel reports {cut:?}"),
                });
            }
        }
        out
    }

    fn allow_lists(&self, process_name: &str) -> bool {
        self.allow_by == AllowBy::Comm && self.allow_processes.contains(process_name)
    }

    fn path_pattern_matches(&self, path: &str) -> Option<bool> {
        Some(self.path_matches(path))
    }
}

/// The last component of a path (Go's `filepath.Base` for a non-empty path without trailing slash).
fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The literals every match of `regex` ends the text with, when the regex is
/// anchored at the end of the text (`$`, no multi-line flag) on every branch
/// and its suffixes are a finite set of non-empty literals: a text ending
/// with none of them cannot match. `None` when that cannot be said (no
/// anchor, a class too wide to list, an empty suffix); the regex then runs
/// on every text. For TRC-108's `secrets/kubernetes.io/serviceaccount.+token$`
/// it is `token`: most paths are rejected by one comparison.
fn required_endings(regex: &str) -> Option<Vec<Vec<u8>>> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let hir = regex_syntax::Parser::new().parse(regex).ok()?;
    if !hir.properties().look_set_suffix().contains(regex_syntax::hir::Look::End) {
        return None;
    }
    let endings = Extractor::new().kind(ExtractKind::Suffix).extract(&hir);
    let literals = endings.literals()?;
    if literals.is_empty() || literals.iter().any(|l| l.as_bytes().is_empty()) {
        return None;
    }
    Some(literals.iter().map(|l| l.as_bytes().to_vec()).collect())
}

#[cfg(test)]
mod tests {
    use super::required_endings;

    #[test]
    fn the_ending_prefilter_never_rejects_a_path_the_regex_matches() {
        // The regex crate is the oracle: wherever it matches, the path ends
        // with one of the required endings.
        let regexes = [
            "secrets/kubernetes.io/serviceaccount.+token$",
            "token$|ca\\.crt$",
            "(?i)TOKEN$",
            "a.+[bc]$",
            "^/exact$",
            "(token|cert)s?$",
            "tøken$",
            "(?m)token$",
            "token\\z",
            "token",
            "token$|other",
            "x*$",
        ];
        let paths = [
            "",
            "token",
            "/run/secrets/kubernetes.io/serviceaccount/token",
            "/var/run/secrets/kubernetes.io/serviceaccount/..2026_11_20_09_58_11.1829374651/token",
            "/run/secrets/kubernetes.io/serviceaccount/TOKEN",
            "/run/secrets/kubernetes.io/serviceaccount/ToKeN",
            "/run/secrets/kubernetes.io/serviceaccount/token\n",
            "/run/secrets/kubernetes.io/serviceaccount/tokens",
            "/run/secrets/kubernetes.io/serviceaccount/ca.crt",
            "/etc/certs",
            "/etc/cert",
            "/exact",
            "ab",
            "ac",
            "/tmp/tøken",
            "other/file",
            "xx",
        ];
        for r in regexes {
            let regex = regex::Regex::new(r).expect("valid regex");
            let endings = required_endings(r);
            for p in paths {
                let passes = endings.as_ref().is_none_or(|e| e.iter().any(|l| p.as_bytes().ends_with(l)));
                assert!(passes || !regex.is_match(p), "{r:?} matches {p:?} but its endings {endings:?} reject it");
            }
        }
        // The seed's regex is anchored at the end with one literal ending;
        // a regex that is not anchored on every branch has none.
        assert_eq!(required_endings("secrets/kubernetes.io/serviceaccount.+token$"), Some(vec![b"token".to_vec()]));
        assert_eq!(required_endings("token$|other"), None);
        assert_eq!(required_endings("(?m)token$"), None);
        assert_eq!(required_endings("token"), None);
    }
}
