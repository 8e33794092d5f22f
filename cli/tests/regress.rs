//! `tokenscan diff`, `test`, `rules check` and `gaps`, end to end.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use insta_cmd::{assert_cmd_snapshot, get_cargo_bin};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("cli/ has a parent").to_owned()
}

fn tokenscan() -> Command {
    let mut c = Command::new(get_cargo_bin("tokenscan"));
    c.current_dir(root());
    c
}

const SEED_ELASTIC: &str = "core/rules/elastic-d4c-service-account-token-read.toml";
const SEED_TRACEE: &str = "core/rules/tracee-trc-108-k8s-service-account-token.toml";
const V1: &str = "fixtures/rules/elastic-d4c-token-read-v1.toml";
const V5: &str = "fixtures/rules/elastic-d4c-token-read-v5.toml";
const V024: &str = "fixtures/rules/tracee-trc-108-v0.24.toml";

fn captures() -> Vec<String> {
    ["pod-session", "host-reads", "non-interactive", "tracee-trc108-unit", "edge-cases"]
        .iter()
        .map(|n| format!("fixtures/{n}.parquet"))
        .collect()
}

type Key = (String, u64);

/// Runs `diff` with ndjson output; returns (added, removed) as (capture stem, event index) sets.
fn diff(args: &[&str]) -> (BTreeSet<Key>, BTreeSet<Key>, Output) {
    let out = tokenscan().arg("diff").args(args).args(captures()).args(["-f", "ndjson", "-q"]).output().expect("runs");
    assert!(out.status.code() == Some(0) || out.status.code() == Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let (mut added, mut removed) = (BTreeSet::new(), BTreeSet::new());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let cap = Path::new(v["capture"].as_str().expect("capture")).file_stem().expect("stem");
        let key = (cap.to_string_lossy().into_owned(), v["event_index"].as_u64().expect("index"));
        assert!(!v["other_side"].as_str().expect("other_side").is_empty());
        match v["change"].as_str() {
            Some("added") => added.insert(key),
            Some("removed") => removed.insert(key),
            other => panic!("unexpected change {other:?}"),
        };
    }
    (added, removed, out)
}

fn keys(items: &[(&str, u64)]) -> BTreeSet<Key> {
    items.iter().map(|(c, i)| (c.to_string(), *i)).collect()
}

#[test]
fn elastic_v3_to_v5_adds_exactly_the_non_interactive_reads() {
    // Independent reading: v5 drops `process.interactive == true`, so the tty-less
    // `head` and `cat` execs and the tty-less O_WRONLY opens of the /var/run token
    // (Tracee's unit cases 1 and 5) start firing; nothing stops firing.
    let (added, removed, _) = diff(&["--baseline", SEED_ELASTIC, "--candidate", V5]);
    assert_eq!(
        added,
        keys(&[("non-interactive", 3), ("non-interactive", 10), ("tracee-trc108-unit", 1), ("tracee-trc108-unit", 5)])
    );
    assert!(removed.is_empty());
}

#[test]
fn tracee_v024_regex_drops_exactly_the_three_loose_matches() {
    let (added, removed, _) = diff(&["--baseline", SEED_TRACEE, "--candidate", V024]);
    assert!(added.is_empty());
    assert_eq!(removed, keys(&[("tracee-trc108-unit", 13), ("tracee-trc108-unit", 15), ("tracee-trc108-unit", 16)]));
}

#[test]
fn elastic_v1_to_v3_adds_every_v3_finding() {
    // v1 only watches write-intent opens of the two /var/run paths, interactively,
    // in a container: none of the bundled events qualifies.
    let (added, removed, _) = diff(&["--baseline", V1, "--candidate", SEED_ELASTIC]);
    assert!(removed.is_empty());
    let expected: BTreeSet<Key> =
        [("pod-session", [30u64, 33, 36, 42, 72, 73, 77]), ("edge-cases", [0, 2, 7, 21, 23, 25, 27])]
            .iter()
            .flat_map(|(c, idx)| idx.iter().map(move |i| (c.to_string(), *i)))
            .collect();
    assert_eq!(added, expected);
}

#[test]
fn identical_rule_sets_show_no_change_and_fail_on_diff_stays_zero() {
    let (added, removed, out) = diff(&["--baseline", SEED_ELASTIC, "--candidate", SEED_ELASTIC, "--fail-on-diff"]);
    assert!(added.is_empty() && removed.is_empty());
    assert_eq!(out.status.code(), Some(0));
    let (_, _, out) = diff(&["--baseline", SEED_ELASTIC, "--candidate", V5, "--fail-on-diff"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn diff_against_saved_findings_matches_diff_against_rules() {
    let tmp = tempfile::tempdir().expect("tmp");
    let saved = tmp.path().join("baseline.parquet");
    let st = tokenscan()
        .args(["replay", "--rules", SEED_ELASTIC, "--rules", SEED_TRACEE, "-f", "parquet", "-q", "-o"])
        .arg(&saved)
        .args(captures())
        .status()
        .expect("runs");
    assert!(st.success());
    let saved = saved.to_str().expect("utf-8 path");
    let against = diff(&["--against", saved, "--candidate", V5, "--candidate", V024]);
    let rules = diff(&["--baseline", SEED_ELASTIC, "--baseline", SEED_TRACEE, "--candidate", V5, "--candidate", V024]);
    assert_eq!((against.0, against.1), (rules.0, rules.1));
}

#[test]
fn diff_report_shows_counts_then_each_change_with_both_reasons() {
    let mut cmd = tokenscan();
    cmd.args(["diff", "--baseline", SEED_ELASTIC, "--candidate", V5, "fixtures/non-interactive.parquet"]);
    assert_cmd_snapshot!(cmd);
}

// ---------------------------------------------------------------------------
// tokenscan test

#[test]
fn the_shipped_suite_passes() {
    let out = tokenscan().args(["test", "fixtures"]).output().expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("13 cases: 13 passed, 0 failed"), "{text}");
}

#[test]
fn a_broken_expectation_fails_with_an_explanation_and_junit() {
    let tmp = tempfile::tempdir().expect("tmp");
    for f in ["pod-session.parquet", "edge-cases.parquet"] {
        std::fs::copy(root().join("fixtures").join(f), tmp.path().join(f)).expect("copy");
    }
    std::fs::write(
        tmp.path().join("tokenscan-test.toml"),
        r#"
[[case]]
name = "wrong: the cd + cat token exec does not fire for Elastic"
capture = "pod-session.parquet"
rule = "66229f32-c460-410d-bc37-4b32322cd4bb"
fire = [30, 58]
not_fire = [33]
fire_where = [{ comm = "python3" }]
max_count = 3

[[case]]
name = "right"
capture = "edge-cases.parquet"
rule = "TRC-108"
fire = [7, 19, 22, 24, 26]
unevaluable = [29]
"#,
    )
    .expect("write");
    let junit = tmp.path().join("junit.xml");
    let out = tokenscan().arg("test").arg(tmp.path()).arg("--junit").arg(&junit).output().expect("runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("2 cases: 1 passed, 1 failed"), "{text}");
    assert!(text.contains("event 58 must fire but does not:"), "{text}");
    assert!(text.contains("event 33 must not fire but does: exec branch:"), "{text}");
    assert!(text.contains("no finding matches { comm = \"python3\" }"), "{text}");
    assert!(text.contains("expected at most 3 findings, got 7"), "{text}");
    assert!(text.contains("unexpected finding at event 36"), "{text}");
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(xml.contains(r#"<testsuites name="tokenscan" tests="2" failures="1">"#), "{xml}");
    assert!(xml.contains("<failure message=\"event 58 must fire but does not:"), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 2);
}

#[test]
fn a_suite_with_an_unknown_field_is_an_error_with_its_position() {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = tmp.path().join("tokenscan-test.toml");
    std::fs::write(
        &p,
        "[[case]]\nname = \"x\"\ncapture = \"a.parquet\"\nrule = \"TRC-108\"\nfire_where = [{ cmd = \"cat\" }]\n",
    )
    .expect("write");
    let out = tokenscan().arg("test").arg(tmp.path()).output().expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("tokenscan-test.toml:1:1: case \"x\": `cmd` is not a finding field"), "{err}");
}

// ---------------------------------------------------------------------------
// tokenscan rules check

#[test]
fn rules_check_is_clean_on_shipped_rules() {
    for args in [vec!["rules", "check"], vec!["rules", "check", "core/rules", V1, V5, V024]] {
        let out = tokenscan().args(&args).output().expect("runs");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stdout));
    }
}

#[test]
fn rules_check_finds_conditions_that_can_never_hold() {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = tmp.path().join("lint.toml");
    std::fs::write(
        &p,
        r#"[rule]
name = "argv on file events"
rule_id = "lint-1"
severity = "low"
language = "eql"
query = '''
any where (event.category == "file" and process.args like "*token*") or
  (event.category == "process" and event.action == "open") or
  (event.category == "process" and file.path : "*token") or
  (event.category == "process" and not file.path : "*token")
'''
"#,
    )
    .expect("write");
    let sig = tmp.path().join("sig.toml");
    std::fs::write(
        &sig,
        "[signature]\nid = \"X-1\"\nname = \"x\"\nversion = \"1\"\nseverity = 1\n[selector]\nevent = \"security_file_open\"\norigin = \"container\"\n[match]\nallow_processes = [\"kube-controller-manager\"]\npath_regex = 'token$'\naccess = \"read\"\n",
    )
    .expect("write");
    let out = tokenscan().args(["rules", "check"]).arg(&p).arg(&sig).output().expect("runs");
    let text = String::from_utf8_lossy(&out.stdout).replace(&tmp.path().display().to_string(), "[TMP]");
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("[TMP]/lint.toml:7:41: warning: `process.args` is only set on process (exec) events"));
    assert!(
        lines[1].starts_with("[TMP]/lint.toml:8:3: warning: these conditions require a process event and a file event")
    );
    assert!(lines[2].starts_with("[TMP]/lint.toml:9:36: warning: `file.path` is only set on file events"));
    assert!(lines[3].starts_with("[TMP]/sig.toml:10:20: warning: allow-list entry \"kube-controller-manager\""));
}

#[test]
fn rules_check_warns_on_optional_fields_tokenscan_never_has() {
    // `?process.Ext.relative_file_creation_time` is not in tokenscan's ECS
    // field table (docs/rule-semantics.md): always missing, so the exclusion
    // always passes and the rule over-fires compared with Elasticsearch.
    let tmp = tempfile::tempdir().expect("tmp");
    let p = tmp.path().join("opt.toml");
    std::fs::write(
        &p,
        r#"[rule]
name = "optional exclusions"
rule_id = "lint-opt"
severity = "low"
language = "eql"
query = '''
process where process.name == "cat" and
  not ?process.Ext.relative_file_creation_time in (1, 2) and
  ?process.name == "sh" and ?file.Ext.original.name : "x"
'''
"#,
    )
    .expect("write");
    let out = tokenscan().args(["rules", "check"]).arg(&p).output().expect("runs");
    let text = String::from_utf8_lossy(&out.stdout).replace(&tmp.path().display().to_string(), "[TMP]");
    assert_eq!(out.status.code(), Some(1), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "[TMP]/opt.toml:8:7: warning: `?process.Ext.relative_file_creation_time` is not a field of tokenscan's \
             captures, so it is always missing: this negated condition always passes, so the rule can fire where \
             Elasticsearch, whose events may carry the field, would not",
            "[TMP]/opt.toml:9:29: warning: `?file.Ext.original.name` is not a field of tokenscan's captures, so it is \
             always missing: this condition is never true here, while in Elasticsearch it can be",
        ],
        "{text}"
    );
}

// ---------------------------------------------------------------------------
// tokenscan gaps

#[test]
fn gaps_groups_unflagged_credential_reads_by_why() {
    let out = tokenscan().args(["gaps"]).args(captures()).args(["-f", "ndjson"]).output().expect("runs");
    assert!(out.status.success());
    let gaps: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    let of = |capture: &str, index: u64| {
        gaps.iter()
            .find(|g| g["capture"].as_str().is_some_and(|c| c.contains(capture)) && g["event_index"] == index)
            .map(|g| g["gap"].as_str().expect("gap").to_string())
    };
    // Failed opens of the token.
    assert_eq!(of("edge-cases", 1).as_deref(), Some("failed_open"));
    // Host reads, including kubelet's projected volume path.
    assert_eq!(of("host-reads", 6).as_deref(), Some("host_origin"));
    // coredns reading its token: allow-listed by TRC-108, and read-only for Elastic.
    assert_eq!(of("non-interactive", 6).as_deref(), Some("allow_listed"));
    // `cd .../serviceaccount && cat token`: the exec's argv never names the path.
    assert!(gaps.iter().any(|g| g["gap"] == "exec_not_matched" && g["comm"] == "cat"));
    // Tracee's regex cases outside the seed regex.
    assert_eq!(of("tracee-trc108-unit", 12).as_deref(), Some("path_outside_patterns"));
    // Everything a rule flagged is absent.
    assert_eq!(of("pod-session", 30), None);
    assert_eq!(of("pod-session", 32), None);
}
