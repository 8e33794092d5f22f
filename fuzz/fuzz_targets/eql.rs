//! The EQL lexer, parser and compiler on arbitrary text. A query that
//! compiles is evaluated (and explained) on sample events, and must print
//! (`Display`) as a query that compiles to the same answers.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use tokenscan_core::eql::{parse_expr, CompileOptions, EqlQuery};
use tokenscan_core::rules::Rule;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    let _ = parse_expr(src);
    for options in [CompileOptions::default(), CompileOptions { ignore_above: None }] {
        let q = match EqlQuery::compile(src, &options) {
            Ok(q) => q,
            Err(e) => {
                assert!(e.span.start <= e.span.end && e.span.end <= src.len(), "{e:?}");
                assert!(!e.message.is_empty());
                continue;
            }
        };
        let printed = q.to_string();
        let again = EqlQuery::compile(&printed, &options)
            .unwrap_or_else(|e| panic!("{src:?} compiles but its Display {printed:?} does not: {}", e.message));
        let rule = |q: EqlQuery| Rule {
            id: "fuzz".into(),
            name: "fuzz".into(),
            severity: "low".into(),
            risk_score: None,
            threat: Vec::new(),
            source: "fuzz".into(),
            query_offset: None,
            text_sha256: String::new(),
            logic: std::sync::Arc::new(q),
        };
        for batch in common::samples() {
            let a = q.evaluate(batch);
            let b = again.evaluate(batch);
            assert_eq!(a, b, "{src:?} and its Display {printed:?} disagree");
        }
        let r = rule(q);
        for batch in common::samples() {
            common::exercise(&r, batch);
        }
    }
});
