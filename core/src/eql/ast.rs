//! Abstract syntax tree of an EQL query, as produced by [`super::parse_query`].
//!
//! Every node carries the byte [`Span`] of the source text it came from, so that
//! type errors found later (unknown field, comparing a keyword with a number)
//! can point at the right line and column. `Display` prints a node back as
//! canonical EQL; finding reasons and `rules check` diagnostics use it.

use std::fmt;

/// A half-open byte range `start..end` into the query source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First byte of the node.
    pub start: usize,
    /// One past the last byte of the node.
    pub end: usize,
}

impl Span {
    /// A span covering `start..end`.
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
    /// The smallest span covering both `self` and `other`.
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

/// A whole query: `<category> where <condition>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The event category before `where`.
    pub category: Category,
    /// Where the category word is in the source.
    pub category_span: Span,
    /// The condition after `where`.
    pub condition: Expr,
}

/// A sequence query, `sequence [by k, ...] [with maxspan=N<unit>] [stage] ...
/// [until [stage]]`, or a sample query, `sample [by k, ...] [filter] [by k, ...] ...`
/// (its filters are the stages; it has no `maxspan`, `runs`, `until` nor pipes).
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceQuery {
    /// A sequence or a sample.
    pub kind: JoinKind,
    /// Where the `sequence` (or `sample`) keyword is.
    pub span: Span,
    /// Join keys shared by every stage (`sequence by k1, k2`).
    pub by: Vec<JoinKey>,
    /// `with maxspan=...`, in nanoseconds, with the span of its value.
    pub maxspan: Option<(i64, Span)>,
    /// The stages, in order, as written (`runs` not expanded).
    pub stages: Vec<Stage>,
    /// The `until` stage, if any.
    pub until: Option<Stage>,
    /// The pipes after the stages (`| head N`, `| tail N`), in order.
    pub pipes: Vec<Pipe>,
}

/// The two queries over several events that share [`SequenceQuery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JoinKind {
    /// `sequence`: events in time order, matched by per-key state machines.
    Sequence,
    /// `sample`: one event per filter in any order, one sample per set of
    /// join key values.
    Sample,
}

impl JoinKind {
    /// The keyword: `sequence` or `sample`.
    pub fn as_str(self) -> &'static str {
        match self {
            JoinKind::Sequence => "sequence",
            JoinKind::Sample => "sample",
        }
    }

    /// What one bracketed part is called: `stage` (sequence) or `filter` (sample).
    pub fn part(self) -> &'static str {
        match self {
            JoinKind::Sequence => "stage",
            JoinKind::Sample => "filter",
        }
    }
}

/// A pipe after a query: `| head N` or `| tail N` (the two Elasticsearch supports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pipe {
    /// Which pipe.
    pub kind: PipeKind,
    /// Its count, at least 1.
    pub count: u64,
    /// Where it is (from `|` to the count).
    pub span: Span,
}

/// The pipes Elasticsearch's EQL has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeKind {
    /// The earliest matches.
    Head,
    /// The most recent matches.
    Tail,
}

impl Pipe {
    /// Applies this pipe to matches in order (earliest first).
    pub fn apply<T>(&self, mut items: Vec<T>) -> Vec<T> {
        let n = usize::try_from(self.count).unwrap_or(usize::MAX);
        match self.kind {
            PipeKind::Head => items.truncate(n),
            PipeKind::Tail => {
                let skip = items.len().saturating_sub(n);
                items.drain(..skip);
            }
        }
        items
    }
}

impl std::fmt::Display for Pipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            PipeKind::Head => "head",
            PipeKind::Tail => "tail",
        };
        write!(f, "| {kind} {}", self.count)
    }
}

/// A join key: a field named after `by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinKey {
    /// Dotted field name.
    pub name: String,
    /// Written `?name`: a null value is a value that joins with null (and an
    /// unknown field is null) instead of an event that joins nothing.
    pub optional: bool,
    /// Where it is in the source.
    pub span: Span,
}

/// One stage of a sequence: `[<category> where <condition>] [by k, ...] [with runs=N]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// The stage's single-event query.
    pub query: Query,
    /// From `[` to `]`.
    pub span: Span,
    /// The stage's own join keys, after the sequence's.
    pub by: Vec<JoinKey>,
    /// `with runs=N`: the stage repeats N times (1 when not written).
    pub runs: u32,
}

/// The event category a query selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Category {
    /// `any where`: every event.
    Any,
    /// `process where`, `file where`, ...: adds `event.category == "<name>"`.
    Named(String),
}

/// An expression node with its source span.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What the node is.
    pub kind: ExprKind,
    /// Where it is in the query source.
    pub span: Span,
}

/// The comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
}

/// The arithmetic operators, as Elasticsearch's `add`, `subtract`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    /// `+`, `add`
    Add,
    /// `-`, `subtract`
    Sub,
    /// `*`, `multiply`
    Mul,
    /// `/`, `divide`
    Div,
    /// `%`, `modulo`
    Mod,
}

impl fmt::Display for ArithOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Mod => "%",
        })
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A string, escapes already decoded.
    String(String),
    /// An integer.
    Integer(i64),
    /// A floating-point number.
    Float(f64),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
}

/// The kinds of expression.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// `a and b and c` (flattened, at least two operands).
    And(Vec<Expr>),
    /// `a or b or c` (flattened, at least two operands).
    Or(Vec<Expr>),
    /// `not a`.
    Not(Box<Expr>),
    /// `lhs <op> rhs`.
    Compare {
        /// Left operand.
        lhs: Box<Expr>,
        /// Operator.
        op: CmpOp,
        /// Right operand.
        rhs: Box<Expr>,
    },
    /// `lhs in (..)`, `lhs in~ (..)`, `lhs not in (..)`, `lhs not in~ (..)`.
    In {
        /// The value tested.
        lhs: Box<Expr>,
        /// The candidates (at least one).
        list: Vec<Expr>,
        /// `in~`: compare case-insensitively.
        case_insensitive: bool,
        /// `not in`.
        negated: bool,
    },
    /// `lhs like "p"`, `lhs like ("p", "q")`, `like~`, and `lhs : "p"` (which is `like~`).
    Like {
        /// The value tested.
        lhs: Box<Expr>,
        /// Patterns (at least one); `*` and `?` are wildcards, no escape.
        patterns: Vec<Expr>,
        /// `like~` or `:`.
        case_insensitive: bool,
    },
    /// `lhs regex "p"`, `lhs regex ("p", "q")`, `regex~`.
    Regex {
        /// The value tested.
        lhs: Box<Expr>,
        /// Patterns (at least one), matched against the whole value.
        patterns: Vec<Expr>,
        /// `regex~`.
        case_insensitive: bool,
    },
    /// A function call: `startsWith(process.name, "ca")`, `startsWith~(...)`.
    Call {
        /// Function name as written in the source.
        name: String,
        /// Where the name is.
        name_span: Span,
        /// Trailing `~`: case-insensitive variant.
        case_insensitive: bool,
        /// Arguments.
        args: Vec<Expr>,
    },
    /// `lhs + rhs`, `lhs - rhs`, ...; a unary minus on a non-literal is `0 - x`.
    Arith {
        /// Left operand.
        lhs: Box<Expr>,
        /// Operator.
        op: ArithOp,
        /// Right operand.
        rhs: Box<Expr>,
    },
    /// A field reference; `optional` for `?field`.
    Field {
        /// Dotted field name, e.g. `process.args`.
        name: String,
        /// Written as `?name`: a field unknown to the schema is treated as missing instead of an error.
        optional: bool,
    },
    /// A literal.
    Literal(Literal),
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CmpOp::Eq => "==",
            CmpOp::NotEq => "!=",
            CmpOp::Lt => "<",
            CmpOp::LtEq => "<=",
            CmpOp::Gt => ">",
            CmpOp::GtEq => ">=",
        })
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(s) => write_eql_string(f, s),
            Literal::Integer(i) => write!(f, "{i}"),
            Literal::Float(x) => write!(f, "{x:?}"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Null => f.write_str("null"),
        }
    }
}

/// Writes `s` as a double-quoted EQL string with the escapes the lexer accepts.
pub fn write_eql_string(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{{{:02x}}}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

fn write_list(f: &mut fmt::Formatter<'_>, items: &[Expr]) -> fmt::Result {
    if items.len() == 1 {
        return write!(f, "{}", Operand(&items[0]));
    }
    f.write_char('(')?;
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{}", Operand(e))?;
    }
    f.write_char(')')
}

use fmt::Write as _;

impl Expr {
    fn is_boolean_connective(&self) -> bool {
        matches!(self.kind, ExprKind::And(_) | ExprKind::Or(_))
    }
    fn is_atom(&self) -> bool {
        matches!(self.kind, ExprKind::Field { .. } | ExprKind::Literal(_) | ExprKind::Call { .. })
    }
}

/// Displays an operand, parenthesised unless it is a field, literal or call,
/// so that `Display` output parses back to the same tree.
struct Operand<'a>(&'a Expr);

impl fmt::Display for Operand<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_atom() {
            write!(f, "{}", self.0)
        } else {
            write!(f, "({})", self.0)
        }
    }
}

const KEYWORDS: &[&str] =
    &["and", "or", "not", "in", "like", "regex", "where", "true", "false", "null", "any", "sequence", "sample", "join"];

/// Writes a field name bare when it is a plain dotted identifier, else back-quoted.
fn write_name(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    let plain = !name.is_empty()
        && name.split('.').all(|part| {
            part.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '@')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@')
        })
        && !KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(name));
    if plain {
        f.write_str(name)
    } else {
        write!(f, "`{}`", name.replace('`', "``"))
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::And(items) | ExprKind::Or(items) => {
                let word = if matches!(self.kind, ExprKind::And(_)) { " and " } else { " or " };
                for (i, e) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(word)?;
                    }
                    if e.is_boolean_connective() {
                        write!(f, "({e})")?;
                    } else {
                        write!(f, "{e}")?;
                    }
                }
                Ok(())
            }
            ExprKind::Not(inner) => {
                if inner.is_boolean_connective() {
                    write!(f, "not ({inner})")
                } else {
                    write!(f, "not {inner}")
                }
            }
            ExprKind::Compare { lhs, op, rhs } => write!(f, "{} {op} {}", Operand(lhs), Operand(rhs)),
            ExprKind::Arith { lhs, op, rhs } => write!(f, "{} {op} {}", Operand(lhs), Operand(rhs)),
            ExprKind::In { lhs, list, case_insensitive, negated } => {
                write!(
                    f,
                    "{} {}in{} (",
                    Operand(lhs),
                    if *negated { "not " } else { "" },
                    if *case_insensitive { "~" } else { "" }
                )?;
                for (i, e) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}", Operand(e))?;
                }
                f.write_char(')')
            }
            ExprKind::Like { lhs, patterns, case_insensitive } => {
                write!(f, "{} like{} ", Operand(lhs), if *case_insensitive { "~" } else { "" })?;
                write_list(f, patterns)
            }
            ExprKind::Regex { lhs, patterns, case_insensitive } => {
                write!(f, "{} regex{} ", Operand(lhs), if *case_insensitive { "~" } else { "" })?;
                write_list(f, patterns)
            }
            ExprKind::Call { name, case_insensitive, args, .. } => {
                write!(f, "{name}{}(", if *case_insensitive { "~" } else { "" })?;
                for (i, e) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}", Operand(e))?;
                }
                f.write_char(')')
            }
            ExprKind::Field { name, optional } => {
                if *optional {
                    f.write_char('?')?;
                }
                write_name(f, name)
            }
            ExprKind::Literal(l) => write!(f, "{l}"),
        }
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.category {
            Category::Any => f.write_str("any")?,
            Category::Named(n) => write_name(f, n)?,
        }
        write!(f, " where {}", self.condition)
    }
}

/// A syntax error in a query: a message and the span it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What is wrong, in one sentence, e.g. `expected ')' to close '(' opened at 1:12`.
    pub message: String,
    /// The offending text (empty span at the end of input for "unexpected end").
    pub span: Span,
}

/// 1-based line and column (in characters) of byte offset `offset` in `src`.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..src.floor_char_boundary_compat(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::super::parser::{parse_expr, parse_query};

    fn strip(e: &super::Expr) -> String {
        format!("{:?}", e).split("span: Span").map(|p| p.split_once('}').map_or(p, |(_, r)| r)).collect()
    }

    #[test]
    fn display_parses_back_to_the_same_tree() {
        for src in [
            "(a or b) == true",
            "f((a or b), \"x\")",
            "`odd name` == 1 and `and` == 2 and `a``b` like \"x\"",
            "(x == 1) in (true)",
            "not (a and b) or c",
            "a + b * c - -d % 2 == (a - b) / 4",
        ] {
            let e = parse_expr(src).unwrap_or_else(|err| panic!("{src}: {}", err.message));
            let again = parse_expr(&e.to_string()).unwrap_or_else(|err| panic!("{e}: {}", err.message));
            assert_eq!(strip(&e), strip(&again), "{src} printed as {e}");
        }
        let q = parse_query("`my cat` where true").expect("backtick category");
        assert_eq!(q.to_string(), "`my cat` where true");
    }
}
