//! `tokenscan inspect`: what is in a capture, from one pass over `time`,
//! `kind`, `host`, `container_id` and `result`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::Array;
use clap::Args;
use tokenscan_core::capture::{expand_paths, Capture, CaptureFormat, Column, EventBatch, EventKind, Projection};
use tokenscan_core::driver::read_events;
use tokenscan_core::replay::ReplayOptions;

use crate::args::ListFormat;
use crate::render::{json, table};
use crate::EXIT_OK;

/// `tokenscan inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Capture files or directories.
    #[arg(required = true)]
    pub captures: Vec<PathBuf>,
    /// Output format (table or json).
    #[arg(long, short = 'f', value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

/// What one capture holds.
#[derive(Debug, Default)]
pub struct CaptureStats {
    /// The capture file.
    pub path: PathBuf,
    /// `parquet` or `ndjson`.
    pub format: &'static str,
    /// Events in all.
    pub events: u64,
    /// Earliest and latest event time (ns since the epoch).
    pub time: Option<(i64, i64)>,
    /// Events per kind.
    pub kinds: BTreeMap<&'static str, u64>,
    /// Opens with a negative result.
    pub failed_opens: u64,
    /// Events per host.
    pub hosts: BTreeMap<String, u64>,
    /// Events per container id.
    pub containers: BTreeMap<String, u64>,
    /// Events outside any container.
    pub host_events: u64,
    /// The capture's key-value metadata.
    pub metadata: BTreeMap<String, String>,
    /// Column names and Arrow types, as the file declares them.
    pub schema: Vec<(String, String)>,
}

fn scan(path: PathBuf, capture: &Capture) -> Result<CaptureStats> {
    let projection: Projection =
        [Column::Time, Column::Kind, Column::Host, Column::ContainerId, Column::Result].into_iter().collect();
    let mut st = CaptureStats {
        path,
        format: match capture.format() {
            CaptureFormat::Parquet => "parquet",
            CaptureFormat::Ndjson => "ndjson",
        },
        metadata: capture.metadata().clone(),
        ..Default::default()
    };
    let count = |_: &std::path::Path, batch: EventBatch| {
        let mut st = CaptureStats::default();
        let result = batch.column(Column::Result).expect("projected").as_primitive::<Int64Type>();
        for (i, k) in batch.kinds().iter().enumerate() {
            *st.kinds.entry(k.as_str()).or_default() += 1;
            if *k == EventKind::Open && result.is_valid(i) && result.value(i) < 0 {
                st.failed_opens += 1;
            }
            *st.hosts.entry(batch.str_value(Column::Host, i).unwrap_or("").to_string()).or_default() += 1;
            match batch.str_value(Column::ContainerId, i) {
                Some(c) => *st.containers.entry(c.to_string()).or_default() += 1,
                None => st.host_events += 1,
            }
        }
        Ok(st)
    };
    let add = &mut |part: CaptureStats| {
        for (k, n) in part.kinds {
            *st.kinds.entry(k).or_default() += n;
        }
        st.failed_opens += part.failed_opens;
        for (h, n) in part.hosts {
            *st.hosts.entry(h).or_default() += n;
        }
        for (c, n) in part.containers {
            *st.containers.entry(c).or_default() += n;
        }
        st.host_events += part.host_events;
        Ok(())
    };
    let summary = read_events(&[capture.path()], projection, &ReplayOptions::default(), count, add)?;
    st.events = summary.events;
    st.time = summary.time_range;
    st.schema = capture
        .file_schema()
        .map(|s| s.fields().iter().map(|f| (f.name().clone(), f.data_type().to_string())).collect())
        .unwrap_or_else(|| Column::ALL.iter().map(|c| (c.name().to_string(), c.data_type().to_string())).collect());
    Ok(st)
}

/// Runs `tokenscan inspect`: what each capture holds.
pub fn run(a: InspectArgs) -> Result<u8> {
    let files = expand_paths(&a.captures)?;
    let mut docs = Vec::new();
    let mut text = String::new();
    for path in files {
        let capture = Capture::open(&path)?;
        let st = scan(path, &capture)?;
        match a.format {
            ListFormat::Json => docs.push(json::capture_stats(&st)),
            ListFormat::Table => text.push_str(&table::capture_stats(&st)),
        }
    }
    match a.format {
        ListFormat::Json => println!("{}", serde_json::to_string_pretty(&docs)?),
        ListFormat::Table => print!("{text}"),
    }
    Ok(EXIT_OK)
}
