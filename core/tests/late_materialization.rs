//! Replay of a Parquet capture decodes only the rules' columns for every
//! event and reads the columns only findings need for the rows that fire
//! (late materialization). These tests pin that it reports exactly what a
//! replay that decodes every column reports: the same NDJSON twin of the
//! capture goes through the full-decode path, and must give identical finding
//! batches, cell for cell, over many row groups, several batches per row
//! group, and row groups with no finding at all.

use std::fs::File;
use std::path::Path;

use arrow_array::RecordBatch;
use arrow_cast::display::array_value_to_string;

use tokenscan_core::capture::{Capture, NdjsonWriter, ParquetCaptureWriter, WriterOptions};
use tokenscan_core::eql::CompileOptions;
use tokenscan_core::replay::{CollectSink, ReplayOptions, ReplaySummary, Replayer};
use tokenscan_core::rules::RuleSet;
use tokenscan_core::synth::{Synth, SynthOptions};

/// Writes the same synthetic events as Parquet (small row groups) and NDJSON.
fn write_twins(dir: &Path, events: u64, row_group_rows: usize, token_reads_per_million: f64) -> (String, String) {
    let parquet = dir.join("c.parquet");
    let ndjson = dir.join("c.ndjson");
    let opts = SynthOptions { events, seed: 11, token_reads_per_million, ..Default::default() };
    let mut synth = Synth::new(opts);
    let wopts = WriterOptions { row_group_rows, ..Default::default() };
    let mut pw = ParquetCaptureWriter::new(File::create(&parquet).unwrap(), &parquet, wopts).unwrap();
    let mut nw = NdjsonWriter::new(File::create(&ndjson).unwrap(), &ndjson);
    while let Some(batch) = synth.next_batch(1000) {
        pw.write(&batch).unwrap();
        nw.write(&batch).unwrap();
    }
    pw.close().unwrap();
    nw.finish().unwrap();
    (parquet.display().to_string(), ndjson.display().to_string())
}

fn replay(path: &str, batch_size: usize) -> (ReplaySummary, Vec<Vec<String>>) {
    let replayer = Replayer::new(
        RuleSet::builtin(&CompileOptions::default()).unwrap(),
        ReplayOptions { batch_size, ..Default::default() },
    );
    let mut sink = CollectSink::default();
    let summary = replayer.replay(&[path], &mut sink).unwrap();
    (summary, rows(&sink.batches))
}

/// Every finding as its cells in text, without the `capture` column (the two files differ in name).
fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for b in batches {
        let skip = b.schema().index_of("capture").unwrap();
        for r in 0..b.num_rows() {
            out.push(
                (0..b.num_columns())
                    .filter(|&c| c != skip)
                    .map(|c| array_value_to_string(b.column(c), r).unwrap())
                    .collect(),
            );
        }
    }
    out
}

#[test]
fn parquet_replay_reports_the_same_findings_as_a_full_decode() {
    let dir = tempfile::tempdir().unwrap();
    // 40,000 events in row groups of 3,000 (14 row groups), many token reads.
    let (parquet, ndjson) = write_twins(dir.path(), 40_000, 3_000, 2_000.0);
    assert_eq!(Capture::open(&parquet).unwrap().units(), 14);
    for batch_size in [700, tokenscan_core::capture::DEFAULT_BATCH_SIZE] {
        let (ps, pf) = replay(&parquet, batch_size);
        let (ns, nf) = replay(&ndjson, batch_size);
        assert!(pf.len() > 20, "the capture must produce findings in several row groups, got {}", pf.len());
        assert_eq!(pf, nf, "batch size {batch_size}: Parquet and NDJSON replays differ");
        assert_eq!(ps.events, 40_000);
        assert_eq!(ps.events, ns.events);
        assert_eq!(ps.time_range, ns.time_range);
        assert_eq!(ps.containers, ns.containers);
        assert_eq!(ps.processes, ns.processes);
        let counts = |s: &ReplaySummary| s.rules.iter().map(|r| (r.findings, r.unevaluable)).collect::<Vec<_>>();
        assert_eq!(counts(&ps), counts(&ns));
    }
}

/// A capture whose row groups do not divide among the threads has its last
/// ones cut into ranges of rows, one per thread (`Capture::pieces`): three
/// row groups on two threads are the first two whole and halves of the
/// third. The halves must report what a full decode reports, cell for cell:
/// catches a later range numbered from the start of its row group, rows read
/// twice or lost at the cut, and a range's findings read late from the wrong
/// rows.
#[test]
fn row_groups_cut_among_threads_report_the_same_findings_as_a_full_decode() {
    use tokenscan_core::capture::Piece;
    let dir = tempfile::tempdir().unwrap();
    // 3 row groups of 40,000 events, a token read in about 1 event of 50.
    let (parquet, ndjson) = write_twins(dir.path(), 120_000, 40_000, 20_000.0);
    let whole = |unit| Piece { unit, rows: None };
    let cut = |rows| Piece { unit: 2, rows: Some(rows) };
    assert_eq!(
        Capture::open(&parquet).unwrap().pieces(2),
        vec![whole(0), whole(1), cut(0..20_000), cut(20_000..40_000)]
    );
    assert_eq!(Capture::open(&parquet).unwrap().pieces(3), vec![whole(0), whole(1), whole(2)]);
    let two_threads = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let (ps, pf) = two_threads.install(|| replay(&parquet, 7_000));
    let (ns, nf) = replay(&ndjson, 7_000);
    // After `rule_id`, `rule_name`, `severity` (and `capture`, left out): the event index.
    let at = |lo: u64, hi: u64| pf.iter().filter(|f| (lo..hi).contains(&f[3].parse::<u64>().unwrap())).count();
    assert!(at(80_000, 100_000) > 10 && at(100_000, 120_000) > 10, "findings must lie on both sides of the cut");
    assert_eq!(pf, nf, "Parquet replay in pieces and NDJSON replay differ");
    assert_eq!((ps.events, ps.time_range, ps.processes), (120_000, ns.time_range, ns.processes));
}

/// A capture's argument lists are read with their elements dictionary-encoded
/// when the file stores them so (the rules match each distinct argument
/// once), but what reaches users is always a plain list of strings: the
/// findings' `args` and the events a view or `convert` reads. Catches the
/// readers' encoding leaking into outputs whose type users rely on (a
/// notebook's Arrow schema, a converted capture).
#[test]
fn arguments_reach_findings_and_views_as_plain_lists_of_strings() {
    use arrow_schema::DataType;
    let dir = tempfile::tempdir().unwrap();
    let (parquet, _) = write_twins(dir.path(), 20_000, 3_000, 2_000.0);
    let meta = parquet::file::reader::FileReader::metadata(
        &parquet::file::serialized_reader::SerializedFileReader::new(File::open(&parquet).unwrap()).unwrap(),
    )
    .clone();
    let args_leaf = (0..meta.row_group(0).num_columns())
        .find(|&i| meta.row_group(0).column(i).column_path().parts()[0] == "args")
        .unwrap();
    assert!(
        meta.row_group(0).column(args_leaf).dictionary_page_offset().is_some(),
        "the test needs dictionary-encoded args"
    );
    let plain = |t: &DataType| matches!(t, DataType::List(item) if *item.data_type() == DataType::Utf8);
    let replayer = Replayer::new(RuleSet::builtin(&CompileOptions::default()).unwrap(), ReplayOptions::default());
    let mut sink = CollectSink::default();
    replayer.replay(&[&parquet], &mut sink).unwrap();
    assert!(!sink.batches.is_empty());
    for b in &sink.batches {
        let t = b.schema().field_with_name("args").unwrap().data_type().clone();
        assert!(plain(&t), "findings' args are {t}");
    }
    let mut types = Vec::new();
    tokenscan_core::driver::read_events(
        &[&parquet],
        tokenscan_core::capture::Projection::all(),
        &ReplayOptions::default(),
        |_, b| Ok(b.column(tokenscan_core::capture::Column::Args).unwrap().data_type().clone()),
        &mut |t| {
            types.push(t);
            Ok(())
        },
    )
    .unwrap();
    assert!(!types.is_empty() && types.iter().all(plain), "events' args are {types:?}");
    // The serial reader tools and tests use (`Capture::batches`) too.
    for b in Capture::open(&parquet).unwrap().batches(tokenscan_core::capture::Projection::all(), 4096).unwrap() {
        let t = b.unwrap().column(tokenscan_core::capture::Column::Args).unwrap().data_type().clone();
        assert!(plain(&t), "Capture::batches' args are {t}");
    }
}

#[test]
fn findings_carry_their_own_event_columns_not_a_neighbours() {
    // Each finding's pid, requested path and exe (columns read late) must be
    // those of its own event: compare with the event read directly.
    let dir = tempfile::tempdir().unwrap();
    let (parquet, _) = write_twins(dir.path(), 20_000, 2_500, 3_000.0);
    let replayer = Replayer::new(
        RuleSet::builtin(&CompileOptions::default()).unwrap(),
        ReplayOptions { batch_size: 999, ..Default::default() },
    );
    let mut sink = CollectSink::default();
    replayer.replay(&[&parquet], &mut sink).unwrap();
    let capture = Capture::open(&parquet).unwrap();
    let all: Vec<_> = capture
        .batches(tokenscan_core::capture::Projection::all(), 100_000)
        .unwrap()
        .map(|b| b.unwrap().to_record_batch())
        .collect();
    let events = arrow_select::concat::concat_batches(&all[0].schema(), &all).unwrap();
    let mut checked = 0;
    for b in &sink.batches {
        let idx = b.column_by_name("event_index").unwrap();
        for r in 0..b.num_rows() {
            let e: usize = array_value_to_string(idx, r).unwrap().parse().unwrap();
            for col in ["pid", "tid", "ppid", "uid", "host", "exe", "requested_path", "time", "path", "comm"] {
                let want = array_value_to_string(events.column_by_name(col).unwrap(), e).unwrap();
                let got = array_value_to_string(b.column_by_name(col).unwrap(), r).unwrap();
                assert_eq!(got, want, "finding for event {e}: column {col}");
            }
            checked += 1;
        }
    }
    assert!(checked > 10, "only {checked} findings checked");
}

/// The fixture with `host` (non-nullable in the format) null from event
/// `from` on, written with or without column statistics.
fn null_host_capture(dir: &Path, from: usize, statistics: bool) -> String {
    use std::sync::Arc;

    use arrow_array::{Array, StringArray};
    use arrow_schema::{Field, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::{EnabledStatistics, WriterProperties};

    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/pod-session.parquet");
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(fixture).unwrap()).unwrap().build().unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    let events = arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap();
    let i = events.schema().index_of("host").unwrap();
    let host = events.column(i).as_any().downcast_ref::<StringArray>().unwrap();
    let nulled: StringArray = (0..host.len()).map(|r| (r < from).then(|| host.value(r))).collect();
    let mut fields: Vec<Field> = events.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[i] = Field::new("host", arrow_schema::DataType::Utf8, true);
    let mut columns = events.columns().to_vec();
    columns[i] = Arc::new(nulled);
    let schema = Arc::new(Schema::new_with_metadata(fields, events.schema().metadata().clone()));
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let path = dir.join(format!("null-host-{from}-{statistics}.parquet"));
    let stats = if statistics { EnabledStatistics::Chunk } else { EnabledStatistics::None };
    let props = WriterProperties::builder().set_statistics_enabled(stats).build();
    let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    path.display().to_string()
}

/// The replay's error with the Elastic rule alone and without the findings'
/// triage context: nothing then reads `host` but the findings, late.
fn replay_error(path: &str) -> String {
    let rule = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/elastic-d4c-service-account-token-read.toml");
    let rules = RuleSet::load(&[rule], &CompileOptions::default()).unwrap();
    let options = ReplayOptions { context: false, ..ReplayOptions::default() };
    Replayer::new(rules, options).replay(&[path], &mut CollectSink::default()).unwrap_err().to_string()
}

fn replay_error_with(path: &str, options: ReplayOptions) -> String {
    let replayer = Replayer::new(RuleSet::builtin(&CompileOptions::default()).unwrap(), options);
    replayer.replay(&[path], &mut CollectSink::default()).unwrap_err().to_string()
}

#[test]
fn a_null_in_a_column_read_only_for_findings_is_still_an_error() {
    // `host` is read late, for the rows that fire (the first finding of
    // pod-session is event 30). A null before any finding must still be
    // reported: from the footer's statistics when the file has them,
    // naming the events; at the finding's own event when it has none.
    let dir = tempfile::tempdir().unwrap();
    let with_stats = null_host_capture(dir.path(), 5, true);
    let e = replay_error(&with_stats);
    assert!(e.contains("column `host` is null in 78 of events 0..83 (row group 0)"), "{e}");
    let without = null_host_capture(dir.path(), 31, false);
    let e = replay_error(&without);
    // The Elastic rule's findings in pod-session are events 30, 33, 36, ...
    // (fixtures/EXPECTED.md): the first one past the nulls' start is 33.
    assert!(e.contains("column `host` is null at event 33, but the format does not allow nulls there"), "{e}");
    // With both rules (and the triage context, rebuilt after the rows are
    // read): TRC-108's first finding past the nulls' start is event 32.
    let e = replay_error_with(&without, ReplayOptions::default());
    assert!(e.contains("column `host` is null at event 32, but the format does not allow nulls there"), "{e}");
}

/// With `skip_unreadable`, a row group cut among threads whose second range
/// cannot be decoded adds nothing to the summary's time range, as a row
/// group unreadable whole adds nothing: the range comes from the footer's
/// statistics (`time` is not decoded), and those cover the events lost with
/// the failed range too. Catches the range read first adding its whole row
/// group's statistics while the other failed. Expected: the first two row
/// groups' earliest and latest `time`, read with the `parquet` crate's own
/// reader.
#[test]
fn a_row_group_cut_among_threads_adds_no_time_when_a_range_of_it_is_unreadable() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::TimestampNanosecondType;
    use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
    use parquet::arrow::ProjectionMask;
    use parquet::file::metadata::PageIndexPolicy;
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let (parquet, _) = write_twins(dir.path(), 120_000, 40_000, 20_000.0);
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
    let builder =
        ParquetRecordBatchReaderBuilder::try_new_with_options(File::open(&parquet).unwrap(), options).unwrap();
    let descr = builder.metadata().file_metadata().schema_descr_ptr();
    let leaf = |name: &str| (0..descr.num_columns()).find(|&i| descr.column(i).name() == name).unwrap();
    // The last page of `kind` in row group 2: past the first range (rows 0..20,000).
    let pages = builder.metadata().offset_index().unwrap()[2][leaf("kind")].page_locations().clone();
    let last = pages.last().unwrap();
    assert!(last.first_row_index >= 20_000, "the last page must lie in the second range: {last:?}");
    let (kind_at, time) = (last.offset as u64, leaf("time"));
    let mask = ProjectionMask::leaves(builder.parquet_schema(), [time]);
    let reader = builder.with_row_groups(vec![0, 1]).with_projection(mask).build().unwrap();
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for batch in reader {
        for &t in batch.unwrap().column(0).as_primitive::<TimestampNanosecondType>().values() {
            (lo, hi) = (lo.min(t), hi.max(t));
        }
    }
    // A page header that is not Thrift: the range holding it cannot be decoded.
    let file = std::fs::OpenOptions::new().write(true).open(&parquet).unwrap();
    file.write_all_at(&[0xFF; 8], kind_at).unwrap();
    let replayer = Replayer::new(
        RuleSet::builtin(&CompileOptions::default()).unwrap(),
        ReplayOptions { skip_unreadable: true, ..Default::default() },
    );
    let two_threads = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let summary = two_threads.install(|| replayer.replay(&[&parquet], &mut CollectSink::default())).unwrap();
    assert_eq!(summary.unreadable.len(), 1, "{:?}", summary.unreadable);
    assert!(summary.events >= 100_000 && summary.events < 120_000, "events read: {}", summary.events);
    assert_eq!(summary.time_range, Some((lo, hi)));
}
