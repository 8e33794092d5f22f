//! The EQL engine: parser, type checker and a columnar evaluator with
//! Elasticsearch's semantics (see `docs/rule-semantics.md`).
//!
//! ```
//! use tokenscan_core::eql::{CompileOptions, EqlQuery};
//! let q = EqlQuery::compile(r#"process where process.name in ("cat", "head")"#, &CompileOptions::default()).unwrap();
//! assert_eq!(q.to_string(), r#"process where process.name in ("cat", "head")"#);
//! ```

pub mod ast;
mod compile;
mod eval;
mod func;
mod lexer;
mod lint;
mod parser;
mod rule;
mod sequence;

pub use ast::{line_col, JoinKind, ParseError, Span};
pub use compile::{CompileError, CompileOptions, EqlQuery, DEFAULT_IGNORE_ABOVE};
pub use parser::{
    is_sequence, parse_expr, parse_query, parse_query_with_pipes, parse_sequence, MAX_RUNS, MAX_SAMPLE_FILTERS,
    MAX_STAGES,
};
pub use sequence::{
    match_samples, EqlSequence, JoinMatcher, JoinValues, KeyField, SampleMatcher, Sequence, SequenceMatcher,
    SequenceOutput, SequenceSpec, SequenceStage, StageEvent, StageRef, DEFAULT_MAX_PENDING,
};
