//! Columnar building blocks both rule engines use: validity bitmaps, string
//! tests over plain, dictionary-encoded and list columns, and the per-thread
//! cache of verdicts on dictionary values.
//!
//! This module depends on Arrow only, so the views ([`crate::view`]) and the
//! engines ([`crate::eql`], [`crate::signature`]) can all use it without
//! importing one another.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::datatypes::{DataType, Int32Type};

/// One bit per row of `a`: set where the row is not null (physical nulls, as
/// `Array::is_valid` judges them), as a bitmap to combine with others
/// instead of asking row by row.
pub(crate) fn valid_bits(a: &dyn Array) -> BooleanBuffer {
    match a.nulls() {
        Some(nulls) => nulls.inner().clone(),
        None => BooleanBuffer::new_set(a.len()),
    }
}

/// `a` with every row outside `keep` made null (values untouched, only the
/// validity bitmap changes).
pub(crate) fn restrict(a: &ArrayRef, keep: NullBuffer) -> ArrayRef {
    let nulls = NullBuffer::union(a.logical_nulls().as_ref(), Some(&keep));
    let data = a.to_data().into_builder().nulls(nulls).build().expect("same length, fewer valid slots");
    arrow::array::make_array(data)
}

/// Whether `s` is within a keyword limit of `limit` UTF-16 code units
/// (Elasticsearch's `ignore_above`); `None` is no limit.
pub(crate) fn within(s: &str, limit: Option<usize>) -> bool {
    match limit {
        None => true,
        // A UTF-8 string never has more UTF-16 units than bytes.
        Some(l) => s.len() <= l || s.encode_utf16().count() <= l,
    }
}

/// A new key for [`any_str`]'s dictionary-verdict cache. Keys are never
/// reused, unlike the address of a matcher, which a later query (compiled
/// after the first was dropped) can occupy: keyed by address, that query would
/// read the first one's verdicts for the same dictionary.
pub(crate) fn verdict_key() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A dictionary's values, the predicate key and limit, and the verdict per value.
type CachedVerdicts = (ArrayRef, usize, Option<usize>, Arc<Vec<bool>>);

thread_local! {
    /// Per-thread verdicts of predicates on dictionary values, so a dictionary
    /// shared by many batches (one per Parquet column chunk) is judged once.
    /// Entries keep their values array alive, so its address cannot be reused
    /// by another array while cached.
    static VERDICTS: std::cell::RefCell<Vec<CachedVerdicts>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether two string arrays share the same buffers (so the same values):
/// views such as file.path re-wrap the capture's dictionary in a new array
/// object per batch, but the value buffers stay the same.
pub(crate) fn same_values(a: &ArrayRef, b: &ArrayRef) -> bool {
    Arc::ptr_eq(a, b) || (a.len() == b.len() && a.offset() == b.offset() && a.to_data().ptr_eq(&b.to_data()))
}

/// The verdict of `f` on every value of a dictionary's values array, cached by
/// (values array, predicate `key`, limit).
fn dictionary_verdicts(
    values: &ArrayRef,
    key: usize,
    limit: Option<usize>,
    f: &dyn Fn(&str) -> bool,
) -> Arc<Vec<bool>> {
    let hit = VERDICTS.with(|c| {
        c.borrow()
            .iter()
            .find(|(v, k, l, _)| *k == key && *l == limit && same_values(v, values))
            .map(|(_, _, _, verdict)| verdict.clone())
    });
    if let Some(v) = hit {
        return v;
    }
    let strings = values.as_string::<i32>();
    let verdict: Arc<Vec<bool>> = Arc::new(
        (0..strings.len())
            .map(|v| strings.is_valid(v) && within(strings.value(v), limit) && f(strings.value(v)))
            .collect(),
    );
    VERDICTS.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= 32 {
            c.clear();
        }
        c.push((values.clone(), key, limit, verdict.clone()));
    });
    verdict
}

/// For each row: does some string value (any element, for arrays) satisfy `f`?
/// `key` identifies the predicate (from [`verdict_key`]; 0 for "has a value")
/// so that dictionary verdicts can be reused across batches.
pub(crate) fn any_str(a: &dyn Array, limit: Option<usize>, key: usize, f: &dyn Fn(&str) -> bool) -> BooleanBuffer {
    let n = a.len();
    match a.data_type() {
        DataType::Utf8 => {
            let s = a.as_string::<i32>();
            BooleanBuffer::collect_bool(n, |i| s.is_valid(i) && within(s.value(i), limit) && f(s.value(i)))
        }
        DataType::Dictionary(_, _) => {
            // Judge each distinct value once, then look rows up by key.
            let d = a.as_dictionary::<Int32Type>();
            let verdict = dictionary_verdicts(d.values(), key, limit, f);
            let keys = d.keys();
            match keys.nulls() {
                None => BooleanBuffer::collect_bool(n, |i| verdict[keys.value(i) as usize]),
                Some(nulls) => BooleanBuffer::collect_bool(n, |i| nulls.is_valid(i) && verdict[keys.value(i) as usize]),
            }
        }
        DataType::List(_) => {
            let list = a.as_list::<i32>();
            let values = list.values();
            let verdict = any_str(values.as_ref(), limit, key, f);
            let offsets = list.value_offsets();
            BooleanBuffer::collect_bool(n, |i| {
                list.is_valid(i) && (offsets[i] as usize..offsets[i + 1] as usize).any(|j| verdict.value(j))
            })
        }
        other => unreachable!("keyword fields are strings or lists of strings, got {other}"),
    }
}
