//! The rule-file loader (Elastic detection-rules TOML and tokenscan's
//! signature TOML) on arbitrary text; a rule that loads is evaluated on
//! sample events.
#![no_main]

#[path = "common.rs"]
mod common;

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tokenscan_core::eql::CompileOptions;
use tokenscan_core::rules::parse_rule;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_rule(Path::new("fuzz.toml"), text, &CompileOptions::default()) {
        Ok(rule) => {
            for batch in common::samples() {
                common::exercise(&rule, batch);
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with("fuzz.toml"), "{message}");
        }
    }
});
