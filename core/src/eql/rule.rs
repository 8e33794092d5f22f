//! [`EqlQuery`] and [`EqlSequence`] as [`CompiledRule`]s.

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

/// An EQL sequence as a [`CompiledRule`]. A sequence fires on several events
/// in order, not on one event of a batch: the driver matches it over the
/// whole stream of captures before reading them ([`crate::driver`]), through
/// [`CompiledRule::sequence`]; per-batch evaluation selects nothing.
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
        Verdict { fires: arrow::buffer::BooleanBuffer::new_unset(batch.len()), unevaluable: Vec::new() }
    }

    /// The stages the event matches, with why.
    fn why(&self, batch: &EventBatch, row: usize) -> String {
        let why: Vec<String> = self
            .stages
            .iter()
            .enumerate()
            .filter(|(_, s)| s.query.evaluate(batch).value(row))
            .map(|(i, s)| format!("stage {}: {}", i + 1, s.query.explain(batch, row)))
            .collect();
        why.join("; ")
    }

    /// Why the event matches no stage (it may match some and still not be
    /// part of a sequence: that depends on the events around it).
    fn why_not(&self, batch: &EventBatch, row: usize) -> String {
        let stages: Vec<String> = self
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| match s.query.evaluate(batch).value(row) {
                true => format!("stage {} matches (whether a sequence completes depends on the other events)", i + 1),
                false => format!("stage {}: {}", i + 1, s.query.why_not(batch, row)),
            })
            .collect();
        stages.join("; ")
    }

    fn describe(&self) -> serde_json::Value {
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
