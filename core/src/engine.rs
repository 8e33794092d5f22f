//! The one interface every compiled rule implements, whatever language it was
//! written in: the EQL engine ([`crate::eql::EqlQuery`]) and the Tracee-style
//! signature engine ([`crate::signature::Signature`]) both implement
//! [`CompiledRule`], and everything that runs, explains, lists, lints or
//! audits rules ([`crate::rules::Rule`], the replay driver, `rules list`,
//! `rules check`, `gaps`) goes through it.
//!
//! A new kind of rule is one type implementing [`CompiledRule`] plus the
//! branch of [`crate::rules::parse_rule`] that builds it from its file. EQL
//! sequences are one: they answer [`CompiledRule::sequence`], and the driver
//! matches them over the stream before the per-batch pass.

use crate::capture::{EventBatch, Projection};

/// What a rule decided about one batch of events: the driver's only view of
/// a rule's result, whatever its kind.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// One bit per event of the batch: set where the rule fires.
    pub fires: arrow_buffer::BooleanBuffer,
    /// Events the rule selected but cannot evaluate, in increasing row order,
    /// each with the reason (e.g. `argument "flags" is missing (flags is null)`).
    pub unevaluable: Vec<(usize, String)>,
}

/// A problem `rules check` reports in a rule that loads: some part of it can
/// never match on tokenscan's captures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintWarning {
    /// Byte offset in the rule file's text of what the warning is about, when known.
    pub offset: Option<usize>,
    /// One sentence.
    pub message: String,
}

/// A rule compiled for evaluation over batches of capture events.
pub trait CompiledRule: std::fmt::Debug + Send + Sync {
    /// The rule language: `eql`, `signature`.
    fn kind(&self) -> &'static str;

    /// Capture columns the rule reads; a batch given to the other methods
    /// must carry them.
    fn projection(&self) -> Projection;

    /// Whether the rule reads process-model fields (parents, leaders, entity
    /// ids, containers' pods and images): then the driver attaches the
    /// capture's [`crate::process::ProcessContext`] to every batch
    /// ([`EventBatch::process`]); without one those fields are missing.
    fn needs_process(&self) -> bool {
        false
    }

    /// Whether the rule needs to know when each container started (Tracee's
    /// `container` versus `container-init` origin): then the driver attaches
    /// a [`crate::process::ProcessContext`] holding only that (a light pass
    /// over `kind`, `container_id` and `comm`), unless something needs the
    /// whole process model anyway.
    fn needs_container_starts(&self) -> bool {
        false
    }

    /// For an EQL sequence, the compiled sequence: the driver matches it
    /// over the whole stream of captures before reading them and reports
    /// each event of a matched sequence as a hit of this rule. `None` for
    /// single-event rules.
    fn sequence(&self) -> Option<&crate::eql::EqlSequence> {
        None
    }

    /// The pipes after the rule's query (`| head N`, `| tail N`): the
    /// driver applies them over the whole stream, to the matching events in
    /// (timestamp, capture, event index) order, or to a sequence rule's
    /// sequences in the order they complete. Empty for most rules.
    fn pipes(&self) -> &[crate::eql::ast::Pipe] {
        &[]
    }

    /// Evaluates the rule on every event of `batch`.
    fn evaluate(&self, batch: &EventBatch) -> Verdict;

    /// Why event `row` of `batch` fires (call only for events that fire).
    fn why(&self, batch: &EventBatch, row: usize) -> String;

    /// [`CompiledRule::why`] for each of `rows` (events that fire), in the
    /// order given: what the driver calls for a batch's findings. A rule
    /// that can explain many rows at once more cheaply overrides it.
    fn why_rows(&self, batch: &EventBatch, rows: &[usize]) -> Vec<String> {
        rows.iter().map(|&row| self.why(batch, row)).collect()
    }

    /// Why event `row` of `batch` does not fire.
    fn why_not(&self, batch: &EventBatch, row: usize) -> String;

    /// The rule's logic for `rules list --json`, as a JSON object.
    fn describe(&self) -> serde_json::Value;

    /// Parts of the rule that can never match. `text` is the rule file's
    /// text and `query_offset` the byte offset in it where the rule's logic
    /// (e.g. the EQL query) starts.
    fn lint(&self, text: &str, query_offset: usize) -> Vec<LintWarning> {
        let _ = (text, query_offset);
        Vec::new()
    }

    /// Whether the rule never fires for a process of this name, whatever it
    /// does (an allow-list). For `gaps`.
    fn allow_lists(&self, process_name: &str) -> bool {
        let _ = process_name;
        false
    }

    /// For rules that select opens by a path pattern: whether `path` matches
    /// it; `None` for rules without one. For `gaps`.
    fn path_pattern_matches(&self, path: &str) -> Option<bool> {
        let _ = path;
        None
    }
}
