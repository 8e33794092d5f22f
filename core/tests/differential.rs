//! Differential tests: the columnar EQL engine and the signature engine must
//! return exactly the findings of the row-at-a-time reference evaluator
//! (`reference/mod.rs`) on random events and random rules.
//!
//! Events are read three ways, so every code path of the engine sees them:
//! NDJSON in batches of 1, 3, 7 and 64 events (plain strings), and Parquet
//! written with small row groups and read back in batches of 1, 5 and 64
//! (dictionary-encoded strings, dictionaries shared across batches, the sparse
//! path of `and`). Each case also evaluates several rules one after the other
//! on the same batches, as a notebook would, and then replays all of them as
//! rule files through the real driver (`Replayer::replay`: the Parquet file's
//! row groups as parallel units, late materialization of finding columns) in
//! two batch sizes: the findings must be the reference's, and each finding's
//! reason must be the one evaluating the plain NDJSON batches gives. Regular
//! expressions are drawn from fixed lists and generated from pieces (escaped
//! words, classes, alternations, quantifiers, `(?i)`, anchors).
//!
//! `PROPTEST_CASES` (default 256, proptest's own) sets the number of cases per
//! property:
//! `PROPTEST_CASES=20000 cargo test -p tokenscan-core --release --test differential`.
//! Shrinking a failure stops after 2 minutes (`PROPTEST_MAX_SHRINK_TIME`, in
//! ms, overrides), so a failure in CI is reported instead of shrinking for hours.
//! A failure is shrunk to a minimal case and saved under
//! `core/tests/differential.proptest-regressions`, which proptest replays first on
//! every run (commit it).

mod reference;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::RecordBatch;

use proptest::prelude::*;
use proptest::sample::select;
use reference::{Access, Cond, Event, Field, Func, Kind, Lit, Op, Origin, Outcome, Pred, Query, Settings};
use tokenscan_core::capture::{
    events_from_ndjson, Capture, EventBatch, ParquetCaptureWriter, Projection, WriterOptions,
};
use tokenscan_core::eql::{CompileOptions, EqlQuery};
use tokenscan_core::replay::{CollectSink, ReplayOptions, ReplaySummary, Replayer};
use tokenscan_core::rules::RuleSet;

// ============================================================================
// Values
// ============================================================================

/// Short strings that rules and events share, so that tests hit: names in
/// several cases, wildcard characters as data, characters whose case folding
/// is special (ß/ẞ, İ/ı, ſ, the Kelvin sign, final sigma, astral Deseret
/// letters), escapes, a NUL, control characters.
const WORDS: &[&str] = &[
    "cat",
    "CAT",
    "Cat",
    "cAt",
    "head",
    "tail",
    "sh",
    "bash",
    "kube-controller",
    "kubectl",
    "",
    "*",
    "?",
    "c?t",
    "c*",
    "ć",
    "Ćat",
    "猫",
    "𝒸at",
    "𐐀𐐨",
    "𐐨𐐀",
    "ß",
    "ẞ",
    "SS",
    "İ",
    "ı",
    "i",
    "I",
    "ſ",
    "s",
    "S",
    "\u{212a}",
    "k",
    "K",
    "Σσς",
    "σσσ",
    "a\\b",
    "a\"b",
    "tab\there",
    "new\nline",
    "nul\u{0}",
    "😀",
    "0",
    "1000",
    "process",
    "file",
    "exec",
    "open",
    "start",
    "change",
    "access",
    "PROCESS",
    "linux",
    "Linux",
    "node-a",
    "pts/0",
];

const PATHS: &[&str] = &[
    "/var/run/secrets/kubernetes.io/serviceaccount/token",
    "/run/secrets/kubernetes.io/serviceaccount/token",
    "/run/secrets/kubernetes.io/serviceaccount/..2026_11_20_09_58_11.1829374651/token",
    "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
    "/VAR/RUN/SECRETS/KUBERNETES.IO/SERVICEACCOUNT/TOKEN",
    "/var/run/secrets/kubernetes.io/serviceaccount-my-token",
    "/var/run/secrets/kubernetesXio/serviceaccount/token",
    "/etc/hosts",
    "/tmp/token",
    "/var/lib/kubelet/pki/kubelet.crt",
    "/bin/cat",
    "/usr/bin/cat",
    "/",
    "/a/b/",
    "relative/token",
    "/x\\x00y/token",
    "/tmp/猫/𝒸at",
];

fn word() -> impl Strategy<Value = String> {
    select(WORDS).prop_map(str::to_string)
}

fn path() -> impl Strategy<Value = String> {
    select(PATHS).prop_map(str::to_string)
}

/// A string of exactly `units` UTF-16 code units (around Elasticsearch's
/// `ignore_above` of 1024), made of `filler` after a prefix and before a
/// suffix; wide fillers (é: 2 bytes, 猫: 3 bytes, 𝒸: 2 units) make bytes,
/// characters and UTF-16 units disagree.
fn long_string() -> impl Strategy<Value = String> {
    (
        select(&["", "/run/secrets/kubernetes.io/serviceaccount/", "cat "][..]),
        select(&['a', 'é', '猫', '𝒸', '*'][..]),
        select(&["", "token", "/token", "𝒸"][..]),
        prop_oneof![1020usize..=1028, Just(2048usize), 510usize..=514],
    )
        .prop_map(|(prefix, filler, suffix, units)| {
            let mut s = prefix.to_string();
            let mut len = prefix.encode_utf16().count() + suffix.encode_utf16().count();
            while len + filler.len_utf16() <= units {
                s.push(filler);
                len += filler.len_utf16();
            }
            while len < units {
                s.push('a');
                len += 1;
            }
            s.push_str(suffix);
            s
        })
}

/// Arbitrary characters, any plane.
fn random_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..6).prop_map(String::from_iter)
}

/// Any string an event or a rule may hold.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![4 => word(), 4 => path(), 1 => long_string(), 1 => random_text()]
}

fn small_u32() -> impl Strategy<Value = u32> {
    prop_oneof![select(&[0u32, 1, 2, 1000, 4242, u32::MAX][..]), any::<u32>()]
}

// ============================================================================
// Events
// ============================================================================

fn event() -> impl Strategy<Value = Event> {
    let ids = (small_u32(), small_u32(), small_u32(), small_u32(), small_u32());
    let who = (
        prop_oneof![Just(Kind::Exec), Just(Kind::Open)],
        prop_oneof![3 => select(&["node-a", "node-b"][..]).prop_map(str::to_string), 1 => text()],
        text(),
        proptest::option::of(prop_oneof![path(), text()]),
    );
    let what = (
        proptest::option::of(proptest::collection::vec(proptest::option::weighted(0.9, text()), 0..4)),
        proptest::option::weighted(0.8, prop_oneof![3 => path(), 1 => text()]),
        proptest::option::of(path()),
        proptest::option::weighted(
            0.85,
            prop_oneof![select(&[0, 1, 2, 3, 0o100000, 0o2000002, -1, i32::MIN][..]), any::<i32>()],
        ),
        proptest::option::weighted(0.8, select(&[0i64, 3, 7, -2, -13, i64::MIN][..])),
    );
    let place = (
        proptest::option::of(select(&["pts/0", "tty1", ""][..]).prop_map(str::to_string)),
        proptest::option::of(prop_oneof![
            Just("d4556e77887e082d5e6a7fa2998c06ceee646c98f81eb1e724017a6a768c5dca".to_string()),
            Just(String::new()),
            text()
        ]),
        any::<u64>(),
        select(&[0i64, 1, 1_763_649_000_000_000_000][..]),
    );
    (ids, who, what, place).prop_map(
        |(
            (pid, tid, ppid, uid, gid),
            (kind, host, comm, exe),
            (args, path, requested_path, flags, result),
            (tty, container_id, cgroup_id, time),
        )| Event {
            time,
            kind,
            host,
            pid,
            tid,
            ppid,
            uid,
            gid,
            comm,
            exe,
            args,
            path,
            requested_path,
            flags,
            result,
            tty,
            cgroup_id,
            container_id,
        },
    )
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    prop_oneof![3 => proptest::collection::vec(event(), 0..24), 1 => proptest::collection::vec(event(), 24..90)]
}

// ============================================================================
// EQL rules
// ============================================================================

const KEYWORD_FIELDS: &[&str] = &[
    "host.os.type",
    "host.name",
    "container.id",
    "event.category",
    "event.action",
    "event.type",
    "process.name",
    "process.executable",
    "process.args",
    "user.id",
    "group.id",
    "file.path",
    "file.name",
];
const LONG_FIELDS: &[&str] = &["process.pid", "process.thread.id", "process.parent.pid", "process.args_count"];
/// Not in the ECS view: only usable as `?name`, and then always missing.
const UNKNOWN_FIELDS: &[&str] = &["process.command_line", "file.Ext.original.name", "process.env_vars"];

fn keyword_field() -> impl Strategy<Value = Field> {
    (select(KEYWORD_FIELDS), prop::bool::weighted(0.1))
        .prop_map(|(name, optional)| Field { name: name.to_string(), optional })
}

fn long_field() -> impl Strategy<Value = Field> {
    (select(LONG_FIELDS), prop::bool::weighted(0.1))
        .prop_map(|(name, optional)| Field { name: name.to_string(), optional })
}

fn unknown_field() -> impl Strategy<Value = Field> {
    select(UNKNOWN_FIELDS).prop_map(|name| Field { name: name.to_string(), optional: true })
}

fn interactive() -> Field {
    Field { name: "process.interactive".to_string(), optional: false }
}

fn op() -> impl Strategy<Value = Op> {
    select(&[Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge][..])
}

fn int() -> impl Strategy<Value = i64> {
    prop_oneof![
        select(&[0i64, 1, 2, 3, 5, 1000, 4242, -1, u32::MAX as i64, 1 << 32, i64::MAX, i64::MIN, 1023, 1024, 1025][..]),
        any::<i64>()
    ]
}

/// A string value for a rule, often one an event holds, sometimes with its case changed.
fn rule_text() -> impl Strategy<Value = String> {
    (text(), 0..4u8).prop_map(|(s, how)| match how {
        0 => s.to_uppercase(),
        1 => s.to_lowercase(),
        _ => s,
    })
}

/// A `like` pattern: a value as is, its tail after `*`, its head before `*`,
/// or with every third character replaced by `?`.
fn like_pattern() -> impl Strategy<Value = String> {
    (rule_text(), 0..5u8, 1..6usize).prop_map(|(s, how, n)| {
        let chars: Vec<char> = s.chars().collect();
        match how {
            0 => s,
            1 => format!("*{}", chars[chars.len().saturating_sub(n)..].iter().collect::<String>()),
            2 => format!("{}*", chars[..n.min(chars.len())].iter().collect::<String>()),
            3 => chars.iter().enumerate().map(|(i, &c)| if i % 3 == 1 { '?' } else { c }).collect(),
            _ => format!("*{}*", chars[..n.min(chars.len())].iter().collect::<String>()),
        }
    })
}

/// A needle for the string functions: a prefix, a suffix or a value.
fn needle() -> impl Strategy<Value = String> {
    (rule_text(), 0..3u8, 0..5usize).prop_map(|(s, how, n)| {
        let chars: Vec<char> = s.chars().collect();
        match how {
            0 => chars[..n.min(chars.len())].iter().collect(),
            1 => chars[chars.len().saturating_sub(n)..].iter().collect(),
            _ => s,
        }
    })
}

const REGEXES: &[&str] = &[
    ".*token",
    "cat|head",
    "[a-c]at",
    "/run/secrets/.*",
    ".*\\.crt",
    "c.t",
    "",
    ".{3}",
    "[^/]*",
    ".*serviceaccount.+token",
    "\\d+",
    "\\w+",
    "猫|𝒸at",
    "a\\\\b",
    "new.line",
    "(?i)CAT",
    "Σ+.*",
];

/// One piece of a generated regular expression (the `regex` crate's syntax,
/// which the docs give for `regex`): an escaped word from the shared
/// vocabulary, any character, a class, an alternation.
fn regex_atom() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => word().prop_map(|w| regex::escape(&w)),
        1 => path().prop_map(|p| regex::escape(&p)),
        2 => Just(".".to_string()),
        2 => select(&["[a-c]", "[^/]", "\\d", "\\w", "\\s", "[猫𝒸]", "\\.", "/", "[[:alpha:]]", "[A-Z]", "\\p{Greek}"][..])
            .prop_map(str::to_string),
        1 => (word(), word()).prop_map(|(a, b)| format!("(?:{}|{})", regex::escape(&a), regex::escape(&b))),
    ]
}

/// A generated regular expression: up to five quantified pieces, sometimes
/// with `(?i)`. With `anchors`, a leading `^` and a trailing `$` now and then
/// (signatures match anywhere in the path, as Go's MatchString does).
fn regex_pattern(anchors: bool) -> impl Strategy<Value = String> {
    (
        prop::bool::weighted(0.2),
        prop::bool::weighted(if anchors { 0.3 } else { 0.0 }),
        prop::bool::weighted(if anchors { 0.4 } else { 0.0 }),
        proptest::collection::vec((regex_atom(), select(&["", "", "*", "+", "?", "{1,3}", "*?"][..])), 0..5),
    )
        .prop_map(|(ci, start, end, parts)| {
            let mut p = String::new();
            if ci {
                p.push_str("(?i)");
            }
            if start {
                p.push('^');
            }
            for (atom, q) in parts {
                if q.is_empty() {
                    p.push_str(&atom);
                } else {
                    p.push_str(&format!("(?:{atom}){q}"));
                }
            }
            if end {
                p.push('$');
            }
            p
        })
}

fn pred() -> impl Strategy<Value = Pred> {
    let list = |s: BoxedStrategy<Lit>| proptest::collection::vec(s, 1..5);
    prop_oneof![
        // keyword comparisons, `== null` / `!= null` on any field
        (keyword_field(), op(), rule_text()).prop_map(|(field, op, s)| Pred::Cmp { field, op, lit: Lit::Str(s) }),
        (prop_oneof![keyword_field(), long_field(), Just(interactive()), unknown_field()], prop::bool::ANY)
            .prop_map(|(field, eq)| Pred::Cmp { field, op: if eq { Op::Eq } else { Op::Ne }, lit: Lit::Null }),
        // longs against integers and floats, booleans
        (long_field(), op(), int()).prop_map(|(field, op, i)| Pred::Cmp { field, op, lit: Lit::Int(i) }),
        (long_field(), op(), select(&[0.5, 1.0, -0.0, 1e10, 4294967295.5, 999.999][..]))
            .prop_map(|(field, op, x)| Pred::Cmp { field, op, lit: Lit::Float(x) }),
        (prop::bool::ANY, prop::bool::ANY).prop_map(|(eq, b)| Pred::Cmp {
            field: interactive(),
            op: if eq { Op::Eq } else { Op::Ne },
            lit: Lit::Bool(b)
        }),
        Just(Pred::BareBool { field: interactive() }),
        // unknown optional fields with any test
        (unknown_field(), op(), rule_text()).prop_map(|(field, op, s)| Pred::Cmp { field, op, lit: Lit::Str(s) }),
        // membership
        (keyword_field(), list(rule_text().prop_map(Lit::Str).boxed()), prop::bool::ANY, prop::bool::ANY)
            .prop_map(|(field, list, ci, negated)| Pred::In { field, list, ci, negated }),
        (long_field(), list(int().prop_map(Lit::Int).boxed()), prop::bool::ANY)
            .prop_map(|(field, list, negated)| Pred::In { field, list, ci: false, negated }),
        (list(prop::bool::ANY.prop_map(Lit::Bool).boxed()), prop::bool::ANY).prop_map(|(list, negated)| Pred::In {
            field: interactive(),
            list,
            ci: false,
            negated
        }),
        // wildcards and regular expressions
        (keyword_field(), proptest::collection::vec(like_pattern(), 1..4), prop::bool::ANY, prop::bool::weighted(0.3))
            .prop_map(|(field, patterns, ci, colon)| Pred::Like { field, patterns, ci, colon }),
        (
            prop_oneof![keyword_field(), unknown_field()],
            proptest::collection::vec(
                prop_oneof![select(REGEXES).prop_map(str::to_string), regex_pattern(false)],
                1..3
            ),
            prop::bool::ANY
        )
            .prop_map(|(field, patterns, ci)| Pred::Regex { field, patterns, ci }),
        // functions
        (
            select(&[Func::StartsWith, Func::EndsWith, Func::Contains][..]),
            prop_oneof![keyword_field(), unknown_field()],
            needle(),
            prop::bool::ANY
        )
            .prop_map(|(func, field, needle, ci)| Pred::Func { func, field, needle, ci }),
        (prop_oneof![keyword_field(), unknown_field()], op(), int()).prop_map(|(field, op, n)| Pred::Length {
            field,
            op,
            n
        }),
        // a string function's value compared with a literal (judged per dictionary value), and
        // two fields compared (judged per event)
        (prop_oneof![keyword_field(), unknown_field()], -6i64..8, -6i64..12, prop_oneof![needle(), rule_text()])
            .prop_map(|(field, start, end, lit)| Pred::Substring { field, start, end, lit }),
        (keyword_field(), keyword_field()).prop_map(|(a, b)| Pred::FieldsEqual { a, b }),
    ]
}

fn cond() -> impl Strategy<Value = Cond> {
    let leaf = prop_oneof![10 => pred().prop_map(Cond::Pred), 1 => prop::bool::ANY.prop_map(Cond::Const)];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 2..5).prop_map(Cond::And),
            proptest::collection::vec(inner.clone(), 2..5).prop_map(Cond::Or),
            inner.prop_map(|c| Cond::Not(Box::new(c))),
        ]
    })
}

fn query() -> impl Strategy<Value = (Query, u64)> {
    let category = prop_oneof![
        4 => Just(None),
        2 => Just(Some("process".to_string())),
        2 => Just(Some("file".to_string())),
        1 => Just(Some("network".to_string())),
        1 => Just(Some("PROCESS".to_string())),
    ];
    (category, cond(), any::<u64>()).prop_map(|(category, cond, style)| (Query { category, cond }, style))
}

// ============================================================================
// Printing rules as EQL text
// ============================================================================

/// Prints a query as EQL, varying what does not change the meaning (keyword
/// case, spacing, literal on either side, raw strings, `:` for `like~`,
/// function-name case) from the bits of `style`.
struct Printer {
    style: u64,
    out: String,
}

impl Printer {
    fn bit(&mut self) -> bool {
        // xorshift64
        self.style ^= self.style << 13;
        self.style ^= self.style >> 7;
        self.style ^= self.style << 17;
        self.style & 1 == 1
    }

    fn kw(&mut self, word: &str) {
        let w = match (self.bit(), self.bit()) {
            (true, true) => word.to_uppercase(),
            (true, false) => {
                let mut c = word.chars();
                c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
            }
            _ => word.to_string(),
        };
        self.out.push_str(&w);
    }

    fn space(&mut self) {
        let wide = self.bit() && self.bit();
        self.out.push_str(if wide { " \n\t" } else { " " });
    }

    fn string(&mut self, s: &str) {
        // A raw string cannot hold a double quote; it keeps backslashes as they are.
        if !s.contains('"') && self.bit() && self.bit() {
            self.out.push_str(&format!("\"\"\"{s}\"\"\""));
            return;
        }
        self.out.push('"');
        for c in s.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                c if c.is_control() => self.out.push_str(&format!("\\u{{{:02X}}}", c as u32)),
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    fn lit(&mut self, l: &Lit) {
        match l {
            Lit::Str(s) => self.string(s),
            Lit::Int(i) => self.out.push_str(&i.to_string()),
            Lit::Float(x) => self.out.push_str(&format!("{x:?}")),
            Lit::Bool(b) => self.kw(if *b { "true" } else { "false" }),
            Lit::Null => self.kw("null"),
        }
    }

    fn field(&mut self, f: &Field) {
        if f.optional {
            self.out.push('?');
        }
        self.out.push_str(&f.name);
    }

    fn list<T>(&mut self, items: &[T], one: impl Fn(&mut Self, &T)) {
        self.out.push('(');
        for (i, x) in items.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            one(self, x);
        }
        self.out.push(')');
    }

    fn op(op: Op) -> &'static str {
        match op {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }

    fn mirrored(op: Op) -> Op {
        match op {
            Op::Lt => Op::Gt,
            Op::Le => Op::Ge,
            Op::Gt => Op::Lt,
            Op::Ge => Op::Le,
            o => o,
        }
    }

    fn pred(&mut self, p: &Pred) {
        match p {
            Pred::Cmp { field, op, lit } => {
                if self.bit() && self.bit() {
                    // `"cat" == process.name`: the literal first, the operator mirrored.
                    self.lit(lit);
                    self.out.push_str(&format!(" {} ", Self::op(Self::mirrored(*op))));
                    self.field(field);
                } else {
                    self.field(field);
                    self.out.push_str(&format!(" {} ", Self::op(*op)));
                    self.lit(lit);
                }
            }
            Pred::In { field, list, ci, negated } => {
                self.field(field);
                self.space();
                if *negated {
                    self.kw("not");
                    self.space();
                }
                self.kw("in");
                if *ci {
                    self.out.push('~');
                }
                self.space();
                self.list(list, |p, l| p.lit(l));
            }
            Pred::Like { field, patterns, ci, colon } => {
                self.field(field);
                if *colon {
                    self.out.push_str(" : ");
                } else {
                    self.space();
                    self.kw("like");
                    if *ci {
                        self.out.push('~');
                    }
                    self.space();
                }
                self.patterns(patterns);
            }
            Pred::Regex { field, patterns, ci } => {
                self.field(field);
                self.space();
                self.kw("regex");
                if *ci {
                    self.out.push('~');
                }
                self.space();
                self.patterns(patterns);
            }
            Pred::Func { func, field, needle, ci } => {
                let name = match func {
                    Func::StartsWith => "startsWith",
                    Func::EndsWith => "endsWith",
                    Func::Contains => "stringContains",
                };
                let lower = self.bit() && self.bit();
                let name = if lower { name.to_lowercase() } else { name.to_string() };
                self.out.push_str(&name);
                if *ci {
                    self.out.push('~');
                }
                self.out.push('(');
                self.field(field);
                self.out.push_str(", ");
                self.string(needle);
                self.out.push(')');
            }
            Pred::Length { field, op, n } => {
                let upper = self.bit();
                self.out.push_str(if upper { "LENGTH(" } else { "length(" });
                self.field(field);
                self.out.push_str(&format!(") {} {n}", Self::op(*op)));
            }
            Pred::BareBool { field } => self.field(field),
            Pred::Substring { field, start, end, lit } => {
                let upper = self.bit();
                self.out.push_str(if upper { "SUBSTRING (" } else { "substring(" });
                self.field(field);
                self.out.push_str(&format!(", {start}, {end}) == "));
                self.string(lit);
            }
            Pred::FieldsEqual { a, b } => {
                self.field(a);
                self.out.push_str(" == ");
                self.field(b);
            }
        }
    }

    fn patterns(&mut self, patterns: &[String]) {
        if patterns.len() == 1 && self.bit() {
            self.string(&patterns[0]);
        } else {
            self.list(patterns, |p, s| p.string(s));
        }
    }

    fn cond(&mut self, c: &Cond) {
        match c {
            Cond::Const(b) => self.kw(if *b { "true" } else { "false" }),
            Cond::Pred(p) => {
                let paren = self.bit() && self.bit();
                if paren {
                    self.out.push('(');
                }
                self.pred(p);
                if paren {
                    self.out.push(')');
                }
            }
            Cond::Not(inner) => {
                self.kw("not");
                self.space();
                self.out.push('(');
                self.cond(inner);
                self.out.push(')');
            }
            Cond::And(items) | Cond::Or(items) => {
                let word = if matches!(c, Cond::And(_)) { "and" } else { "or" };
                self.out.push('(');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.space();
                        self.kw(word);
                        self.space();
                    }
                    self.cond(item);
                }
                self.out.push(')');
            }
        }
    }
}

fn eql_text(q: &Query, style: u64) -> String {
    let mut p = Printer { style: style | 1, out: String::new() };
    match &q.category {
        None => p.kw("any"),
        Some(c) if p.bit() => p.string(c),
        Some(c) => p.out.push_str(c),
    }
    p.space();
    p.kw("where");
    p.space();
    p.cond(&q.cond);
    if p.bit() && p.bit() {
        p.out.push_str(" // the end\n");
    }
    p.out
}

// ============================================================================
// Reading the events every way the engine can see them
// ============================================================================

/// The events as batch sets: NDJSON in several batch sizes and Parquet
/// (dictionary-encoded) read back in several batch sizes. Each set is
/// labelled for failure messages.
fn batch_sets(events: &[Event], row_group_rows: usize, dir: &Path) -> Vec<(String, Vec<EventBatch>)> {
    let text: String = events.iter().map(|e| e.to_ndjson() + "\n").collect();
    let mut sets = Vec::new();
    for size in [1, 3, 7, 64] {
        let batches = events_from_ndjson(&text, "events.ndjson", size).expect("generated events are valid NDJSON");
        sets.push((format!("ndjson, batches of {size}"), batches));
    }
    let path = dir.join("events.parquet");
    let file = std::fs::File::create(&path).expect("create");
    let options = WriterOptions { row_group_rows, ..Default::default() };
    let mut w = ParquetCaptureWriter::new(file, &path, options).expect("writer");
    for b in events_from_ndjson(&text, "events.ndjson", 1000).expect("valid") {
        w.write(&b).expect("write");
    }
    w.close().expect("close");
    let capture = Capture::open(&path).expect("read back");
    for size in [1, 5, 64] {
        let batches: Vec<EventBatch> = capture
            .batches(Projection::all(), size)
            .expect("batches")
            .collect::<Result<_, _>>()
            .expect("decode what we wrote");
        sets.push((format!("parquet (row groups of {row_group_rows}), batches of {size}"), batches));
    }
    sets
}

/// Event indices of the rows a per-batch mask selects.
fn selected(batches: &[EventBatch], mask: impl Fn(&EventBatch) -> Vec<usize>) -> BTreeSet<u64> {
    batches.iter().flat_map(|b| mask(b).into_iter().map(move |row| b.first_index() + row as u64)).collect()
}

/// A finding as the user sees it: rule id and event index, with its reason.
type Found = BTreeMap<(String, u64), String>;

/// The findings of a whole replay of `parquet` (the real driver: row groups
/// as parallel units, late materialization of finding columns) by rules
/// loaded from `files`, in batches of `batch_size`.
fn replayed(
    files: &[(String, String)],
    options: &CompileOptions,
    parquet: &Path,
    batch_size: usize,
) -> Result<(Found, ReplaySummary), String> {
    let rules = load(files, options)?;
    let replayer = Replayer::new(rules, ReplayOptions { batch_size, ..Default::default() });
    let mut sink = CollectSink::default();
    let summary = replayer.replay(&[parquet], &mut sink).map_err(|e| format!("replay: {e}"))?;
    let mut found = Found::new();
    for b in &sink.batches {
        let col = |name: &str| b.column_by_name(name).unwrap_or_else(|| panic!("findings have `{name}`"));
        let (ids, indexes, reasons) = (col("rule_id").as_string::<i32>(), col("event_index"), col("reason"));
        let (indexes, reasons) = (indexes.as_primitive::<UInt64Type>(), reasons.as_string::<i32>());
        for row in 0..RecordBatch::num_rows(b) {
            found.insert((ids.value(row).to_string(), indexes.value(row)), reasons.value(row).to_string());
        }
    }
    Ok((found, summary))
}

/// Rule files as a rule set.
fn load(files: &[(String, String)], options: &CompileOptions) -> Result<RuleSet, String> {
    let sources: Vec<(&Path, &str)> =
        files.iter().map(|(name, text)| (Path::new(name.as_str()), text.as_str())).collect();
    RuleSet::from_sources(&sources, options).map_err(|e| format!("rules: {e}"))
}

/// Checks a replay through the real driver over the multi-row-group Parquet
/// file against `expected` (rule id, event index from the reference), and
/// its reasons against those of evaluating the plain NDJSON batches directly.
fn check_replay(
    files: &[(String, String)],
    options: &CompileOptions,
    dir: &Path,
    plain: &[EventBatch],
    expected: &BTreeSet<(String, u64)>,
) -> Result<BTreeMap<String, u64>, TestCaseError> {
    let rules = load(files, options).map_err(TestCaseError::fail)?;
    let direct = evaluated(&rules, plain);
    let mut unevaluable = BTreeMap::new();
    for batch_size in [3, 65_536] {
        let (found, summary) =
            replayed(files, options, &dir.join("events.parquet"), batch_size).map_err(TestCaseError::fail)?;
        let keys: BTreeSet<(String, u64)> = found.keys().cloned().collect();
        prop_assert_eq!(&keys, expected, "replay in batches of {}: findings", batch_size);
        prop_assert_eq!(&found, &direct, "replay in batches of {}: reasons", batch_size);
        unevaluable = summary.rules.iter().map(|r| (r.rule_id.clone(), r.unevaluable)).collect();
    }
    Ok(unevaluable)
}

/// An EQL query as a rule file, as a user would write it.
fn eql_rule_toml(src: &str, id: usize) -> String {
    let query = toml::Value::String(src.to_string()).to_string();
    format!("[rule]\nname = \"q{id}\"\nrule_id = \"Q-{id}\"\nseverity = \"low\"\nlanguage = \"eql\"\nquery = {query}\n")
}

/// The same findings from evaluating each rule directly on plain batches.
fn evaluated(rules: &RuleSet, batches: &[EventBatch]) -> Found {
    let mut found = Found::new();
    for rule in rules.rules() {
        for b in batches {
            for row in rule.evaluate(b).fires.set_indices() {
                found.insert((rule.id.clone(), b.first_index() + row as u64), rule.why(b, row));
            }
        }
    }
    found
}

/// The leaf tests of a condition, in order.
fn leaves(c: &Cond, out: &mut Vec<Pred>) {
    match c {
        Cond::Const(_) => {}
        Cond::And(items) | Cond::Or(items) => items.iter().for_each(|c| leaves(c, out)),
        Cond::Not(inner) => leaves(inner, out),
        Cond::Pred(p) => out.push(p.clone()),
    }
}

/// proptest's defaults (and environment overrides), with shrinking bounded in time.
fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    let max_shrink_time =
        if std::env::var_os("PROPTEST_MAX_SHRINK_TIME").is_some() { default.max_shrink_time } else { 120_000 };
    ProptestConfig { max_shrink_time, ..default }
}

fn check_eql(
    events: &[Event],
    queries: &[(Query, u64)],
    no_limit: bool,
    row_group_rows: usize,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tmp");
    let sets = batch_sets(events, row_group_rows, dir.path());
    let options = CompileOptions { ignore_above: if no_limit { None } else { Some(1024) } };
    let settings = Settings { ignore_above: options.ignore_above };
    // Each query, then each of its leaf tests alone (`any where <test>`): many
    // short-lived queries over the same batches, one after the other, as in a
    // notebook; their dictionary verdicts must never be mixed up.
    let mut all: Vec<(Query, u64)> = queries.to_vec();
    for (q, style) in queries {
        let mut preds = Vec::new();
        leaves(&q.cond, &mut preds);
        all.extend(preds.into_iter().take(6).map(|p| (Query { category: None, cond: Cond::Pred(p) }, *style)));
    }
    for (k, (q, style)) in all.iter().enumerate() {
        let whole = k < queries.len();
        let src = eql_text(q, *style);
        let compiled = EqlQuery::compile(&src, &options)
            .map_err(|e| TestCaseError::fail(format!("{src:?} does not compile: {}", e.message)))?;
        let expected: BTreeSet<u64> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| reference::eql_matches(q, e, settings))
            .map(|(i, _)| i as u64)
            .collect();
        // Whole queries on every batch set; single tests on one NDJSON set and the Parquet ones.
        for (label, batches) in
            sets.iter().filter(|(label, _)| whole || !label.starts_with("ndjson") || label.ends_with(" 64"))
        {
            let got = selected(batches, |b| compiled.evaluate(b).set_indices().collect());
            prop_assert_eq!(&got, &expected, "query {:?} on {}", src, label);
        }
        if !whole {
            continue;
        }
        // Reasons and "why not" texts exist for every event and agree with the verdict.
        for b in &sets[3].1 {
            let hits: Vec<usize> = compiled.evaluate(b).set_indices().collect();
            for row in 0..b.len() {
                if hits.contains(&row) {
                    compiled.explain(b, row);
                    prop_assert_eq!(compiled.why_not(b, row), "it matches", "{:?} on event {}", src, row);
                } else {
                    let text = compiled.why_not(b, row);
                    prop_assert!(!text.is_empty() && text != "it matches", "{:?} on event {}: {:?}", src, row, text);
                }
            }
        }
    }
    // All whole queries as rule files, replayed together through the real driver.
    let mut files = Vec::new();
    let mut expected = BTreeSet::new();
    for (k, (q, style)) in queries.iter().enumerate() {
        files.push((format!("q{k}.toml"), eql_rule_toml(&eql_text(q, *style), k)));
        for (i, e) in events.iter().enumerate() {
            if reference::eql_matches(q, e, settings) {
                expected.insert((format!("Q-{k}"), i as u64));
            }
        }
    }
    check_replay(&files, &options, dir.path(), &sets[3].1, &expected)?;
    Ok(())
}

proptest! {
    #![proptest_config(config())]
    #[test]
    fn eql_engine_agrees_with_the_reference(
        events in events(),
        queries in proptest::collection::vec(query(), 1..5),
        no_limit in prop::bool::weighted(0.2),
        row_group_rows in prop_oneof![1usize..8, Just(1 << 20)],
    ) {
        check_eql(&events, &queries, no_limit, row_group_rows)?;
    }
}

// ============================================================================
// Signatures
// ============================================================================

const SIGNATURE_REGEXES: &[&str] = &[
    "secrets/kubernetes.io/serviceaccount.+token$",
    "secrets/kubernetes\\.io/serviceaccount/.*token$",
    "token",
    "^/etc",
    "",
    "(?i)TOKEN",
    "猫",
    "a\\\\b",
    "\\.\\.\\d{4}",
    "^$",
];

fn signature() -> impl Strategy<Value = reference::Signature> {
    (
        select(&[Origin::Container, Origin::Host, Origin::Any][..]),
        proptest::collection::vec(prop_oneof![word(), text()], 0..4),
        prop_oneof![select(SIGNATURE_REGEXES).prop_map(str::to_string), regex_pattern(true)],
        select(&[Access::Read, Access::Write, Access::Any][..]),
    )
        .prop_map(|(origin, allow_processes, path_regex, access)| reference::Signature {
            origin,
            allow_processes,
            path_regex,
            access,
        })
}

/// The signature as a rule file, as a user would write it.
fn signature_toml(s: &reference::Signature, id: usize) -> String {
    let string = |x: &str| toml::Value::String(x.to_string()).to_string();
    let allow: Vec<String> = s.allow_processes.iter().map(|p| string(p)).collect();
    format!(
        "[signature]\nid = \"SIG-{id}\"\nversion = \"1\"\nname = \"random {id}\"\nseverity = 2\n\n\
         [selector]\nevent = \"security_file_open\"\norigin = \"{}\"\n\n\
         [match]\nallow_processes = [{}]\npath_regex = {}\naccess = \"{}\"\n",
        match s.origin {
            Origin::Container => "container",
            Origin::Host => "host",
            Origin::Any => "*",
        },
        allow.join(", "),
        string(&s.path_regex),
        match s.access {
            Access::Read => "read",
            Access::Write => "write",
            Access::Any => "any",
        }
    )
}

fn check_signatures(
    events: &[Event],
    sigs: &[reference::Signature],
    row_group_rows: usize,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tmp");
    let sets = batch_sets(events, row_group_rows, dir.path());
    for (id, sig) in sigs.iter().enumerate() {
        let text = signature_toml(sig, id);
        let rules = RuleSet::from_sources(&[(Path::new("sig.toml"), text.as_str())], &CompileOptions::default())
            .map_err(|e| TestCaseError::fail(format!("{text}\ndoes not load: {e}")))?;
        let engine = &rules.rules()[0];
        assert_eq!(engine.kind(), "signature", "a [signature] file is a signature");
        let outcome = |want: Outcome| -> BTreeSet<u64> {
            events
                .iter()
                .enumerate()
                .filter(|(_, e)| reference::signature(sig, e) == want)
                .map(|(i, _)| i as u64)
                .collect()
        };
        let (fires, unevaluable) = (outcome(Outcome::Fires), outcome(Outcome::Unevaluable));
        for (label, batches) in &sets {
            prop_assert_eq!(
                &selected(batches, |b| engine.evaluate(b).fires.set_indices().collect()),
                &fires,
                "fires: {} on {}",
                text,
                label
            );
            prop_assert_eq!(
                &selected(batches, |b| engine.evaluate(b).unevaluable.iter().map(|(row, _)| *row).collect()),
                &unevaluable,
                "unevaluable: {} on {}",
                text,
                label
            );
        }
        for b in &sets[3].1 {
            let fires: Vec<usize> = engine.evaluate(b).fires.set_indices().collect();
            for &row in &fires {
                prop_assert!(engine.why(b, row).contains("security_file_open"));
            }
            for row in 0..b.len() {
                let text = engine.why_not(b, row);
                prop_assert!(!text.is_empty());
                prop_assert_eq!(text == "it fires", fires.contains(&row), "{} on event {}: {:?}", text, row, text);
            }
        }
    }
    // All signatures as rule files, replayed together through the real driver.
    let mut files = Vec::new();
    let mut expected = BTreeSet::new();
    let mut unevaluable = BTreeMap::new();
    for (id, sig) in sigs.iter().enumerate() {
        files.push((format!("sig{id}.toml"), signature_toml(sig, id)));
        let mut bad = 0;
        for (i, e) in events.iter().enumerate() {
            match reference::signature(sig, e) {
                Outcome::Fires => {
                    expected.insert((format!("SIG-{id}"), i as u64));
                }
                Outcome::Unevaluable => bad += 1,
                _ => {}
            }
        }
        unevaluable.insert(format!("SIG-{id}"), bad);
    }
    let got = check_replay(&files, &CompileOptions::default(), dir.path(), &sets[3].1, &expected)?;
    prop_assert_eq!(got, unevaluable, "unevaluable events per signature in the replay summary");
    Ok(())
}

proptest! {
    #![proptest_config(config())]
    #[test]
    fn signature_engine_agrees_with_the_reference(
        events in events(),
        sigs in proptest::collection::vec(signature(), 1..4),
        row_group_rows in prop_oneof![1usize..8, Just(1 << 20)],
    ) {
        check_signatures(&events, &sigs, row_group_rows)?;
    }
}

// ============================================================================
// The reference itself, on the documented examples
// ============================================================================

#[test]
fn reference_follows_the_documented_examples() {
    use reference::wildcard;
    assert!(wildcard("*", "", false));
    assert!(wildcard("c?t", "cat", false) && !wildcard("c?t", "caat", false));
    assert!(wildcard("*/token*", "/a/token/b", false));
    assert!(wildcard("𝒸?t", "𝒸at", false), "? is one character, not one byte");
    assert!(wildcard("CAT", "cat", true) && !wildcard("CAT", "cat", false));
    assert!(wildcard("a\\b", "a\\b", false), "a backslash is literal");
    assert!(wildcard("*", "new\nline", false), "* crosses newlines");
    assert!(!wildcard("cat", "cats", false), "a pattern covers the whole value");
    let exec = Event {
        time: 0,
        kind: Kind::Exec,
        host: "h".into(),
        pid: 1,
        tid: 1,
        ppid: 1,
        uid: 0,
        gid: 0,
        comm: "cat".into(),
        exe: None,
        args: Some(vec![]),
        path: None,
        requested_path: None,
        flags: None,
        result: Some(0),
        tty: None,
        cgroup_id: 0,
        container_id: None,
    };
    assert_eq!(
        reference::ecs(&exec, "process.args"),
        Some(reference::Value::Missing),
        "an empty args array is missing"
    );
    assert_eq!(reference::ecs(&exec, "file.path"), Some(reference::Value::Missing), "execs carry no file.path");
    let long = "a".repeat(1025);
    let too_long = Event { comm: long.clone(), ..exec.clone() };
    let name = Field { name: "process.name".into(), optional: false };
    let q = |p: Pred| Query { category: None, cond: Cond::Pred(p) };
    let limited = Settings { ignore_above: Some(1024) };
    assert!(!reference::eql_matches(
        &q(Pred::Cmp { field: name.clone(), op: Op::Eq, lit: Lit::Str(long.clone()) }),
        &too_long,
        limited
    ));
    assert!(reference::eql_matches(
        &q(Pred::Cmp { field: name.clone(), op: Op::Ne, lit: Lit::Str(long) }),
        &too_long,
        limited
    ));
    assert!(reference::eql_matches(&q(Pred::Cmp { field: name, op: Op::Eq, lit: Lit::Null }), &too_long, limited));
}
