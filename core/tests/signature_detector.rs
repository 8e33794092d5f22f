//! TRC-108's detector generation (aquasecurity/tracee
//! detectors/k8s_service_account_token.go, 2025-12) next to the signature
//! generation (the seed): allow-list by the executable's file name instead of
//! the comm, and a missing argument means no finding instead of an error.
//! Expectations are worked out by hand from the two Go sources' logic.

use std::path::{Path, PathBuf};

use arrow::array::AsArray;
use arrow::datatypes::UInt64Type;

use tokenscan_core::eql::CompileOptions;
use tokenscan_core::replay::{CollectSink, ReplayOptions, ReplaySummary, Replayer};
use tokenscan_core::rules::RuleSet;

const TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

fn open(ms: u32, comm: &str, exe: &str, flags: &str) -> String {
    format!(
        "{{\"time\":\"2026-11-20T10:15:00.{ms:03}000000Z\",\"kind\":\"open\",\"host\":\"n\",\"pid\":{p},\"tid\":{p},\"ppid\":1,\"uid\":0,\"gid\":0,\"comm\":\"{comm}\",\"exe\":\"{exe}\",\"args\":null,\"path\":\"{TOKEN}\",\"requested_path\":\"{TOKEN}\",\"flags\":{flags},\"result\":3,\"tty\":null,\"cgroup_id\":1,\"container_id\":\"31177b9213d8aa\"}}\n",
        p = 100 + ms
    )
}

fn capture() -> String {
    [
        // 0: kube-controller-manager: the kernel truncates its comm to 15 bytes,
        // "kube-controller", which the comm allow-list names; its executable's
        // file name "kube-controller-manager" is not in the list.
        open(0, "kube-controller", "/usr/local/bin/kube-controller-manager", "0"),
        // 1: kubectl, allow-listed either way.
        open(1, "kubectl", "/usr/bin/kubectl", "0"),
        // 2: kubectl under another comm (prctl PR_SET_NAME): only the executable says kubectl.
        open(2, "worker", "/usr/bin/kubectl", "0"),
        // 3: a read without flags: the signature errors, the detector stays silent.
        open(3, "cat", "/bin/cat", "null"),
        // 4: an ordinary read by cat: both fire.
        open(4, "cat", "/bin/cat", "0"),
    ]
    .concat()
}

fn replay(rule: &Path, capture: &Path) -> (Vec<u64>, ReplaySummary) {
    let rules = RuleSet::load(&[rule], &CompileOptions::default()).unwrap();
    let mut sink = CollectSink::default();
    let summary = Replayer::new(rules, ReplayOptions::default()).replay(&[capture], &mut sink).unwrap();
    let mut out = Vec::new();
    for b in &sink.batches {
        let ix = b.column(b.schema().index_of("event_index").unwrap()).as_primitive::<UInt64Type>();
        out.extend(ix.values().iter().copied());
    }
    (out, summary)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

#[test]
fn the_detector_allow_lists_by_executable_name_and_ignores_missing_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.ndjson");
    std::fs::write(&path, capture()).unwrap();
    let (seed, seed_summary) = replay(&root().join("core/rules/tracee-trc-108-k8s-service-account-token.toml"), &path);
    let (detector, det_summary) = replay(&root().join("fixtures/rules/tracee-trc-108-detector.toml"), &path);
    // Seed: 0 and 1 allow-listed by comm, 2 fires (comm "worker"), 3 cannot be evaluated, 4 fires.
    assert_eq!(seed, vec![2, 4]);
    assert_eq!(seed_summary.rules[0].unevaluable, 1);
    // Detector: 0 fires (kube-controller-manager), 1 and 2 allow-listed (kubectl), 3 silent, 4 fires.
    assert_eq!(detector, vec![0, 4]);
    assert_eq!(det_summary.rules[0].unevaluable, 0);
}
