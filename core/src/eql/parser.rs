//! Recursive-descent parser for the EQL subset `<category> where <condition>`.
//!
//! Grammar, lowest precedence first:
//!
//! ```text
//! query     = category "where" or_expr EOF
//! or_expr   = and_expr ("or" and_expr)*
//! and_expr  = not_expr ("and" not_expr)*
//! not_expr  = "not" not_expr | predicate
//! predicate = sum [ cmp_op sum
//!                 | ["not"] ("in" | "in~") list
//!                 | ("like" | "like~" | ":" | "regex" | "regex~") (list | sum) ]
//! sum       = product (("+" | "-") product)*
//! product   = unary (("*" | "/" | "%") unary)*
//! unary     = "-" unary | operand
//! operand   = literal | field | name ["~"] "(" [sum ("," sum)*] ")" | "(" or_expr ")"
//! ```
//!
//! Nesting (parentheses, `not`, function calls) is limited to [`MAX_DEPTH`]
//! levels, so hostile input cannot overflow the stack.

use super::ast::{
    line_col, ArithOp, Category, Expr, ExprKind, JoinKey, JoinKind, Literal, ParseError, Pipe, PipeKind, Query,
    SequenceQuery, Span, Stage,
};
use super::lexer::{Keyword, Lexer, Token, TokenKind};

/// Deepest nesting of parentheses, `not` and function calls the parser accepts.
pub const MAX_DEPTH: usize = 256;

type PResult<T> = Result<T, ParseError>;

/// Parses a whole query, `<category> where <condition>`.
///
/// The category is `any`, an identifier such as `process`, or a double-quoted
/// string. Sequence, sample and join queries and pipes are rejected with an
/// "unsupported" error.
pub fn parse_query(src: &str) -> Result<Query, ParseError> {
    let mut p = Parser::new(src)?;
    let query = p.query()?;
    p.finish()?;
    Ok(query)
}

/// Parses a rule's single-event query: `<category> where <condition>`
/// followed by any number of pipes (`| head N`, `| tail N`).
pub fn parse_query_with_pipes(src: &str) -> Result<(Query, Vec<Pipe>), ParseError> {
    let mut p = Parser::new(src)?;
    let query = p.query()?;
    let pipes = p.pipes()?;
    p.finish()?;
    Ok((query, pipes))
}

/// Most repetitions a sequence stage's `with runs=N` may ask for.
pub const MAX_RUNS: u64 = 100;

/// Most stages a sequence may have once `runs` are expanded (the `until`
/// stage not counted).
pub const MAX_STAGES: usize = 64;

/// Most filters a sample may have (Elasticsearch's EQL reference: "up to
/// five filters").
pub const MAX_SAMPLE_FILTERS: usize = 5;

/// Whether `src` is a query over several events, matched over the whole
/// stream by [`EqlSequence`](super::EqlSequence): its first word is
/// `sequence` or `sample`.
pub fn is_sequence(src: &str) -> bool {
    matches!(
        Lexer::new(src).next_token(),
        Ok(Token { kind: TokenKind::Keyword(Keyword::Sequence | Keyword::Sample), .. })
    )
}

/// Parses a sequence or a sample query:
///
/// ```text
/// sequence  = "sequence" [by] [with_maxspan] | "sequence" [with_maxspan] [by]
///             stage+ ["until" stage] pipe* EOF
/// sample    = "sample" [by] filter+ EOF
/// by        = "by" field ("," field)*
/// with_maxspan = "with" "maxspan" "=" INT ("ms" | "s" | "m" | "h" | "d")
/// stage     = "[" category "where" or_expr "]" [by] ["with" "runs" "=" INT]
/// filter    = "[" category "where" or_expr "]" [by]
/// ```
///
/// A sequence has at least two stages once `runs` are expanded, at most
/// [`MAX_STAGES`]; `runs` from 1 to [`MAX_RUNS`]; a maxspan that does not
/// fit in 2^63 nanoseconds (about 292 years) is an error. A sample has 2 to
/// [`MAX_SAMPLE_FILTERS`] filters and at least one join key, and no
/// `with maxspan`, `with runs`, `until` or pipes (Elasticsearch's samples
/// have none: they ignore time). Every stage (or filter), `until`
/// included, must name as many join keys of its own as the others.
pub fn parse_sequence(src: &str) -> Result<SequenceQuery, ParseError> {
    let mut p = Parser::new(src)?;
    let Some(kind) = p.join_kind() else {
        return Err(p.error("expected 'sequence' or 'sample' at the start of the query"));
    };
    let span = p.bump()?.span;
    let mut by = Vec::new();
    let mut maxspan = None;
    let mut with_seen = false;
    for _ in 0..2 {
        if p.at_word("by") && by.is_empty() {
            p.bump()?;
            by = p.join_keys()?;
        } else if p.at_word("with") && !with_seen {
            if kind == JoinKind::Sample {
                return Err(p.error("'with maxspan' is not supported in a sample: a sample ignores time"));
            }
            with_seen = true;
            let (name, name_span, value, unit, value_span) = p.with_option()?;
            if !name.eq_ignore_ascii_case("maxspan") {
                return Err(ParseError {
                    message: format!("unknown sequence option '{name}': only 'maxspan' is supported here"),
                    span: name_span,
                });
            }
            let nanos = maxspan_nanos(value, &unit, value_span)?;
            maxspan = (nanos > 0).then_some((nanos, value_span));
        }
    }
    let mut stages = Vec::new();
    while p.tok.kind == TokenKind::LBracket {
        stages.push(p.stage(kind)?);
    }
    let mut until = None;
    if p.at_word("until") {
        if kind == JoinKind::Sample {
            return Err(
                p.error("'until' is not supported in a sample: a sample has no order for an event to interrupt")
            );
        }
        p.bump()?;
        if p.tok.kind != TokenKind::LBracket {
            return Err(p.error("expected '[' to open the 'until' stage"));
        }
        let stage = p.stage(kind)?;
        if stage.runs != 1 {
            return Err(ParseError { message: "the 'until' stage cannot have 'runs'".into(), span: stage.span });
        }
        until = Some(stage);
    }
    let pipes = match kind {
        JoinKind::Sequence => p.pipes()?,
        JoinKind::Sample if p.tok.kind == TokenKind::Pipe => {
            return Err(
                p.error("pipes ('| head N', '| tail N') are not supported after a sample: every sample is reported")
            )
        }
        JoinKind::Sample => Vec::new(),
    };
    if p.tok.kind != TokenKind::Eof {
        let expected = match kind {
            JoinKind::Sequence => "'[' to open a stage, 'until' or the end of the query",
            JoinKind::Sample => "'[' to open a filter or the end of the query",
        };
        return Err(p.error(format!("unexpected {}: expected {expected}", p.describe())));
    }
    let total: u64 = stages.iter().map(|s| u64::from(s.runs)).sum();
    let whole = span.to(p.tok.span);
    match kind {
        JoinKind::Sequence if total < 2 => {
            return Err(ParseError {
                message: "a sequence needs at least two stages (counting 'runs')".into(),
                span: whole,
            })
        }
        JoinKind::Sequence if total > MAX_STAGES as u64 => {
            return Err(ParseError {
                message: format!(
                    "a sequence may have at most {MAX_STAGES} stages (counting 'runs'); this one has {total}"
                ),
                span: whole,
            })
        }
        JoinKind::Sample if total < 2 => {
            return Err(ParseError { message: "a sample needs at least two filters".into(), span: whole })
        }
        JoinKind::Sample if total > MAX_SAMPLE_FILTERS as u64 => {
            return Err(ParseError {
                message: format!("a sample may have at most {MAX_SAMPLE_FILTERS} filters; this one has {total}"),
                span: whole,
            })
        }
        _ => {}
    }
    let part = kind.part();
    let first_keys = stages[0].by.len();
    for stage in stages.iter().chain(until.iter()) {
        if stage.by.len() != first_keys {
            return Err(ParseError {
                message: format!(
                    "this {part} has {} join key(s) of its own but the first {part} has {first_keys}: every {part} needs as many",
                    stage.by.len()
                ),
                span: stage.span,
            });
        }
    }
    if kind == JoinKind::Sample && by.is_empty() && first_keys == 0 {
        return Err(ParseError {
            message: "a sample needs at least one join key: 'sample by field' or 'by field' after every filter".into(),
            span,
        });
    }
    Ok(SequenceQuery { kind, span, by, maxspan, stages, until, pipes })
}

/// A `maxspan` value in nanoseconds.
fn maxspan_nanos(value: u64, unit: &str, span: Span) -> PResult<i64> {
    let per: u64 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        "" => {
            return Err(ParseError {
                message: "maxspan needs a time unit: ms, s, m, h or d (e.g. 'maxspan=30s')".into(),
                span,
            })
        }
        other => {
            return Err(ParseError {
                message: format!("unknown time unit '{other}' in maxspan: use ms, s, m, h or d"),
                span,
            })
        }
    };
    value
        .checked_mul(per)
        .and_then(|n| i64::try_from(n).ok())
        .ok_or_else(|| ParseError { message: "maxspan too large (at most about 292 years)".into(), span })
}

/// Parses a bare condition such as `process.name == "cat" and not ?user.id == 0`.
pub fn parse_expr(src: &str) -> Result<Expr, ParseError> {
    let mut p = Parser::new(src)?;
    let expr = p.or_expr()?;
    p.finish()?;
    Ok(expr)
}

struct Parser<'a> {
    src: &'a str,
    lexer: Lexer<'a>,
    /// The current (not yet consumed) token.
    tok: Token,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> PResult<Self> {
        let mut lexer = Lexer::new(src);
        let tok = lexer.next_token()?;
        Ok(Parser { src, lexer, tok, depth: 0 })
    }

    /// Consumes the current token and returns it.
    fn bump(&mut self) -> PResult<Token> {
        let next = self.lexer.next_token()?;
        Ok(std::mem::replace(&mut self.tok, next))
    }

    /// Whether the current token is the bare word `word` (any case): `by`,
    /// `with` and `until` are not reserved words.
    fn at_word(&self, word: &str) -> bool {
        matches!(&self.tok.kind, TokenKind::Field { name, optional: false } if name.eq_ignore_ascii_case(word))
    }

    /// `k1, k2, ...` after `by`.
    fn join_keys(&mut self) -> PResult<Vec<JoinKey>> {
        let mut keys = Vec::new();
        loop {
            match &self.tok.kind {
                TokenKind::Field { name, optional } => {
                    keys.push(JoinKey { name: name.clone(), optional: *optional, span: self.tok.span });
                    self.bump()?;
                }
                _ => return Err(self.error("expected a field name as a join key after 'by'")),
            }
            if self.tok.kind != TokenKind::Comma {
                return Ok(keys);
            }
            self.bump()?;
        }
    }

    /// `name=value[unit]` after the current `with` token, which is consumed.
    fn with_option(&mut self) -> PResult<(String, Span, u64, String, Span)> {
        let option = self.lexer.with_option()?;
        self.tok = self.lexer.next_token()?;
        Ok(option)
    }

    /// `<category> where <condition>`, up to what follows the condition.
    fn query(&mut self) -> PResult<Query> {
        let (category, category_span) = self.category()?;
        if !self.at_keyword(Keyword::Where) {
            return Err(self.error("expected 'where' after the event category"));
        }
        self.bump()?;
        let condition = self.or_expr()?;
        Ok(Query { category, category_span, condition })
    }

    /// Pipes: `("|" ("head" | "tail") INT)*`, the count at least 1.
    fn pipes(&mut self) -> PResult<Vec<Pipe>> {
        let mut pipes = Vec::new();
        while self.tok.kind == TokenKind::Pipe {
            let start = self.bump()?.span;
            let kind = if self.at_word("head") {
                PipeKind::Head
            } else if self.at_word("tail") {
                PipeKind::Tail
            } else {
                return Err(self.error(format!(
                    "unsupported pipe {}: Elasticsearch's EQL has only 'head' and 'tail'",
                    self.describe()
                )));
            };
            let name = self.bump()?.span;
            let count = match self.tok.kind {
                TokenKind::Int(n) if n >= 1 => n,
                TokenKind::Int(_) => return Err(self.error("a pipe's count must be at least 1")),
                _ => {
                    return Err(ParseError {
                        message: format!("expected a count after '{}'", &self.src[name.start..name.end]),
                        span: self.tok.span,
                    })
                }
            };
            let end = self.bump()?.span;
            pipes.push(Pipe { kind, count, span: start.to(end) });
        }
        Ok(pipes)
    }

    /// `[<category> where <condition>] [by ...] [with runs=N]` (`with`
    /// refused in a sample); the current token is the `[`.
    fn stage(&mut self, kind: JoinKind) -> PResult<Stage> {
        let open = self.bump()?.span;
        if let Some(inner) = self.join_kind() {
            return Err(self.error(format!(
                "a {} cannot be nested inside a {} {}",
                inner.as_str(),
                kind.as_str(),
                kind.part()
            )));
        }
        let (category, category_span) = self.category()?;
        if !self.at_keyword(Keyword::Where) {
            return Err(self.error("expected 'where' after the event category"));
        }
        self.bump()?;
        let condition = self.or_expr()?;
        if self.tok.kind != TokenKind::RBracket {
            return Err(self.error(format!(
                "unexpected {}: expected 'and', 'or' or ']' to close the stage opened at {}",
                self.describe(),
                self.position(open.start)
            )));
        }
        let close = self.bump()?.span;
        let mut by = Vec::new();
        if self.at_word("by") {
            self.bump()?;
            by = self.join_keys()?;
        }
        let mut runs = 1;
        if self.at_word("with") && kind == JoinKind::Sample {
            return Err(self.error("'with runs' is not supported in a sample: each filter matches one event"));
        }
        if self.at_word("with") {
            let (name, name_span, value, unit, value_span) = self.with_option()?;
            if !name.eq_ignore_ascii_case("runs") {
                return Err(ParseError {
                    message: format!("unknown stage option '{name}': only 'runs' is supported on a stage"),
                    span: name_span,
                });
            }
            if !unit.is_empty() || !(1..=MAX_RUNS).contains(&value) {
                return Err(ParseError {
                    message: format!("'runs' must be a whole number from 1 to {MAX_RUNS}"),
                    span: value_span,
                });
            }
            runs = value as u32;
        }
        Ok(Stage { query: Query { category, category_span, condition }, span: open.to(close), by, runs })
    }

    /// Whether the current token is `sequence` or `sample`, and which.
    fn join_kind(&self) -> Option<JoinKind> {
        match self.tok.kind {
            TokenKind::Keyword(Keyword::Sequence) => Some(JoinKind::Sequence),
            TokenKind::Keyword(Keyword::Sample) => Some(JoinKind::Sample),
            _ => None,
        }
    }

    fn at_keyword(&self, kw: Keyword) -> bool {
        self.tok.kind == TokenKind::Keyword(kw)
    }

    /// An error at the current token.
    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError { message: message.into(), span: self.tok.span }
    }

    /// `line:col` of a byte offset.
    fn position(&self, offset: usize) -> String {
        let (line, col) = line_col(self.src, offset);
        format!("{line}:{col}")
    }

    /// The current token for a message: `'or'`, `'"a b"'` or `end of input`.
    fn describe(&self) -> String {
        if self.tok.kind == TokenKind::Eof {
            return "end of input".to_string();
        }
        let text = self.src.get(self.tok.span.start..self.tok.span.end).unwrap_or("");
        let mut shown: String = text.chars().take_while(|&c| c != '\n').take(40).collect();
        if shown.len() < text.len() {
            shown.truncate(shown.trim_end().len());
            shown.push_str("...");
        }
        format!("'{shown}'")
    }

    /// Enters one nesting level opened by the token at `span`.
    fn enter(&mut self, span: Span) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError {
                message: format!("expression nested too deeply (more than {MAX_DEPTH} levels)"),
                span,
            });
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn category(&mut self) -> PResult<(Category, Span)> {
        let category = match &self.tok.kind {
            TokenKind::Keyword(Keyword::Any) => Category::Any,
            TokenKind::Field { name, optional: false } => Category::Named(name.clone()),
            TokenKind::Str(name) if !name.is_empty() => Category::Named(name.clone()),
            TokenKind::Keyword(kw @ (Keyword::Sequence | Keyword::Sample | Keyword::Join)) => {
                return Err(self.error(format!(
                    "unsupported: {} queries (only '<category> where <condition>' queries are supported)",
                    kw.as_str()
                )))
            }
            _ => {
                return Err(
                    self.error("expected an event category such as 'process' or 'any' at the start of the query")
                )
            }
        };
        let tok = self.bump()?;
        Ok((category, tok.span))
    }

    /// Checks that the whole input was consumed.
    fn finish(&self) -> PResult<()> {
        match self.tok.kind {
            TokenKind::Eof => Ok(()),
            TokenKind::Pipe => Err(self.error(
                "unsupported here: pipes ('| head N', '| tail N') cut a rule's findings over the whole stream; \
                 put the query in a rule file",
            )),
            TokenKind::RParen => Err(self.error("unexpected ')' without a matching '('")),
            _ => {
                Err(self.error(format!("unexpected {}: expected 'and', 'or' or the end of the query", self.describe())))
            }
        }
    }

    fn or_expr(&mut self) -> PResult<Expr> {
        let first = self.and_expr()?;
        self.connective(first, Keyword::Or, Self::and_expr)
    }

    fn and_expr(&mut self) -> PResult<Expr> {
        let first = self.not_expr()?;
        self.connective(first, Keyword::And, Self::not_expr)
    }

    /// Collects `first kw x kw y ...` into one flattened `And` / `Or`.
    fn connective(
        &mut self,
        first: Expr,
        kw: Keyword,
        mut operand: impl FnMut(&mut Self) -> PResult<Expr>,
    ) -> PResult<Expr> {
        if !self.at_keyword(kw) {
            return Ok(first);
        }
        let span = first.span;
        let mut end = first.span;
        let mut items = Vec::new();
        flatten_into(&mut items, first, kw);
        while self.at_keyword(kw) {
            self.bump()?;
            let next = operand(self)?;
            end = next.span;
            flatten_into(&mut items, next, kw);
        }
        let kind = if kw == Keyword::And { ExprKind::And(items) } else { ExprKind::Or(items) };
        Ok(Expr { kind, span: span.to(end) })
    }

    fn not_expr(&mut self) -> PResult<Expr> {
        if self.at_keyword(Keyword::Not) {
            self.negation()
        } else {
            self.predicate()
        }
    }

    /// `not <not_expr>`; the current token is the `not`.
    fn negation(&mut self) -> PResult<Expr> {
        let not = self.bump()?;
        self.enter(not.span)?;
        let inner = self.not_expr()?;
        self.leave();
        Ok(Expr { span: not.span.to(inner.span), kind: ExprKind::Not(Box::new(inner)) })
    }

    fn predicate(&mut self) -> PResult<Expr> {
        let lhs = self.sum()?;
        self.predicate_rest(lhs)
    }

    /// An arithmetic expression (`a + b * -c`), or a single operand. The
    /// common case, one operand, costs one small stack frame on the recursive
    /// path; operator chains are read by a loop and combined by precedence.
    fn sum(&mut self) -> PResult<Expr> {
        let first = self.signed_operand()?;
        if self.arith_op().is_none() {
            return Ok(first);
        }
        self.arith_rest(first)
    }

    fn arith_op(&self) -> Option<ArithOp> {
        match self.tok.kind {
            TokenKind::Arith('+') => Some(ArithOp::Add),
            TokenKind::Minus => Some(ArithOp::Sub),
            TokenKind::Arith('*') => Some(ArithOp::Mul),
            TokenKind::Arith('/') => Some(ArithOp::Div),
            TokenKind::Arith('%') => Some(ArithOp::Mod),
            _ => None,
        }
    }

    /// The operators and operands after `first`: `*`, `/`, `%` bind tighter
    /// than `+`, `-`; both are left-associative.
    #[inline(never)]
    fn arith_rest(&mut self, first: Expr) -> PResult<Expr> {
        let mut terms = vec![first];
        let mut additive = Vec::new();
        // Each operator deepens the tree by one: it counts against the nesting limit, so a chain
        // of 100,000 additions is an error, not a stack overflow later.
        let mut levels = 0;
        while let Some(op) = self.arith_op() {
            self.enter(self.tok.span)?;
            levels += 1;
            self.bump()?;
            let rhs = self.signed_operand()?;
            if matches!(op, ArithOp::Mul | ArithOp::Div | ArithOp::Mod) {
                let lhs = terms.pop().expect("one term at least");
                terms.push(arith(lhs, op, rhs));
            } else {
                additive.push(op);
                terms.push(rhs);
            }
        }
        for _ in 0..levels {
            self.leave();
        }
        let mut terms = terms.into_iter();
        let mut acc = terms.next().expect("one term at least");
        for (op, rhs) in additive.into_iter().zip(terms) {
            acc = arith(acc, op, rhs);
        }
        Ok(acc)
    }

    /// An operand, with any minus signs before it: a negative number is a
    /// literal, a minus before anything else is `0 - x`.
    fn signed_operand(&mut self) -> PResult<Expr> {
        if self.tok.kind != TokenKind::Minus || self.number_follows() {
            return self.operand();
        }
        self.negated_operand()
    }

    #[inline(never)]
    fn number_follows(&self) -> bool {
        let mut ahead = self.lexer.clone();
        matches!(ahead.next_token().map(|t| t.kind), Ok(TokenKind::Int(_) | TokenKind::Float(_)))
    }

    #[inline(never)]
    fn negated_operand(&mut self) -> PResult<Expr> {
        let mut minuses = Vec::new();
        while self.tok.kind == TokenKind::Minus && !self.number_follows() {
            minuses.push(self.bump()?.span);
        }
        for &m in &minuses {
            self.enter(m)?;
        }
        let mut e = self.operand()?;
        for &m in minuses.iter().rev() {
            self.leave();
            let zero = Expr { kind: ExprKind::Literal(Literal::Integer(0)), span: Span::new(m.start, m.start) };
            e = arith(zero, ArithOp::Sub, e);
            e.span = m.to(e.span);
        }
        Ok(e)
    }

    /// The operator and right side of a predicate, if any. Kept out of
    /// [`Self::predicate`] so the recursive path has small stack frames.
    fn predicate_rest(&mut self, lhs: Expr) -> PResult<Expr> {
        let lhs = Box::new(lhs);
        let start = lhs.span;
        let (kind, end) = match self.tok.kind {
            TokenKind::Cmp(op) => {
                self.bump()?;
                let rhs = self.rhs_operand(&op.to_string())?;
                let end = rhs.span;
                let rhs = Box::new(rhs);
                (ExprKind::Compare { lhs, op, rhs }, end)
            }
            TokenKind::Keyword(Keyword::Not) => {
                self.bump()?;
                let case_insensitive = match self.tok.kind {
                    TokenKind::Keyword(Keyword::In) => false,
                    TokenKind::Keyword(Keyword::InCi) => true,
                    _ => return Err(self.error("expected 'in' or 'in~' after 'not'")),
                };
                self.in_list(lhs, case_insensitive, true)?
            }
            TokenKind::Keyword(Keyword::In) => self.in_list(lhs, false, false)?,
            TokenKind::Keyword(Keyword::InCi) => self.in_list(lhs, true, false)?,
            TokenKind::Keyword(kw @ (Keyword::Like | Keyword::LikeCi)) => {
                self.bump()?;
                let (patterns, end) = self.patterns(kw.as_str())?;
                let case_insensitive = kw == Keyword::LikeCi;
                (ExprKind::Like { lhs, patterns, case_insensitive }, end)
            }
            TokenKind::Colon => {
                self.bump()?;
                let (patterns, end) = self.patterns(":")?;
                (ExprKind::Like { lhs, patterns, case_insensitive: true }, end)
            }
            TokenKind::Keyword(kw @ (Keyword::Regex | Keyword::RegexCi)) => {
                self.bump()?;
                let (patterns, end) = self.patterns(kw.as_str())?;
                let case_insensitive = kw == Keyword::RegexCi;
                (ExprKind::Regex { lhs, patterns, case_insensitive }, end)
            }
            _ => return Ok(*lhs),
        };
        self.reject_arithmetic()?;
        if self.at_predicate_operator() {
            return Err(self.error(format!(
                "{} cannot follow another comparison; combine comparisons with 'and' or 'or'",
                self.describe()
            )));
        }
        Ok(Expr { kind, span: start.to(end) })
    }

    fn at_predicate_operator(&self) -> bool {
        use Keyword::*;
        match self.tok.kind {
            TokenKind::Cmp(_) | TokenKind::Colon => true,
            TokenKind::Keyword(kw) => {
                matches!(kw, Not | In | InCi | Like | LikeCi | Regex | RegexCi)
            }
            _ => false,
        }
    }

    fn reject_arithmetic(&self) -> PResult<()> {
        match self.tok.kind {
            TokenKind::Minus | TokenKind::Arith(_) => Err(self.error(format!(
                "{} cannot follow a comparison; put the arithmetic inside it, e.g. `a + 1 == b`",
                self.describe()
            ))),
            _ => Ok(()),
        }
    }

    /// The list after `in` / `in~` (the current token) or after `not in`.
    fn in_list(&mut self, lhs: Box<Expr>, case_insensitive: bool, negated: bool) -> PResult<(ExprKind, Span)> {
        self.bump()?;
        let op = if case_insensitive { "in~" } else { "in" };
        if self.tok.kind != TokenKind::LParen {
            return Err(self.error(format!("'{op}' needs a list of values in parentheses on its right")));
        }
        let (list, span) = self.value_list(op)?;
        Ok((ExprKind::In { lhs, list, case_insensitive, negated }, span))
    }

    /// The right side of `like`, `regex` or `:`: one value or a parenthesised list.
    fn patterns(&mut self, op: &str) -> PResult<(Vec<Expr>, Span)> {
        if self.tok.kind == TokenKind::LParen {
            return self.value_list(op);
        }
        let value = self.rhs_operand(op)?;
        let span = value.span;
        Ok((vec![value], span))
    }

    /// `( v, ... )` with at least one value; the current token is the `(`.
    fn value_list(&mut self, op: &str) -> PResult<(Vec<Expr>, Span)> {
        let open = self.bump()?;
        if self.tok.kind == TokenKind::RParen {
            return Err(ParseError {
                message: format!("the list after '{op}' cannot be empty"),
                span: open.span.to(self.tok.span),
            });
        }
        let (items, close) = self.comma_separated(open.span)?;
        Ok((items, open.span.to(close)))
    }

    /// Operands separated by commas up to the `)` matching the `(` at `open`,
    /// which was already consumed. Returns the operands and the `)` span.
    fn comma_separated(&mut self, open: Span) -> PResult<(Vec<Expr>, Span)> {
        let mut items = Vec::new();
        if self.tok.kind != TokenKind::RParen {
            loop {
                items.push(self.sum()?);
                if self.tok.kind != TokenKind::Comma {
                    break;
                }
                self.bump()?;
            }
        }
        if self.tok.kind != TokenKind::RParen {
            return Err(self.unclosed(open, "',' or ')'"));
        }
        Ok((items, self.bump()?.span))
    }

    fn starts_operand(&self) -> bool {
        matches!(
            self.tok.kind,
            TokenKind::Field { .. }
                | TokenKind::Func { .. }
                | TokenKind::Str(_)
                | TokenKind::Int(_)
                | TokenKind::Float(_)
                | TokenKind::Minus
                | TokenKind::LParen
                | TokenKind::Keyword(Keyword::True | Keyword::False | Keyword::Null)
        )
    }

    /// The operand after the operator `op`.
    fn rhs_operand(&mut self, op: &str) -> PResult<Expr> {
        if !self.starts_operand() {
            return Err(self.error(format!("'{op}' needs a value on its right")));
        }
        self.sum()
    }

    fn operand(&mut self) -> PResult<Expr> {
        match self.tok.kind {
            TokenKind::LParen => self.parenthesized(),
            TokenKind::Func { .. } => self.call(),
            _ => self.atom(),
        }
    }

    /// A literal, a negative number or a field.
    fn atom(&mut self) -> PResult<Expr> {
        if !self.starts_operand() {
            return Err(self.error(format!("unexpected {}: expected a field, a value or '('", self.describe())));
        }
        let tok = self.bump()?;
        let span = tok.span;
        let literal = |lit| Ok(Expr { kind: ExprKind::Literal(lit), span });
        match tok.kind {
            TokenKind::Field { name, optional } => Ok(Expr { kind: ExprKind::Field { name, optional }, span }),
            TokenKind::Str(s) => literal(Literal::String(s)),
            TokenKind::Int(n) => integer(n, false, span),
            TokenKind::Float(x) => literal(Literal::Float(x)),
            TokenKind::Keyword(Keyword::True) => literal(Literal::Bool(true)),
            TokenKind::Keyword(Keyword::False) => literal(Literal::Bool(false)),
            TokenKind::Keyword(Keyword::Null) => literal(Literal::Null),
            TokenKind::Minus => self.negative(span),
            _ => Err(ParseError { message: "expected a field, a value or '('".to_string(), span }),
        }
    }

    /// A number after the `-` at `minus`.
    fn negative(&mut self, minus: Span) -> PResult<Expr> {
        match self.tok.kind {
            TokenKind::Int(n) => {
                let tok = self.bump()?;
                integer(n, true, minus.to(tok.span))
            }
            TokenKind::Float(x) => {
                let tok = self.bump()?;
                Ok(Expr { kind: ExprKind::Literal(Literal::Float(-x)), span: minus.to(tok.span) })
            }
            _ => Err(ParseError { message: "'-' is only allowed before a number".to_string(), span: minus }),
        }
    }

    /// `( condition )`; the current token is the `(`.
    fn parenthesized(&mut self) -> PResult<Expr> {
        let open = self.bump()?.span;
        self.enter(open)?;
        let mut inner = self.or_expr()?;
        if self.tok.kind != TokenKind::RParen {
            return Err(self.unclosed(open, "')'"));
        }
        let close = self.bump()?.span;
        self.leave();
        inner.span = open.to(close);
        Ok(inner)
    }

    /// The error for a missing `closing` delimiter of the `(` at `open`.
    fn unclosed(&self, open: Span, closing: &str) -> ParseError {
        self.error(format!("expected {closing} to close the '(' at {}", self.position(open.start)))
    }

    /// A function call; the current token is its name (`name` or `name~`).
    fn call(&mut self) -> PResult<Expr> {
        let tok = self.bump()?;
        let TokenKind::Func { name, case_insensitive } = tok.kind else {
            return Err(ParseError { message: "expected a function name".to_string(), span: tok.span });
        };
        let name_span = Span::new(tok.span.start, tok.span.start + name.len());
        if self.tok.kind != TokenKind::LParen {
            return Err(self.error("expected '(' after the function name"));
        }
        let open = self.bump()?.span;
        self.enter(name_span)?;
        let (args, close) = self.comma_separated(open)?;
        self.leave();
        Ok(Expr { kind: ExprKind::Call { name, name_span, case_insensitive, args }, span: tok.span.to(close) })
    }
}

fn arith(lhs: Expr, op: ArithOp, rhs: Expr) -> Expr {
    let span = lhs.span.to(rhs.span);
    Expr { kind: ExprKind::Arith { lhs: Box::new(lhs), op, rhs: Box::new(rhs) }, span }
}

/// Appends `e` to `items`, splicing in its operands if it is the same connective.
fn flatten_into(items: &mut Vec<Expr>, e: Expr, kw: Keyword) {
    match e.kind {
        ExprKind::And(inner) if kw == Keyword::And => items.extend(inner),
        ExprKind::Or(inner) if kw == Keyword::Or => items.extend(inner),
        kind => items.push(Expr { kind, span: e.span }),
    }
}

/// An integer literal `n` (negated if `negative`) that must fit in `i64`.
fn integer(n: u64, negative: bool, span: Span) -> PResult<Expr> {
    let value = if negative { -i128::from(n) } else { i128::from(n) };
    match i64::try_from(value) {
        Ok(v) => Ok(Expr { kind: ExprKind::Literal(Literal::Integer(v)), span }),
        Err(_) => Err(ParseError { message: "integer out of range".to_string(), span }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eql::ast::CmpOp;

    const SEED: &str = r#"any where host.os.type == "linux" and process.interactive == true and container.id like "*" and (
  (event.category == "file" and event.type == "change" and event.action == "open" and
  file.path in (
    "/var/run/secrets/kubernetes.io/serviceaccount/token",
    "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
    "/run/secrets/kubernetes.io/serviceaccount/token",
    "/run/secrets/kubernetes.io/serviceaccount/ca.crt"
  )) or
  (event.category == "process" and event.type == "start" and event.action == "exec" and
  (
    process.name in ("cat", "head", "tail", "more", "less", "sed", "awk") or
    process.args in (
      "cat", "/bin/cat", "/usr/bin/cat", "/usr/local/bin/cat",
      "head", "/bin/head", "/usr/bin/head", "/usr/local/bin/head"
    )
  ) and process.args like (
    "*/run/secrets/kubernetes.io/serviceaccount/token*",
    "*/run/secrets/kubernetes.io/serviceaccount/ca.crt*"
  ))
)"#;

    // ---- helpers -------------------------------------------------------

    /// `e` with every span (including `name_span`) zeroed.
    fn strip(e: &Expr) -> Expr {
        let list = |v: &[Expr]| v.iter().map(strip).collect::<Vec<_>>();
        let bx = |e: &Expr| Box::new(strip(e));
        let kind = match &e.kind {
            ExprKind::And(v) => ExprKind::And(list(v)),
            ExprKind::Or(v) => ExprKind::Or(list(v)),
            ExprKind::Not(x) => ExprKind::Not(bx(x)),
            ExprKind::Compare { lhs, op, rhs } => ExprKind::Compare { lhs: bx(lhs), op: *op, rhs: bx(rhs) },
            ExprKind::Arith { lhs, op, rhs } => ExprKind::Arith { lhs: bx(lhs), op: *op, rhs: bx(rhs) },
            ExprKind::In { lhs, list: l, case_insensitive, negated } => {
                ExprKind::In { lhs: bx(lhs), list: list(l), case_insensitive: *case_insensitive, negated: *negated }
            }
            ExprKind::Like { lhs, patterns, case_insensitive } => {
                ExprKind::Like { lhs: bx(lhs), patterns: list(patterns), case_insensitive: *case_insensitive }
            }
            ExprKind::Regex { lhs, patterns, case_insensitive } => {
                ExprKind::Regex { lhs: bx(lhs), patterns: list(patterns), case_insensitive: *case_insensitive }
            }
            ExprKind::Call { name, case_insensitive, args, .. } => ExprKind::Call {
                name: name.clone(),
                name_span: Span::default(),
                case_insensitive: *case_insensitive,
                args: list(args),
            },
            k @ (ExprKind::Field { .. } | ExprKind::Literal(_)) => k.clone(),
        };
        mk(kind)
    }

    fn strip_query(q: &Query) -> Query {
        Query { category: q.category.clone(), category_span: Span::default(), condition: strip(&q.condition) }
    }

    fn mk(kind: ExprKind) -> Expr {
        Expr { kind, span: Span::default() }
    }

    fn query(src: &str) -> Query {
        parse_query(src).unwrap_or_else(|e| panic!("{src:?}: {e:?}"))
    }

    /// Parses a bare condition, spans stripped.
    fn ex(src: &str) -> Expr {
        strip(&parse_expr(src).unwrap_or_else(|e| panic!("{src:?}: {e:?}")))
    }

    fn query_error(src: &str) -> ParseError {
        match parse_query(src) {
            Ok(q) => panic!("{src:?} parsed as {q}"),
            Err(e) => e,
        }
    }

    fn expr_error(src: &str) -> ParseError {
        match parse_expr(src) {
            Ok(e) => panic!("{src:?} parsed as {e}"),
            Err(e) => e,
        }
    }

    fn sp(start: usize, end: usize) -> Span {
        Span::new(start, end)
    }

    fn fld(name: &str) -> Expr {
        mk(ExprKind::Field { name: name.into(), optional: false })
    }
    fn opt(name: &str) -> Expr {
        mk(ExprKind::Field { name: name.into(), optional: true })
    }
    fn lit(l: Literal) -> Expr {
        mk(ExprKind::Literal(l))
    }
    fn s(text: &str) -> Expr {
        lit(Literal::String(text.into()))
    }
    fn int(n: i64) -> Expr {
        lit(Literal::Integer(n))
    }
    fn and(v: Vec<Expr>) -> Expr {
        mk(ExprKind::And(v))
    }
    fn or(v: Vec<Expr>) -> Expr {
        mk(ExprKind::Or(v))
    }
    fn not(e: Expr) -> Expr {
        mk(ExprKind::Not(Box::new(e)))
    }
    fn cmp(l: Expr, op: CmpOp, r: Expr) -> Expr {
        mk(ExprKind::Compare { lhs: Box::new(l), op, rhs: Box::new(r) })
    }
    fn eq(l: Expr, r: Expr) -> Expr {
        cmp(l, CmpOp::Eq, r)
    }
    fn in_(l: Expr, list: Vec<Expr>, case_insensitive: bool, negated: bool) -> Expr {
        mk(ExprKind::In { lhs: Box::new(l), list, case_insensitive, negated })
    }
    fn like(l: Expr, patterns: Vec<Expr>, case_insensitive: bool) -> Expr {
        mk(ExprKind::Like { lhs: Box::new(l), patterns, case_insensitive })
    }
    fn regex(l: Expr, patterns: Vec<Expr>, case_insensitive: bool) -> Expr {
        mk(ExprKind::Regex { lhs: Box::new(l), patterns, case_insensitive })
    }
    fn call(name: &str, case_insensitive: bool, args: Vec<Expr>) -> Expr {
        mk(ExprKind::Call { name: name.into(), name_span: Span::default(), case_insensitive, args })
    }

    /// Asserts the error's message, span and the 1-based line/column of its start.
    fn assert_error(e: &ParseError, message: &str, span: Span, line_col_at: (usize, usize), src: &str) {
        assert_eq!(e.message, message, "{src:?}");
        assert_eq!(e.span, span, "{src:?}: {message}");
        assert_eq!(line_col(src, e.span.start), line_col_at, "{src:?}");
    }

    fn assert_round_trip(src: &str) {
        let q = query(src);
        let printed = q.to_string();
        let again = parse_query(&printed).unwrap_or_else(|e| panic!("{printed:?}: {e:?}"));
        assert_eq!(strip_query(&q), strip_query(&again), "{src:?} printed as {printed:?}");
    }

    // ---- successful parses ---------------------------------------------

    #[test]
    fn seed_query_parses_and_round_trips() {
        let q = query(SEED);
        assert_eq!(q.category, Category::Any);
        assert_eq!(q.category_span, sp(0, 3));
        assert_eq!(q.condition.span, sp(10, SEED.len()));
        let ExprKind::And(top) = &q.condition.kind else { panic!("{q:?}") };
        assert_eq!(top.len(), 4);
        assert_eq!(strip(&top[0]), eq(fld("host.os.type"), s("linux")));
        assert_eq!(strip(&top[2]), like(fld("container.id"), vec![s("*")], false));
        let ExprKind::Or(branches) = &top[3].kind else { panic!("{:?}", top[3]) };
        assert_eq!(branches.len(), 2);
        let ExprKind::And(file_branch) = &branches[0].kind else { panic!() };
        assert_eq!(file_branch.len(), 4);
        let ExprKind::In { list, .. } = &file_branch[3].kind else { panic!() };
        assert_eq!(list.len(), 4);
        let ExprKind::And(proc_branch) = &branches[1].kind else { panic!() };
        assert_eq!(proc_branch.len(), 5);
        assert!(matches!(&proc_branch[3].kind, ExprKind::Or(v) if v.len() == 2));
        assert!(matches!(&proc_branch[4].kind, ExprKind::Like { patterns, .. } if patterns.len() == 2));
        // The span of `( ... )` includes the parentheses.
        let or_start = SEED.find("(\n  (event").unwrap_or(0);
        assert_eq!(top[3].span, sp(or_start, SEED.len()));
        assert_round_trip(SEED);
    }

    #[test]
    fn categories() {
        assert_eq!(query("process where true").category, Category::Named("process".into()));
        assert_eq!(query("ANY where true").category, Category::Any);
        let q = query("  \"network\" where true");
        assert_eq!(q.category, Category::Named("network".into()));
        assert_eq!(q.category_span, sp(2, 11));
        assert_eq!(query("`my cat` where true").category, Category::Named("my cat".into()));
    }

    #[test]
    fn keywords_in_upper_case() {
        let q = query("PROCESS Where NOT a == 1 AND b IN~ (1) OR c LIKE \"x\" oR d REGEX~ \"y\" And E == TRUE");
        assert_eq!(q.category, Category::Named("PROCESS".into()));
        assert_eq!(
            strip(&q.condition),
            or(vec![
                and(vec![not(eq(fld("a"), int(1))), in_(fld("b"), vec![int(1)], true, false)]),
                like(fld("c"), vec![s("x")], false),
                and(vec![regex(fld("d"), vec![s("y")], true), eq(fld("E"), lit(Literal::Bool(true)))]),
            ])
        );
    }

    #[test]
    fn precedence() {
        assert_eq!(ex("a or b and c"), or(vec![fld("a"), and(vec![fld("b"), fld("c")])]));
        assert_eq!(ex("a and b or c"), or(vec![and(vec![fld("a"), fld("b")]), fld("c")]));
        assert_eq!(ex("not a and b"), and(vec![not(fld("a")), fld("b")]));
        assert_eq!(ex("not a or b"), or(vec![not(fld("a")), fld("b")]));
        assert_eq!(ex("not not a"), not(not(fld("a"))));
        assert_eq!(ex("not a == 1"), not(eq(fld("a"), int(1))));
        assert_eq!(ex("(a or b) and c"), and(vec![or(vec![fld("a"), fld("b")]), fld("c")]));
        assert_eq!(ex("not (a and b)"), not(and(vec![fld("a"), fld("b")])));
    }

    #[test]
    fn chains_are_flattened() {
        let abcd = and(vec![fld("a"), fld("b"), fld("c"), fld("d")]);
        assert_eq!(ex("a and b and c and d"), abcd);
        assert_eq!(ex("(a and b) and (c and d)"), abcd);
        assert_eq!(ex("a and ((b and c) and d)"), abcd);
        assert_eq!(ex("a or (b or c)"), or(vec![fld("a"), fld("b"), fld("c")]));
        assert_eq!(ex("((a))"), fld("a"));
        let e = parse_expr("a and (b and c)").unwrap();
        assert_eq!(e.span, sp(0, 15));
        let e = parse_expr(" ( a ) ").unwrap();
        assert_eq!(e.span, sp(1, 6));
    }

    #[test]
    fn not_in_versus_not_of_in() {
        let list = || vec![s("a"), s("b")];
        assert_eq!(ex(r#"x not in ("a", "b")"#), in_(fld("x"), list(), false, true));
        assert_eq!(ex(r#"x NOT IN~ ("a", "b")"#), in_(fld("x"), list(), true, true));
        assert_eq!(ex(r#"not (x in ("a", "b"))"#), not(in_(fld("x"), list(), false, false)));
        assert_eq!(ex(r#"not x in ("a", "b")"#), not(in_(fld("x"), list(), false, false)));
        assert_eq!(ex(r#"x in~ ("a")"#), in_(fld("x"), vec![s("a")], true, false));
        let e = parse_expr(r#"x not in ("a")"#).unwrap();
        assert_eq!(e.span, sp(0, 14));
    }

    #[test]
    fn like_regex_and_colon() {
        assert_eq!(ex(r#"x like "a*""#), like(fld("x"), vec![s("a*")], false));
        assert_eq!(ex(r#"x like~ ("a*", "b?")"#), like(fld("x"), vec![s("a*"), s("b?")], true));
        assert_eq!(ex(r#"x : "a*""#), like(fld("x"), vec![s("a*")], true));
        assert_eq!(ex(r#"x:("a", "b")"#), like(fld("x"), vec![s("a"), s("b")], true));
        assert_eq!(ex(r#"x regex "a.*""#), regex(fld("x"), vec![s("a.*")], false));
        assert_eq!(ex(r#"x regex~ ("a", "b")"#), regex(fld("x"), vec![s("a"), s("b")], true));
        let e = parse_expr(r#"x like ("a")"#).unwrap();
        assert_eq!(e.span, sp(0, 12));
    }

    #[test]
    fn comparisons() {
        for (op, cmp_op) in [
            ("==", CmpOp::Eq),
            ("!=", CmpOp::NotEq),
            ("<", CmpOp::Lt),
            ("<=", CmpOp::LtEq),
            (">", CmpOp::Gt),
            (">=", CmpOp::GtEq),
        ] {
            assert_eq!(ex(&format!("a {op} 1")), cmp(fld("a"), cmp_op, int(1)));
        }
        assert_eq!(ex("a==b"), eq(fld("a"), fld("b")));
        assert_eq!(ex("(a == b) == true"), eq(eq(fld("a"), fld("b")), lit(Literal::Bool(true))));
        assert_eq!(ex("a == null"), eq(fld("a"), lit(Literal::Null)));
        assert_eq!(ex("a"), fld("a"));
        assert_eq!(ex("true"), lit(Literal::Bool(true)));
    }

    #[test]
    fn function_calls() {
        assert_eq!(
            ex(r#"startsWith(process.name, "ca")"#),
            call("startsWith", false, vec![fld("process.name"), s("ca")])
        );
        assert_eq!(
            ex(r#"stringContains~(file.path, "Token") == true"#),
            eq(call("stringContains", true, vec![fld("file.path"), s("Token")]), lit(Literal::Bool(true)))
        );
        assert_eq!(ex("f()"), call("f", false, vec![]));
        assert_eq!(ex("f(g(x), 1)"), call("f", false, vec![call("g", false, vec![fld("x")]), int(1)]));
        let e = parse_expr(r#"  startsWith~(a, "b")"#).unwrap();
        assert_eq!(e.span, sp(2, 21));
        let ExprKind::Call { name_span, .. } = e.kind else { panic!() };
        assert_eq!(name_span, sp(2, 12));
        // Elasticsearch skips whitespace and comments between a function's name
        // and its '(' (four detection-rules production rules write
        // `stringContains (...)`).
        assert_eq!(
            ex(r#"stringContains (process.name, "x")"#),
            call("stringContains", false, vec![fld("process.name"), s("x")])
        );
        assert_eq!(
            ex("length (process.args) > 2"),
            cmp(call("length", false, vec![fld("process.args")]), CmpOp::Gt, int(2))
        );
        assert_eq!(ex("startsWith~ /* c */\n  (a, \"b\")"), call("startsWith", true, vec![fld("a"), s("b")]));
        let e = parse_expr(r#"endsWith  (a, "b")"#).unwrap();
        let ExprKind::Call { name_span, .. } = e.kind else { panic!() };
        assert_eq!(name_span, sp(0, 8));
        // A dotted name is a field, never a function: the '(' stays stray.
        assert_eq!(expr_error("a.b (x)").message, "unexpected '(': expected 'and', 'or' or the end of the query");
    }

    #[test]
    fn fields() {
        assert_eq!(ex("?process.foo"), opt("process.foo"));
        assert_eq!(ex("@timestamp > 0"), cmp(fld("@timestamp"), CmpOp::Gt, int(0)));
        assert_eq!(ex("process.parent.name"), fld("process.parent.name"));
        assert_eq!(ex("`odd name` == 1"), eq(fld("odd name"), int(1)));
        assert_eq!(ex("`a``b`"), fld("a`b"));
        assert_eq!(ex("?`x y`"), opt("x y"));
        assert_eq!(ex("`and` == 1"), eq(fld("and"), int(1)));
        let e = parse_expr(" ?`x y` ").unwrap();
        assert_eq!(e.span, sp(1, 7));
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            ex(r#"x == "q\" b\\ n\n r\r t\t a\' u\u{e9}\u{1F600}""#),
            eq(fld("x"), s("q\" b\\ n\n r\r t\t a' u\u{e9}\u{1F600}"))
        );
        assert_eq!(
            ex("x == \"\"\"C:\\new\\table \"quoted\"\nline2\"\"\""),
            eq(fld("x"), s("C:\\new\\table \"quoted\"\nline2"))
        );
        assert_eq!(ex(r#"x == """#), eq(fld("x"), s("")));
        assert_eq!(ex("x == \"é ✓\""), eq(fld("x"), s("é ✓")));
    }

    #[test]
    fn numbers() {
        assert_eq!(ex("x == 42"), eq(fld("x"), int(42)));
        assert_eq!(ex("x == -7"), eq(fld("x"), int(-7)));
        assert_eq!(ex("x == - 7"), eq(fld("x"), int(-7)));
        assert_eq!(ex("x == 1.5"), eq(fld("x"), lit(Literal::Float(1.5))));
        assert_eq!(ex("x == -0.25"), eq(fld("x"), lit(Literal::Float(-0.25))));
        assert_eq!(ex("x == 1e3"), eq(fld("x"), lit(Literal::Float(1000.0))));
        assert_eq!(ex("x in (-1, 2)"), in_(fld("x"), vec![int(-1), int(2)], false, false));
        assert_eq!(ex("-9223372036854775808"), int(i64::MIN));
        assert_eq!(ex("9223372036854775807"), int(i64::MAX));
        let e = parse_expr("x == -7").unwrap();
        let ExprKind::Compare { rhs, .. } = e.kind else { panic!() };
        assert_eq!(rhs.span, sp(5, 7));
    }

    #[test]
    fn comments_and_newlines() {
        let q = query("process // the category\nwhere /* block\ncomment */ a ==\n 1 // trailing");
        assert_eq!(strip(&q.condition), eq(fld("a"), int(1)));
    }

    #[test]
    fn display_round_trips() {
        for src in [
            "process where a == 1 and (b or c) and not (d and e)",
            r#"file where x not in~ ("A", "b") or ?y : ("*a*", "b") and z regex~ "[0-9]+""#,
            r#"any where startsWith~(process.name, "ca") and f() != -3 and g(1.5, -2.5e-7, null, false)"#,
            r#""network" where x == "tab\tquote\"back\\slash\u{07}nl\n" and not not y"#,
            "process where (a == 1 or (b == 2 and (c == 3 or d == 4)))",
            "any where x < 1 and x <= 2 and x > 3 and x >= 4 and x != 5 and x like~ \"a\"",
        ] {
            assert_round_trip(src);
        }
    }

    // ---- errors --------------------------------------------------------

    #[test]
    fn query_structure_errors() {
        let src = "process a == 1";
        assert_error(&query_error(src), "expected 'where' after the event category", sp(8, 9), (1, 9), src);
        let src = "process";
        assert_error(&query_error(src), "expected 'where' after the event category", sp(7, 7), (1, 8), src);
        let expected_category = "expected an event category such as 'process' or 'any' at the start of the query";
        for src in ["", "1 where x", "?p where x", "\"\" where x", "(process) where x"] {
            let end = if src.is_empty() { 0 } else { src.find(' ').unwrap_or(1).min(2) };
            let e = query_error(src);
            assert_eq!(e.message, expected_category, "{src:?}");
            assert_eq!(e.span.start, 0, "{src:?}");
            assert!(e.span.end <= end.max(src.len()));
        }
        let src = "sequence by host.id [process where true] [file where true]";
        assert_error(
            &query_error(src),
            "unsupported: sequence queries (only '<category> where <condition>' queries are supported)",
            sp(0, 8),
            (1, 1),
            src,
        );
        let e = query_error("SAMPLE by host.id [process where true]");
        assert_eq!(
            e.message,
            "unsupported: sample queries (only '<category> where <condition>' queries are supported)"
        );
        let e = query_error("join [process where true] [file where true]");
        assert_eq!(e.message, "unsupported: join queries (only '<category> where <condition>' queries are supported)");
        let src = "process where true\n| head 5";
        assert_error(
            &query_error(src),
            "unsupported here: pipes ('| head N', '| tail N') cut a rule's findings over the whole stream; put the \
             query in a rule file",
            sp(19, 20),
            (2, 1),
            src,
        );
        let src = "any where";
        assert_error(
            &query_error(src),
            "unexpected end of input: expected a field, a value or '('",
            sp(9, 9),
            (1, 10),
            src,
        );
        let src = "any where a b";
        assert_error(
            &query_error(src),
            "unexpected 'b': expected 'and', 'or' or the end of the query",
            sp(12, 13),
            (1, 13),
            src,
        );
        let src = "any where a)";
        assert_error(&query_error(src), "unexpected ')' without a matching '('", sp(11, 12), (1, 12), src);
    }

    #[test]
    fn unclosed_parentheses() {
        let src = "any where a or (b == 1";
        assert_error(
            &query_error(src),
            "expected ')' to close the '(' at 1:16",
            sp(src.len(), src.len()),
            (1, 23),
            src,
        );
        let src = "process where\n  (a == 1 and\n   b c)";
        assert_error(&query_error(src), "expected ')' to close the '(' at 2:3", sp(33, 34), (3, 6), src);
        let src = "any where x in (1, 2";
        assert_error(&query_error(src), "expected ',' or ')' to close the '(' at 1:16", sp(20, 20), (1, 21), src);
        let src = "any where f(a b)";
        assert_error(&query_error(src), "expected ',' or ')' to close the '(' at 1:12", sp(14, 15), (1, 15), src);
    }

    #[test]
    fn lexical_errors_reach_the_user() {
        let src = "any where x == \"abc";
        assert_error(&query_error(src), "unterminated string", sp(15, 16), (1, 16), src);
        let src = "any where x == \"ab\nc\"";
        assert_error(&query_error(src), "unterminated string", sp(15, 16), (1, 16), src);
        let src = "any where x == \"a\\qb\"";
        assert_error(&query_error(src), "unknown escape sequence '\\q' in string", sp(17, 19), (1, 18), src);
        let src = "any where x == 'abc'";
        assert_error(
            &query_error(src),
            "single-quoted strings are not supported in EQL; use double quotes",
            sp(15, 20),
            (1, 16),
            src,
        );
        let src = "any where x = 1";
        assert_error(&query_error(src), "use '==' for equality", sp(12, 13), (1, 13), src);
        let src = "any where x == 1 /* oops";
        assert_error(&query_error(src), "unterminated block comment", sp(17, 19), (1, 18), src);
        // A lexical error after a syntax error is not reported first.
        let src = "any where or 'x'";
        assert_eq!(query_error(src).message, "unexpected 'or': expected a field, a value or '('");
    }

    #[test]
    fn operand_errors() {
        let src = "any where a or or b";
        assert_error(&query_error(src), "unexpected 'or': expected a field, a value or '('", sp(15, 17), (1, 16), src);
        let src = "any where a OR\n  AND b";
        assert_error(&query_error(src), "unexpected 'AND': expected a field, a value or '('", sp(17, 20), (2, 3), src);
        let src = "any where x == -";
        assert_error(
            &query_error(src),
            "unexpected end of input: expected a field, a value or '('",
            sp(16, 16),
            (1, 17),
            src,
        );
        let src = "any where x in (1, )";
        assert_error(&query_error(src), "unexpected ')': expected a field, a value or '('", sp(19, 20), (1, 20), src);
        let src = "any where x == \"a very long string that goes on and on and on\" \"b\"";
        assert_eq!(query_error(src).message, "unexpected '\"b\"': expected 'and', 'or' or the end of the query");
        let src = "any where x == 1 \"a very long string that goes on and on and on\"";
        assert_eq!(
            query_error(src).message,
            "unexpected '\"a very long string that goes on and on...': expected 'and', 'or' or the end of the query"
        );
    }

    #[test]
    fn operator_errors() {
        let src = "any where a ==";
        assert_error(&query_error(src), "'==' needs a value on its right", sp(14, 14), (1, 15), src);
        let src = "any where a == and b";
        assert_error(&query_error(src), "'==' needs a value on its right", sp(15, 18), (1, 16), src);
        let src = "any where a >= )";
        assert_eq!(query_error(src).message, "'>=' needs a value on its right");
        let src = "any where a like";
        assert_error(&query_error(src), "'like' needs a value on its right", sp(16, 16), (1, 17), src);
        let src = "any where a : or";
        assert_error(&query_error(src), "':' needs a value on its right", sp(14, 16), (1, 15), src);
        let src = "any where a regex~";
        assert_eq!(query_error(src).message, "'regex~' needs a value on its right");
        let src = "any where a in \"x\"";
        assert_error(
            &query_error(src),
            "'in' needs a list of values in parentheses on its right",
            sp(15, 18),
            (1, 16),
            src,
        );
        let src = "any where a in ()";
        assert_error(&query_error(src), "the list after 'in' cannot be empty", sp(15, 17), (1, 16), src);
        let src = "any where a not in~ ( )";
        assert_error(&query_error(src), "the list after 'in~' cannot be empty", sp(20, 23), (1, 21), src);
        let src = "any where a like ()";
        assert_eq!(query_error(src).message, "the list after 'like' cannot be empty");
        let src = "any where a not b";
        assert_error(&query_error(src), "expected 'in' or 'in~' after 'not'", sp(16, 17), (1, 17), src);
        let src = "any where a == b == c";
        assert_error(
            &query_error(src),
            "'==' cannot follow another comparison; combine comparisons with 'and' or 'or'",
            sp(17, 19),
            (1, 18),
            src,
        );
        let src = "any where a in (1) like \"x\"";
        assert_eq!(
            query_error(src).message,
            "'like' cannot follow another comparison; combine comparisons with 'and' or 'or'"
        );
        let src = "any where a in (1) + 1";
        assert_error(
            &query_error(src),
            "'+' cannot follow a comparison; put the arithmetic inside it, e.g. `a + 1 == b`",
            sp(19, 20),
            (1, 20),
            src,
        );
    }

    #[test]
    fn long_arithmetic_chains_count_against_the_nesting_limit() {
        let ok = format!("a{}", " + 1".repeat(MAX_DEPTH));
        assert!(parse_expr(&ok).is_ok());
        let long = format!("a{} == 1", " + 1".repeat(100_000));
        let e = expr_error(&long);
        assert_eq!((e.message.as_str(), e.span), (TOO_DEEP, sp(2 + 4 * MAX_DEPTH, 3 + 4 * MAX_DEPTH)));
    }

    #[test]
    fn arithmetic_precedence_and_associativity() {
        let a = || fld("a");
        let b = || fld("b");
        let ar = |l: Expr, op: ArithOp, r: Expr| mk(ExprKind::Arith { lhs: Box::new(l), op, rhs: Box::new(r) });
        // `*` before `+`; `-` left-associative; a minus before a field is `0 - field`.
        assert_eq!(strip(&ex("a + b * 2")), ar(a(), ArithOp::Add, ar(b(), ArithOp::Mul, int(2))));
        assert_eq!(strip(&ex("a - b - 2")), ar(ar(a(), ArithOp::Sub, b()), ArithOp::Sub, int(2)));
        assert_eq!(strip(&ex("a % b / 2")), ar(ar(a(), ArithOp::Mod, b()), ArithOp::Div, int(2)));
        assert_eq!(strip(&ex("-a")), ar(int(0), ArithOp::Sub, a()));
        assert_eq!(strip(&ex("a - -2")), ar(a(), ArithOp::Sub, int(-2)));
        assert_eq!(strip(&ex("a + 1 == b")), cmp(ar(a(), ArithOp::Add, int(1)), CmpOp::Eq, b()));
        assert_eq!(strip(&ex("f(a * 2, b)")), call("f", false, vec![ar(a(), ArithOp::Mul, int(2)), b()]));
    }

    #[test]
    fn integer_range() {
        let src = "any where x == 9223372036854775808";
        assert_error(&query_error(src), "integer out of range", sp(15, 34), (1, 16), src);
        let src = "any where x == -9223372036854775809";
        assert_error(&query_error(src), "integer out of range", sp(15, 35), (1, 16), src);
        let src = "any where x == 99999999999999999999999";
        assert_error(&query_error(src), "integer out of range", sp(15, 38), (1, 16), src);
    }

    // ---- nesting -------------------------------------------------------

    const TOO_DEEP: &str = "expression nested too deeply (more than 256 levels)";

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let parens = format!("{}a", "(".repeat(10_000));
        let e = expr_error(&parens);
        assert_eq!((e.message.as_str(), e.span), (TOO_DEEP, sp(256, 257)));

        let nots = format!("{}a", "not ".repeat(10_000));
        let e = expr_error(&nots);
        assert_eq!((e.message.as_str(), e.span), (TOO_DEEP, sp(1024, 1027)));

        let calls = format!("{}x", "f(".repeat(10_000));
        let e = expr_error(&calls);
        assert_eq!((e.message.as_str(), e.span), (TOO_DEEP, sp(512, 513)));

        let mixed = format!("any where {}", "not f((".repeat(5_000));
        let e = query_error(&mixed);
        assert_eq!(e.message, TOO_DEEP);
        // Each repetition opens three levels (`not`, `f(`, `(`): level 257 is the `f` of the 86th.
        assert_eq!(line_col(&mixed, e.span.start), (1, 11 + 85 * 7 + 4));
    }

    #[test]
    fn nesting_up_to_the_limit_is_fine() {
        let n = MAX_DEPTH;
        let parens = format!("any where {}a == 1{}", "(".repeat(n), ")".repeat(n));
        assert_round_trip(&parens);
        let nots = format!("any where {}a", "not ".repeat(n));
        assert_round_trip(&nots);
        let calls = format!("any where {}x{}", "f(".repeat(n), ")".repeat(n));
        assert_round_trip(&calls);
        let mixed = format!("{}({}a{}", "not ".repeat(n / 2), "(".repeat(n / 2 - 1), ")".repeat(n / 2));
        assert!(parse_expr(&mixed).is_ok());
        let over = format!("{}({}a{}", "not ".repeat(n / 2), "(".repeat(n / 2), ")".repeat(n / 2 + 1));
        assert_eq!(expr_error(&over).message, TOO_DEEP);
        // Long flat chains are not nesting.
        let chain = vec!["a == 1"; 20_000].join(" or ");
        assert!(parse_expr(&chain).is_ok());
    }

    // ---- robustness ----------------------------------------------------

    /// A small deterministic xorshift generator.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'s>(&mut self, items: &[&'s str]) -> &'s str {
            items[self.below(items.len())]
        }
    }

    /// Parses `src` both ways and checks that errors point inside `src` on char boundaries.
    fn check_no_panic(src: &str) {
        for result in [parse_query(src).map(|_| ()), parse_expr(src).map(|_| ())] {
            if let Err(e) = result {
                assert!(!e.message.is_empty());
                assert!(e.span.start <= e.span.end && e.span.end <= src.len(), "{src:?}: {e:?}");
                assert!(src.is_char_boundary(e.span.start) && src.is_char_boundary(e.span.end));
                line_col(src, e.span.start);
            }
        }
    }

    #[test]
    fn prefixes_never_panic() {
        let samples = [
            SEED,
            r#"process where ?a.b : ("x\u{1F600}", """raw
"""") and not `c``d` not in~ (-1, 2.5e3) or startsWith~(é, "\q") | head"#,
            "file where /* c */ x regex~ \"é✓\" // tail\n and f(-)",
        ];
        for sample in samples {
            for (i, _) in sample.char_indices() {
                check_no_panic(&sample[..i]);
                check_no_panic(&sample[i..]);
            }
        }
    }

    #[test]
    fn token_soup_never_panics() {
        let fragments = [
            "process",
            "any",
            "where",
            "WHERE",
            "and",
            "or",
            "not",
            "in",
            "in~",
            "like",
            "like~",
            "regex",
            "regex~",
            ":",
            "==",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            "=",
            "!",
            "(",
            ")",
            ",",
            "|",
            "-",
            "+",
            "*",
            "/",
            "%",
            "~",
            "?",
            "?x",
            "`",
            "`a b`",
            "``",
            "\"",
            "\"\"\"",
            "\"a\"",
            "\"\\",
            "\\",
            "\\u{",
            "\\u{110000}",
            "'",
            "'x'",
            "1",
            "-1",
            "1.5",
            "1e",
            "1e999",
            "99999999999999999999",
            ".",
            "..",
            "a.b",
            "a.",
            "@t",
            "f(",
            "f~(",
            "true",
            "null",
            "sequence",
            "é",
            "✓",
            "\u{0}",
            "\n",
            " ",
            "//",
            "/*",
            "*/",
            "\t",
            "\u{1F600}",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let len = rng.below(14);
            let mut src = String::new();
            for _ in 0..len {
                src.push_str(rng.pick(&fragments));
                if rng.below(3) == 0 {
                    src.push(' ');
                }
            }
            check_no_panic(&src);
        }
        for _ in 0..5_000 {
            let bytes: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
            check_no_panic(&String::from_utf8_lossy(&bytes));
        }
    }

    /// A random well-formed condition whose operands are never parenthesised.
    fn gen_condition(rng: &mut Rng, depth: usize) -> String {
        let kw = |rng: &mut Rng, word: &str| {
            if rng.below(2) == 0 {
                word.to_uppercase()
            } else {
                word.to_string()
            }
        };
        match rng.below(if depth == 0 { 4 } else { 8 }) {
            0 => format!("{} == {}", gen_atom(rng, depth), gen_atom(rng, depth)),
            1 => {
                let op = rng.pick(&["in", "in~", "not in", "not in~"]);
                let n = 1 + rng.below(3);
                let items: Vec<_> = (0..n).map(|_| gen_atom(rng, depth)).collect();
                format!("{} {} ({})", gen_atom(rng, depth), kw(rng, op), items.join(", "))
            }
            2 => {
                let op = rng.pick(&["like", "like~", ":", "regex", "regex~"]);
                let pattern = gen_atom(rng, depth);
                let rhs = if rng.below(2) == 0 { pattern } else { format!("({pattern}, \"z\")") };
                format!("{} {} {}", gen_atom(rng, depth), kw(rng, op), rhs)
            }
            3 => gen_atom(rng, depth),
            4 => format!("{} {}", kw(rng, "not"), gen_condition(rng, depth - 1)),
            5 => format!("({})", gen_condition(rng, depth - 1)),
            _ => {
                let word = rng.pick(&["and", "or"]);
                let word = kw(rng, word);
                let n = 2 + rng.below(3);
                let items: Vec<_> = (0..n).map(|_| gen_condition(rng, depth - 1)).collect();
                format!("({})", items.join(&format!(" {word} ")))
            }
        }
    }

    fn gen_atom(rng: &mut Rng, depth: usize) -> String {
        match rng.below(if depth == 0 { 7 } else { 8 }) {
            0 => rng.pick(&["a", "process.name", "@timestamp", "?opt.x", "`odd`", "x_1.y"]).to_string(),
            1 => format!("{}", rng.next() as i64),
            2 => format!("{:?}", f64::from_bits(rng.next() >> 2)),
            3 => format!("{}.{}e-{}", rng.below(100), rng.below(1000), rng.below(20)),
            4 => rng.pick(&["true", "FALSE", "null"]).to_string(),
            5 => {
                let parts = ["a", "\\\"", "\\\\", "\\n", "\\t", "\\r", "\\'", "\\u{1F600}", "é", " ", "*"];
                let n = rng.below(6);
                let body: String = (0..n).map(|_| rng.pick(&parts)).collect();
                format!("\"{body}\"")
            }
            6 => format!("\"\"\"raw \\ \"q\" {}\"\"\"", rng.below(10)),
            _ => {
                let name = rng.pick(&["f", "startsWith~", "length", "concat~"]);
                let n = rng.below(3);
                let args: Vec<_> = (0..n).map(|_| gen_atom(rng, depth - 1)).collect();
                format!("{name}({})", args.join(", "))
            }
        }
    }

    #[test]
    fn random_conditions_round_trip() {
        let mut rng = Rng(42);
        for _ in 0..3_000 {
            let cond = gen_condition(&mut rng, 4);
            let src = format!("process where {cond}");
            let q = query(&src);
            let printed = q.to_string();
            let again = parse_query(&printed).unwrap_or_else(|e| panic!("{src:?} -> {printed:?}: {e:?}"));
            assert_eq!(strip_query(&q), strip_query(&again), "{src:?} -> {printed:?}");
        }
    }
}
