//! The NDJSON capture reader on arbitrary bytes (invalid UTF-8 included),
//! read from a file as `tokenscan replay` does; whatever decodes goes through
//! the built-in rules.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use tokenscan_core::capture::{events_from_ndjson, Capture, Projection};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(batches) = events_from_ndjson(text, "fuzz", 3) {
            for b in &batches {
                common::builtin().evaluate_batch(b);
            }
        }
    }
    let path = common::scratch("fuzz.ndjson");
    std::fs::write(&path, data).expect("write scratch file");
    let Ok(capture) = Capture::open(&path) else { return };
    let Ok(batches) = capture.batches(Projection::all(), 4) else { return };
    for b in batches {
        match b {
            Ok(b) => {
                common::builtin().evaluate_batch(&b);
            }
            Err(e) => {
                assert!(e.to_string().contains("fuzz.ndjson"));
                break;
            }
        }
    }
});
