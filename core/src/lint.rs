//! `rules check`: lints rule files beyond what loading them checks.
//!
//! Loading already rejects syntax errors, unknown fields and unknown
//! functions. The lint adds what can never work on tokenscan's captures: a
//! positive condition on a field that the events of that branch never carry
//! (`file.path` under `event.category == "process"`, `process.args` on file
//! events: argv is not part of a file event), branches that require two event
//! kinds at once, categories that never occur, optional fields (`?name`)
//! that tokenscan's captures never carry (always missing, so an exclusion
//! on one always passes), and signature allow-list entries longer than the
//! 15-byte kernel `comm` they are compared with.

use std::path::{Path, PathBuf};

use crate::eql::ast::{Category, CmpOp, Expr, ExprKind, Literal, Span};
use crate::eql::CompileOptions;
use crate::error::{Error, Position};
use crate::rules::{parse_rule, position, Rule, RuleLogic};
use crate::view::ecs::{ecs_field, Carriers};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The rule is usable but part of it can never match.
    Warning,
    /// The rule cannot be loaded.
    Error,
}

/// One problem found in a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The rule file.
    pub path: PathBuf,
    /// Where in it.
    pub position: Option<Position>,
    /// Error or warning.
    pub severity: Severity,
    /// One sentence.
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(p) = self.position {
            write!(f, ":{p}")?;
        }
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, ": {sev}: {}", self.message)
    }
}

/// Which event kinds a branch can still see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kinds {
    open: bool,
    exec: bool,
}

impl Kinds {
    const BOTH: Kinds = Kinds { open: true, exec: true };
    fn describe(self) -> &'static str {
        match (self.open, self.exec) {
            (true, false) => "file (open) events",
            (false, true) => "process (exec) events",
            _ => "events",
        }
    }
    fn and(self, o: Kinds) -> Kinds {
        Kinds { open: self.open && o.open, exec: self.exec && o.exec }
    }
    fn none(self) -> bool {
        !self.open && !self.exec
    }
}

/// The event kinds a `field == value` / `field in (...)` requirement allows, if it constrains kinds.
fn kinds_of_value(field: &str, value: &str) -> Option<Kinds> {
    let open = Kinds { open: true, exec: false };
    let exec = Kinds { open: false, exec: true };
    let none = Kinds { open: false, exec: false };
    match (field, value) {
        ("event.category", "file") | ("event.action", "open") => Some(open),
        ("event.category", "process") | ("event.action", "exec") | ("event.type", "start") => Some(exec),
        ("event.type", "change" | "access") => Some(open),
        ("event.category" | "event.action" | "event.type", _) => Some(none),
        _ => None,
    }
}

fn field_name(e: &Expr) -> Option<&str> {
    match &e.kind {
        ExprKind::Field { name, .. } => Some(name),
        _ => None,
    }
}

fn string_lit(e: &Expr) -> Option<&str> {
    match &e.kind {
        ExprKind::Literal(Literal::String(s)) => Some(s),
        _ => None,
    }
}

/// The kinds a direct conjunct requires, if it is a kind-deciding equality or `in`.
fn conjunct_kinds(e: &Expr) -> Option<Kinds> {
    match &e.kind {
        ExprKind::Compare { lhs, op: CmpOp::Eq, rhs } => {
            let (f, v) = match (field_name(lhs), string_lit(rhs)) {
                (Some(f), Some(v)) => (f, v),
                _ => (field_name(rhs)?, string_lit(lhs)?),
            };
            kinds_of_value(f, v)
        }
        ExprKind::In { lhs, list, case_insensitive: false, negated: false } => {
            let f = field_name(lhs)?;
            let mut acc: Option<Kinds> = None;
            for item in list {
                let k = kinds_of_value(f, string_lit(item)?)?;
                acc = Some(acc.map_or(k, |a| Kinds { open: a.open || k.open, exec: a.exec || k.exec }));
            }
            acc
        }
        _ => None,
    }
}

struct Linter {
    out: Vec<(Span, String)>,
}

impl Linter {
    fn expr(&mut self, e: &Expr, kinds: Kinds, negated: bool) {
        match &e.kind {
            ExprKind::And(items) => {
                let mut k = kinds;
                for i in items {
                    if let Some(c) = conjunct_kinds(i) {
                        k = k.and(c);
                    }
                }
                if k.none() && !kinds.none() && !negated {
                    self.out.push((
                        e.span,
                        "these conditions require a process event and a file event at once (or an event.category/action/type value tokenscan never produces): this branch can never match".into(),
                    ));
                    return;
                }
                for i in items {
                    self.expr(i, k, negated);
                }
            }
            ExprKind::Or(items) => items.iter().for_each(|i| self.expr(i, kinds, negated)),
            ExprKind::Not(inner) => self.expr(inner, kinds, !negated),
            ExprKind::Compare { lhs, op, rhs } => {
                let positive = !negated && *op != CmpOp::NotEq && !matches!(rhs.kind, ExprKind::Literal(Literal::Null));
                self.operand(lhs, kinds, positive);
                self.operand(rhs, kinds, positive);
            }
            ExprKind::In { lhs, negated: n, .. } => self.operand(lhs, kinds, !negated && !n),
            ExprKind::Like { lhs, .. } | ExprKind::Regex { lhs, .. } => self.operand(lhs, kinds, !negated),
            ExprKind::Call { args, .. } => args.iter().for_each(|a| self.operand(a, kinds, !negated)),
            ExprKind::Field { .. } => self.operand(e, kinds, !negated),
            ExprKind::Literal(_) => {}
        }
    }

    fn operand(&mut self, e: &Expr, kinds: Kinds, positive: bool) {
        match &e.kind {
            ExprKind::Field { name, optional } => {
                let Some((_, f)) = ecs_field(name) else {
                    // Only an optional field can be unknown here: loading rejects the others.
                    if *optional {
                        self.out.push((e.span, never_carried(name, positive)));
                    }
                    return;
                };
                let carried = match f.carriers {
                    Carriers::All => kinds,
                    Carriers::Exec => Kinds { open: false, exec: kinds.exec },
                    Carriers::Open => Kinds { open: kinds.open, exec: false },
                };
                if positive && carried.none() && !kinds.none() {
                    let only = match f.carriers {
                        Carriers::Exec => "process (exec) events",
                        Carriers::Open => "file (open) events",
                        Carriers::All => "all events",
                    };
                    self.out.push((
                        e.span,
                        format!(
                            "`{name}` is only set on {only}, but this condition applies to {}: it can never be true here",
                            kinds.describe()
                        ),
                    ));
                }
            }
            ExprKind::Call { args, .. } => args.iter().for_each(|a| self.operand(a, kinds, positive)),
            _ => self.expr(e, kinds, !positive),
        }
    }
}

/// The warning for `?name`, a field tokenscan's events never carry. It is
/// always missing, so a negated test on it always passes (the rule fires
/// where Elasticsearch, whose events may carry the field, would not) and a
/// positive one never does.
fn never_carried(name: &str, positive: bool) -> String {
    let effect = if positive {
        "this condition is never true here, while in Elasticsearch it can be"
    } else {
        "this negated condition always passes, so the rule can fire where Elasticsearch, whose events may carry the field, would not"
    };
    format!("`?{name}` is not a field of tokenscan's captures, so it is always missing: {effect}")
}

/// Lints one loaded rule whose source text is `text`.
pub fn lint_rule(rule: &Rule, text: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let diag =
        |position, message| Diagnostic { path: rule.source.clone(), position, severity: Severity::Warning, message };
    match &rule.logic {
        RuleLogic::Eql(q) => {
            let ast = q.ast();
            let base = rule.query_offset.unwrap_or(0);
            let kinds = match &ast.category {
                Category::Any => Kinds::BOTH,
                Category::Named(c) => match c.as_str() {
                    "process" => Kinds { open: false, exec: true },
                    "file" => Kinds { open: true, exec: false },
                    other => {
                        out.push(diag(
                            Some(position(text, base + ast.category_span.start)),
                            format!("category `{other}` never occurs in tokenscan captures (they hold process and file events): the rule can never match"),
                        ));
                        return out;
                    }
                },
            };
            let mut l = Linter { out: Vec::new() };
            l.expr(&ast.condition, kinds, false);
            for (span, msg) in l.out {
                out.push(diag(Some(position(text, base + span.start)), msg));
            }
        }
        RuleLogic::Signature(s) => {
            for name in s.allow_list() {
                if name.len() > 15 {
                    let at = text.find(&format!("\"{name}\"")).map(|o| position(text, o));
                    let cut: String = name.bytes().take(15).map(char::from).collect();
                    out.push(diag(
                        at,
                        format!("allow-list entry {name:?} is longer than the 15-byte kernel comm it is compared with, so it never matches; the kernel reports {cut:?}"),
                    ));
                }
            }
        }
    }
    out
}

/// Loads and lints a rule file; a file that does not load yields one error diagnostic.
pub fn check_file(path: &Path, options: &CompileOptions) -> Vec<Diagnostic> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return vec![Diagnostic {
                path: path.to_owned(),
                position: None,
                severity: Severity::Error,
                message: e.to_string(),
            }]
        }
    };
    match parse_rule(path, &text, options) {
        Ok(rule) => lint_rule(&rule, &text),
        Err(Error::Rule { path, position, message }) => {
            vec![Diagnostic { path, position, severity: Severity::Error, message }]
        }
        Err(e) => vec![Diagnostic {
            path: path.to_owned(),
            position: None,
            severity: Severity::Error,
            message: e.to_string(),
        }],
    }
}
