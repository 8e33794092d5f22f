//! Rule files: Elastic detection-rules TOML (EQL) and tokenscan's TOML form
//! of Tracee file-open signatures. Loading names the file, line and column
//! of any problem.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::capture::Projection;
pub use crate::engine::{CompiledRule, Verdict};
use crate::eql::{is_sequence, line_col, CompileOptions, EqlQuery, EqlSequence};
use crate::error::{Error, Position, Result};
use crate::signature::{Signature, SignatureFile};

/// The rule files built into tokenscan (the default rule set), by file name.
pub const BUILTIN_RULES: &[(&str, &str)] = &[
    (
        "elastic-d4c-service-account-token-read.toml",
        include_str!("../rules/elastic-d4c-service-account-token-read.toml"),
    ),
    (
        "tracee-trc-108-k8s-service-account-token.toml",
        include_str!("../rules/tracee-trc-108-k8s-service-account-token.toml"),
    ),
];

/// A loaded rule: identity, metadata and logic.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `66229f32-c460-410d-bc37-4b32322cd4bb`, `TRC-108`.
    pub id: String,
    /// Human name.
    pub name: String,
    /// `low`, `medium`, `high`, `critical` (Elastic) or `info`..`critical` (Tracee).
    pub severity: String,
    /// Elastic risk score, when given.
    pub risk_score: Option<f64>,
    /// MITRE ATT&CK mappings, one line each: `TA0006 Credential Access > T1552 ... > T1552.001 ...`.
    pub threat: Vec<String>,
    /// The file it came from (`<builtin>/NAME` for built-in rules).
    pub source: PathBuf,
    /// Byte offset of the EQL query text in the rule file (for positions of later diagnostics).
    pub query_offset: Option<usize>,
    /// SHA-256 of the rule file's text, lowercase hex: which exact text a
    /// finding or report came from (two files with the same id and version
    /// but different logic differ here).
    pub text_sha256: String,
    /// The compiled logic, whatever its kind: everything about the rule
    /// beyond identity and metadata goes through this interface.
    pub logic: Arc<dyn CompiledRule>,
}

impl Rule {
    /// Evaluates the rule on a whole batch (which must carry [`Rule::projection`]).
    pub fn evaluate(&self, batch: &crate::capture::EventBatch) -> Verdict {
        self.logic.evaluate(batch)
    }

    /// `eql` or `signature`.
    pub fn kind(&self) -> &'static str {
        self.logic.kind()
    }

    /// Why event `row` of `batch` fires (call only for events that fire).
    pub fn why(&self, batch: &crate::capture::EventBatch, row: usize) -> String {
        self.logic.why(batch, row)
    }

    /// Why each of `rows` of `batch` fires (see [`CompiledRule::why_rows`]).
    pub fn why_rows(&self, batch: &crate::capture::EventBatch, rows: &[usize]) -> Vec<String> {
        self.logic.why_rows(batch, rows)
    }

    /// Why event `row` of `batch` does not fire.
    pub fn why_not(&self, batch: &crate::capture::EventBatch, row: usize) -> String {
        self.logic.why_not(batch, row)
    }

    /// Whether the rule reads process-model fields (see [`CompiledRule::needs_process`]).
    pub fn needs_process(&self) -> bool {
        self.logic.needs_process()
    }

    /// Whether the rule needs containers' start-up (see [`CompiledRule::needs_container_starts`]).
    pub fn needs_container_starts(&self) -> bool {
        self.logic.needs_container_starts()
    }

    /// Capture columns the rule reads.
    pub fn projection(&self) -> Projection {
        self.logic.projection()
    }

    /// The rule's logic for `rules list --json`, as a JSON object.
    pub fn describe(&self) -> serde_json::Value {
        self.logic.describe()
    }

    /// The compiled sequence, for an EQL sequence rule (see [`CompiledRule::sequence`]).
    pub fn sequence(&self) -> Option<&crate::eql::EqlSequence> {
        self.logic.sequence()
    }

    /// The pipes after the rule's query (see [`CompiledRule::pipes`]).
    pub fn pipes(&self) -> &[crate::eql::ast::Pipe] {
        self.logic.pipes()
    }

    /// Whether the rule's findings depend on the whole stream of events (a
    /// sequence, or a query ending in pipes): then the driver decides them in
    /// a pass of their own before the usual one, and evaluation one batch at
    /// a time refuses the rule.
    pub fn needs_stream(&self) -> bool {
        self.sequence().is_some() || !self.pipes().is_empty()
    }
}

/// An ordered set of rules with unique ids.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct ElasticFile {
    rule: ElasticRule,
}

#[derive(Deserialize)]
struct ElasticRule {
    name: String,
    rule_id: String,
    severity: String,
    #[serde(default)]
    risk_score: Option<f64>,
    #[serde(default)]
    language: Option<toml::Spanned<String>>,
    #[serde(rename = "type", default)]
    rule_type: Option<String>,
    query: Option<toml::Spanned<String>>,
    #[serde(default)]
    threat: Vec<Threat>,
}

#[derive(Deserialize)]
struct Threat {
    tactic: Option<Named>,
    #[serde(default)]
    technique: Vec<Technique>,
}

#[derive(Deserialize)]
struct Named {
    id: String,
    name: String,
}

#[derive(Deserialize)]
struct Technique {
    id: String,
    name: String,
    #[serde(default)]
    subtechnique: Vec<Named>,
}

/// Line and column of a byte offset in a rule file's text.
pub(crate) fn position(text: &str, offset: usize) -> Position {
    let (line, column) = line_col(text, offset);
    Position { line, column }
}

fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> Error {
    let pos = e.span().map(|s| position(text, s.start));
    Error::rule(path, pos, e.message().trim().to_string())
}

/// Where the content of a TOML string value starts, given the value's span.
fn string_content_start(text: &str, value_start: usize) -> usize {
    let rest = &text[value_start..];
    for (delim, skip_newline) in [("'''", true), ("\"\"\"", true), ("'", false), ("\"", false)] {
        if let Some(after) = rest.strip_prefix(delim) {
            let mut start = value_start + delim.len();
            if skip_newline {
                if after.starts_with("\r\n") {
                    start += 2;
                } else if after.starts_with('\n') {
                    start += 1;
                }
            }
            return start;
        }
    }
    value_start
}

impl RuleSet {
    /// The built-in default rules: Elastic's D4C token-read rule and Tracee's TRC-108.
    pub fn builtin(options: &CompileOptions) -> Result<RuleSet> {
        RuleSet::from_sources(&builtin_sources(), options)
    }

    /// Loads rule files; a directory contributes its `*.toml` files, sorted by name.
    pub fn load<P: AsRef<Path>>(paths: &[P], options: &CompileOptions) -> Result<RuleSet> {
        let mut rules = Vec::new();
        for_each_rule_file(paths, |f, text| {
            rules.push(parse_rule(f, &text, options)?);
            Ok(())
        })?;
        RuleSet::new(rules)
    }

    /// Loads rule files as [`RuleSet::load`] does, but a rule file that cannot
    /// be loaded (or repeats an id) is left out instead of failing the whole
    /// set: the rules that load, and every problem of the files left out, in
    /// load order. A path that cannot be read or listed is still an error.
    pub fn load_skipping<P: AsRef<Path>>(paths: &[P], options: &CompileOptions) -> Result<(RuleSet, Vec<Error>)> {
        let mut rules: Vec<Rule> = Vec::new();
        let mut problems = Vec::new();
        for_each_rule_file(paths, |f, text| {
            match parse_rule_all(f, &text, options) {
                Ok(rule) => match rules.iter().find(|r| r.id == rule.id) {
                    Some(first) => problems.push(Error::rule(
                        f,
                        None,
                        format!("rule id {} is already defined by {}", rule.id, first.source.display()),
                    )),
                    None => rules.push(rule),
                },
                Err(errors) => problems.extend(errors),
            }
            Ok(())
        })?;
        Ok((RuleSet { rules }, problems))
    }

    /// A rule set from rule file texts, each with the path that names it in
    /// messages and as the rule's source (what [`read_rule_files`] returns).
    /// Lets a caller keep the texts, e.g. to rebuild the same rule set elsewhere.
    pub fn from_sources<P: AsRef<Path>, S: AsRef<str>>(
        sources: &[(P, S)],
        options: &CompileOptions,
    ) -> Result<RuleSet> {
        let rules = sources
            .iter()
            .map(|(path, text)| parse_rule(path.as_ref(), text.as_ref(), options))
            .collect::<Result<Vec<_>>>()?;
        RuleSet::new(rules)
    }

    /// A rule set from already-parsed rules; fails on a duplicate id.
    pub fn new(rules: Vec<Rule>) -> Result<RuleSet> {
        let mut seen = HashSet::new();
        for r in &rules {
            if !seen.insert(r.id.clone()) {
                let first = rules.iter().find(|o| o.id == r.id).expect("seen before");
                return Err(Error::rule(
                    &r.source,
                    None,
                    format!("rule id {} is already defined by {}", r.id, first.source.display()),
                ));
            }
        }
        Ok(RuleSet { rules })
    }

    /// The rules, in load order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Columns any rule reads.
    pub fn projection(&self) -> Projection {
        self.rules.iter().fold(Projection::default(), |p, r| p.union(r.projection()))
    }
}

/// The built-in rule files as `(path, text)`, paths `<builtin>/NAME` as in [`RuleSet::builtin`].
pub fn builtin_sources() -> Vec<(PathBuf, &'static str)> {
    BUILTIN_RULES.iter().map(|(name, text)| (Path::new("<builtin>").join(name), *text)).collect()
}

/// Reads the rule files [`RuleSet::load`] would load, without parsing them:
/// `(path, text)` in load order (a directory contributes its `*.toml` files, sorted by name).
pub fn read_rule_files<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    for_each_rule_file(paths, |f, text| {
        out.push((f.to_owned(), text));
        Ok(())
    })?;
    Ok(out)
}

fn for_each_rule_file<P: AsRef<Path>>(paths: &[P], mut f: impl FnMut(&Path, String) -> Result<()>) -> Result<()> {
    for p in paths {
        let p = p.as_ref();
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        let files = if meta.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::io(p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "toml") && f.is_file())
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(Error::rule(p, None, "directory holds no rule files (*.toml)"));
            }
            files
        } else {
            vec![p.to_owned()]
        };
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
            f(&file, text)?;
        }
    }
    Ok(())
}

/// Parses one rule file's text. `path` is used for messages and as the rule's source.
///
/// The file's top-level table names the rule kind (`[signature]`, `[rule]`);
/// a new kind of rule is one more branch here building its [`CompiledRule`].
pub fn parse_rule(path: &Path, text: &str, options: &CompileOptions) -> Result<Rule> {
    parse_rule_all(path, text, options).map_err(|mut errors| errors.swap_remove(0))
}

/// Like [`parse_rule`], but on failure returns every problem found, in file
/// order (never empty): all the errors of the query ([`EqlQuery::compile_all`]),
/// or the one error that stops reading the file (TOML syntax, a missing key,
/// an unsupported rule language).
pub fn parse_rule_all(path: &Path, text: &str, options: &CompileOptions) -> std::result::Result<Rule, Vec<Error>> {
    let mut rule = parse_rule_inner(path, text, options).map_err(|e| match e {
        Problems::One(e) => vec![e],
        Problems::Many(v) => v,
    })?;
    rule.text_sha256 = sha256_hex(text);
    Ok(rule)
}

/// Lowercase hex SHA-256 of `text`.
fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

enum Problems {
    One(Error),
    Many(Vec<Error>),
}

impl From<Error> for Problems {
    fn from(e: Error) -> Self {
        Problems::One(e)
    }
}

fn parse_rule_inner(path: &Path, text: &str, options: &CompileOptions) -> std::result::Result<Rule, Problems> {
    let table: toml::Table = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
    if table.contains_key("signature") {
        let file: SignatureFile = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
        let sig = Signature::from_file(file)
            .map_err(|(span, msg)| Error::rule(path, span.map(|s| position(text, s.start)), msg))?;
        return Ok(Rule {
            id: sig.id.clone(),
            name: sig.name.clone(),
            severity: sig.severity_name().to_string(),
            risk_score: None,
            threat: sig
                .properties
                .get("external_id")
                .map(|t| vec![format!("{t} {}", sig.properties.get("Technique").cloned().unwrap_or_default())])
                .unwrap_or_default(),
            source: path.to_owned(),
            query_offset: None,
            text_sha256: String::new(),
            logic: Arc::new(sig),
        });
    }
    if !table.contains_key("rule") {
        return Err(Problems::One(Error::rule(
            path,
            Some(Position { line: 1, column: 1 }),
            "not a rule file: expected a [rule] table (Elastic detection-rules TOML) or a [signature] table (Tracee-style signature)",
        )));
    }
    let file: ElasticFile = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
    let r = file.rule;
    if let Some(lang) = &r.language {
        if lang.get_ref() != "eql" {
            return Err(Problems::One(Error::rule(
                path,
                Some(position(text, lang.span().start)),
                format!(
                    "rule language {:?} is not supported: tokenscan replays EQL rules only (language = \"eql\")",
                    lang.get_ref()
                ),
            )));
        }
    } else if r.rule_type.as_deref().is_some_and(|t| t != "eql") {
        return Err(Problems::One(Error::rule(
            path,
            None,
            format!(
                "rule type {:?} is not supported: tokenscan replays EQL rules only",
                r.rule_type.as_deref().unwrap_or_default()
            ),
        )));
    }
    let query = r.query.ok_or_else(|| Error::rule(path, None, "the [rule] table has no `query`"))?;
    let content_start = string_content_start(text, query.span().start);
    let query_error = |e: crate::eql::CompileError| {
        Error::rule(path, Some(position(text, content_start + e.span.start)), format!("in `query`: {}", e.message))
    };
    let compiled: Arc<dyn CompiledRule> = if is_sequence(query.get_ref()) {
        let sequence = EqlSequence::compile_all(query.get_ref(), options)
            .map_err(|errors| Problems::Many(errors.into_iter().map(query_error).collect()))?;
        Arc::new(sequence)
    } else {
        let query = EqlQuery::compile_rule(query.get_ref(), options)
            .map_err(|errors| Problems::Many(errors.into_iter().map(query_error).collect()))?;
        Arc::new(query)
    };
    let threat = r
        .threat
        .iter()
        .flat_map(|t| {
            let tactic = t.tactic.as_ref().map(|n| format!("{} {}", n.id, n.name)).unwrap_or_default();
            t.technique.iter().flat_map(move |tech| {
                let base = format!("{tactic} > {} {}", tech.id, tech.name);
                if tech.subtechnique.is_empty() {
                    vec![base]
                } else {
                    tech.subtechnique.iter().map(|s| format!("{base} > {} {}", s.id, s.name)).collect()
                }
            })
        })
        .collect();
    Ok(Rule {
        id: r.rule_id,
        name: r.name,
        severity: r.severity,
        risk_score: r.risk_score,
        threat,
        source: path.to_owned(),
        query_offset: Some(content_start),
        text_sha256: String::new(),
        logic: compiled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_fips_180_2_test_vector() {
        // FIPS 180-2, appendix B.1: SHA-256("abc").
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn a_rule_carries_the_hash_of_its_whole_text() {
        let (name, text) = BUILTIN_RULES[0];
        let options = CompileOptions::default();
        let rule = parse_rule(Path::new(name), text, &options).expect("built-in rule loads");
        assert_eq!(rule.text_sha256, sha256_hex(text));
        // One byte more (a comment) is another text, with another hash.
        let edited = format!("{text}#\n");
        let other = parse_rule(Path::new(name), &edited, &options).expect("still loads");
        assert_ne!(other.text_sha256, rule.text_sha256);
        let (name, text) = BUILTIN_RULES[1];
        assert_eq!(parse_rule(Path::new(name), text, &options).expect("loads").text_sha256, sha256_hex(text));
    }
}
