//! [`EqlQuery`] as a [`CompiledRule`].

use super::compile::EqlQuery;
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
