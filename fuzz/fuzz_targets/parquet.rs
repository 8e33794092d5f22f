//! The Parquet capture reader on arbitrary bytes: seeded with the fixture
//! captures, libFuzzer mutates valid files (footers, page headers, encodings,
//! row counts). Whatever decodes goes through the built-in rules, both as the
//! whole file and row group by row group, as replay reads it.
#![no_main]

#[path = "common.rs"]
mod common;

use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use tokenscan_core::capture::{Capture, Projection};

static QUIET_CAUGHT_PANICS: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    // tokenscan catches panics of the Parquet page decoder and reports them as decoding
    // errors (docs/robustness.md, fix 7); libfuzzer-sys's panic hook would abort on them
    // before they are caught. A panic tokenscan does not catch still fails the run:
    // libfuzzer-sys aborts when one unwinds out of this closure.
    QUIET_CAUGHT_PANICS.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("panic: {info}"))));
    let path = common::scratch("fuzz.parquet");
    std::fs::write(&path, data).expect("write scratch file");
    let Ok(capture) = Capture::open(&path) else { return };
    let replayer = common::builtin();
    let projection = replayer.projection();
    if let Ok(batches) = capture.batches(Projection::all(), 5) {
        for b in batches {
            match b {
                Ok(b) => {
                    replayer.evaluate_batch(&b);
                }
                Err(_) => break,
            }
        }
    }
    for unit in 0..capture.units().min(64) {
        let Ok(batches) = capture.unit_batches(unit, projection, 1024) else { continue };
        for b in batches {
            match b {
                Ok(b) => {
                    replayer.evaluate_batch(&b);
                }
                Err(_) => break,
            }
        }
    }
});
