//! `tokenscan-record`: records every file open and process exec on a Linux
//! node into a tokenscan capture (Parquet, capture format version 2), with
//! forks, exits, a /proc snapshot and pod metadata, using eBPF tracepoints.
//!
//! * Kernel side: `src/bpf/recorder.bpf.c` (C, CO-RE), built by `build.rs`
//!   with libbpf-cargo into a libbpf-rs skeleton ([`skel`]).
//! * [`probes`] loads and attaches it; [`record`] decodes ring buffer
//!   records; [`assemble`] joins them into [`event::Event`]s; [`cgroup`]
//!   names their containers; [`event::BatchBuilder`] turns them into Arrow
//!   batches and [`output`] writes those as a file or rotating segments;
//!   [`run`] is one recording session.
//!
//! See `docs/recorder.md` for the design.

#![warn(missing_docs)]

pub mod assemble;
pub mod cgroup;
pub mod cli;
pub mod event;
pub mod output;
pub mod pods;
pub mod probes;
pub mod record;
pub mod run;
pub mod snapshot;
pub mod system;

/// The libbpf-rs skeleton generated from `src/bpf/recorder.bpf.c` by `build.rs`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod skel {
    include!(concat!(env!("OUT_DIR"), "/recorder.skel.rs"));
}
