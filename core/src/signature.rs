//! Tracee-style file-open signatures, declared in TOML.
//!
//! The format captures what TRC-108 and its kin do in Go: select
//! `security_file_open` events of an origin, skip an allow-list of process
//! names, read the `pathname` and `flags` arguments (an event that lacks one
//! cannot be evaluated, as in Tracee, where the signature returns an error),
//! then fire when the access mode matches and the path regex (Go RE2 syntax,
//! unanchored) matches the pathname. See `docs/rule-semantics.md`.

use std::collections::{BTreeMap, HashSet};

use arrow::array::{Array, AsArray};
use arrow::buffer::BooleanBuffer;
use arrow::datatypes::Int32Type;
use regex::Regex;
use serde::Deserialize;

use crate::capture::{valid_bits, Column, EventBatch, EventKind, Projection};
use crate::eql::{any_str, verdict_key};
use crate::view::ecs::visible;

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
    /// Events from containers only.
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Logic {
    #[serde(default)]
    pub(crate) allow_processes: Vec<String>,
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
    /// Process names (kernel comm, exact) that never produce a finding.
    pub allow_processes: HashSet<String>,
    allow_list: Vec<String>,
    /// The path regex as written.
    pub path_regex: String,
    regex: Regex,
    /// Required access mode.
    pub access: Access,
    /// Dictionary-verdict cache keys of the allow-list and the regex (see `eql::verdict_key`).
    verdict_keys: [usize; 2],
}

/// Tracee's severity names, indexed by severity number.
pub const TRACEE_SEVERITIES: [&str; 5] = ["info", "low", "medium", "high", "critical"];

/// An event a signature could not evaluate, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unevaluable {
    /// Row in the batch.
    pub row: usize,
    /// Why, e.g. `argument "flags" is missing (flags is null)`.
    pub message: String,
}

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

    /// Columns the signature reads.
    pub fn projection(&self) -> Projection {
        [Column::Kind, Column::Result, Column::Path, Column::Flags, Column::Comm, Column::ContainerId]
            .into_iter()
            .collect()
    }

    fn selected(&self, batch: &EventBatch) -> BooleanBuffer {
        let n = batch.len();
        let kinds = batch.kinds();
        let opens = BooleanBuffer::collect_bool(n, |i| kinds[i] == EventKind::Open);
        let candidates = &visible(batch) & &opens;
        let in_container = match batch.expect(Column::ContainerId).logical_nulls() {
            Some(nulls) => nulls.inner().clone(),
            None => BooleanBuffer::new_set(n),
        };
        match self.origin {
            OriginSelector::Any => candidates,
            OriginSelector::Container => &candidates & &in_container,
            OriginSelector::Host => &candidates & &!&in_container,
        }
    }

    /// Whether each event's comm is allow-listed (judged once per distinct value).
    fn allow_listed(&self, batch: &EventBatch) -> BooleanBuffer {
        let comm = batch.expect(Column::Comm);
        any_str(comm.as_ref(), None, self.verdict_keys[0], &|s| self.allow_processes.contains(s))
    }

    /// Evaluates the signature on a batch: the rows that fire, and the rows
    /// that were selected but cannot be evaluated (a missing argument).
    pub fn evaluate(&self, batch: &EventBatch) -> (BooleanBuffer, Vec<Unevaluable>) {
        let selected = self.selected(batch);
        if selected.count_set_bits() == 0 {
            return (selected, Vec::new());
        }
        let candidates = &selected & &!&self.allow_listed(batch);
        if candidates.count_set_bits() == 0 {
            return (candidates, Vec::new());
        }
        let path = batch.expect(Column::Path);
        let flags = batch.expect(Column::Flags).as_primitive::<Int32Type>();
        let path_matches = any_str(path.as_ref(), None, self.verdict_keys[1], &|s| self.regex.is_match(s));
        let mut bad = Vec::new();
        let values = flags.values();
        let flags_valid = valid_bits(flags);
        let access = &flags_valid & &BooleanBuffer::collect_bool(batch.len(), |i| self.access.allows(values[i]));
        let fires = &(&candidates & &access) & &path_matches;
        if path.null_count() == 0 && flags.null_count() == 0 {
            return (fires, bad);
        }
        // Selected, not allow-listed, but an argument is missing: Tracee's signature returns an error.
        let missing = &candidates & &!&(&valid_bits(path.as_ref()) & &flags_valid);
        for i in missing.set_indices() {
            let message = if path.is_null(i) {
                "argument \"pathname\" is missing (path is null)"
            } else {
                "argument \"flags\" is missing (flags is null)"
            };
            bad.push(Unevaluable { row: i, message: message.into() });
        }
        (fires, bad)
    }

    /// Why event `row` fired: origin, allow-list, access mode and the path match.
    pub fn explain(&self, batch: &EventBatch, row: usize) -> String {
        let comm = batch.str_value(Column::Comm, row).unwrap_or("");
        let path = batch.str_value(Column::Path, row).unwrap_or("");
        let flags = batch.expect(Column::Flags).as_primitive::<Int32Type>().value(row);
        let origin = if batch.expect(Column::ContainerId).is_valid(row) { "container" } else { "host" };
        let mode = crate::display::AccessMode::of(flags).constant().unwrap_or("access mode 3");
        format!(
            "security_file_open from {origin}: processName {} not in allow-list; {}(flags={flags:#x}: {mode}); pathname {} matches {}",
            serde_json::Value::String(comm.to_string()),
            self.access.helper(),
            serde_json::Value::String(path.to_string()),
            self.path_regex
        )
    }

    /// Why event `row` does not fire: which step of the signature's logic stops it.
    pub fn why_not(&self, batch: &EventBatch, row: usize) -> String {
        let one = batch.slice(row, 1);
        if one.kinds()[0] != EventKind::Open {
            return "not a security_file_open event (execs are sched_process_exec)".into();
        }
        if !visible(&one).value(0) {
            return "a failed open never reaches security_file_open".into();
        }
        let in_container = one.expect(Column::ContainerId).is_valid(0);
        let origin = if in_container { "container" } else { "host" };
        let selected = match self.origin {
            OriginSelector::Any => true,
            OriginSelector::Container => in_container,
            OriginSelector::Host => !in_container,
        };
        if !selected {
            return format!("origin is {origin}; the signature selects {:?} events", self.origin).to_lowercase();
        }
        let comm = one.str_value(Column::Comm, 0).unwrap_or("");
        if self.allow_processes.contains(comm) {
            return format!("processName {} is allow-listed", serde_json::Value::String(comm.into()));
        }
        let Some(path) = one.str_value(Column::Path, 0) else {
            return "cannot evaluate: argument \"pathname\" is missing".into();
        };
        let flags = one.expect(Column::Flags).as_primitive::<Int32Type>();
        if flags.is_null(0) {
            return "cannot evaluate: argument \"flags\" is missing".into();
        }
        let f = flags.value(0);
        if !self.access.allows(f) {
            return format!("{}(flags={f:#x}) is false", self.access.helper());
        }
        if !self.regex.is_match(path) {
            return format!("pathname {} does not match {}", serde_json::Value::String(path.into()), self.path_regex);
        }
        "it fires".into()
    }

    /// Whether the path regex matches `path` (unanchored, as Go's MatchString).
    pub fn path_matches(&self, path: &str) -> bool {
        self.regex.is_match(path)
    }

    /// The allow-list in file order.
    pub fn allow_list(&self) -> &[String] {
        &self.allow_list
    }
}
