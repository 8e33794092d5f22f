//! Columnar building blocks both rule engines use: validity bitmaps, string
//! tests over plain, dictionary-encoded and list columns, and the per-thread
//! cache of verdicts on dictionary values.
//!
//! This module depends on Arrow only, so the views ([`crate::view`]) and the
//! engines ([`crate::eql`], [`crate::signature`]) can all use it without
//! importing one another.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, ArrayRef};
use arrow_buffer::{BooleanBuffer, NullBuffer};
use arrow_schema::DataType;

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
    assert_eq!(nulls.as_ref().map_or(a.len(), NullBuffer::len), a.len(), "a validity bitmap per row");
    let data = a.to_data().into_builder().nulls(nulls);
    // SAFETY: the data is that of a valid array of the same type and length;
    // only its validity bitmap changes, to one of the same length (asserted),
    // and no validity makes offsets, values or UTF-8 invalid. `build` would
    // re-validate every value (all strings' UTF-8), per batch and per field.
    arrow_array::make_array(unsafe { data.build_unchecked() })
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

/// The cached verdicts for (values array, predicate `key`, limit), if any.
fn cached_verdicts(values: &ArrayRef, key: usize, limit: Option<usize>) -> Option<Arc<Vec<bool>>> {
    VERDICTS.with(|c| {
        c.borrow()
            .iter()
            .find(|(v, k, l, _)| *k == key && *l == limit && same_values(v, values))
            .map(|(_, _, _, verdict)| verdict.clone())
    })
}

/// The verdict of `f` on every value of a dictionary's values array, cached by
/// (values array, predicate `key`, limit).
fn dictionary_verdicts(
    values: &ArrayRef,
    key: usize,
    limit: Option<usize>,
    f: &dyn Fn(&str) -> bool,
) -> Arc<Vec<bool>> {
    let judge = || -> Arc<Vec<bool>> {
        let strings = values.as_string::<i32>();
        Arc::new(
            (0..strings.len())
                .map(|v| strings.is_valid(v) && within(strings.value(v), limit) && f(strings.value(v)))
                .collect(),
        )
    };
    // A small dictionary (the ECS view's constant fields build one per
    // batch) is judged again rather than kept: kept, every batch's would
    // push out the verdicts of the large dictionaries that pay to keep.
    if values.len() <= SMALL_DICTIONARY {
        return judge();
    }
    if let Some(v) = cached_verdicts(values, key, limit) {
        return v;
    }
    let verdict = judge();
    VERDICTS.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= KEPT_VERDICTS {
            c.remove(0); // the oldest
        }
        c.push((values.clone(), key, limit, verdict.clone()));
    });
    verdict
}

/// Dictionaries of at most this many values are judged without keeping the verdicts.
const SMALL_DICTIONARY: usize = 64;
/// Verdicts kept per thread: a row group's predicates on its large dictionaries.
const KEPT_VERDICTS: usize = 32;

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
            let d = a.as_dictionary::<Int32Type>();
            let keys = d.keys();
            // Few rows over a large dictionary (a finding's one-row view, the
            // rows a sparse conjunction kept): judge the rows' own values
            // rather than every value of the dictionary.
            if n.saturating_mul(4) < d.values().len() && cached_verdicts(d.values(), key, limit).is_none() {
                let strings = d.values().as_string::<i32>();
                return BooleanBuffer::collect_bool(n, |i| {
                    let v = keys.value(i) as usize;
                    keys.is_valid(i) && strings.is_valid(v) && within(strings.value(v), limit) && f(strings.value(v))
                });
            }
            // Judge each distinct value once, then look rows up by key.
            let verdict = dictionary_verdicts(d.values(), key, limit, f);
            let found = verdicts_by_key(keys.values(), &verdict);
            match keys.nulls() {
                None => found,
                Some(nulls) => &found & nulls.inner(),
            }
        }
        DataType::List(_) => {
            // Only the elements of these rows: a sliced list (one row, for a
            // finding's explanation) keeps its parent's whole values array.
            let list = a.as_list::<i32>();
            let offsets = list.value_offsets();
            let (start, end) = (offsets[0] as usize, offsets[n] as usize);
            let values = list.values().slice(start, end - start);
            let verdict = any_str(values.as_ref(), limit, key, f);
            BooleanBuffer::collect_bool(n, |i| {
                list.is_valid(i)
                    && (offsets[i] as usize - start..offsets[i + 1] as usize - start).any(|j| verdict.value(j))
            })
        }
        other => unreachable!("keyword fields are strings or lists of strings, got {other}"),
    }
}

/// The verdict of each row's dictionary key, without a test or a branch per
/// row: the bits are gathered first and the rows' validity applied after,
/// a word at a time. A key outside the dictionary (Arrow allows any under a
/// null) reads false.
fn verdicts_by_key(keys: &[i32], verdict: &[bool]) -> BooleanBuffer {
    BooleanBuffer::collect_bool(keys.len(), |i| verdict.get(keys[i] as u32 as usize).copied().unwrap_or(false))
}

/// [`any_str`] and `among`: false for the rows `among` does not select. A
/// plain string column is then judged only on the selected rows (a regex per
/// row costs more than the test that skips it); the other layouts judge each
/// distinct value once anyway.
pub(crate) fn any_str_among(
    a: &dyn Array,
    limit: Option<usize>,
    key: usize,
    f: &dyn Fn(&str) -> bool,
    among: &BooleanBuffer,
) -> BooleanBuffer {
    match a.data_type() {
        DataType::Utf8 => {
            let s = a.as_string::<i32>();
            BooleanBuffer::collect_bool(a.len(), |i| {
                among.value(i) && s.is_valid(i) && within(s.value(i), limit) && f(s.value(i))
            })
        }
        _ => &any_str(a, limit, key, f) & among,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{DictionaryArray, StringArray};

    fn bits(b: &BooleanBuffer) -> Vec<bool> {
        b.iter().collect()
    }

    #[test]
    fn rows_outside_among_are_false_and_never_judged() {
        // Rows: "/a/token", null, "/b/token", "/c/other". Among rows 0, 1 and
        // 3: only row 0 holds; row 2 holds the test but is not among them, and
        // on plain strings the test never sees it.
        let among = BooleanBuffer::from(vec![true, true, false, true]);
        let values = [Some("/a/token"), None, Some("/b/token"), Some("/c/other")];
        let plain = StringArray::from(values.to_vec());
        let dictionary: DictionaryArray<Int32Type> = values.into_iter().collect();
        let seen = std::cell::RefCell::new(Vec::new());
        let f = |s: &str| {
            seen.borrow_mut().push(s.to_string());
            s.ends_with("token")
        };
        assert_eq!(bits(&any_str_among(&plain, None, verdict_key(), &f, &among)), [true, false, false, false]);
        assert_eq!(*seen.borrow(), ["/a/token", "/c/other"]);
        assert_eq!(bits(&any_str_among(&dictionary, None, verdict_key(), &f, &among)), [true, false, false, false]);
    }

    #[test]
    fn a_sliced_list_is_judged_on_its_own_rows_elements() {
        // Rows: ["cat", "/etc/passwd"], ["ls"], null, ["/bin/cat"]. Sliced to
        // rows 1..4, "contains cat" holds for the last row only; a slice that
        // judged its parent's elements from 0 would see row 0's "cat".
        let mut b = ListBuilder::new(StringBuilder::new());
        b.append_value([Some("cat"), Some("/etc/passwd")]);
        b.append_value([Some("ls")]);
        b.append_null();
        b.append_value([Some("/bin/cat")]);
        let list = b.finish();
        let f = |s: &str| s.contains("cat");
        assert_eq!(bits(&any_str(&list, None, verdict_key(), &f)), [true, false, false, true]);
        let tail = list.slice(1, 3);
        assert_eq!(bits(&any_str(&tail, None, verdict_key(), &f)), [false, false, true]);
        let one = list.slice(3, 1);
        assert_eq!(bits(&any_str(&one, None, verdict_key(), &f)), [true]);
    }

    #[test]
    fn few_rows_of_a_large_dictionary_get_the_same_verdicts() {
        // 100 distinct values "v0".."v99"; rows point at v7, v42, null, v99.
        // Two rows of it (fewer than a quarter of the values) are judged row
        // by row; the verdicts must be those of the whole-dictionary path.
        let values = StringArray::from_iter_values((0..100).map(|i| format!("v{i}")));
        let keys = arrow_array::Int32Array::from(vec![Some(7), Some(42), None, Some(99)]);
        let dict = DictionaryArray::<Int32Type>::try_new(keys, Arc::new(values)).unwrap();
        let f = |s: &str| s.ends_with('9') || s == "v42";
        assert_eq!(bits(&any_str(&dict, None, verdict_key(), &f)), [false, true, false, true]);
        assert_eq!(bits(&any_str(&dict.slice(1, 2), None, verdict_key(), &f)), [true, false]);
        // The keyword limit applies on both paths: "v42" is 3 units, over a limit of 2.
        assert_eq!(bits(&any_str(&dict.slice(1, 2), Some(2), verdict_key(), &f)), [false, false]);
    }

    #[test]
    fn restrict_nulls_rows_outside_keep_and_keeps_the_values() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None, Some("c"), Some("d")]));
        let keep = NullBuffer::from(vec![true, true, false, true]);
        let r = restrict(&a, keep);
        let s = r.as_string::<i32>();
        let got: Vec<Option<&str>> = s.iter().collect();
        assert_eq!(got, [Some("a"), None, None, Some("d")]);
    }

    /// A row group's large dictionary is judged once however many small
    /// dictionaries (the ECS view's constant fields make one per batch) are
    /// judged between its batches: the regex over 100,000 paths ran six times
    /// per row group when the small ones pushed it out of the kept verdicts.
    #[test]
    fn a_large_dictionary_is_judged_once_while_small_ones_come_and_go() {
        let paths: Vec<String> = (0..1000).map(|i| format!("/p/{i}")).collect();
        let keys = arrow_array::Int32Array::from((0..1000).collect::<Vec<i32>>());
        let big = DictionaryArray::<Int32Type>::new(keys, Arc::new(StringArray::from(paths)));
        let judged = std::cell::Cell::new(0usize);
        let ends_in_7 = |s: &str| {
            judged.set(judged.get() + 1);
            s.ends_with('7')
        };
        let key = verdict_key();
        let first = any_str(&big, None, key, &ends_in_7);
        assert_eq!(judged.get(), 1000);
        assert_eq!(first.count_set_bits(), 100);
        for _ in 0..100 {
            let os = arrow_array::Int32Array::from(vec![0, 0, 1]);
            let small = DictionaryArray::<Int32Type>::new(os, Arc::new(StringArray::from(vec!["linux", "x"])));
            assert_eq!(bits(&any_str(&small, None, verdict_key(), &|s| s == "linux")), [true, true, false]);
        }
        let again = any_str(&big, None, key, &ends_in_7);
        assert_eq!(judged.get(), 1000, "the large dictionary's verdicts were kept");
        assert_eq!(first, again);
    }
}
