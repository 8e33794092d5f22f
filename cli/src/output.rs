//! Rendering findings, summaries and rule lists. All printing lives here.

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{
    DataType, Field, Int32Type, Schema, SchemaRef, TimestampNanosecondType, UInt32Type, UInt64Type,
};
use tokenscan_core::replay::{FindingSink, ReplaySummary};
use tokenscan_core::rules::RuleSet;

use crate::Format;

/// Formats nanoseconds since the epoch for humans: `2026-11-20 10:15:03.120`.
pub fn human_time(ns: i64) -> String {
    chrono_like(ns, false)
}

/// RFC 3339 UTC with nanoseconds, for machines.
pub fn rfc3339(ns: i64) -> String {
    chrono_like(ns, true)
}

fn chrono_like(ns: i64, machine: bool) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let sub = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if machine {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{sub:09}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}.{:03}", sub / 1_000_000)
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Quotes a word for a shell-like rendering of argv.
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Streams record batches (findings, or diff changes) to the chosen format.
/// Table and JSON output are rendered at the end, by the caller's closures.
pub struct FindingsOutput {
    format: Format,
    out: Box<dyn Write + Send>,
    path: PathBuf,
    collected: Vec<RecordBatch>,
    csv_started: bool,
    parquet: Option<parquet::arrow::ArrowWriter<Box<dyn Write + Send>>>,
    progress: Option<indicatif::ProgressBar>,
}

impl FindingsOutput {
    /// A sink writing `format` to `out` (`path` names it in messages); `schema` is the batches' schema.
    pub fn new(format: Format, out: Box<dyn Write + Send>, path: PathBuf, schema: SchemaRef) -> Result<Self> {
        let mut me = FindingsOutput {
            format,
            out,
            path,
            collected: Vec::new(),
            csv_started: false,
            parquet: None,
            progress: None,
        };
        if format == Format::Parquet {
            let out = std::mem::replace(&mut me.out, Box::new(std::io::sink()));
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                .build();
            me.parquet = Some(parquet::arrow::ArrowWriter::try_new(out, schema, Some(props))?);
        }
        Ok(me)
    }

    /// Shows a progress bar on stderr while replaying, when stderr is a terminal.
    pub fn with_progress(mut self, enabled: bool) -> Self {
        use std::io::IsTerminal;
        if enabled && std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {human_pos}/{human_len} events {wide_bar} {per_sec} eta {eta}",
                )
                .expect("a valid template"),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            self.progress = Some(bar);
        }
        self
    }

    /// Writes what was buffered and closes the output: `table` renders the
    /// human report; JSON is `{"summary": summary, json_key: [rows...]}`.
    pub fn finish(
        mut self,
        summary: serde_json::Value,
        json_key: &str,
        table: impl FnOnce(&[RecordBatch]) -> String,
    ) -> Result<()> {
        if let Some(bar) = self.progress.take() {
            bar.finish_and_clear();
        }
        match self.format {
            Format::Table => {
                let text = table(&self.collected);
                self.out.write_all(text.as_bytes())?;
            }
            Format::Json => {
                let mut rows = Vec::new();
                {
                    let mut w = arrow::json::WriterBuilder::new()
                        .with_explicit_nulls(true)
                        .build::<_, arrow::json::writer::JsonArray>(&mut rows);
                    for b in &self.collected {
                        w.write(b)?;
                    }
                    w.finish()?;
                }
                let rows: serde_json::Value =
                    if rows.is_empty() { serde_json::json!([]) } else { serde_json::from_slice(&rows)? };
                let mut doc = serde_json::Map::new();
                doc.insert("summary".into(), summary);
                doc.insert(json_key.into(), rows);
                serde_json::to_writer_pretty(&mut self.out, &doc)?;
                self.out.write_all(b"\n")?;
            }
            Format::Parquet => {
                if let Some(w) = self.parquet.take() {
                    w.close()?;
                }
            }
            Format::Ndjson | Format::Csv => {}
        }
        self.out.flush().with_context(|| format!("flushing {}", self.path.display()))?;
        Ok(())
    }

    fn write_batch(&mut self, batch: &RecordBatch) -> tokenscan_core::Result<()> {
        let err = |e: &dyn std::fmt::Display| tokenscan_core::Error::Output {
            path: self.path.clone(),
            message: e.to_string(),
        };
        match self.format {
            Format::Table | Format::Json => self.collected.push(batch.clone()),
            Format::Ndjson => {
                let mut w = arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow::json::writer::LineDelimited>(&mut self.out);
                w.write(batch).map_err(|e| err(&e))?;
                w.finish().map_err(|e| err(&e))?;
            }
            Format::Csv => {
                let b = args_as_json(batch);
                let mut w = arrow::csv::WriterBuilder::new().with_header(!self.csv_started).build(&mut self.out);
                self.csv_started = true;
                w.write(&b).map_err(|e| err(&e))?;
            }
            Format::Parquet => {
                if let Some(w) = self.parquet.as_mut() {
                    w.write(batch).map_err(|e| err(&e))?;
                }
            }
        }
        Ok(())
    }
}

impl FindingSink for FindingsOutput {
    fn findings(&mut self, batch: &RecordBatch) -> tokenscan_core::Result<()> {
        self.write_batch(batch)
    }

    fn progress(&mut self, done: u64, total: Option<u64>) {
        if let Some(bar) = &self.progress {
            if let Some(t) = total {
                bar.set_length(t);
            }
            bar.set_position(done);
        }
    }
}

impl tokenscan_core::diff::ChangeSink for FindingsOutput {
    fn changes(&mut self, batch: &RecordBatch) -> tokenscan_core::Result<()> {
        self.write_batch(batch)
    }
}

/// `args` as a JSON-array string column, for CSV (which has no lists).
fn args_as_json(batch: &RecordBatch) -> RecordBatch {
    let schema = batch.schema();
    let mut fields = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        if let DataType::List(_) = f.data_type() {
            let list = c.as_list::<i32>();
            let text: StringArray = (0..list.len())
                .map(|i| {
                    list.is_valid(i).then(|| {
                        let v = list.value(i);
                        let s = v.as_string::<i32>();
                        serde_json::to_string(&(0..s.len()).map(|j| s.value(j)).collect::<Vec<_>>())
                            .expect("strings serialize")
                    })
                })
                .collect();
            fields.push(Field::new(f.name(), DataType::Utf8, true));
            cols.push(Arc::new(text));
        } else {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("same columns, args as text")
}

/// A column of a findings batch by name.
pub fn col<'a>(b: &'a RecordBatch, name: &str) -> &'a ArrayRef {
    b.column_by_name(name).unwrap_or_else(|| panic!("findings carry `{name}`"))
}

/// A string cell of a findings batch.
pub fn s(b: &RecordBatch, name: &str, i: usize) -> Option<String> {
    let a = col(b, name);
    a.is_valid(i).then(|| a.as_string::<i32>().value(i).to_string())
}

/// What a finding is about, in one line: argv for an exec, the path for an open.
pub fn target(b: &RecordBatch, i: usize) -> String {
    if s(b, "kind", i).as_deref() == Some("exec") {
        let args = col(b, "args").as_list::<i32>();
        if args.is_valid(i) {
            let v = args.value(i);
            let v = v.as_string::<i32>();
            return (0..v.len()).map(|j| shell_word(v.value(j))).collect::<Vec<_>>().join(" ");
        }
        return s(b, "exe", i).unwrap_or_default();
    }
    let path = s(b, "path", i).unwrap_or_default();
    let flags = col(b, "flags").as_primitive::<Int32Type>();
    let mode = if flags.is_valid(i) {
        match flags.value(i) & 3 {
            0 => " [read]",
            1 => " [write]",
            2 => " [read-write]",
            _ => " [mode 3]",
        }
    } else {
        ""
    };
    match s(b, "requested_path", i) {
        Some(req) if req != path => format!("{req} -> {path}{mode}"),
        _ => format!("{path}{mode}"),
    }
}

/// The human report of a replay: findings grouped by rule, then the summary.
pub fn render_table(batches: &[RecordBatch], summary: &ReplaySummary, multi: bool) -> String {
    let mut out = String::new();
    for rule in &summary.rules {
        let _ = writeln!(out, "{}", rule.rule_name);
        let _ = writeln!(
            out,
            "rule {} | severity {} | {} finding{}",
            rule.rule_id,
            rule.severity,
            rule.findings,
            if rule.findings == 1 { "" } else { "s" }
        );
        let mut rows: Vec<[String; 7]> = Vec::new();
        let mut reasons = Vec::new();
        for b in batches {
            let ids = col(b, "rule_id").as_string::<i32>();
            let idx = col(b, "event_index").as_primitive::<UInt64Type>();
            let time = col(b, "time").as_primitive::<TimestampNanosecondType>();
            let pid = col(b, "pid").as_primitive::<UInt32Type>();
            for i in 0..b.num_rows() {
                if ids.value(i) != rule.rule_id {
                    continue;
                }
                let event = if multi {
                    let cap = s(b, "capture", i).unwrap_or_default();
                    let name =
                        std::path::Path::new(&cap).file_name().map_or(cap.clone(), |n| n.to_string_lossy().into());
                    format!("{name}#{}", idx.value(i))
                } else {
                    idx.value(i).to_string()
                };
                let container = s(b, "container_id", i).map_or("(host)".to_string(), |c| c.chars().take(12).collect());
                rows.push([
                    event,
                    human_time(time.value(i)),
                    container,
                    pid.value(i).to_string(),
                    s(b, "comm", i).unwrap_or_default(),
                    s(b, "kind", i).unwrap_or_default(),
                    target(b, i),
                ]);
                reasons.push(s(b, "reason", i).unwrap_or_default());
            }
        }
        if rows.is_empty() {
            let _ = writeln!(out, "  (no findings)\n");
            continue;
        }
        let header = ["EVENT", "TIME (UTC)", "CONTAINER", "PID", "COMM", "KIND", "TARGET"].map(String::from);
        let mut widths = header.clone().map(|h| h.chars().count());
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |r: &[String; 7]| {
            let mut l = String::from(" ");
            for (k, (c, w)) in r.iter().zip(widths).enumerate() {
                if k + 1 == r.len() {
                    let _ = write!(l, " {c}");
                } else {
                    let _ = write!(l, " {c:<w$}");
                }
            }
            l
        };
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", line(&header));
        for (r, why) in rows.iter().zip(&reasons) {
            let _ = writeln!(out, "{}", line(r));
            let _ = writeln!(out, "  {:w$}   why: {why}", "", w = widths[0]);
        }
        let _ = writeln!(out);
    }
    out.push_str(&summary_text_plain(summary));
    out
}

fn summary_text_plain(summary: &ReplaySummary) -> String {
    let mut out = String::from("Summary\n");
    for (path, events) in &summary.captures {
        let _ = writeln!(out, "  capture      {} ({events} events)", path.display());
    }
    let _ = writeln!(out, "  events read  {}", summary.events);
    if let Some((lo, hi)) = summary.time_range {
        let _ = writeln!(out, "  time range   {} .. {} UTC", human_time(lo), human_time(hi));
    }
    let _ = writeln!(out, "  findings     {}", summary.findings());
    for r in &summary.rules {
        let _ = writeln!(out, "    {:>5}  {}  {}", r.findings, r.rule_id, r.rule_name);
    }
    let _ = writeln!(out, "  containers   {}", summary.containers.len());
    for c in &summary.containers {
        let _ = writeln!(out, "    {c}");
    }
    let _ = writeln!(out, "  processes    {}", summary.processes.len());
    for (host, pid, comm) in &summary.processes {
        let _ = writeln!(out, "    {host} pid {pid} {comm}");
    }
    if summary.unevaluable() > 0 {
        let _ = writeln!(out, "  unevaluable  {} (see warnings on stderr)", summary.unevaluable());
    }
    out
}

/// The summary block, for stderr when findings go elsewhere.
pub fn summary_text(summary: &ReplaySummary, _rules: &RuleSet) -> String {
    summary_text_plain(summary)
}

/// Warns on stderr about events a rule could not evaluate, with examples.
pub fn warn_unevaluable(summary: &ReplaySummary) {
    for r in &summary.rules {
        if r.unevaluable == 0 {
            continue;
        }
        eprintln!(
            "tokenscan: warning: rule {} could not evaluate {} event{} (use --strict to make this an error); for example:",
            r.rule_id,
            r.unevaluable,
            if r.unevaluable == 1 { "" } else { "s" }
        );
        for e in &r.examples {
            eprintln!("  {} event {}: {}", e.capture.display(), e.event_index, e.message);
        }
    }
}

/// The replay summary as JSON.
pub fn summary_json(summary: &ReplaySummary) -> serde_json::Value {
    let mut v = serde_json::json!({
        "events": summary.events,
        "captures": summary.captures.iter().map(|(p, n)| serde_json::json!({"path": p.display().to_string(), "events": n})).collect::<Vec<_>>(),
        "time_range": summary.time_range.map(|(lo, hi)| serde_json::json!({"first": rfc3339(lo), "last": rfc3339(hi)})),
        "findings": summary.findings(),
        "rules": summary.rules.iter().map(|r| serde_json::json!({
            "rule_id": r.rule_id, "rule_name": r.rule_name, "severity": r.severity,
            "findings": r.findings, "unevaluable": r.unevaluable,
            "unevaluable_examples": r.examples.iter().map(|e| serde_json::json!({
                "capture": e.capture.display().to_string(), "event_index": e.event_index, "message": e.message})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "containers": summary.containers,
        "processes": summary.processes.iter().map(|(h, p, c)| serde_json::json!({"host": h, "pid": p, "comm": c})).collect::<Vec<_>>(),
    });
    // Only present when something could not be read (the key is new; a clean replay's summary is unchanged).
    if !summary.unreadable.is_empty() {
        v["unreadable"] = summary
            .unreadable
            .iter()
            .map(|u| {
                serde_json::json!({
            "capture": u.capture.display().to_string(), "events_read": u.events_read, "message": u.message})
            })
            .collect();
    }
    v
}

/// Prints the rule list.
pub fn print_rules(set: &RuleSet, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let v: Vec<_> = set
            .rules()
            .iter()
            .map(|r| {
                let logic = r.describe();
                serde_json::json!({"id": r.id, "name": r.name, "kind": r.kind(), "severity": r.severity,
                    "risk_score": r.risk_score, "threat": r.threat, "source": r.source.display().to_string(), "logic": logic})
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
        return Ok(());
    }
    let rows: Vec<[String; 5]> = set
        .rules()
        .iter()
        .map(|r| [r.id.clone(), r.kind().into(), r.severity.clone(), r.name.clone(), r.source.display().to_string()])
        .collect();
    let header = ["ID", "KIND", "SEVERITY", "NAME", "SOURCE"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    Ok(())
}
