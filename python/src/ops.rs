//! The work behind each Python call, in plain Rust over the core: no Python
//! objects here, so all of it runs with the GIL released (see [`crate::detach`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{BooleanArray, RecordBatch, RecordBatchOptions, RecordBatchReader, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use arrow_select::filter::filter_record_batch;
use tokenscan_core::capture::{self, expand_paths, Capture, Column, EventBatch, Projection};
use tokenscan_core::driver::{read_events, read_events_with_process};
use tokenscan_core::eql::{line_col, CompileOptions, EqlQuery};
use tokenscan_core::replay::{CollectSink, ReplayOptions, ReplaySummary, Replayer};
use tokenscan_core::rules::RuleSet;
use tokenscan_core::view::{ecs::ecs_record_batch, tracee::tracee_record_batch};
use tokenscan_core::{Error, Position};

use crate::arrow_io::{plain_columns, with_capture_column};
use crate::errors::Failure;

/// Events per batch when reading captures for views, hunts and `read_capture`.
pub(crate) const BATCH_SIZE: usize = capture::DEFAULT_BATCH_SIZE;

/// What a replay or an evaluation produced: finding batches
/// (`tokenscan_core::findings::findings_schema`) and the summary.
#[derive(Debug, Clone, Default)]
pub(crate) struct FindingsData {
    /// Finding batches, in capture order.
    pub batches: Vec<RecordBatch>,
    /// What was read and found.
    pub summary: ReplaySummary,
}

/// Replays capture files, as `tokenscan replay` does (in parallel, see [`on_own_pool`]).
pub(crate) fn replay(captures: &[PathBuf], rules: RuleSet, options: ReplayOptions) -> Result<FindingsData, Failure> {
    let captures = expand_paths(captures)?;
    let replayer = Replayer::new(rules, options);
    let mut sink = CollectSink::default();
    let summary = on_own_pool(|| replayer.replay(&captures, &mut sink))?;
    Ok(FindingsData { batches: sink.batches, summary })
}

/// Runs `f` on a rayon pool made for this call. The core replays row groups in
/// parallel on rayon; rayon's global pool does not survive `fork()` (what
/// Python's multiprocessing does by default on Linux), so a forked child that
/// replayed on it would wait forever for threads that no longer exist. A pool
/// per call costs a few thread spawns; if even that fails, the global pool it is.
fn on_own_pool<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    match rayon::ThreadPoolBuilder::new().thread_name(|i| format!("tokenscan-{i}")).build() {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

/// Evaluates rules over Arrow data that did not come from a capture file,
/// numbering its events from `first_index`; `label` stands for the capture.
pub(crate) fn evaluate(
    rules: RuleSet,
    options: ReplayOptions,
    reader: Box<dyn RecordBatchReader + Send>,
    label: &str,
    first_index: u64,
) -> Result<FindingsData, Failure> {
    let replayer = Replayer::new(rules, options);
    let projection = replayer.projection();
    let label = Path::new(label);
    let mut summary = replayer.new_summary();
    let mut sink = CollectSink::default();
    let mut next = first_index;
    for batch in reader {
        let batch = batch?;
        let events = EventBatch::from_record_batch(label, &batch, projection, next)?;
        next += batch.num_rows() as u64;
        replayer.replay_batch(label, &events, &mut summary, &mut sink)?;
    }
    summary.captures.push((label.to_owned(), next - first_index));
    Ok(FindingsData { batches: sink.batches, summary })
}

/// Resolves column names to capture columns, in the order given.
pub(crate) fn columns_by_name(names: &[String]) -> Result<Vec<Column>, String> {
    names
        .iter()
        .map(|n| {
            Column::from_name(n).ok_or_else(|| {
                format!(
                    "unknown capture column {n:?}; capture format v2 has {}",
                    Column::ALL.map(|c| c.name()).join(", ")
                )
            })
        })
        .collect()
}

/// A capture's events: the chosen columns (all when `None`) in that order,
/// canonical types, the capture's key-value metadata on the schema.
pub(crate) fn read_capture(
    path: &Path,
    columns: Option<Vec<Column>>,
) -> Result<(Vec<RecordBatch>, SchemaRef), Failure> {
    let columns = columns.unwrap_or_else(|| Column::ALL.to_vec());
    let capture = Capture::open(path)?;
    let fields: Vec<Field> = columns.iter().map(|c| Field::new(c.name(), c.data_type(), c.nullable())).collect();
    let metadata = capture.metadata().clone().into_iter().collect();
    let schema = Arc::new(Schema::new_with_metadata(fields, metadata));
    let mut batches = Vec::new();
    let to_record_batch = |_: &Path, batch: EventBatch| {
        let arrays = plain_columns(columns.iter().map(|c| batch.column(*c).expect("projected").clone()).collect());
        let options = RecordBatchOptions::new().with_row_count(Some(batch.len()));
        RecordBatch::try_new_with_options(schema.clone(), arrays, &options)
            .map_err(|e| Error::Capture { path: path.to_owned(), message: e.to_string() })
    };
    let projection = columns.iter().copied().collect();
    read_events(&[path], projection, &read_options(), to_record_batch, &mut |rb| {
        batches.push(rb);
        Ok(())
    })?;
    Ok((batches, schema))
}

/// Which rule view to build.
#[derive(Debug, Clone, Copy)]
pub(crate) enum View {
    /// The ECS documents an EQL rule sees.
    Ecs,
    /// The Tracee events a signature sees.
    Tracee,
}

impl View {
    fn build(self, batch: &EventBatch) -> RecordBatch {
        match self {
            View::Ecs => ecs_record_batch(batch),
            View::Tracee => tracee_record_batch(batch),
        }
    }
}

/// An empty event batch with every column, to learn a view's schema when there are no events.
fn empty_events() -> EventBatch {
    let empty = RecordBatch::new_empty(capture::schema());
    EventBatch::from_record_batch(Path::new("<empty>"), &empty, Projection::all(), 0)
        .expect("the canonical schema is a valid capture")
}

/// The events of `captures` as a rule view sees them (visible events only),
/// each row led by its `capture`.
pub(crate) fn view(captures: &[PathBuf], which: View) -> Result<(Vec<RecordBatch>, SchemaRef), Failure> {
    let schema = with_capture_column("", &which.build(&empty_events())).schema();
    let mut batches = Vec::new();
    let build =
        |path: &Path, batch: EventBatch| Ok(with_capture_column(&path.display().to_string(), &which.build(&batch)));
    // The ECS view shows the process-model fields too: it needs the processes.
    let process = matches!(which, View::Ecs);
    let sink = &mut |rb: RecordBatch| {
        if rb.num_rows() > 0 {
            batches.push(rb);
        }
        Ok(())
    };
    read_events_with_process(&expand_paths(captures)?, Projection::all(), process, &read_options(), build, sink)?;
    Ok((batches, schema))
}

/// How views, hunts and `read_capture` read captures: as a replay does by default.
fn read_options() -> ReplayOptions {
    ReplayOptions { batch_size: BATCH_SIZE, ..Default::default() }
}

/// Compiles an ad-hoc EQL query; errors are [`Error::Rule`]s in `<query>` with line and column.
pub(crate) fn compile_query(query: &str, options: &CompileOptions) -> Result<EqlQuery, Failure> {
    EqlQuery::compile(query, options).map_err(|e| {
        let (line, column) = line_col(query, e.span.start);
        Failure::Core(Error::Rule {
            path: PathBuf::from("<query>"),
            position: Some(Position { line, column }),
            message: e.message,
        })
    })
}

/// The schema of hunt results: `capture`, `event_index`, then every capture column.
fn hunt_schema() -> SchemaRef {
    let mut fields =
        vec![Field::new("capture", DataType::Utf8, false), Field::new("event_index", DataType::UInt64, false)];
    fields.extend(Column::ALL.iter().map(|c| Field::new(c.name(), c.data_type(), c.nullable())));
    Arc::new(Schema::new(fields))
}

/// The events of `captures` that match `query`, with every capture column.
pub(crate) fn hunt(captures: &[PathBuf], query: &EqlQuery) -> Result<(Vec<RecordBatch>, SchemaRef), Failure> {
    let schema = hunt_schema();
    let body = Arc::new(Schema::new(schema.fields()[1..].to_vec()));
    let matches = |path: &Path, batch: EventBatch| -> tokenscan_core::Result<Option<RecordBatch>> {
        let mask = BooleanArray::new(query.evaluate(&batch), None);
        if mask.true_count() == 0 {
            return Ok(None);
        }
        let first = batch.first_index();
        let index: UInt64Array = (0..batch.len() as u64).map(|i| first + i).collect();
        let mut columns = vec![Arc::new(index) as arrow_array::ArrayRef];
        columns
            .extend(plain_columns(Column::ALL.iter().map(|c| batch.column(*c).expect("all read").clone()).collect()));
        let rb = RecordBatch::try_new(body.clone(), columns)
            .map_err(|e| Error::Capture { path: path.to_owned(), message: e.to_string() })?;
        let rb = filter_record_batch(&rb, &mask).expect("mask has the batch's length");
        Ok(Some(with_capture_column(&path.display().to_string(), &rb)))
    };
    let mut batches = Vec::new();
    let process = query.needs_process();
    read_events_with_process(
        &expand_paths(captures)?,
        Projection::all(),
        process,
        &read_options(),
        matches,
        &mut |rb: Option<RecordBatch>| {
            batches.extend(rb);
            Ok(())
        },
    )?;
    Ok((batches, schema))
}

/// The process trees of `captures` with `rules`' findings (see
/// [`tokenscan_core::process::process_trees`]), as Arrow.
pub(crate) fn process_tree(
    captures: &[PathBuf],
    rules: RuleSet,
    filter: tokenscan_core::process::TreeFilter,
) -> Result<(Vec<RecordBatch>, SchemaRef), Failure> {
    use tokenscan_core::process::{process_tree_batch, process_tree_schema, process_trees};
    let trees = process_trees(&rules, &expand_paths(captures)?, &read_options(), &filter)?;
    Ok((vec![process_tree_batch(&trees)], process_tree_schema()))
}
