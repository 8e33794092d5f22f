//! `tokenscan synth`: a deterministic synthetic capture, for benchmarks.

use std::io::BufWriter;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use tokenscan_core::capture::{ParquetCaptureWriter, WriterOptions};
use tokenscan_core::synth::{Synth, SynthOptions};

use crate::args::write_new;
use crate::EXIT_OK;

/// `tokenscan synth`.
#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Output Parquet file.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,
    /// Number of events.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// PRNG seed: the same seed gives the same capture.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Token-read episodes per million events.
    #[arg(long, default_value_t = 5.0)]
    pub token_reads_per_million: f64,
    /// Compression codec (the writer's default is the one chosen by measurement; see BENCHMARKS.md).
    #[arg(long, value_enum)]
    pub compression: Option<Codec>,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Parquet compression codecs offered for writing.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Zstandard at its default level.
    Zstd,
    /// LZ4 (raw).
    Lz4,
    /// Snappy.
    Snappy,
    /// No compression.
    None,
}

impl Codec {
    fn parquet(self) -> parquet::basic::Compression {
        use parquet::basic::{Compression, ZstdLevel};
        match self {
            Codec::Zstd => Compression::ZSTD(ZstdLevel::default()),
            Codec::Lz4 => Compression::LZ4_RAW,
            Codec::Snappy => Compression::SNAPPY,
            Codec::None => Compression::UNCOMPRESSED,
        }
    }
}

/// Runs `tokenscan synth`.
pub fn run(a: SynthArgs) -> Result<u8> {
    let opts = SynthOptions {
        events: a.events,
        seed: a.seed,
        token_reads_per_million: a.token_reads_per_million,
        ..Default::default()
    };
    let mut metadata = std::collections::BTreeMap::new();
    metadata.insert("tokenscan.synth".to_string(), format!("events={} seed={}", a.events, a.seed));
    let options = WriterOptions {
        metadata,
        compression: a.compression.map_or(WriterOptions::default().compression, Codec::parquet),
        ..Default::default()
    };
    write_new(&a.output, a.force, |file| {
        let mut w = ParquetCaptureWriter::new(BufWriter::new(file), &a.output, options)?;
        let mut gen = Synth::new(opts);
        while let Some(b) = gen.next_batch(tokenscan_core::capture::DEFAULT_BATCH_SIZE) {
            w.write(&b)?;
        }
        w.close()?;
        Ok(())
    })?;
    Ok(EXIT_OK)
}
