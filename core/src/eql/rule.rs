//! [`EqlQuery`] and [`EqlSequence`] as [`CompiledRule`]s.

use super::ast::JoinKind;
use super::compile::EqlQuery;
use super::sequence::EqlSequence;
use crate::capture::{EventBatch, Projection};
use crate::engine::{CompiledRule, LintWarning, Verdict};

impl CompiledRule for EqlQuery {
    fn kind(&self) -> &'static str {
        "eql"
    }

    fn projection(&self) -> Projection {
        EqlQuery::projection(self)
    }

    fn needs_process(&self) -> bool {
        EqlQuery::needs_process(self)
    }

    fn pipes(&self) -> &[super::ast::Pipe] {
        EqlQuery::pipes(self)
    }

    /// EQL has no notion of an event it cannot evaluate: a missing field is
    /// a condition that does not hold.
    fn evaluate(&self, batch: &EventBatch) -> Verdict {
        Verdict { fires: EqlQuery::evaluate(self, batch), unevaluable: Vec::new() }
    }

    fn why(&self, batch: &EventBatch, row: usize) -> String {
        EqlQuery::explain(self, batch, row)
    }

    fn why_rows(&self, batch: &EventBatch, rows: &[usize]) -> Vec<String> {
        EqlQuery::explain_rows(self, batch, rows)
    }

    fn why_not(&self, batch: &EventBatch, row: usize) -> String {
        EqlQuery::why_not(self, batch, row)
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({"query": self.source(), "fields": self.field_names()})
    }

    fn lint(&self, _text: &str, query_offset: usize) -> Vec<LintWarning> {
        super::lint::lint_query(self, query_offset)
    }
}

/// An EQL sequence (or sample) as a [`CompiledRule`]. A sequence fires on
/// several events in order, a sample on several events in any order, not on
/// one event of a batch: the driver matches either over the whole stream of
/// captures before reading them ([`crate::driver`]), through
/// [`CompiledRule::sequence`]; per-batch evaluation selects nothing. Where a
/// sequence says "stage", a sample says "filter".
impl CompiledRule for EqlSequence {
    fn kind(&self) -> &'static str {
        "eql"
    }

    fn projection(&self) -> Projection {
        EqlSequence::projection(self)
    }

    fn needs_process(&self) -> bool {
        EqlSequence::needs_process(self)
    }

    fn sequence(&self) -> Option<&EqlSequence> {
        Some(self)
    }

    fn pipes(&self) -> &[super::ast::Pipe] {
        EqlSequence::pipes(self)
    }

    /// Nothing: a sequence is matched over the stream, not per batch (the
    /// driver never calls this for a sequence rule).
    fn evaluate(&self, batch: &EventBatch) -> Verdict {
        Verdict { fires: arrow_buffer::BooleanBuffer::new_unset(batch.len()), unevaluable: Vec::new() }
    }

    /// The stages (filters) the event matches, with why.
    fn why(&self, batch: &EventBatch, row: usize) -> String {
        let part = self.kind().part();
        let why: Vec<String> = self
            .stages
            .iter()
            .enumerate()
            .filter(|(_, s)| s.query.evaluate(batch).value(row))
            .map(|(i, s)| format!("{part} {}: {}", i + 1, s.query.explain(batch, row)))
            .collect();
        why.join("; ")
    }

    /// Why the event matches no stage (filter); it may match some and still
    /// not be part of a sequence (sample): that depends on the other events.
    fn why_not(&self, batch: &EventBatch, row: usize) -> String {
        let (kind, part) = (self.kind().as_str(), self.kind().part());
        let completes = match self.kind() {
            JoinKind::Sequence => "completes",
            JoinKind::Sample => "is found",
        };
        let stages: Vec<String> = self
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| match s.query.evaluate(batch).value(row) {
                true => format!("{part} {} matches (whether a {kind} {completes} depends on the other events)", i + 1),
                false => format!("{part} {}: {}", i + 1, s.query.why_not(batch, row)),
            })
            .collect();
        stages.join("; ")
    }

    /// A sequence: `{"query", "sequence": {"stages", "until", "maxspan_ns"}}`;
    /// a sample: `{"query", "sample": {"filters"}}` (each `{"query", "fields"}`).
    fn describe(&self) -> serde_json::Value {
        if self.kind() == JoinKind::Sample {
            let filters: Vec<serde_json::Value> = self
                .stages
                .iter()
                .map(|s| serde_json::json!({"query": s.query.source(), "fields": s.query.field_names()}))
                .collect();
            return serde_json::json!({"query": self.source(), "sample": {"filters": filters}});
        }
        let stages: Vec<serde_json::Value> = self
            .stages
            .iter()
            .map(|s| serde_json::json!({"query": s.query.source(), "fields": s.query.field_names(), "runs": s.runs}))
            .collect();
        serde_json::json!({
            "query": self.source(),
            "sequence": {
                "stages": stages,
                "until": self.until.as_ref().map(|s| s.query.source()),
                "maxspan_ns": self.maxspan,
            },
        })
    }

    fn lint(&self, _text: &str, query_offset: usize) -> Vec<LintWarning> {
        self.stages.iter().flat_map(|s| super::lint::lint_query(&s.query, query_offset)).collect()
    }
}
