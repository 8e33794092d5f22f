//! Process trees of a pod, a container or a session, with the findings of
//! each process: what `tokenscan tree` prints and `tokenscan.process_tree`
//! returns (Elastic's Session View, in a terminal).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{EntityRef, ProcessContext};
use crate::capture::{Capture, Column, Projection};
use crate::driver::{Chunk, Consumer, Driver};
use crate::error::Result;
use crate::replay::ReplayOptions;
use crate::rules::RuleSet;

/// Which processes a tree shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeFilter {
    /// Only processes of containers of the pod with this name (capture v2 metadata).
    pub pod: Option<String>,
    /// Only processes of this container (a full id or a prefix of at least 12 characters).
    pub container: Option<String>,
    /// Only the session of this pid: the processes with its session id, or,
    /// when the capture has no session ids, the process and its descendants.
    pub pid: Option<u32>,
}

impl TreeFilter {
    /// Whether no filter is set: the tree then shows the processes with a
    /// finding and their ancestors.
    pub fn is_empty(&self) -> bool {
        self.pod.is_none() && self.container.is_none() && self.pid.is_none()
    }
}

/// One finding, attached to its process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFinding {
    /// The event's index in its capture.
    pub event_index: u64,
    /// The rule that fired.
    pub rule_id: String,
    /// Why it fired.
    pub reason: String,
}

/// One process of a tree, in depth-first order.
#[derive(Debug, Clone)]
pub struct TreeNode {
    /// The process.
    pub entity: EntityRef,
    /// Depth below the tree's roots (0 for a root).
    pub depth: usize,
    /// The findings on the process's events, in event order.
    pub findings: Vec<TreeFinding>,
}

/// The process tree of one capture.
#[derive(Debug, Clone)]
pub struct ProcessTree {
    /// The capture.
    pub capture: PathBuf,
    /// Its processes (entities, links, container metadata).
    pub context: Arc<ProcessContext>,
    /// The processes shown, depth first; children in the order the capture
    /// first showed them.
    pub nodes: Vec<TreeNode>,
}

/// Collects the hits of a replay: (event index, rule position, reason).
struct Hits;

impl Consumer for Hits {
    type Part = Vec<(u64, usize, String)>;

    fn columns(&self) -> Projection {
        [Column::Kind].into_iter().collect()
    }

    fn part(&self, chunk: Chunk<'_>) -> Result<Self::Part> {
        Ok(chunk.hits.iter().map(|h| (chunk.event_index(h.row), h.rule, h.reason.clone())).collect())
    }
}

/// The process trees of `captures` (one per capture), with `rules`' findings
/// attached to their processes, restricted by `filter`.
pub fn process_trees<P: AsRef<Path>>(
    rules: &RuleSet,
    captures: &[P],
    options: &ReplayOptions,
    filter: &TreeFilter,
) -> Result<Vec<ProcessTree>> {
    let driver = Driver::new(rules.rules(), options);
    let mut out = Vec::new();
    for path in captures {
        let path = path.as_ref();
        let capture = Capture::open(path)?;
        let context = Arc::new(driver.process_context(&capture)?);
        let mut hits = Vec::new();
        driver.run(&[path], &Hits, &mut |part: Vec<(u64, usize, String)>| {
            hits.extend(part);
            Ok(())
        })?;
        let mut findings: BTreeMap<EntityRef, Vec<TreeFinding>> = BTreeMap::new();
        for (event_index, rule, reason) in hits {
            let Some(links) = context.links(event_index) else { continue };
            let rule_id = rules.rules()[rule].id.clone();
            findings.entry(links.process).or_default().push(TreeFinding { event_index, rule_id, reason });
        }
        let nodes = tree_nodes(&context, filter, findings);
        out.push(ProcessTree { capture: path.to_owned(), context, nodes });
    }
    Ok(out)
}

/// The processes `filter` selects, as a depth-first forest.
fn tree_nodes(
    ctx: &ProcessContext,
    filter: &TreeFilter,
    mut findings: BTreeMap<EntityRef, Vec<TreeFinding>>,
) -> Vec<TreeNode> {
    let entities = ctx.entities();
    let all = (0..entities.len() as u32).map(EntityRef);
    let container_ok = |r: EntityRef| {
        let e = &entities[r.index()];
        let Some(id) = e.container() else { return filter.container.is_none() && filter.pod.is_none() };
        let by_id = filter
            .container
            .as_ref()
            .is_none_or(|want| id == want || (want.len() >= 12 && id.starts_with(want.as_str())));
        let by_pod = filter
            .pod
            .as_ref()
            .is_none_or(|want| ctx.container(id).and_then(|m| m.pod_name.as_deref()) == Some(want.as_str()));
        by_id && by_pod
    };
    let mut selected: HashSet<EntityRef> = all.clone().filter(|&r| container_ok(r)).collect();
    if let Some(pid) = filter.pid {
        let me = all.clone().rev().find(|r| entities[r.index()].pid == pid);
        let session: HashSet<EntityRef> = match me.map(|r| (r, entities[r.index()].sid)) {
            Some((_, Some(sid))) => all.clone().filter(|r| entities[r.index()].sid == Some(sid)).collect(),
            Some((r, None)) => all.clone().filter(|&d| descends_from(ctx, d, r)).collect(),
            None => HashSet::new(),
        };
        selected.retain(|r| session.contains(r));
    }
    if filter.is_empty() {
        // The processes with findings and their ancestors.
        selected.clear();
        for &r in findings.keys() {
            let mut cur = Some(r);
            let mut steps = 0;
            while let Some(c) = cur {
                if !selected.insert(c) || steps > entities.len() {
                    break;
                }
                steps += 1;
                cur = entities[c.index()].parent;
            }
        }
    }
    let mut children: BTreeMap<EntityRef, Vec<EntityRef>> = BTreeMap::new();
    let mut roots = Vec::new();
    let mut order: Vec<EntityRef> = selected.iter().copied().collect();
    order.sort();
    for &r in &order {
        match entities[r.index()].parent.filter(|p| selected.contains(p)) {
            Some(p) => children.entry(p).or_default().push(r),
            None => roots.push(r),
        }
    }
    let mut nodes = Vec::new();
    let mut stack: Vec<(EntityRef, usize)> = roots.into_iter().rev().map(|r| (r, 0)).collect();
    let mut seen = HashSet::new();
    while let Some((r, depth)) = stack.pop() {
        if !seen.insert(r) {
            continue;
        }
        nodes.push(TreeNode { entity: r, depth, findings: findings.remove(&r).unwrap_or_default() });
        if let Some(kids) = children.get(&r) {
            stack.extend(kids.iter().rev().map(|&k| (k, depth + 1)));
        }
    }
    nodes
}

/// Whether `d` is `ancestor` or one of its descendants (bounded walk).
fn descends_from(ctx: &ProcessContext, d: EntityRef, ancestor: EntityRef) -> bool {
    let mut cur = Some(d);
    for _ in 0..=ctx.entities().len() {
        match cur {
            Some(c) if c == ancestor => return true,
            Some(c) => cur = ctx.entity(c).parent,
            None => return false,
        }
    }
    false
}

/// The columns of [`process_tree_batch`]: `capture`, `entity_id`, `pid`,
/// `parent_entity_id`, `depth`, `name`, `executable`, `args`, `tty`,
/// `container_id`, `pod_name`, `pod_namespace`, `image`, `start`, `end`,
/// `rule_ids` and `reasons` (the findings on the process, one element each,
/// in event order), `event_indexes` (their events).
pub fn process_tree_schema() -> arrow_schema::SchemaRef {
    use arrow_schema::{DataType, Field, Schema, TimeUnit};
    let list = |t: DataType| DataType::List(Arc::new(Field::new("item", t, true)));
    let ts = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("capture", DataType::Utf8, false),
        Field::new("entity_id", DataType::Utf8, false),
        Field::new("pid", DataType::UInt32, false),
        Field::new("parent_entity_id", DataType::Utf8, true),
        Field::new("depth", DataType::UInt32, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("executable", DataType::Utf8, true),
        Field::new("args", list(DataType::Utf8), true),
        Field::new("tty", DataType::Utf8, true),
        Field::new("container_id", DataType::Utf8, true),
        Field::new("pod_name", DataType::Utf8, true),
        Field::new("pod_namespace", DataType::Utf8, true),
        Field::new("image", DataType::Utf8, true),
        Field::new("start", ts.clone(), true),
        Field::new("end", ts, true),
        Field::new("rule_ids", list(DataType::Utf8), false),
        Field::new("reasons", list(DataType::Utf8), false),
        Field::new("event_indexes", list(DataType::UInt64), false),
    ]))
}

/// The trees as one record batch ([`process_tree_schema`]), one row per
/// process in each tree's depth-first order.
pub fn process_tree_batch(trees: &[ProcessTree]) -> arrow_array::RecordBatch {
    use arrow_array::builder::{ListBuilder, StringBuilder, UInt64Builder};
    use arrow_array::{ArrayRef, StringArray, TimestampNanosecondArray, UInt32Array};
    let mut capture = Vec::new();
    let mut entity_id = Vec::new();
    let mut pid = Vec::new();
    let mut parent = Vec::new();
    let mut depth = Vec::new();
    let mut name = Vec::new();
    let mut exe = Vec::new();
    let mut args = ListBuilder::new(StringBuilder::new());
    let mut tty = Vec::new();
    let mut container = Vec::new();
    let (mut pod, mut ns, mut image) = (Vec::new(), Vec::new(), Vec::new());
    let (mut start, mut end) = (Vec::new(), Vec::new());
    let mut rule_ids = ListBuilder::new(StringBuilder::new());
    let mut reasons = ListBuilder::new(StringBuilder::new());
    let mut events = ListBuilder::new(UInt64Builder::new());
    for t in trees {
        let ctx = &t.context;
        for n in &t.nodes {
            let e = ctx.entity(n.entity);
            let meta = e.container().and_then(|id| ctx.container(id));
            capture.push(t.capture.display().to_string());
            entity_id.push(e.id.clone());
            pid.push(e.pid);
            parent.push(e.parent.map(|p| ctx.entity(p).id.clone()));
            depth.push(n.depth as u32);
            name.push(e.name.clone());
            exe.push(e.executable.clone());
            match &e.args {
                Some(a) => {
                    a.iter().for_each(|s| args.values().append_value(s));
                    args.append(true);
                }
                None => args.append(false),
            }
            tty.push(e.tty.clone().flatten());
            container.push(e.container().map(str::to_string));
            pod.push(meta.and_then(|m| m.pod_name.clone()));
            ns.push(meta.and_then(|m| m.pod_namespace.clone()));
            image.push(meta.and_then(|m| m.image.clone()));
            start.push(e.start);
            end.push(e.end);
            for f in &n.findings {
                rule_ids.values().append_value(&f.rule_id);
                reasons.values().append_value(&f.reason);
                events.values().append_value(f.event_index);
            }
            rule_ids.append(true);
            reasons.append(true);
            events.append(true);
        }
    }
    let ts = |v: Vec<Option<i64>>| -> ArrayRef { Arc::new(TimestampNanosecondArray::from(v).with_timezone("UTC")) };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(capture)),
        Arc::new(StringArray::from(entity_id)),
        Arc::new(UInt32Array::from(pid)),
        Arc::new(StringArray::from(parent)),
        Arc::new(UInt32Array::from(depth)),
        Arc::new(StringArray::from(name)),
        Arc::new(StringArray::from(exe)),
        Arc::new(args.finish()),
        Arc::new(StringArray::from(tty)),
        Arc::new(StringArray::from(container)),
        Arc::new(StringArray::from(pod)),
        Arc::new(StringArray::from(ns)),
        Arc::new(StringArray::from(image)),
        ts(start),
        ts(end),
        Arc::new(rule_ids.finish()),
        Arc::new(reasons.finish()),
        Arc::new(events.finish()),
    ];
    arrow_array::RecordBatch::try_new(process_tree_schema(), columns).expect("tree columns match their schema")
}
