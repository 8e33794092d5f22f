//! One module per command: its flags (clap derive) and the glue from them to
//! `tokenscan-core` and to a printer in `crate::render`. Each `run` returns
//! the exit code.

pub mod convert;
pub mod decode_floor;
pub mod diff;
pub mod export;
pub mod gaps;
pub mod import;
pub mod inspect;
pub mod replay;
pub mod report;
pub mod rules;
pub mod synth;
pub mod test;
pub mod tree;
