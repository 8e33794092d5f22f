//! Type checking and compilation of a parsed query into a plan of vectorized tests.

use rustc_hash::FxHashSet as HashSet;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use regex::Regex;

use super::ast::{ArithOp, Category, CmpOp, Expr, ExprKind, Literal, Pipe, Query, Span};
use super::func::{Cidr, Func, Ty, VExpr, Val, FUNCTION_NAMES};
use super::parser::{parse_query, parse_query_with_pipes};
use crate::capture::Projection;
use crate::kernels::verdict_key;
use crate::view::ecs::{ecs_base_projection, ecs_field, FieldType, ECS_FIELDS};

/// Elasticsearch's `ignore_above` for ECS keyword fields.
pub const DEFAULT_IGNORE_ABOVE: usize = 1024;

/// Options that change how queries evaluate.
#[derive(Debug, Clone)]
pub struct CompileOptions {
    /// Keyword values longer than this many UTF-16 code units are not indexed
    /// in Elasticsearch and so never match `==`, `in`, `like`, `regex` or a
    /// string function; `None` disables the limit.
    pub ignore_above: Option<usize>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions { ignore_above: Some(DEFAULT_IGNORE_ABOVE) }
    }
}

/// A query that failed to parse or type-check: a message and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// One sentence.
    pub message: String,
    /// Byte span in the query source.
    pub span: Span,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// How a string value is tested.
#[derive(Debug, Clone)]
pub(crate) enum StrMatcher {
    /// Exact membership (case-sensitive `==` and `in`).
    In(StrSet),
    /// Case-insensitive membership (`in~`), values lower-cased.
    InCi(HashSet<String>),
    /// A compiled pattern (`like`, `like~`, `:`, `regex`, `regex~`), anchored,
    /// with a literal prefilter when every alternative needs a literal.
    Pattern(Regex, Option<Prefilter>),
    /// `startsWith`, `endsWith`, `stringContains`, with the needle lower-cased when `ci`.
    Func { func: StrFunc, needle: String, ci: bool },
    /// Ordering comparison with a string (`<`, `<=`, `>`, `>=`).
    Order(CmpOp, String),
    /// `length(field) <op> n`, counting UTF-16 code units as Elasticsearch (Java) does.
    Length(CmpOp, i64),
    /// Any other predicate whose only field is this keyword field, e.g.
    /// `substring(process.name, 0, 3) == "cat"`: judged once per distinct value.
    Expr(Arc<VExpr>),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum StrFunc {
    StartsWith,
    EndsWith,
    Contains,
}

impl StrMatcher {
    pub(crate) fn matches(&self, s: &str) -> bool {
        match self {
            StrMatcher::In(set) => set.contains(s),
            StrMatcher::InCi(set) => set.contains(&s.to_lowercase()),
            StrMatcher::Pattern(re, pre) => pre.as_ref().is_none_or(|p| p.may_match(s)) && re.is_match(s),
            StrMatcher::Func { func, needle, ci } => {
                let lowered;
                let hay = if *ci {
                    lowered = s.to_lowercase();
                    lowered.as_str()
                } else {
                    s
                };
                match func {
                    StrFunc::StartsWith => hay.starts_with(needle.as_str()),
                    StrFunc::EndsWith => hay.ends_with(needle.as_str()),
                    // Elasticsearch's reference: an empty substring is never contained.
                    StrFunc::Contains => !needle.is_empty() && hay.contains(needle.as_str()),
                }
            }
            StrMatcher::Order(op, v) => cmp_holds(*op, s.cmp(v.as_str())),
            StrMatcher::Length(op, n) => cmp_holds(*op, (s.encode_utf16().count() as i64).cmp(n)),
            StrMatcher::Expr(e) => e.holds(&|_| Val::Str(Cow::Borrowed(s))),
        }
    }
}

/// The strings of a case-sensitive `in` (or `==`), with the byte lengths
/// they have: a value of another length is rejected without hashing it
/// (argv elements and paths are mostly longer than the program names rules
/// list).
#[derive(Debug, Clone, Default)]
pub(crate) struct StrSet {
    set: HashSet<String>,
    /// Bit `l` set when a member is `l` bytes long; bit 63 stands for 63
    /// bytes and longer.
    lengths: u64,
}

/// The bit of [`StrSet::lengths`] for a string of `len` bytes.
fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}

impl StrSet {
    pub(crate) fn contains(&self, s: &str) -> bool {
        self.lengths & length_bit(s.len()) != 0 && self.set.contains(s)
    }
    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }
    pub(crate) fn iter(&self) -> impl Iterator<Item = &String> {
        self.set.iter()
    }
}

impl FromIterator<String> for StrSet {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> Self {
        let mut out = StrSet::default();
        for s in iter {
            out.lengths |= length_bit(s.len());
            out.set.insert(s);
        }
        out
    }
}

/// A necessary condition for a list of case-sensitive `like` patterns: the
/// value contains the longest literal run of at least one pattern. The
/// patterns' regex is anchored at both ends, so the regex engine cannot skip
/// ahead by itself; this rejects most values with one SIMD substring scan
/// (memchr's memmem for one pattern, Aho-Corasick for several).
#[derive(Debug, Clone)]
pub(crate) enum Prefilter {
    One(Box<memchr::memmem::Finder<'static>>),
    Many(aho_corasick::AhoCorasick),
}

impl Prefilter {
    /// `None` when some pattern has no literal run (`*`, `?*`, `""`): nothing can be ruled out.
    pub(crate) fn for_like(patterns: &[&str]) -> Option<Prefilter> {
        let mut needles = Vec::with_capacity(patterns.len());
        for p in patterns {
            let longest = p.split(['*', '?']).max_by_key(|seg| seg.len())?;
            if longest.is_empty() {
                return None;
            }
            needles.push(longest.to_string());
        }
        match needles.as_slice() {
            [one] => Some(Prefilter::One(Box::new(memchr::memmem::Finder::new(one.as_bytes()).into_owned()))),
            _ => aho_corasick::AhoCorasick::new(&needles).ok().map(Prefilter::Many),
        }
    }

    /// False only when no pattern can match `s`.
    pub(crate) fn may_match(&self, s: &str) -> bool {
        match self {
            Prefilter::One(f) => f.find(s.as_bytes()).is_some(),
            Prefilter::Many(ac) => ac.is_match(s),
        }
    }
}

pub(crate) fn cmp_holds(op: CmpOp, o: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        CmpOp::Eq => o == Equal,
        CmpOp::NotEq => o != Equal,
        CmpOp::Lt => o == Less,
        CmpOp::LtEq => o != Greater,
        CmpOp::Gt => o == Greater,
        CmpOp::GtEq => o != Less,
    }
}

/// A test on one field's values in a row.
#[derive(Debug, Clone)]
pub(crate) enum Test {
    /// Some (in-limit) string element satisfies the matcher.
    Str(StrMatcher),
    /// A number compares true with the literal.
    Num(CmpOp, f64),
    /// Integer membership.
    IntIn(Vec<i64>),
    /// The boolean equals.
    Bool(bool),
    /// The field has a value (non-null; for arrays, at least one element).
    Exists,
}

/// A node of the compiled plan.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Const(bool),
    And(Vec<Node>),
    /// Alternatives with a label each (`exec branch`, `branch 2 of 3`).
    Or(Vec<Node>, Vec<String>),
    Not(Box<Node>, String),
    Leaf {
        field: usize,
        test: Test,
        text: String,
        /// Names this leaf's test in the per-thread cache of dictionary
        /// verdicts; unique for the life of the process (`kernels::verdict_key`),
        /// so a later query can never read this one's verdicts.
        key: usize,
    },
    /// A predicate over several fields, or over a number or boolean field
    /// (`endsWith(user.target.domain, user.target.group.domain)`,
    /// `add(process.pid, 1) > 10`), judged row by row; on multi-valued
    /// fields it holds when some combination of elements makes it true.
    Rows {
        fields: Vec<usize>,
        expr: Arc<VExpr>,
        text: String,
    },
}

impl Node {
    /// Adds the capture columns this node's fields are derived from.
    pub(crate) fn add_columns(&self, p: &mut Projection) {
        let mut add = |field: usize| ECS_FIELDS[field].columns.iter().for_each(|&c| p.insert(c));
        match self {
            Node::Const(_) => {}
            Node::Leaf { field, .. } => add(*field),
            Node::Rows { fields, .. } => fields.iter().for_each(|&f| add(f)),
            Node::Not(inner, _) => inner.add_columns(p),
            Node::And(items) | Node::Or(items, _) => items.iter().for_each(|i| i.add_columns(p)),
        }
    }
}

/// A compiled EQL query, ready to evaluate batches of events.
#[derive(Debug, Clone)]
pub struct EqlQuery {
    source: String,
    query: Query,
    pub(crate) root: Node,
    pub(crate) fields: Vec<usize>,
    pub(crate) ignore_above: Option<usize>,
    /// The pipes after the condition (rule files only: [`EqlQuery::compile_rule`]).
    pipes: Vec<Pipe>,
}

impl EqlQuery {
    /// Parses and compiles `src` against the ECS view.
    pub fn compile(src: &str, options: &CompileOptions) -> Result<EqlQuery, CompileError> {
        EqlQuery::compile_all(src, options).map_err(|mut errors| errors.swap_remove(0))
    }

    /// Like [`EqlQuery::compile`], but on failure returns every error found,
    /// in source order: a syntax error stops parsing, so it comes alone, but
    /// each `and`/`or` operand is type-checked on its own (every unknown
    /// field, unknown function and type error of the query). Never empty.
    pub fn compile_all(src: &str, options: &CompileOptions) -> Result<EqlQuery, Vec<CompileError>> {
        let query = parse_query(src).map_err(|e| vec![CompileError { message: e.message, span: e.span }])?;
        EqlQuery::compile_parsed(src.to_string(), query, options)
    }

    /// Compiles a rule file's single-event query, which may end in pipes
    /// (`| head N`, `| tail N`: [`EqlQuery::pipes`]); every error found.
    pub fn compile_rule(src: &str, options: &CompileOptions) -> Result<EqlQuery, Vec<CompileError>> {
        let (query, pipes) =
            parse_query_with_pipes(src).map_err(|e| vec![CompileError { message: e.message, span: e.span }])?;
        let mut compiled = EqlQuery::compile_parsed(src.to_string(), query, options)?;
        compiled.pipes = pipes;
        Ok(compiled)
    }

    /// The pipes after the condition, in order: the rule's findings are the
    /// matching events ordered by (timestamp, capture, event index), cut by
    /// each pipe in turn (the driver applies them over the whole stream).
    pub fn pipes(&self) -> &[Pipe] {
        &self.pipes
    }

    /// Compiles a parsed query; `source` is its text (for a sequence stage,
    /// the stage's text: the spans of `query` stay those of the whole
    /// sequence, so errors point into it).
    pub(crate) fn compile_parsed(
        source: String,
        query: Query,
        options: &CompileOptions,
    ) -> Result<EqlQuery, Vec<CompileError>> {
        let mut c = Compiler { fields: Vec::new(), errors: Vec::new() };
        let root = c.expr(&query.condition);
        let mut root = match root {
            Ok(root) if c.errors.is_empty() => root,
            Ok(_) => return Err(c.errors),
            Err(e) => {
                c.errors.push(e);
                c.errors.sort_by_key(|e| e.span.start);
                return Err(c.errors);
            }
        };
        if let Category::Named(cat) = &query.category {
            let (idx, _) = ecs_field("event.category").expect("event.category is an ECS field");
            c.use_field(idx);
            let leaf = Node::Leaf {
                key: verdict_key(),
                field: idx,
                test: Test::Str(StrMatcher::In([cat.clone()].into_iter().collect())),
                text: format!("event.category == \"{cat}\""),
            };
            root = match root {
                Node::And(mut v) => {
                    v.insert(0, leaf);
                    Node::And(v)
                }
                other => Node::And(vec![leaf, other]),
            };
        }
        Ok(EqlQuery { source, query, root, fields: c.fields, ignore_above: options.ignore_above, pipes: Vec::new() })
    }

    /// The query text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The parsed query.
    pub fn ast(&self) -> &Query {
        &self.query
    }

    /// Names of the ECS fields the query reads.
    pub fn field_names(&self) -> Vec<&'static str> {
        self.fields.iter().map(|&i| ECS_FIELDS[i].name).collect()
    }

    /// Whether the query reads a field built from the process table.
    pub fn needs_process(&self) -> bool {
        self.fields.iter().any(|&i| ECS_FIELDS[i].process)
    }

    /// The capture columns needed to evaluate the query.
    pub fn projection(&self) -> Projection {
        let mut p = ecs_base_projection();
        for &i in &self.fields {
            for &c in ECS_FIELDS[i].columns {
                p.insert(c);
            }
        }
        p
    }
}

impl fmt::Display for EqlQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.query)?;
        for pipe in &self.pipes {
            write!(f, " {pipe}")?;
        }
        Ok(())
    }
}

struct Compiler {
    fields: Vec<usize>,
    /// Errors of `and`/`or` operands already reported, so that the others are still checked.
    errors: Vec<CompileError>,
}

fn err<T>(span: Span, message: impl Into<String>) -> Result<T, CompileError> {
    Err(CompileError { message: message.into(), span })
}

/// Canonical text of a predicate for reasons, with long lists shortened.
fn short_text(e: &Expr) -> String {
    let mut e = e.clone();
    let cut = |list: &mut Vec<Expr>| {
        if list.len() > 4 {
            list.truncate(3);
            true
        } else {
            false
        }
    };
    let truncated = match &mut e.kind {
        ExprKind::In { list, .. } => cut(list),
        ExprKind::Like { patterns, .. } | ExprKind::Regex { patterns, .. } => cut(patterns),
        _ => false,
    };
    let s = e.to_string();
    if truncated {
        // "x in (a, b, c)" -> "x in (a, b, c, ...)"
        format!("{}, ...)", s.trim_end_matches(')'))
    } else {
        s
    }
}

fn literal_of(e: &Expr) -> Option<&Literal> {
    match &e.kind {
        ExprKind::Literal(l) => Some(l),
        _ => None,
    }
}

fn lit_kind(l: &Literal) -> &'static str {
    match l {
        Literal::String(_) => "a string",
        Literal::Integer(_) | Literal::Float(_) => "a number",
        Literal::Bool(_) => "a boolean",
        Literal::Null => "null",
    }
}

fn like_regex(pattern: &str, ci: bool) -> String {
    let mut re = String::from(if ci { "(?is)^" } else { "(?s)^" });
    for ch in pattern.chars() {
        match ch {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    re.push('$');
    re
}

impl Compiler {
    fn use_field(&mut self, idx: usize) {
        if !self.fields.contains(&idx) {
            self.fields.push(idx);
        }
    }

    /// Resolves a field reference: `Some(idx)`, or `None` for an unknown `?optional` field.
    fn field(&mut self, e: &Expr) -> Result<Option<usize>, CompileError> {
        let ExprKind::Field { name, optional } = &e.kind else {
            return err(e.span, format!("expected a field here, found `{e}`"));
        };
        match ecs_field(name) {
            Some((idx, _)) => {
                self.use_field(idx);
                Ok(Some(idx))
            }
            None if *optional => Ok(None),
            None => {
                let hint = match closest_field(name) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => unknown_field_hint(name),
                };
                err(e.span, format!("unknown field `{name}`: {hint} (write `?{name}` to treat it as always missing)"))
            }
        }
    }

    fn expr(&mut self, e: &Expr) -> Result<Node, CompileError> {
        match &e.kind {
            ExprKind::And(items) => Ok(Node::And(items.iter().map(|i| self.operand(i)).collect())),
            ExprKind::Or(items) => {
                let nodes: Vec<Node> = items.iter().map(|i| self.operand(i)).collect();
                let labels = nodes.iter().enumerate().map(|(k, n)| branch_label(n, k, nodes.len())).collect();
                Ok(Node::Or(nodes, labels))
            }
            ExprKind::Not(inner) => Ok(Node::Not(Box::new(self.expr(inner)?), short_text(e))),
            ExprKind::Literal(Literal::Bool(b)) => Ok(Node::Const(*b)),
            ExprKind::Literal(l) => err(e.span, format!("a condition must be true or false, not {}", lit_kind(l))),
            ExprKind::Field { .. } => {
                // A bare boolean field: `where process.interactive`.
                let Some(idx) = self.field(e)? else { return Ok(Node::Const(false)) };
                let f = &ECS_FIELDS[idx];
                if f.ty != FieldType::Boolean {
                    return err(
                        e.span,
                        format!("`{}` is a {} field, not a condition; compare it with a value", f.name, f.ty),
                    );
                }
                Ok(Node::Leaf { field: idx, test: Test::Bool(true), text: short_text(e), key: verdict_key() })
            }
            ExprKind::Compare { lhs, op, rhs } => self.compare(e, lhs, *op, rhs),
            ExprKind::In { lhs, list, case_insensitive, negated } => {
                let node = self.in_list(e, lhs, list, *case_insensitive)?;
                Ok(if *negated { Node::Not(Box::new(node), short_text(e)) } else { node })
            }
            ExprKind::Like { lhs, patterns, case_insensitive } => {
                // Case-insensitive `like~` folds Unicode case (the Kelvin sign matches `k`): no
                // byte-literal prefilter is safe there.
                let prefilter = |ps: &[&str]| if *case_insensitive { None } else { Prefilter::for_like(ps) };
                self.patterns(e, lhs, patterns, |p| like_regex(p, *case_insensitive), prefilter, "like")
            }
            ExprKind::Regex { lhs, patterns, case_insensitive } => self.patterns(
                e,
                lhs,
                patterns,
                |p| format!("(?s{})^(?:{p})$", if *case_insensitive { "i" } else { "" }),
                // The regex engine extracts and prefilters a regex's own literals.
                |_| None,
                "regex",
            ),
            ExprKind::Call { name, case_insensitive, args, .. } => self.call(e, name, *case_insensitive, args),
            ExprKind::Arith { .. } => err(e.span, format!("`{e}` gives a number, not a condition; compare it")),
        }
    }

    /// An operand of `and`/`or`: an error is kept for later and checking goes on.
    fn operand(&mut self, e: &Expr) -> Node {
        self.expr(e).unwrap_or_else(|er| {
            self.errors.push(er);
            Node::Const(false)
        })
    }

    fn keyword_field(&mut self, e: &Expr, what: &str) -> Result<Option<usize>, CompileError> {
        let Some(idx) = self.field(e)? else { return Ok(None) };
        let f = &ECS_FIELDS[idx];
        if f.ty != FieldType::Keyword {
            return err(e.span, format!("{what} needs a keyword (string) field, but `{}` is {}", f.name, f.ty));
        }
        Ok(Some(idx))
    }

    fn leaf(field: Option<usize>, test: Test, e: &Expr) -> Node {
        match field {
            // A field with the same value on every event is decided now.
            Some(field) if ECS_FIELDS[field].name == "host.os.type" => Node::Const(match &test {
                Test::Str(m) => m.matches("linux"),
                Test::Exists => true,
                _ => false,
            }),
            Some(field) => Node::Leaf { field, test, text: short_text(e), key: verdict_key() },
            // An unknown optional field is always missing: positive tests are false.
            None => Node::Const(false),
        }
    }

    fn compare(&mut self, e: &Expr, lhs: &Expr, op: CmpOp, rhs: &Expr) -> Result<Node, CompileError> {
        // Put the field (or function call) on the left.
        let (lhs, op, rhs) = if literal_of(lhs).is_some() && literal_of(rhs).is_none() {
            let flipped = match op {
                CmpOp::Lt => CmpOp::Gt,
                CmpOp::LtEq => CmpOp::GtEq,
                CmpOp::Gt => CmpOp::Lt,
                CmpOp::GtEq => CmpOp::LtEq,
                o => o,
            };
            (rhs, flipped, lhs)
        } else {
            (lhs, op, rhs)
        };
        let lit = literal_of(rhs);
        let is_length_of_field = |x: &Expr| {
            matches!(&x.kind, ExprKind::Call { name, case_insensitive: false, args, .. }
                if name.eq_ignore_ascii_case("length") && matches!(args.as_slice(), [Expr { kind: ExprKind::Field { .. }, .. }]))
        };
        match (&lhs.kind, lit) {
            (ExprKind::Field { .. }, Some(_)) => {}
            (_, Some(lit @ Literal::Integer(_))) if is_length_of_field(lhs) => {
                return self.length_compare(e, lhs, op, lit, rhs.span)
            }
            _ => {
                let (v, _) = self.value(e)?;
                return Ok(self.general(e, v));
            }
        }
        let lit = lit.expect("matched above");
        let field = self.field(lhs)?;
        let negate = op == CmpOp::NotEq;
        let pos_op = if negate { CmpOp::Eq } else { op };
        let test = match (field.map(|i| ECS_FIELDS[i].ty), lit) {
            (_, Literal::Null) => match op {
                // `field == null`: missing; `field != null`: exists.
                CmpOp::Eq => return Ok(Node::Not(Box::new(Self::leaf(field, Test::Exists, e)), short_text(e))),
                CmpOp::NotEq => return Ok(Self::leaf(field, Test::Exists, e)),
                _ => return err(rhs.span, "null can only be compared with == or !="),
            },
            (None, _) => Test::Exists,
            (Some(FieldType::Keyword), Literal::String(s)) => Test::Str(if pos_op == CmpOp::Eq {
                StrMatcher::In([s.clone()].into_iter().collect())
            } else {
                StrMatcher::Order(pos_op, s.clone())
            }),
            (Some(FieldType::Long), Literal::Integer(i)) => Test::Num(pos_op, *i as f64),
            (Some(FieldType::Long), Literal::Float(x)) => Test::Num(pos_op, *x),
            (Some(FieldType::Boolean), Literal::Bool(b)) if matches!(op, CmpOp::Eq | CmpOp::NotEq) => Test::Bool(*b),
            (Some(ty), l) => {
                let name = ECS_FIELDS[field.expect("known field")].name;
                let hint = match (ty, l) {
                    (FieldType::Keyword, Literal::Integer(i)) => {
                        format!("; ECS keeps `{name}` as a string, write \"{i}\"")
                    }
                    _ => String::new(),
                };
                return err(
                    rhs.span,
                    format!("cannot compare {ty} field `{name}` with {} using {op}{hint}", lit_kind(l)),
                );
            }
        };
        let node = Self::leaf(field, test, e);
        Ok(if negate { Node::Not(Box::new(node), short_text(e)) } else { node })
    }

    fn length_compare(
        &mut self,
        e: &Expr,
        call: &Expr,
        op: CmpOp,
        lit: &Literal,
        lit_span: Span,
    ) -> Result<Node, CompileError> {
        let ExprKind::Call { args, .. } = &call.kind else { unreachable!("checked by caller") };
        if args.len() != 1 {
            return err(call.span, format!("length() takes one argument, got {}", args.len()));
        }
        let field = self.keyword_field(&args[0], "length()")?;
        let Literal::Integer(n) = lit else {
            return err(lit_span, format!("length() is compared with an integer, not {}", lit_kind(lit)));
        };
        // A function's value is compared as a value: `length(f) != 3` does not hold on a
        // missing `f` (null is not true), unlike `f != "x"`.
        Ok(Self::leaf(field, Test::Str(StrMatcher::Length(op, *n)), e))
    }

    fn in_list(&mut self, e: &Expr, lhs: &Expr, list: &[Expr], ci: bool) -> Result<Node, CompileError> {
        if !matches!(lhs.kind, ExprKind::Field { .. }) || list.iter().any(|i| literal_of(i).is_none()) {
            let positive = Expr {
                kind: ExprKind::In {
                    lhs: Box::new(lhs.clone()),
                    list: list.to_vec(),
                    case_insensitive: ci,
                    negated: false,
                },
                span: e.span,
            };
            let (v, _) = self.value(&positive)?;
            return Ok(self.general(&positive, v));
        }
        let field = self.field(lhs)?;
        let ty = field.map(|i| ECS_FIELDS[i].ty);
        let mut strings = HashSet::default();
        let mut ints = Vec::new();
        let mut bools = Vec::new();
        for item in list {
            let Some(l) = literal_of(item) else {
                return err(item.span, "the values of `in` must be literals");
            };
            match (ty, l) {
                (None, _) => {}
                (Some(FieldType::Keyword), Literal::String(s)) => {
                    strings.insert(if ci { s.to_lowercase() } else { s.clone() });
                }
                (Some(FieldType::Long), Literal::Integer(i)) if !ci => ints.push(*i),
                (Some(FieldType::Boolean), Literal::Bool(b)) if !ci => bools.push(*b),
                (Some(ty), l) => {
                    let name = ECS_FIELDS[field.expect("known")].name;
                    return err(
                        item.span,
                        format!(
                            "cannot test {ty} field `{name}` against {} in `in{}`",
                            lit_kind(l),
                            if ci { "~" } else { "" }
                        ),
                    );
                }
            }
        }
        let test = match ty {
            None => Test::Exists,
            Some(FieldType::Keyword) => {
                Test::Str(if ci { StrMatcher::InCi(strings) } else { StrMatcher::In(strings.into_iter().collect()) })
            }
            Some(FieldType::Long) => Test::IntIn(ints),
            Some(FieldType::Boolean) => {
                if bools.contains(&true) && bools.contains(&false) {
                    Test::Exists
                } else {
                    Test::Bool(bools[0])
                }
            }
        };
        Ok(Self::leaf(field, test, e))
    }

    fn patterns(
        &mut self,
        e: &Expr,
        lhs: &Expr,
        patterns: &[Expr],
        to_regex: impl Fn(&str) -> String,
        prefilter: impl Fn(&[&str]) -> Option<Prefilter>,
        op: &str,
    ) -> Result<Node, CompileError> {
        let on_field = matches!(lhs.kind, ExprKind::Field { .. });
        let field = if on_field { self.keyword_field(lhs, &format!("`{op}`"))? } else { None };
        let mut alternatives = Vec::new();
        let mut sources: Vec<&str> = Vec::new();
        for p in patterns {
            let Some(Literal::String(s)) = literal_of(p) else {
                let field = match &lhs.kind {
                    ExprKind::Field { name, .. } => format!(" on `{name}`"),
                    _ => String::new(),
                };
                return err(p.span, format!("`{op}`{field} needs string patterns, not `{p}`"));
            };
            sources.push(s);
            let re = to_regex(s);
            if let Err(er) = Regex::new(&re) {
                return err(p.span, format!("invalid {op} pattern: {er}"));
            }
            alternatives.push(format!("(?:{re})"));
        }
        let combined = regex::RegexBuilder::new(&alternatives.join("|"))
            .size_limit(1 << 24)
            .build()
            .map_err(|er| CompileError { message: format!("{op} patterns too large: {er}"), span: e.span })?;
        if !on_field {
            // `concat(a, b) like "x*"`: the pattern tests the function's value.
            let (v, ty) = self.value(lhs)?;
            if ty != Ty::Str && ty != Ty::Null {
                return err(lhs.span, format!("`{op}` needs a string, but `{lhs}` gives {ty}"));
            }
            return Ok(self.general(e, VExpr::Like { l: Box::new(v), re: combined }));
        }
        Ok(Self::leaf(field, Test::Str(StrMatcher::Pattern(combined, prefilter(&sources))), e))
    }

    fn call(&mut self, e: &Expr, name: &str, ci: bool, args: &[Expr]) -> Result<Node, CompileError> {
        let fast = match name.to_ascii_lowercase().as_str() {
            "startswith" => Some(StrFunc::StartsWith),
            "endswith" => Some(StrFunc::EndsWith),
            "stringcontains" => Some(StrFunc::Contains),
            _ => None,
        };
        // The common shape, `f(keyword field, "literal")`, is a string test of its own.
        if let (Some(func), [field @ Expr { kind: ExprKind::Field { .. }, .. }, needle]) = (fast, args) {
            if let Some(Literal::String(needle)) = literal_of(needle) {
                let field = self.keyword_field(field, &format!("{name}()"))?;
                let needle = if ci { needle.to_lowercase() } else { needle.clone() };
                return Ok(Self::leaf(field, Test::Str(StrMatcher::Func { func, needle, ci }), e));
            }
        }
        let (v, ty) = self.value(e)?;
        if ty != Ty::Bool && ty != Ty::Null {
            return err(e.span, format!("{name}() gives {ty}, not a condition; compare it, e.g. `{name}(...) == ...`"));
        }
        Ok(self.general(e, v))
    }

    /// A predicate that is not a single field against literals, as a [`VExpr`] (see [`Node::Rows`]).
    fn general(&mut self, e: &Expr, v: VExpr) -> Node {
        let mut fields = Vec::new();
        v.fields(&mut fields);
        match fields.as_slice() {
            [] => Node::Const(v.holds(&|_| Val::Null)),
            [f] if ECS_FIELDS[*f].ty == FieldType::Keyword => {
                Self::leaf(Some(*f), Test::Str(StrMatcher::Expr(Arc::new(v))), e)
            }
            _ => Node::Rows { fields, expr: Arc::new(v), text: short_text(e) },
        }
    }

    /// Type-checks a value expression: a field, a literal, a function call, or
    /// (as a function's boolean argument or a whole predicate) a comparison or `in`.
    fn value(&mut self, e: &Expr) -> Result<(VExpr, Ty), CompileError> {
        Ok(match &e.kind {
            ExprKind::Field { .. } => match self.field(e)? {
                None => (VExpr::Lit(Val::Null), Ty::Null),
                Some(idx) => (
                    VExpr::Field(idx),
                    match ECS_FIELDS[idx].ty {
                        FieldType::Keyword => Ty::Str,
                        FieldType::Long => Ty::Num,
                        FieldType::Boolean => Ty::Bool,
                    },
                ),
            },
            ExprKind::Literal(l) => match l {
                Literal::String(s) => (VExpr::Lit(Val::Str(Cow::Owned(s.clone()))), Ty::Str),
                Literal::Integer(i) => (VExpr::Lit(Val::Int(*i)), Ty::Num),
                Literal::Float(x) => (VExpr::Lit(Val::Float(*x)), Ty::Num),
                Literal::Bool(b) => (VExpr::Lit(Val::Bool(*b)), Ty::Bool),
                Literal::Null => (VExpr::Lit(Val::Null), Ty::Null),
            },
            ExprKind::Call { name, name_span, case_insensitive, args } => {
                self.function(e, name, *name_span, *case_insensitive, args)?
            }
            ExprKind::Arith { lhs, op, rhs } => {
                let func = match op {
                    ArithOp::Add => Func::Add,
                    ArithOp::Sub => Func::Subtract,
                    ArithOp::Mul => Func::Multiply,
                    ArithOp::Div => Func::Divide,
                    ArithOp::Mod => Func::Modulo,
                };
                let mut args = Vec::with_capacity(2);
                for side in [lhs, rhs] {
                    let (v, ty) = self.value(side)?;
                    if ty != Ty::Num && ty != Ty::Null {
                        return err(side.span, format!("`{op}` needs numbers, not {ty} (`{side}`)"));
                    }
                    args.push(v);
                }
                if matches!(op, ArithOp::Div | ArithOp::Mod) && matches!(args[1], VExpr::Lit(Val::Int(0))) {
                    return err(rhs.span, format!("`{op}` by zero"));
                }
                (VExpr::Call { func, ci: false, args, cidrs: Vec::new() }, Ty::Num)
            }
            ExprKind::Compare { lhs, op, rhs } => {
                let (l, lt) = self.value(lhs)?;
                let (r, rt) = self.value(rhs)?;
                if lt == Ty::Null || rt == Ty::Null {
                    return err(
                        e.span,
                        format!("`{e}` compares with null; only a field can be compared with null (`field == null`)"),
                    );
                }
                if lt != rt || (lt == Ty::Bool && !matches!(op, CmpOp::Eq | CmpOp::NotEq)) {
                    return err(e.span, format!("cannot compare {lt} with {rt} using {op} in `{e}`"));
                }
                (VExpr::Cmp { op: *op, l: Box::new(l), r: Box::new(r) }, Ty::Bool)
            }
            ExprKind::In { lhs, list, case_insensitive, negated: false } => {
                let (l, lt) = self.value(lhs)?;
                let mut items = Vec::with_capacity(list.len());
                for item in list {
                    let (v, t) = self.value(item)?;
                    if t != lt && t != Ty::Null && lt != Ty::Null {
                        return err(item.span, format!("cannot test {lt} against {t} in `in`"));
                    }
                    items.push(v);
                }
                (VExpr::In { l: Box::new(l), list: items, ci: *case_insensitive }, Ty::Bool)
            }
            _ => {
                return err(
                    e.span,
                    format!(
                        "unsupported: `{e}` inside a function call or comparison; use it as a condition of its own"
                    ),
                )
            }
        })
    }

    /// A call of one of Elasticsearch's functions, its arguments checked against the reference.
    fn function(
        &mut self,
        e: &Expr,
        name: &str,
        name_span: Span,
        ci: bool,
        args: &[Expr],
    ) -> Result<(VExpr, Ty), CompileError> {
        let Some(func) = Func::from_name(name) else {
            return err(name_span, format!("unknown function `{name}`: Elasticsearch's EQL has {FUNCTION_NAMES}"));
        };
        if ci && !func.has_ci() {
            return err(
                name_span,
                format!("`{name}~` does not exist: only between, endsWith, indexOf, startsWith and stringContains have a case-insensitive `~` form"),
            );
        }
        let (min, max) = func.arity();
        if args.len() < min || max.is_some_and(|m| args.len() > m) {
            let want = match max {
                Some(m) if m == min => format!("{min}"),
                Some(m) => format!("{min} to {m}"),
                None => format!("at least {min}"),
            };
            return err(e.span, format!("{name}() takes {want} arguments, got {}", args.len()));
        }
        let mut vals = Vec::with_capacity(args.len());
        let mut cidrs = Vec::new();
        for (k, a) in args.iter().enumerate() {
            let (v, ty) = self.value(a)?;
            if let Some(want) = func.param(k) {
                if ty != want && ty != Ty::Null {
                    return err(a.span, format!("argument {} of {name}() must be {want}, not {ty}", k + 1));
                }
            }
            if func.literal_only(k) && !matches!(v, VExpr::Lit(_)) {
                return err(a.span, format!("argument {} of {name}() must be a literal, as in Elasticsearch", k + 1));
            }
            if func == Func::CidrMatch && k > 0 {
                if let VExpr::Lit(Val::Str(s)) = &v {
                    cidrs.push(Cidr::parse(s).ok_or_else(|| CompileError {
                        message: format!("`{s}` is not an IP address or CIDR block"),
                        span: a.span,
                    })?);
                }
            }
            if matches!(func, Func::Divide | Func::Modulo) && k == 1 && matches!(v, VExpr::Lit(Val::Int(0))) {
                return err(a.span, format!("{name}() by zero"));
            }
            vals.push(v);
        }
        Ok((VExpr::Call { func, ci, args: vals, cidrs }, func.result()))
    }
}

/// What to say about an unknown field without a near spelling: the view's
/// fields under the longest dotted prefix it shares with them (a few), or
/// that the view has nothing under its first segment. Never the whole list:
/// one message per unknown field of a rule pack would repeat it.
fn unknown_field_hint(name: &str) -> String {
    const SHOWN: usize = 8;
    let segments: Vec<&str> = name.split('.').collect();
    for len in (1..segments.len()).rev() {
        let prefix = format!("{}.", segments[..len].join("."));
        let under: Vec<&str> = ECS_FIELDS.iter().map(|f| f.name).filter(|f| f.starts_with(&prefix)).collect();
        if under.is_empty() {
            continue;
        }
        let more = match under.len().saturating_sub(SHOWN) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        let list: Vec<String> = under.iter().take(SHOWN).map(|f| format!("`{f}`")).collect();
        return format!(
            "the ECS view's `{prefix}*` fields are {}{more} (docs/rule-semantics.md lists them all)",
            list.join(", ")
        );
    }
    format!("the ECS view has no `{}.*` field (docs/rule-semantics.md lists its fields)", segments[0])
}

/// The ECS field nearest to a misspelt name, if one is close (edit distance at most 2).
fn closest_field(name: &str) -> Option<&'static str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
            }
            prev = cur;
        }
        prev[b.len()]
    }
    ECS_FIELDS.iter().map(|f| (distance(name, f.name), f.name)).filter(|(d, _)| *d <= 2).min().map(|(_, n)| n)
}

/// A readable name for an alternative of `or`: the `event.action` (or
/// `event.category`) it requires, else its position.
fn branch_label(n: &Node, k: usize, total: usize) -> String {
    fn required(n: &Node, field: &str) -> Option<String> {
        match n {
            Node::Leaf { field: f, test: Test::Str(StrMatcher::In(set)), .. }
                if ECS_FIELDS[*f].name == field && set.len() == 1 =>
            {
                set.iter().next().cloned()
            }
            Node::And(items) => items.iter().find_map(|i| required(i, field)),
            _ => None,
        }
    }
    required(n, "event.action")
        .or_else(|| required(n, "event.category"))
        .map(|v| format!("{v} branch"))
        .unwrap_or_else(|| format!("branch {} of {total}", k + 1))
}

#[cfg(test)]
mod tests {
    use super::{Prefilter, StrSet};

    #[test]
    fn like_prefilter_keeps_every_possible_match() {
        let one = Prefilter::for_like(&["*/run/secrets/kubernetes.io/serviceaccount/token*"]).unwrap();
        assert!(one.may_match("cat /var/run/secrets/kubernetes.io/serviceaccount/token"));
        assert!(!one.may_match("/etc/passwd"));
        // The longest literal run between wildcards is required, `?` included.
        let many = Prefilter::for_like(&["a?cde*", "*xy?zzzz"]).unwrap();
        assert!(many.may_match("abcdef"));
        assert!(many.may_match("--xyqzzzz"));
        assert!(!many.may_match("abxde"));
        // Multi-byte characters are bytes like any other.
        assert!(Prefilter::for_like(&["*é/ñ*"]).unwrap().may_match("café/ñandú"));
    }

    #[test]
    fn like_prefilter_gives_up_when_a_pattern_has_no_literal() {
        assert!(Prefilter::for_like(&["*"]).is_none());
        assert!(Prefilter::for_like(&["token*", "?*"]).is_none());
        assert!(Prefilter::for_like(&[""]).is_none());
    }

    /// The length test in front of the hash set never changes the answer:
    /// members of every length (empty, 62, 63, 64 and past it) are found, and
    /// values that differ from every member (same length or not) are not.
    #[test]
    fn a_value_is_in_a_string_set_exactly_when_a_member_equals_it() {
        let members: Vec<String> = [0, 1, 3, 62, 63, 64, 65, 200].iter().map(|&n| "a".repeat(n)).collect();
        let set: StrSet = members.iter().cloned().collect();
        for m in &members {
            assert!(set.contains(m), "member of {} bytes", m.len());
        }
        for n in 0..260 {
            let other = "b".repeat(n);
            assert_eq!(set.contains(&other), n == 0, "a value of {n} bytes equal to no member but the empty one");
            let same = "a".repeat(n);
            assert_eq!(set.contains(&same), members.contains(&same), "{n} bytes");
        }
        // The last length with a bit of its own, and the first of the shared bit, each alone.
        let edge: StrSet = ["x".repeat(62)].into_iter().collect();
        assert!(edge.contains(&"x".repeat(62)) && !edge.contains(&"x".repeat(63)));
        let edge: StrSet = ["x".repeat(63)].into_iter().collect();
        assert!(edge.contains(&"x".repeat(63)) && !edge.contains(&"x".repeat(64)));
        // A set of long members only rejects every short value.
        let long: StrSet = ["/".repeat(70)].into_iter().collect();
        assert!(long.contains(&"/".repeat(70)) && !long.contains("/") && !long.contains(&"/".repeat(69)));
    }
}
