//! `tokenscan tree`'s output: one indented process tree per capture, each
//! process with its pid, name, terminal, container (pod) and arguments, and
//! its findings below it.

use std::fmt::Write;

use tokenscan_core::process::{Entity, ProcessTree};

/// The text of `trees`.
pub fn render(trees: &[ProcessTree]) -> String {
    let mut out = String::new();
    for t in trees {
        let ctx = &t.context;
        let _ = writeln!(out, "{}", t.capture.display());
        if t.nodes.is_empty() {
            out.push_str("  (no process matches)\n");
        }
        for n in &t.nodes {
            let e = ctx.entity(n.entity);
            let indent = "  ".repeat(n.depth + 1);
            let _ = writeln!(out, "{indent}{}", describe(e, ctx));
            for f in &n.findings {
                let _ = writeln!(out, "{indent}  ! {} #{}: {}", f.rule_id, f.event_index, f.reason);
            }
        }
    }
    out
}

fn describe(e: &Entity, ctx: &tokenscan_core::process::ProcessContext) -> String {
    let mut s = format!("{} {}", e.pid, e.name.as_deref().unwrap_or("?"));
    match &e.tty {
        Some(Some(t)) => {
            let _ = write!(s, " [{t}]");
        }
        Some(None) => {}
        None => s.push_str(" [tty ?]"),
    }
    if let Some(id) = e.container() {
        let short = &id[..id.len().min(12)];
        match ctx.container(id).and_then(|m| Some((m.pod_namespace.as_deref(), m.pod_name.as_deref()?))) {
            Some((ns, pod)) => {
                let _ = write!(s, " (pod {}{pod}, container {short})", ns.map(|n| format!("{n}/")).unwrap_or_default());
            }
            None => {
                let _ = write!(s, " (container {short})");
            }
        }
    } else if e.container_id.is_some() {
        s.push_str(" (host)");
    }
    if let Some(args) = &e.args {
        let _ = write!(s, ": {}", args.join(" "));
    } else if let Some(exe) = &e.executable {
        let _ = write!(s, ": {exe}");
    }
    s
}
