//! `tokenscan inspect`: what is in a capture.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Result;
use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use tokenscan_core::capture::{expand_paths, Capture, CaptureFormat, Column, EventBatch, EventKind, Projection};
use tokenscan_core::driver::read_events;
use tokenscan_core::replay::ReplayOptions;

use crate::output::{human_time, rfc3339};
use crate::EXIT_OK;

#[derive(Default)]
struct Stats {
    events: u64,
    time: Option<(i64, i64)>,
    kinds: BTreeMap<&'static str, u64>,
    failed_opens: u64,
    hosts: BTreeMap<String, u64>,
    containers: BTreeMap<String, u64>,
    host_events: u64,
}

fn scan(capture: &Capture) -> Result<Stats> {
    let projection: Projection =
        [Column::Time, Column::Kind, Column::Host, Column::ContainerId, Column::Result].into_iter().collect();
    let mut st = Stats::default();
    let count = |_: &std::path::Path, batch: EventBatch| {
        let mut st = Stats::default();
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
    let add = &mut |part: Stats| {
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
    Ok(st)
}

/// Prints what each capture holds.
pub fn inspect(paths: &[PathBuf], json: bool) -> Result<u8> {
    let files = expand_paths(paths)?;
    let mut docs = Vec::new();
    let mut text = String::new();
    for path in files {
        let capture = Capture::open(&path)?;
        let st = scan(&capture)?;
        let format = match capture.format() {
            CaptureFormat::Parquet => "parquet",
            CaptureFormat::Ndjson => "ndjson",
        };
        let schema: Vec<(String, String)> = capture
            .file_schema()
            .map(|s| s.fields().iter().map(|f| (f.name().clone(), f.data_type().to_string())).collect())
            .unwrap_or_else(|| Column::ALL.iter().map(|c| (c.name().to_string(), c.data_type().to_string())).collect());
        if json {
            docs.push(serde_json::json!({
                "path": path.display().to_string(),
                "format": format,
                "events": st.events,
                "time_range": st.time.map(|(a, b)| serde_json::json!({"first": rfc3339(a), "last": rfc3339(b)})),
                "kinds": st.kinds,
                "failed_opens": st.failed_opens,
                "hosts": st.hosts,
                "containers": st.containers,
                "host_events": st.host_events,
                "metadata": capture.metadata(),
                "schema": schema.iter().map(|(n, t)| serde_json::json!({"name": n, "type": t})).collect::<Vec<_>>(),
            }));
            continue;
        }
        let _ = writeln!(text, "{}", path.display());
        let _ = writeln!(text, "  format       {format}");
        let _ = writeln!(text, "  events       {}", st.events);
        if let Some((a, b)) = st.time {
            let _ = writeln!(text, "  time range   {} .. {} UTC", human_time(a), human_time(b));
        }
        let kinds: Vec<String> = st.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(text, "  kinds        {} ({} failed opens)", kinds.join(", "), st.failed_opens);
        let hosts: Vec<String> = st.hosts.iter().map(|(h, n)| format!("{h} ({n})")).collect();
        let _ = writeln!(text, "  hosts        {}", hosts.join(", "));
        let _ =
            writeln!(text, "  containers   {} ({} events outside any container)", st.containers.len(), st.host_events);
        for (c, n) in &st.containers {
            let _ = writeln!(text, "    {c}  {n} events");
        }
        if !capture.metadata().is_empty() {
            let _ = writeln!(text, "  metadata");
            for (k, v) in capture.metadata() {
                let _ = writeln!(text, "    {k} = {v}");
            }
        }
        let _ = writeln!(text, "  schema");
        for (n, t) in &schema {
            let _ = writeln!(text, "    {n:<15} {t}");
        }
        text.push('\n');
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&docs)?);
    } else {
        print!("{text}");
    }
    Ok(EXIT_OK)
}
