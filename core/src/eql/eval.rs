//! Columnar evaluation of a compiled query over a batch of events, and the
//! per-event explanation that becomes a finding's `reason`.

use std::borrow::Cow;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef};
use arrow_buffer::BooleanBuffer;
use arrow_schema::DataType;

use super::compile::{EqlQuery, Node, StrMatcher, Test};
use super::func::{VExpr, Val};
use crate::capture::{str_at, EventBatch};
use crate::kernels::{any_str, valid_bits, within};
use crate::view::ecs::{ecs_base_projection, EcsView as View, ECS_FIELDS};
use crate::view::ecs_visible;

fn eval_test(a: &dyn Array, test: &Test, key: usize, limit: Option<usize>) -> BooleanBuffer {
    let n = a.len();
    match test {
        Test::Str(m) => any_str(a, limit, key, &|s| m.matches(s)),
        Test::Exists => match a.data_type() {
            DataType::Utf8 | DataType::Dictionary(_, _) | DataType::List(_) => any_str(a, limit, 0, &|_| true),
            _ => valid_bits(a),
        },
        Test::Num(op, x) => {
            let v = a.as_primitive::<Int64Type>();
            BooleanBuffer::collect_bool(n, |i| {
                v.is_valid(i) && (v.value(i) as f64).partial_cmp(x).is_some_and(|o| super::compile::cmp_holds(*op, o))
            })
        }
        Test::IntIn(list) => {
            let v = a.as_primitive::<Int64Type>();
            BooleanBuffer::collect_bool(n, |i| v.is_valid(i) && list.contains(&v.value(i)))
        }
        Test::Bool(b) => {
            let v = a.as_boolean();
            let values = if *b { v.values().clone() } else { !v.values() };
            &valid_bits(v) & &values
        }
    }
}

fn eval_node(node: &Node, view: &mut View<'_>, limit: Option<usize>) -> BooleanBuffer {
    let n = view.batch().len();
    match node {
        Node::Const(b) => BooleanBuffer::collect_bool(n, |_| *b),
        Node::Leaf { field, test, key, .. } => {
            let a = view.get(*field);
            eval_test(a.as_ref(), test, *key, limit)
        }
        Node::Not(inner, _) => !&eval_node(inner, view, limit),
        Node::Rows { fields, expr, .. } => {
            let arrays: Vec<ArrayRef> = fields.iter().map(|&f| view.get(f)).collect();
            BooleanBuffer::collect_bool(n, |i| rows_hold(expr, fields, &arrays, i, limit))
        }
        Node::And(items) => {
            let mut acc = BooleanBuffer::new_set(n);
            for (k, item) in items.iter().enumerate() {
                let selected = acc.count_set_bits();
                if selected == 0 {
                    break;
                }
                if selected * SPARSE_FRACTION < n {
                    return and_on_selected(&items[k..], acc, view, limit);
                }
                acc = &acc & &eval_node(item, view, limit);
            }
            acc
        }
        Node::Or(items, _) => {
            let mut acc = BooleanBuffer::new_unset(n);
            for item in items {
                if acc.count_set_bits() == n {
                    break;
                }
                acc = &acc | &eval_node(item, view, limit);
            }
            acc
        }
    }
}

/// The values of a field in one row as function arguments: every element of
/// an array, nothing for a missing value; a string over the keyword limit is
/// not indexed, so it is not there.
fn row_values<'a>(a: &'a dyn Array, row: usize, limit: Option<usize>, out: &mut Vec<Val<'a>>) {
    if a.is_null(row) {
        return;
    }
    match a.data_type() {
        DataType::List(_) => {
            let list = a.as_list::<i32>();
            let offsets = list.value_offsets();
            let values = list.values();
            for j in offsets[row] as usize..offsets[row + 1] as usize {
                row_values(values.as_ref(), j, limit, out);
            }
        }
        DataType::Int64 => out.push(Val::Int(a.as_primitive::<Int64Type>().value(row))),
        DataType::Boolean => out.push(Val::Bool(a.as_boolean().value(row))),
        _ => {
            if let Some(s) = str_at(a, row).filter(|s| within(s, limit)) {
                out.push(Val::Str(Cow::Borrowed(s)));
            }
        }
    }
}

/// Most element combinations tried for one row of a [`Node::Rows`] predicate over multi-valued fields.
const MAX_COMBINATIONS: usize = 4096;

/// Whether `expr` holds for row `row`: for some combination of the fields' elements
/// (a missing field is null).
fn rows_hold(expr: &VExpr, fields: &[usize], arrays: &[ArrayRef], row: usize, limit: Option<usize>) -> bool {
    let mut values: Vec<Vec<Val<'_>>> = Vec::with_capacity(arrays.len());
    for a in arrays {
        let mut v = Vec::new();
        row_values(a.as_ref(), row, limit, &mut v);
        if v.is_empty() {
            v.push(Val::Null);
        }
        values.push(v);
    }
    let mut pick = vec![0usize; values.len()];
    for _ in 0..MAX_COMBINATIONS {
        let lookup = |f: usize| {
            let k = fields.iter().position(|&x| x == f).expect("a field of the expression");
            values[k][pick[k]].clone()
        };
        if expr.holds(&lookup) {
            return true;
        }
        // The next combination, odometer-style.
        let mut k = 0;
        loop {
            if k == pick.len() {
                return false;
            }
            pick[k] += 1;
            if pick[k] < values[k].len() {
                break;
            }
            pick[k] = 0;
            k += 1;
        }
    }
    false
}

/// Below one selected row in this many, the rest of a conjunction runs on
/// just the selected rows (gathered into a small batch) instead of all rows.
const SPARSE_FRACTION: usize = 16;

/// Evaluates the remaining conjuncts on the rows `acc` selects only, and
/// scatters the result back to the full batch.
fn and_on_selected(items: &[Node], acc: BooleanBuffer, view: &mut View<'_>, limit: Option<usize>) -> BooleanBuffer {
    let n = view.batch().len();
    let rows: Vec<u32> = acc.set_indices().map(|i| i as u32).collect();
    // Only the columns the remaining conjuncts read are gathered.
    let mut columns = ecs_base_projection();
    items.iter().for_each(|item| item.add_columns(&mut columns));
    let sub = view.batch().take_columns(&rows, columns);
    let mut sub_view = View::new(&sub);
    let mut sub_acc = BooleanBuffer::new_set(rows.len());
    for item in items {
        if sub_acc.count_set_bits() == 0 {
            break;
        }
        sub_acc = &sub_acc & &eval_node(item, &mut sub_view, limit);
    }
    let mut out = arrow_array::builder::BooleanBufferBuilder::new(n);
    out.append_n(n, false);
    for j in sub_acc.set_indices() {
        out.set_bit(rows[j] as usize, true);
    }
    out.finish()
}

/// What made one event match: the leaves that held, and the outermost `or` branch taken.
#[derive(Default)]
struct Explanation<'n> {
    leaves: Vec<Cow<'n, str>>,
    branch: Option<&'n str>,
    branch_leaves: Vec<Cow<'n, str>>,
}

fn holds(node: &Node, view: &mut View<'_>, limit: Option<usize>) -> bool {
    eval_node(node, view, limit).value(0)
}

/// The first value of field `a` at `row` that satisfies the test, for the reason text.
fn matched_value(a: &dyn Array, row: usize, m: &StrMatcher, limit: Option<usize>) -> Option<String> {
    let found = |s: &str| within(s, limit) && m.matches(s);
    match a.data_type() {
        DataType::List(_) => {
            let list = a.as_list::<i32>();
            if list.is_null(row) {
                return None;
            }
            let offsets = list.value_offsets();
            let values = list.values();
            (offsets[row] as usize..offsets[row + 1] as usize)
                .filter_map(|j| str_at(values.as_ref(), j))
                .find(|s| found(s))
                .map(str::to_string)
        }
        _ => str_at(a, row).filter(|s| found(s)).map(str::to_string),
    }
}

/// The rows [`explain_node`] explains, with each `or` item's verdict over
/// all of them, computed once (columnar) and read per row.
struct Explaining<'v, 'b> {
    view: &'v mut View<'b>,
    limit: Option<usize>,
    /// Per `or` item (by address in the plan): which rows it holds for.
    items: std::collections::HashMap<*const Node, BooleanBuffer>,
}

impl Explaining<'_, '_> {
    fn item_holds(&mut self, item: &Node, row: usize) -> bool {
        let key = item as *const Node;
        if !self.items.contains_key(&key) {
            let verdict = eval_node(item, self.view, self.limit);
            self.items.insert(key, verdict);
        }
        self.items[&key].value(row)
    }
}

fn explain_node<'n>(node: &'n Node, x: &mut Explaining<'_, '_>, row: usize, out: &mut Explanation<'n>) {
    match node {
        Node::Const(_) => {}
        Node::Leaf { field, test, text, .. } => {
            let mut line = Cow::Borrowed(text.as_str());
            if let Test::Str(m) = test {
                let obvious = matches!(m, StrMatcher::In(set) if set.len() == 1) && !ECS_FIELDS[*field].multi;
                if !obvious {
                    let a = x.view.get(*field);
                    if let Some(v) = matched_value(a.as_ref(), row, m, x.limit) {
                        line = Cow::Owned(format!("{text} (matched {})", serde_json::Value::String(v)));
                    }
                }
            }
            out.leaves.push(line);
        }
        Node::Not(_, text) | Node::Rows { text, .. } => out.leaves.push(Cow::Borrowed(text)),
        Node::And(items) => {
            for item in items {
                explain_node(item, x, row, out);
            }
        }
        Node::Or(items, labels) => {
            let Some(k) = (0..items.len()).find(|&k| x.item_holds(&items[k], row)) else { return };
            let mut inner = Explanation::default();
            explain_node(&items[k], x, row, &mut inner);
            // The outermost `or` names the branch; inner ones only pick their leaves.
            // Leaves the label already says (`event.action == "exec"`) are left out.
            if out.branch.is_none() {
                out.branch = Some(&labels[k]);
                out.branch_leaves = inner.leaves.iter().filter(|l| !implied_by_label(l, &labels[k])).cloned().collect();
            }
            out.leaves.extend(inner.leaves);
        }
    }
}

/// A short rendering of field `idx`'s value in a one-row view, for "why not" texts.
fn shown_value(view: &mut View<'_>, idx: usize) -> String {
    let a = view.get(idx);
    if a.is_null(0) {
        return "missing".into();
    }
    let v = match a.data_type() {
        DataType::List(_) => {
            let list = a.as_list::<i32>().value(0);
            let items: Vec<String> =
                (0..list.len()).map(|j| str_at(list.as_ref(), j).unwrap_or("").to_string()).collect();
            if items.is_empty() {
                return "missing (empty)".into();
            }
            serde_json::to_string(&items).unwrap_or_default()
        }
        DataType::Boolean => a.as_boolean().value(0).to_string(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(0).to_string(),
        _ => serde_json::Value::String(str_at(a.as_ref(), 0).unwrap_or("").to_string()).to_string(),
    };
    let mut v = v;
    if v.chars().count() > 120 {
        v = v.chars().take(117).collect::<String>() + "...";
    }
    format!("is {v}")
}

/// The first condition that fails for a one-row view, or `None` when the node holds.
fn miss_node(node: &Node, view: &mut View<'_>, limit: Option<usize>) -> Option<String> {
    if holds(node, view, limit) {
        return None;
    }
    match node {
        Node::Const(_) => Some("the condition is always false".into()),
        Node::Leaf { field, text, .. } => {
            let name = ECS_FIELDS[*field].name;
            Some(format!("{text} is false ({name} {})", shown_value(view, *field)))
        }
        Node::Not(_, text) => Some(format!("{text} is false (the negated condition holds)")),
        Node::Rows { fields, text, .. } => {
            let shown: Vec<String> =
                fields.iter().map(|&f| format!("{} {}", ECS_FIELDS[f].name, shown_value(view, f))).collect();
            Some(format!("{text} is false ({})", shown.join(", ")))
        }
        Node::And(items) => items.iter().find_map(|i| miss_node(i, view, limit)),
        Node::Or(items, labels) => {
            let parts: Vec<String> = items
                .iter()
                .zip(labels)
                .filter_map(|(i, l)| miss_node(i, view, limit).map(|m| format!("{l}: {m}")))
                .collect();
            Some(format!("no branch matched ({})", parts.join("; ")))
        }
    }
}

/// Whether a leaf's text is the `event.action` / `event.category` equality a branch label names.
fn implied_by_label(leaf: &str, label: &str) -> bool {
    let Some(value) = label.strip_suffix(" branch") else { return false };
    let action = leaf.strip_prefix("event.action == \"").and_then(|v| v.strip_suffix('"'));
    action == Some(value) || leaf.starts_with("event.category == \"")
}

impl EqlQuery {
    /// Evaluates the query on every event of `batch`: bit `i` is set when
    /// event `i` enters the ECS view and matches.
    pub fn evaluate(&self, batch: &EventBatch) -> BooleanBuffer {
        let vis = ecs_visible(batch);
        if vis.count_set_bits() == 0 {
            return vis;
        }
        let mut view = View::new(batch);
        &vis & &eval_node(&self.root, &mut view, self.ignore_above)
    }

    /// Why event `row` of `batch` does not match: the event is outside the
    /// ECS view (a failed open), or the first condition that fails, with the
    /// field's actual value, e.g. `process.interactive == true is false
    /// (process.interactive is false)`.
    pub fn why_not(&self, batch: &EventBatch, row: usize) -> String {
        let one = batch.slice(row, 1);
        if !ecs_visible(&one).value(0) {
            return "a failed open or exec never reaches the ECS view".into();
        }
        let mut view = View::new(&one);
        miss_node(&self.root, &mut view, self.ignore_above).unwrap_or_else(|| "it matches".into())
    }

    /// Why event `row` of `batch` matched: the `or` branch taken and the
    /// conditions that held there (with the value that matched), e.g.
    /// `exec branch: process.name in ("cat", ...) (matched "cat") and ...`.
    pub fn explain(&self, batch: &EventBatch, row: usize) -> String {
        self.explain_rows(batch, &[row]).pop().expect("one row, one reason")
    }

    /// [`EqlQuery::explain`] for each of `rows` (events that matched), in
    /// the order given. The rows are gathered into one small batch and each
    /// `or` branch is evaluated once over all of them, so explaining the
    /// thousands of findings of a batch costs little more than finding them.
    pub fn explain_rows(&self, batch: &EventBatch, rows: &[usize]) -> Vec<String> {
        let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        let hits = batch.take_columns(&idx, self.projection());
        let mut view = View::new(&hits);
        let mut x = Explaining { view: &mut view, limit: self.ignore_above, items: Default::default() };
        (0..rows.len())
            .map(|row| {
                let mut ex = Explanation::default();
                explain_node(&self.root, &mut x, row, &mut ex);
                match ex.branch {
                    Some(label) => format!("{label}: {}", ex.branch_leaves.join(" and ")),
                    None => ex.leaves.join(" and "),
                }
            })
            .collect()
    }
}
