//! `tokenscan rules check` and `tokenscan rules list`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use tokenscan_core::lint::{check_file, lint_rule, Severity};
use tokenscan_core::rules::{RuleSet, BUILTIN_RULES};

use crate::args::{CompileArgs, ListFormat, RuleArgs};
use crate::render::{json, messages, table};
use crate::{EXIT_FINDINGS, EXIT_OK};

/// `tokenscan rules`.
#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Lint rule files: syntax, unknown fields and functions, and conditions that can never be true
    /// (a field the branch's events never carry). Exit 0 when clean, 1 when anything was reported.
    Check {
        /// Rule files or directories (default: the built-in rules).
        paths: Vec<PathBuf>,
        #[command(flatten)]
        compile: CompileArgs,
    },
    /// List the loaded rules with id, kind, severity and source file.
    List {
        #[command(flatten)]
        rules: RuleArgs,
        /// Output format (table or json).
        #[arg(long, short = 'f', value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
}

/// Runs `tokenscan rules ...`.
pub fn run(cmd: RulesCommand) -> Result<u8> {
    match cmd {
        RulesCommand::Check { paths, compile } => check(&paths, &compile),
        RulesCommand::List { rules, format } => {
            let set = rules.load()?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&json::rules(&set))?),
                ListFormat::Table => print!("{}", table::rules(&set)),
            }
            Ok(EXIT_OK)
        }
    }
}

/// `tokenscan rules check`: exit 0 when nothing was reported, 1 otherwise.
fn check(paths: &[PathBuf], compile: &CompileArgs) -> Result<u8> {
    let options = compile.options();
    let mut diagnostics = Vec::new();
    let mut files = 0;
    if paths.is_empty() {
        let set = RuleSet::builtin(&options)?;
        for (rule, (_, text)) in set.rules().iter().zip(BUILTIN_RULES) {
            files += 1;
            diagnostics.extend(lint_rule(rule, text));
        }
    } else {
        for p in paths {
            let list = if p.is_dir() {
                let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                    .with_context(|| format!("{}: cannot list", p.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| f.extension().is_some_and(|x| x == "toml") && f.is_file())
                    .collect();
                v.sort();
                v
            } else {
                vec![p.clone()]
            };
            for f in list {
                files += 1;
                diagnostics.extend(check_file(&f, &options));
            }
        }
    }
    print!("{}", table::diagnostics(&diagnostics));
    let errors = diagnostics.iter().filter(|d| d.severity == Severity::Error).count();
    let warnings = diagnostics.len() - errors;
    eprint!("{}", messages::checked(files, errors, warnings));
    Ok(if diagnostics.is_empty() { EXIT_OK } else { EXIT_FINDINGS })
}
