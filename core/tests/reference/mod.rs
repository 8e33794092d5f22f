//! A reference evaluator for EQL and for the TRC-108-style signature: one
//! event at a time, straight from `docs/rule-semantics.md`, with no Arrow, no
//! dictionaries, no batches and no shared code with `core/src/eql` or
//! `core/src/view` (it does not even use the engine's parser: rules are built
//! as [`Query`] values and the test prints them as EQL for the engine).
//!
//! It is meant to be obviously correct rather than fast. Where the docs say a
//! behaviour is that of the `regex` crate (`regex`, and the case folding of
//! `like~` / `:`), the reference asks the `regex` crate, one character or one
//! value at a time.

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::HashMap;

use regex::Regex;
use serde_json::json;

// ============================================================================
// Capture events
// ============================================================================

/// `exec` or `open`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Exec,
    Open,
}

/// One capture event with the columns of `docs/capture-format.md`.
#[derive(Debug, Clone)]
pub struct Event {
    pub time: i64,
    pub kind: Kind,
    pub host: String,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: String,
    pub exe: Option<String>,
    pub args: Option<Vec<Option<String>>>,
    pub path: Option<String>,
    pub requested_path: Option<String>,
    pub flags: Option<i32>,
    pub result: Option<i64>,
    pub tty: Option<String>,
    pub cgroup_id: u64,
    pub container_id: Option<String>,
}

impl Event {
    /// The event as one NDJSON capture line (without the newline).
    pub fn to_ndjson(&self) -> String {
        json!({
            "time": self.time,
            "kind": match self.kind { Kind::Exec => "exec", Kind::Open => "open" },
            "host": self.host,
            "pid": self.pid,
            "tid": self.tid,
            "ppid": self.ppid,
            "uid": self.uid,
            "gid": self.gid,
            "comm": self.comm,
            "exe": self.exe,
            "args": self.args,
            "path": self.path,
            "requested_path": self.requested_path,
            "flags": self.flags,
            "result": self.result,
            "tty": self.tty,
            "cgroup_id": self.cgroup_id,
            "container_id": self.container_id,
        })
        .to_string()
    }
}

/// Whether the event enters the rule views at all ("Visibility"): an exec
/// whose result is null or not negative; an open whose result is not
/// negative, or null with a path.
pub fn visible(e: &Event) -> bool {
    match (e.kind, e.result) {
        (_, Some(r)) => r >= 0,
        (Kind::Exec, None) => true,
        (Kind::Open, None) => e.path.is_some(),
    }
}

// ============================================================================
// The ECS view ("The Elastic view (ECS)" table)
// ============================================================================

/// A field's value in the ECS document of one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Absent (null source value, or the event's kind does not carry the field).
    Missing,
    /// A keyword: one string, or the elements of a multi-valued field.
    Keyword(Vec<String>),
    /// A long.
    Long(i64),
    /// A boolean.
    Bool(bool),
}

fn keyword(s: &Option<String>) -> Value {
    match s {
        Some(s) => Value::Keyword(vec![s.clone()]),
        None => Value::Missing,
    }
}

fn one(s: &str) -> Value {
    Value::Keyword(vec![s.to_string()])
}

/// The value of ECS field `name` for event `e`; `None` when the view has no such field.
pub fn ecs(e: &Event, name: &str) -> Option<Value> {
    let exec = e.kind == Kind::Exec;
    let open = e.kind == Kind::Open;
    Some(match name {
        "host.os.type" => one("linux"),
        "host.name" => one(&e.host),
        "container.id" => keyword(&e.container_id),
        "event.category" => one(if exec { "process" } else { "file" }),
        "event.action" => one(if exec { "exec" } else { "open" }),
        "event.type" => match (e.kind, e.flags) {
            (Kind::Exec, _) => one("start"),
            (Kind::Open, None) => Value::Missing,
            // O_ACCMODE is the low two bits: 1 is O_WRONLY, 2 is O_RDWR.
            (Kind::Open, Some(f)) => one(if matches!(f.rem_euclid(4), 1 | 2) { "change" } else { "access" }),
        },
        "process.pid" => Value::Long(i64::from(e.pid)),
        "process.thread.id" => Value::Long(i64::from(e.tid)),
        "process.parent.pid" => Value::Long(i64::from(e.ppid)),
        "process.name" => one(&e.comm),
        "process.executable" => keyword(&e.exe),
        "process.interactive" => Value::Bool(e.tty.is_some()),
        "process.args" => match &e.args {
            Some(args) if exec => {
                let present: Vec<String> = args.iter().flatten().cloned().collect();
                if present.is_empty() {
                    Value::Missing
                } else {
                    Value::Keyword(present)
                }
            }
            _ => Value::Missing,
        },
        "process.args_count" => match &e.args {
            Some(args) if exec => Value::Long(args.len() as i64),
            _ => Value::Missing,
        },
        "user.id" => one(&e.uid.to_string()),
        "group.id" => one(&e.gid.to_string()),
        "file.path" if open => keyword(&e.path),
        "file.name" if open => match &e.path {
            Some(p) => one(match p.rfind('/') {
                Some(i) => &p[i + 1..],
                None => p,
            }),
            None => Value::Missing,
        },
        "file.path" | "file.name" => Value::Missing,
        _ => return None,
    })
}

// ============================================================================
// EQL rules, as the test builds them
// ============================================================================

/// A field reference: a dotted name, `optional` when written `?name`.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub optional: bool,
}

/// `==`, `!=`, `<`, `<=`, `>`, `>=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    pub fn holds(self, o: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Op::Eq => o == Equal,
            Op::Ne => o != Equal,
            Op::Lt => o == Less,
            Op::Le => o != Greater,
            Op::Gt => o == Greater,
            Op::Ge => o != Less,
        }
    }
}

/// A literal.
#[derive(Debug, Clone)]
pub enum Lit {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
}

/// `startsWith`, `endsWith`, `stringContains`.
#[derive(Debug, Clone, Copy)]
pub enum Func {
    StartsWith,
    EndsWith,
    Contains,
}

/// A leaf test.
#[derive(Debug, Clone)]
pub enum Pred {
    /// `field <op> literal`.
    Cmp { field: Field, op: Op, lit: Lit },
    /// `field [not] in[~] (literals)`.
    In { field: Field, list: Vec<Lit>, ci: bool, negated: bool },
    /// `field like[~] (patterns)`, or `field : (patterns)` when `colon` (always case-insensitive).
    Like { field: Field, patterns: Vec<String>, ci: bool, colon: bool },
    /// `field regex[~] (patterns)`.
    Regex { field: Field, patterns: Vec<String>, ci: bool },
    /// `func[~](field, "needle")`.
    Func { func: Func, field: Field, needle: String, ci: bool },
    /// `length(field) <op> n`.
    Length { field: Field, op: Op, n: i64 },
    /// A boolean field alone as the condition.
    BareBool { field: Field },
    /// `substring(field, start, end) == "lit"`.
    Substring { field: Field, start: i64, end: i64, lit: String },
    /// `a == b` with two keyword fields.
    FieldsEqual { a: Field, b: Field },
}

/// A condition.
#[derive(Debug, Clone)]
pub enum Cond {
    Const(bool),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Pred(Pred),
}

/// `<category> where <cond>`; `category` is `None` for `any`.
#[derive(Debug, Clone)]
pub struct Query {
    pub category: Option<String>,
    pub cond: Cond,
}

/// Evaluation settings: Elasticsearch's `ignore_above`, in UTF-16 code units.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub ignore_above: Option<usize>,
}

// ============================================================================
// EQL evaluation ("Semantics")
// ============================================================================

/// Whether `q` matches event `e`: the event is visible, has the category, and the condition holds.
pub fn eql_matches(q: &Query, e: &Event, s: Settings) -> bool {
    if !visible(e) {
        return false;
    }
    if let Some(cat) = &q.category {
        // A named category adds `event.category == "<name>"` (case-sensitive).
        if !pred(&Pred::Cmp { field: field("event.category"), op: Op::Eq, lit: Lit::Str(cat.clone()) }, e, s) {
            return false;
        }
    }
    cond(&q.cond, e, s)
}

fn field(name: &str) -> Field {
    Field { name: name.to_string(), optional: false }
}

fn cond(c: &Cond, e: &Event, s: Settings) -> bool {
    match c {
        Cond::Const(b) => *b,
        Cond::And(items) => items.iter().all(|c| cond(c, e, s)),
        Cond::Or(items) => items.iter().any(|c| cond(c, e, s)),
        Cond::Not(inner) => !cond(inner, e, s),
        Cond::Pred(p) => pred(p, e, s),
    }
}

/// The value of a field reference; an unknown name (only allowed as `?name`) is always missing.
fn value(f: &Field, e: &Event) -> Value {
    match ecs(e, &f.name) {
        Some(v) => v,
        None => {
            assert!(f.optional, "the test only builds unknown fields as ?name, got {}", f.name);
            Value::Missing
        }
    }
}

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// The keyword values Elasticsearch indexed: values longer than
/// `ignore_above` UTF-16 code units are not indexed and so never match.
fn indexed(v: &Value, s: Settings) -> Vec<&str> {
    match v {
        Value::Keyword(items) => items
            .iter()
            .filter(|x| s.ignore_above.is_none_or(|limit| utf16_len(x) <= limit))
            .map(String::as_str)
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether the field has a value ("existence"), after `ignore_above`.
fn exists(v: &Value, s: Settings) -> bool {
    match v {
        Value::Missing => false,
        Value::Keyword(_) => !indexed(v, s).is_empty(),
        Value::Long(_) | Value::Bool(_) => true,
    }
}

fn pred(p: &Pred, e: &Event, s: Settings) -> bool {
    match p {
        // `!=` is the negation of `==`, so it holds on a missing field.
        Pred::Cmp { field, op: Op::Ne, lit } if !matches!(lit, Lit::Null) => {
            !pred(&Pred::Cmp { field: field.clone(), op: Op::Eq, lit: lit.clone() }, e, s)
        }
        Pred::Cmp { field, op, lit } => {
            let v = value(field, e);
            match (lit, &v) {
                (Lit::Null, _) => match op {
                    Op::Eq => !exists(&v, s),
                    Op::Ne => exists(&v, s),
                    _ => unreachable!("null is only compared with == or !="),
                },
                (Lit::Str(lit), Value::Keyword(_)) => {
                    // Code point order, which is the byte order of UTF-8.
                    indexed(&v, s).iter().any(|x| op.holds(x.chars().cmp(lit.chars())))
                }
                (Lit::Int(i), Value::Long(x)) => op.holds(x.cmp(i)),
                (Lit::Float(f), Value::Long(x)) => (*x as f64).partial_cmp(f).is_some_and(|o| op.holds(o)),
                (Lit::Bool(b), Value::Bool(x)) => x == b,
                (_, Value::Missing) => false,
                (lit, v) => unreachable!("the test does not build {lit:?} against {v:?}"),
            }
        }
        Pred::In { field, list, ci, negated } => {
            let v = value(field, e);
            let hit = match &v {
                Value::Missing => false,
                Value::Keyword(_) => indexed(&v, s).iter().any(|x| {
                    list.iter().any(|l| match l {
                        Lit::Str(l) if *ci => x.to_lowercase() == l.to_lowercase(),
                        Lit::Str(l) => x == l,
                        _ => unreachable!("keyword lists hold strings"),
                    })
                }),
                Value::Long(x) => list.iter().any(|l| matches!(l, Lit::Int(i) if i == x)),
                Value::Bool(x) => list.iter().any(|l| matches!(l, Lit::Bool(b) if b == x)),
            };
            hit != *negated
        }
        Pred::Like { field, patterns, ci, colon } => {
            let ci = *ci || *colon;
            let v = value(field, e);
            indexed(&v, s).iter().any(|x| patterns.iter().any(|p| wildcard(p, x, ci)))
        }
        Pred::Regex { field, patterns, ci } => {
            let v = value(field, e);
            indexed(&v, s).iter().any(|x| patterns.iter().any(|p| whole_regex(p, *ci).is_match(x)))
        }
        Pred::Func { func, field, needle, ci } => {
            let v = value(field, e);
            indexed(&v, s).iter().any(|x| {
                let (hay, needle) =
                    if *ci { (x.to_lowercase(), needle.to_lowercase()) } else { (x.to_string(), needle.clone()) };
                match func {
                    Func::StartsWith => hay.starts_with(&needle),
                    Func::EndsWith => hay.ends_with(&needle),
                    // The EQL function reference: an empty substring is never contained.
                    Func::Contains => !needle.is_empty() && hay.contains(&needle),
                }
            })
        }
        // A function's result is compared as a value: on a missing field it is null and
        // `length(f) != n` does not hold (Elasticsearch runs it as a script, where null is not
        // true), unlike `f != "x"`, a negated term query.
        Pred::Length { field, op, n } => {
            let v = value(field, e);
            indexed(&v, s).iter().any(|x| op.holds((utf16_len(x) as i64).cmp(n)))
        }
        Pred::BareBool { field } => value(field, e) == Value::Bool(true),
        // Java's substring on UTF-16 code units, with Python-like negative positions (the EQL
        // function reference's examples); some element must give `lit`.
        Pred::Substring { field, start, end, lit } => {
            let v = value(field, e);
            indexed(&v, s).iter().any(|x| {
                let units: Vec<u16> = x.encode_utf16().collect();
                let n = units.len() as i64;
                let pos = |p: i64| if p < 0 { (n + p).max(0) } else { p.min(n) } as usize;
                let (a, b) = (pos(*start), pos(*end));
                let got = if a >= b { String::new() } else { String::from_utf16_lossy(&units[a..b]) };
                got == *lit
            })
        }
        // Two fields: some element of one equals some element of the other.
        Pred::FieldsEqual { a, b } => {
            let (va, vb) = (value(a, e), value(b, e));
            let (xa, xb) = (indexed(&va, s), indexed(&vb, s));
            xa.iter().any(|x| xb.contains(x))
        }
    }
}

/// `like` without regular expressions: `*` matches any run of characters,
/// `?` exactly one, everything else itself; the pattern covers the whole
/// value. Dynamic programming over (pattern prefix, value prefix).
pub fn wildcard(pattern: &str, value: &str, ci: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    // ok[j]: p[..i] matches v[..j], for the current i.
    let mut ok = vec![false; v.len() + 1];
    ok[0] = true;
    for &pc in &p {
        let mut next = vec![false; v.len() + 1];
        if pc == '*' {
            // `*` extends any match to every longer prefix.
            let mut seen = false;
            for j in 0..=v.len() {
                seen |= ok[j];
                next[j] = seen;
            }
        } else {
            for j in 1..=v.len() {
                next[j] = ok[j - 1] && (pc == '?' || same_char(pc, v[j - 1], ci));
            }
        }
        ok = next;
    }
    ok[v.len()]
}

thread_local! {
    static FOLDS: RefCell<HashMap<char, Regex>> = RefCell::new(HashMap::new());
    static REGEXES: RefCell<HashMap<(String, bool), Regex>> = RefCell::new(HashMap::new());
}

/// Character equality; case-insensitive as the `regex` crate's `(?i)` is for
/// one character (Unicode simple case folding), which is what the docs
/// promise for `like~` and `:`.
fn same_char(a: char, b: char, ci: bool) -> bool {
    if a == b {
        return true;
    }
    if !ci {
        return false;
    }
    FOLDS.with(|f| {
        f.borrow_mut()
            .entry(a)
            .or_insert_with(|| Regex::new(&format!("(?i)^{}$", regex::escape(&a.to_string()))).expect("one char"))
            .is_match(&b.to_string())
    })
}

/// The docs' `regex`: the pattern covers the whole value, `.` matches newlines.
fn whole_regex(p: &str, ci: bool) -> Regex {
    REGEXES.with(|r| {
        r.borrow_mut()
            .entry((p.to_string(), ci))
            .or_insert_with(|| {
                let flags = if ci { "(?si)" } else { "(?s)" };
                Regex::new(&format!("{flags}^(?:{p})$")).expect("the test only builds valid patterns")
            })
            .clone()
    })
}

// ============================================================================
// The signature ("The signature engine")
// ============================================================================

/// `selector.origin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Container,
    Host,
    Any,
}

/// `match.access`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Any,
}

/// A Tracee-style file-open signature.
#[derive(Debug, Clone)]
pub struct Signature {
    pub origin: Origin,
    pub allow_processes: Vec<String>,
    pub path_regex: String,
    pub access: Access,
}

/// What a signature does with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not selected, allow-listed or no match.
    Nothing,
    /// Selected and not allow-listed, but `path` or `flags` is null.
    Unevaluable,
    /// A finding.
    Fires,
}

/// Tracee's TRC-108 logic, step by step.
pub fn signature(sig: &Signature, e: &Event) -> Outcome {
    // 1. Selection: visible opens (security_file_open) of the selected origin.
    if e.kind != Kind::Open || !visible(e) {
        return Outcome::Nothing;
    }
    let in_container = e.container_id.is_some();
    let selected = match sig.origin {
        Origin::Container => in_container,
        Origin::Host => !in_container,
        Origin::Any => true,
    };
    if !selected {
        return Outcome::Nothing;
    }
    // 2. Allow-list: exact, case-sensitive process names.
    if sig.allow_processes.contains(&e.comm) {
        return Outcome::Nothing;
    }
    // 3. Arguments: a missing pathname or flags cannot be evaluated.
    let (Some(path), Some(flags)) = (&e.path, e.flags) else {
        return Outcome::Unevaluable;
    };
    // 4. Access mode and the unanchored regex.
    let mode = flags.rem_euclid(4);
    let access = match sig.access {
        Access::Read => mode == 0 || mode == 2,
        Access::Write => mode == 1 || mode == 2,
        Access::Any => true,
    };
    let regex = Regex::new(&sig.path_regex).expect("the test only builds valid regexes");
    if access && regex.is_match(path) {
        Outcome::Fires
    } else {
        Outcome::Nothing
    }
}
