//! The notebook rendering of findings (`_repr_html_`): the summary, the
//! findings per rule and the first rows, built straight from the Arrow
//! columns (no Python object per finding).

use std::fmt::Write as _;

use arrow_array::cast::AsArray;
use arrow_array::types::{TimestampNanosecondType, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use tokenscan_core::display::{escape_markup as escape, human_time};
use tokenscan_core::findings::{finding_place, finding_target};
use tokenscan_core::replay::ReplaySummary;

/// Findings shown as rows; the rest are counted.
pub(crate) const MAX_ROWS: usize = 20;

fn string(b: &RecordBatch, name: &str, row: usize) -> Option<String> {
    let a = b.column_by_name(name)?;
    a.is_valid(row).then(|| a.as_string::<i32>().value(row).to_string())
}

/// The whole rendering.
pub(crate) fn render(batches: &[RecordBatch], s: &ReplaySummary) -> String {
    let mut h = String::from("<div class=\"tokenscan-findings\">\n");
    let captures = s.captures.len();
    let _ = write!(
        h,
        "<p><b>{} finding{}</b> in {} events from {} capture{}",
        s.findings(),
        if s.findings() == 1 { "" } else { "s" },
        s.events,
        captures,
        if captures == 1 { "" } else { "s" }
    );
    if let Some((lo, hi)) = s.time_range {
        let _ = write!(h, ", {} .. {} UTC", human_time(lo), human_time(hi));
    }
    let _ = writeln!(
        h,
        "; {} container{}, {} process{}</p>",
        s.containers.len(),
        if s.containers.len() == 1 { "" } else { "s" },
        s.processes.len(),
        if s.processes.len() == 1 { "" } else { "es" }
    );
    h.push_str("<table>\n<thead><tr><th>findings</th><th>rule</th><th>name</th><th>severity</th><th>unevaluable</th></tr></thead>\n<tbody>\n");
    for r in &s.rules {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.findings,
            escape(&r.rule_id),
            escape(&r.rule_name),
            escape(&r.severity),
            r.unevaluable
        );
    }
    h.push_str("</tbody>\n</table>\n");
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    if total > 0 {
        h.push_str("<table>\n<thead><tr><th>event</th><th>time (UTC)</th><th>rule</th><th>pod</th><th>pid</th><th>comm</th><th>kind</th><th>target</th><th>why</th></tr></thead>\n<tbody>\n");
        let multi = captures > 1;
        let mut shown = 0;
        'batches: for b in batches {
            let index = b.column_by_name("event_index").map(|a| a.as_primitive::<UInt64Type>().clone());
            let time = b.column_by_name("time").map(|a| a.as_primitive::<TimestampNanosecondType>().clone());
            let pid = b.column_by_name("pid").map(|a| a.as_primitive::<UInt32Type>().clone());
            for row in 0..b.num_rows() {
                if shown == MAX_ROWS {
                    break 'batches;
                }
                shown += 1;
                let mut event = index.as_ref().map(|a| a.value(row).to_string()).unwrap_or_default();
                if multi {
                    let capture = string(b, "capture", row).unwrap_or_default();
                    let name = std::path::Path::new(&capture)
                        .file_name()
                        .map_or(capture.clone(), |n| n.to_string_lossy().into_owned());
                    event = format!("{name}#{event}");
                }
                let place = finding_place(b, row);
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td><td style=\"text-align:left\">{}</td></tr>",
                    escape(&event),
                    time.as_ref().filter(|t| t.is_valid(row)).map(|t| human_time(t.value(row))).unwrap_or_default(),
                    escape(&string(b, "rule_id", row).unwrap_or_default()),
                    escape(&place),
                    pid.as_ref().map(|p| p.value(row).to_string()).unwrap_or_default(),
                    escape(&string(b, "comm", row).unwrap_or_default()),
                    escape(&string(b, "kind", row).unwrap_or_default()),
                    escape(&finding_target(b, row)),
                    escape(&string(b, "reason", row).unwrap_or_default()),
                );
            }
        }
        h.push_str("</tbody>\n</table>\n");
        if total > shown {
            let _ = writeln!(
                h,
                "<p>{} more finding{}: <code>.to_pandas()</code>, <code>.to_polars()</code> or <code>.to_arrow()</code> has them all.</p>",
                total - shown,
                if total - shown == 1 { "" } else { "s" }
            );
        }
    }
    let unevaluable = s.unevaluable();
    if unevaluable > 0 {
        let _ = writeln!(
            h,
            "<p>{unevaluable} event{} could not be evaluated by a rule (see <code>summary()['rules']</code>; <code>strict=True</code> makes this an error).</p>",
            if unevaluable == 1 { "" } else { "s" }
        );
    }
    h.push_str("</div>");
    h
}
