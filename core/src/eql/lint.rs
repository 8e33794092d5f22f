//! What can never match in an EQL query on tokenscan's captures: a positive
//! condition on a field that the events of that branch never carry
//! (`file.path` under `event.category == "process"`, `process.args` on file
//! events: argv is not part of a file event), branches that require two event
//! kinds at once, and categories that never occur. Used by `rules check`
//! through [`crate::engine::CompiledRule::lint`].

use super::ast::{Category, CmpOp, Expr, ExprKind, Literal, Span};
use super::compile::EqlQuery;
use crate::engine::LintWarning;
use crate::view::ecs::{ecs_field, Carriers};

/// Which event kinds a branch can still see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kinds {
    open: bool,
    exec: bool,
    /// Kubernetes audit events (`k8s_audit` rows of an imported audit log).
    audit: bool,
}

impl Kinds {
    const ALL: Kinds = Kinds { open: true, exec: true, audit: true };
    const OPEN: Kinds = Kinds { open: true, exec: false, audit: false };
    const EXEC: Kinds = Kinds { open: false, exec: true, audit: false };
    const AUDIT: Kinds = Kinds { open: false, exec: false, audit: true };
    const NONE: Kinds = Kinds { open: false, exec: false, audit: false };
    fn describe(self) -> &'static str {
        match (self.open, self.exec, self.audit) {
            (true, false, false) => "file events",
            (false, true, false) => "process (exec) events",
            (false, false, true) => "Kubernetes audit events",
            (true, true, false) => "node (process and file) events",
            _ => "events",
        }
    }
    fn and(self, o: Kinds) -> Kinds {
        Kinds { open: self.open && o.open, exec: self.exec && o.exec, audit: self.audit && o.audit }
    }
    fn or(self, o: Kinds) -> Kinds {
        Kinds { open: self.open || o.open, exec: self.exec || o.exec, audit: self.audit || o.audit }
    }
    fn none(self) -> bool {
        !self.open && !self.exec && !self.audit
    }
}

/// The event kinds a `field == value` / `field in (...)` requirement allows, if it constrains kinds.
fn kinds_of_value(field: &str, value: &str) -> Option<Kinds> {
    let (open, exec, none) = (Kinds::OPEN, Kinds::EXEC, Kinds::NONE);
    match (field, value) {
        ("event.dataset" | "data_stream.dataset", "kubernetes.audit_logs") => Some(Kinds::AUDIT),
        ("event.dataset" | "data_stream.dataset", "cloud_defend.file") => Some(open),
        ("event.dataset" | "data_stream.dataset", "cloud_defend.process") => Some(exec),
        ("event.dataset" | "data_stream.dataset", _) => Some(none),
        // `open` stands for every file event: opens and the file operations.
        ("event.category", "file")
        | ("event.action", "open" | "creation" | "modification" | "deletion" | "rename" | "link") => Some(open),
        // `exec` stands for every process event here: exec, fork and end.
        ("event.category", "process") | ("event.action", "exec" | "fork" | "end") | ("event.type", "start" | "end") => {
            Some(exec)
        }
        ("event.type", "change" | "access" | "creation" | "deletion") => Some(open),
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
                acc = Some(acc.map_or(k, |a| a.or(k)));
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
            ExprKind::Compare { .. } | ExprKind::In { .. }
                if !negated && !kinds.none() && conjunct_kinds(e).is_some_and(|c| kinds.and(c).none()) =>
            {
                self.out.push((
                    e.span,
                    "this condition requires an event.category/action/type value that the events it applies to never have (a process event and a file event at once, or a value tokenscan never produces): it can never match".into(),
                ));
            }
            ExprKind::Compare { lhs, op, rhs } => {
                let positive = !negated && *op != CmpOp::NotEq && !matches!(rhs.kind, ExprKind::Literal(Literal::Null));
                self.operand(lhs, kinds, positive);
                self.operand(rhs, kinds, positive);
            }
            ExprKind::In { lhs, negated: n, .. } => self.operand(lhs, kinds, !negated && !n),
            ExprKind::Like { lhs, .. } | ExprKind::Regex { lhs, .. } => self.operand(lhs, kinds, !negated),
            ExprKind::Call { args, .. } => args.iter().for_each(|a| self.operand(a, kinds, !negated)),
            ExprKind::Arith { lhs, rhs, .. } => {
                self.operand(lhs, kinds, !negated);
                self.operand(rhs, kinds, !negated);
            }
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
                    Carriers::Node => kinds.and(Kinds { audit: false, ..Kinds::ALL }),
                    Carriers::Exec => kinds.and(Kinds::EXEC),
                    Carriers::Open => kinds.and(Kinds::OPEN),
                    Carriers::Audit => kinds.and(Kinds::AUDIT),
                };
                if positive && carried.none() && !kinds.none() {
                    let only = match f.carriers {
                        Carriers::Exec => "process (exec) events",
                        Carriers::Open => "file events",
                        Carriers::Node => "node (process and file) events",
                        Carriers::Audit => "Kubernetes audit events",
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
            ExprKind::Arith { lhs, rhs, .. } => {
                self.operand(lhs, kinds, positive);
                self.operand(rhs, kinds, positive);
            }
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

/// The warnings for `q`, whose text starts at byte `base` of its rule file.
pub(crate) fn lint_query(q: &EqlQuery, base: usize) -> Vec<LintWarning> {
    let ast = q.ast();
    let kinds = match &ast.category {
        Category::Any => Kinds::ALL,
        Category::Named(c) => match c.as_str() {
            "process" => Kinds::EXEC,
            "file" => Kinds::OPEN,
            other => {
                return vec![LintWarning {
                    offset: Some(base + ast.category_span.start),
                    message: format!("category `{other}` never occurs in tokenscan captures (they hold process and file events): the rule can never match"),
                }];
            }
        },
    };
    let mut l = Linter { out: Vec::new() };
    l.expr(&ast.condition, kinds, false);
    l.out.into_iter().map(|(span, message)| LintWarning { offset: Some(base + span.start), message }).collect()
}
