//! tokenscan's core: the capture format, the rule views, the EQL engine, the
//! Tracee-style signature engine and the replay that turns captures into findings.
//!
//! The CLI (`tokenscan`), the Python module and the recorder are thin layers
//! over this crate. It never decides where output goes; the rules for output
//! files that both front ends apply (no overwriting without force, never onto
//! an input, no half-written file) are in [`output_file`].
//!
//! ```no_run
//! use tokenscan_core::{eql::CompileOptions, replay::{CollectSink, Replayer, ReplayOptions}, rules::RuleSet};
//! let rules = RuleSet::builtin(&CompileOptions::default())?;
//! let mut sink = CollectSink::default();
//! let summary = Replayer::new(rules, ReplayOptions::default()).replay(&["capture.parquet"], &mut sink)?;
//! println!("{} events, {} findings", summary.events, summary.findings());
//! # Ok::<(), tokenscan_core::Error>(())
//! ```

#![warn(missing_docs)]

pub mod capture;
pub mod diff;
pub mod display;
pub mod driver;
pub mod engine;
pub mod eql;
pub mod error;
pub mod findings;
pub mod gaps;
pub mod import;
mod kernels;
pub mod lint;
pub mod output_file;
pub mod process;
pub mod replay;
pub mod report;
pub mod rules;
pub mod signature;
pub mod suite;
pub mod summary;
pub mod synth;
pub mod view;

pub use error::{Error, Position, Result};
