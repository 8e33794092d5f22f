//! `tokenscan report`: the data section of the triage report for every
//! fixture (an insta snapshot), hostile capture strings staying text, and the
//! page in a real browser (Debian's headless `chromium`, installed by
//! `./dev.sh`): no console message, no network request, and the counts, pod
//! names, process tree and hostile strings in the DOM as the capture says.
//!
//! How the browser test sees problems without a debugging protocol: chromium
//! runs with `--enable-logging=stderr --v=0`, which prints every console
//! message as an `INFO:CONSOLE` line (a blocked request is one too: the page's
//! content security policy reports it there), and the page's own script
//! writes its result into `#self-check` (`data-status="ok"`, or `error` with
//! any script error or blocked request), which `--dump-dom` shows.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use insta_cmd::get_cargo_bin;

/// The workspace root, so fixture paths in the report are stable (`fixtures/...`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("cli/ has a parent").to_owned()
}

const FIXTURES: &[&str] = &["pod-session", "host-reads", "non-interactive", "tracee-trc108-unit", "edge-cases"];

const TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "\"><img src=x onerror=alert(1)>";

/// Runs a command with a deadline (a hang fails the test). Its output is read
/// while it runs: a child writing more than a pipe holds would otherwise block.
fn run(cmd: &mut Command, secs: u64) -> Output {
    use std::io::Read as _;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            r.read_to_end(&mut buf).expect("read output");
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let stdout = out.join().expect("stdout reader");
            let stderr = err.join().expect("stderr reader");
            return Output { status, stdout, stderr };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} still running after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `tokenscan report CAPTURE -o OUT` from the workspace root; the HTML.
fn report(capture: &str, out: &Path) -> String {
    let o =
        run(Command::new(get_cargo_bin("tokenscan")).current_dir(root()).args(["report", capture, "-o"]).arg(out), 60);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(out).expect("report written")
}

/// The JSON of `<script type="application/json" id="report-data">`.
fn data_of(html: &str) -> serde_json::Value {
    let open = "<script type=\"application/json\" id=\"report-data\">";
    let start = html.find(open).expect("data element") + open.len();
    let len = html[start..].find("</script>").expect("end of data element");
    serde_json::from_str(&html[start..start + len]).expect("data is JSON")
}

/// The data with each timeline row's 120 buckets written as `bucket:count`
/// pairs of the non-empty ones, so the snapshot can be read.
fn readable(mut data: serde_json::Value) -> serde_json::Value {
    for row in data["timeline"]["rows"].as_array_mut().expect("rows") {
        for key in ["events", "findings"] {
            let sparse: Vec<String> = row[key]
                .as_array()
                .expect("buckets")
                .iter()
                .enumerate()
                .filter(|(_, n)| n.as_u64() != Some(0))
                .map(|(i, n)| format!("{i}:{n}"))
                .collect();
            row[key] = sparse.join(" ").into();
        }
    }
    data
}

#[test]
fn report_data_for_every_fixture() {
    let tmp = tempfile::tempdir().expect("tmp");
    for name in FIXTURES {
        let html = report(&format!("fixtures/{name}.parquet"), &tmp.path().join(format!("{name}.html")));
        let data = data_of(&html);
        // Same input, same bytes.
        let again = report(&format!("fixtures/{name}.parquet"), &tmp.path().join(format!("{name}-2.html")));
        assert!(html == again, "{name}: two reports differ");
        let text = serde_json::to_string_pretty(&readable(data)).expect("json");
        insta::with_settings!({ snapshot_suffix => *name }, {
            insta::assert_snapshot!(text);
        });
    }
}

/// Container C of [`hostile_capture`], its pod's hostile namespace and name, and its
/// `cat`'s hostile token path.
const C: &str = "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0";
const HOSTILE_NS: &str = "\"><img src=x onerror=alert(2)>";
const HOSTILE_POD: &str = "<script>alert(3)</script>";
const HOSTILE_PATH: &str = "/run/secrets/kubernetes.io/serviceaccount/<b onclick=alert(4)>x</b>/token";

/// pod-session.ndjson, the metadata of its two containers (facts from the
/// fixture's header: pod default/web-7d9f8c6b5-x2k4p and DaemonSet pod
/// kube-system/kube-proxy-9wz4t), one more interactive `cat` of the token in
/// container A whose other arguments are hostile markup, and a third container
/// C whose pod namespace and name are hostile markup, where a `cat` (no tty, pid
/// 7001, no parent) opens a token path holding markup read-only.
///
/// The session is explicit: the fixture's shell (pid 51001, `kubectl exec -it ... -- sh`,
/// a new session) and the commands it runs get session id 51001, as a version 2
/// recorder would write it.
fn hostile_capture(dir: &Path) -> PathBuf {
    let a = "48c9dfca9bda9dfa36f83121c6185b99f99f5280628b35a906477e79d29c31ad";
    let b = "df61c8d5c880b09ce957288dc684699b942a6ce424d9f36bb9d369142e5318be";
    let meta = |id: &str, pod: &str, ns: &str, name: &str| {
        serde_json::json!({"time":"2026-11-20T10:14:59.000000000Z","kind":"container","host":"node-a","pid":1,"tid":1,
            "ppid":0,"uid":0,"gid":0,"comm":"runc","cgroup_id":0,"container_id":id,"pod_name":pod,
            "pod_namespace":ns,"container_name":name})
        .to_string()
    };
    let args = serde_json::to_string(&["cat", SCRIPT, IMG, TOKEN]).expect("json");
    let exec = format!(
        r#"{{"time":"2026-11-20T10:16:57.000000000Z","kind":"exec","host":"node-a","pid":51200,"tid":51200,"ppid":51001,"sid":51001,"uid":0,"gid":0,"comm":"cat","exe":"/usr/bin/cat","args":{args},"path":"/usr/bin/cat","requested_path":"/usr/bin/cat","result":0,"tty":"pts/0","cgroup_id":11873,"container_id":"{a}"}}"#
    );
    let open_c = serde_json::json!({"time":"2026-11-20T10:17:00.000000000Z","kind":"open","host":"node-a","pid":7001,
        "tid":7001,"ppid":0,"uid":0,"gid":0,"comm":"cat","exe":"/bin/cat","path":HOSTILE_PATH,"requested_path":HOSTILE_PATH,
        "flags":0,"result":3,"cgroup_id":777,"container_id":C})
    .to_string();
    let mut text = meta(a, "web-7d9f8c6b5-x2k4p", "default", "web") + "\n";
    text += &(meta(b, "kube-proxy-9wz4t", "kube-system", "kube-proxy") + "\n");
    text += &(meta(C, HOSTILE_POD, HOSTILE_NS, "c") + "\n");
    for line in std::fs::read_to_string(root().join("fixtures/pod-session.ndjson")).expect("fixture").lines() {
        if !line.starts_with('{') {
            continue;
        }
        let mut ev: serde_json::Value = serde_json::from_str(line).expect("event");
        if ev["container_id"] == a && (ev["pid"] == 51001 || ev["ppid"] == 51001) {
            ev["sid"] = 51001.into();
        }
        text += &(ev.to_string() + "\n");
    }
    text += &(exec + "\n");
    text += &(open_c + "\n");
    let path = dir.join("hostile.ndjson");
    std::fs::write(&path, text).expect("write");
    path
}

/// The serialized DOM without the text of its attribute values (Chromium's
/// serializer writes every value in double quotes, a `"` in it as `&quot;`,
/// and a `<` in text as `&lt;`): what is left holds a `<` only where an
/// element or comment starts.
fn markup_only(dom: &str) -> String {
    let (mut out, mut in_tag, mut in_value) = (String::new(), false, false);
    for c in dom.chars() {
        match c {
            '"' if in_tag => in_value = !in_value,
            _ if in_value => continue,
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ => {}
        }
        out.push(c);
    }
    out
}

#[test]
fn rules_from_files_carry_their_version_and_the_hash_of_their_text() {
    // Two of the fixture rule files: Elastic's query v1 (no version key in detection-rules
    // layout, so its `[metadata] updated_date`) and a Tracee signature of version "1.0.0",
    // as the files say; each hash as `sha256sum` prints it.
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("r.html");
    let (v1, detector) =
        ("fixtures/rules/elastic-d4c-token-read-v1.toml", "fixtures/rules/tracee-trc-108-detector.toml");
    let o = run(
        Command::new(get_cargo_bin("tokenscan"))
            .current_dir(root())
            .args(["report", "fixtures/pod-session.parquet", "--rules", v1, "--rules", detector, "-o"])
            .arg(&out),
        60,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let data = data_of(&std::fs::read_to_string(&out).expect("report"));
    let rules: Vec<(&str, &str, &str)> = data["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            (
                r["source"].as_str().expect("source"),
                r["version"].as_str().expect("version"),
                r["text_sha256"].as_str().expect("hash"),
            )
        })
        .collect();
    let (h1, h2) = (sha256sum(&root().join(v1)), sha256sum(&root().join(detector)));
    assert_eq!(rules, [(v1, "2026/01/01", h1.as_str()), (detector, "1.0.0", h2.as_str())]);
}

#[test]
fn hostile_argv_stays_data() {
    let tmp = tempfile::tempdir().expect("tmp");
    let capture = hostile_capture(tmp.path());
    let html = report(capture.to_str().expect("utf-8"), &tmp.path().join("r.html"));
    // Not in the markup as markup: no hostile string appears literally anywhere in the page.
    for hostile in [SCRIPT, IMG, HOSTILE_NS, HOSTILE_POD, HOSTILE_PATH, "<img", "<b "] {
        assert!(!html.contains(hostile), "hostile markup {hostile:?} in the page");
    }
    // But the data carries them exactly.
    let data = data_of(&html);
    let args: Vec<&serde_json::Value> = data["trees"][0]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["pid"] == 51200)
        .map(|n| &n["args"])
        .collect();
    assert_eq!(args, [&serde_json::json!(["cat", SCRIPT, IMG, TOKEN])]);
    let c = data["findings"].as_array().expect("findings").iter().find(|f| f["container_id"] == C).expect("C").clone();
    assert_eq!((c["namespace"].as_str(), c["pod"].as_str()), (Some(HOSTILE_NS), Some(HOSTILE_POD)));
}

/// The text of the element `<tag ... id="id" ...>` in serialized DOM (the first one).
fn element_text<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the DOM"));
    let start = at + dom[at..].find('>').expect("tag end") + 1;
    let end = start + dom[start..].find('<').expect("text end");
    &dom[start..end]
}

fn chromium(args: &[&str], profile: &Path) -> Output {
    let o = run(
        Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(args),
        60,
    );
    assert!(o.status.success(), "chromium failed: {}", String::from_utf8_lossy(&o.stderr));
    o
}

/// `sha256sum FILE`'s digest (coreutils, not our code).
fn sha256sum(file: &Path) -> String {
    let o = run(Command::new("sha256sum").arg(file), 10);
    assert!(o.status.success(), "sha256sum failed");
    String::from_utf8(o.stdout).expect("utf-8").split_whitespace().next().expect("digest").to_string()
}

/// (depth, pid, has findings, session leader) of each `<li class="node...">` of a piece of DOM.
fn tree_nodes(dom: &str) -> Vec<(u64, u64, bool, bool)> {
    dom.match_indices("<li class=\"node")
        .map(|(at, _)| {
            let li = &dom[at..at + dom[at..].find('>').expect("li end")];
            let attr = |name: &str| -> u64 {
                let s = &li[li.find(&format!("{name}=\"")).expect("attribute") + name.len() + 2..];
                s[..s.find('"').expect("quote")].parse().expect("number")
            };
            (attr("data-depth"), attr("data-pid"), li.starts_with("<li class=\"node hit\""), li.contains("data-leader"))
        })
        .collect()
}

#[test]
fn the_report_in_a_real_browser() {
    assert!(
        Command::new("chromium").arg("--version").output().is_ok_and(|o| o.status.success()),
        "chromium is missing: `apt-get install -y chromium` (./dev.sh installs it)"
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let capture = hostile_capture(tmp.path());
    let page = tmp.path().join("report.html");
    report(capture.to_str().expect("utf-8"), &page);
    let url = format!("file://{}", page.display());
    let out = chromium(&["--dump-dom", &url], &tmp.path().join("profile"));
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);

    // No console message at all (errors, blocked requests), and the page's own check passed.
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert_eq!(element_text(&dom, "self-check"), "self-check: ok", "{dom}");

    // Counts. pod-session: 83 events, 14 findings (fixtures/EXPECTED.md); the three
    // container rows, the hostile exec and C's open are 5 more rows. The exec is an
    // interactive `cat` with the token path in a container: one more Elastic exec-branch
    // finding. C's open is a read-only (flags 0) open in a container by a `cat` not on
    // TRC-108's allow-list, of a path the regex `serviceaccount.+token$` matches: one more
    // TRC-108 finding (the Elastic file branch needs an open with write intent).
    assert_eq!(element_text(&dom, "count-events"), "88");
    assert_eq!(element_text(&dom, "count-findings"), "16");

    // The rules: each with its version and the SHA-256 of its text (short, the whole on hover),
    // as `sha256sum core/rules/*.toml` prints them.
    let rules = &dom[dom.find("id=\"rule-table\"").expect("rule table")..];
    let rules = &rules[..rules.find("</table>").expect("table end")];
    for (file, version) in [
        ("elastic-d4c-service-account-token-read.toml", "2026/02/01"),
        ("tracee-trc-108-k8s-service-account-token.toml", "1"),
    ] {
        let sha = sha256sum(&root().join("core/rules").join(file));
        let cell = format!("<td class=\"mono sha\" title=\"{sha}\">{}</td>", &sha[..12]);
        assert!(rules.contains(&cell), "{cell} not in {rules}");
        assert!(rules.contains(&format!("<td>{version}</td>")), "version {version} not in {rules}");
    }

    // Pod names: the findings are in web's container and C's; kube-proxy's reads are
    // allow-listed (gaps).
    let findings = &dom[dom.find("id=\"finding-table\"").expect("finding table")..];
    let findings = &findings[..findings.find("</table>").expect("table end")];
    assert!(findings.contains("<td>default</td><td>web-7d9f8c6b5-x2k4p</td><td>web</td>"), "{findings}");
    assert!(!findings.contains("kube-proxy"), "{findings}");
    assert!(dom.contains("kube-system/kube-proxy-9wz4t:kube-proxy"), "timeline row of kube-proxy");

    // One tree per pod container and session with findings, in the order of their first
    // process: web's session of sh (pid 51001), then C (no session ids there).
    let groups: Vec<&str> = dom.split("<section class=\"tree-group\"").skip(1).collect();
    assert_eq!(groups.len(), 2, "{dom}");
    assert!(
        groups[0].contains(
            ">pod default/web-7d9f8c6b5-x2k4p:web</span><span class=\"session\">, session of sh (pid 51001)</span>"
        ),
        "{}",
        groups[0]
    );
    assert!(groups[0].starts_with(" data-session=\"51001\">"), "{}", groups[0]);
    assert!(groups[1].contains(", session unknown (the capture has no session ids)"), "{}", groups[1]);

    // web's tree: containerd-shim (41200) > sh (51001, the session leader) > one child per
    // reader with a finding. Expected readers: the pids of the finding events of
    // EXPECTED.md, read from the fixture.
    let events: Vec<serde_json::Value> = std::fs::read_to_string(root().join("fixtures/pod-session.ndjson"))
        .expect("fixture")
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("event"))
        .collect();
    let mut readers: Vec<u64> = [30, 32, 33, 35, 36, 42, 44, 53, 60, 72, 73, 76, 77, 82]
        .iter()
        .map(|&i: &usize| events[i]["pid"].as_u64().expect("pid"))
        .collect();
    readers.dedup();
    readers.push(51200);
    let mut expected = vec![(0, 41200, false, false), (1, 51001, false, true)];
    expected.extend(readers.iter().map(|&p| (2, p, true, false)));
    assert_eq!(tree_nodes(groups[0]), expected);
    assert_eq!(tree_nodes(groups[1]), [(0, 7001, true, false)]);
    // Each finding's reason on demand, in a closed <details>.
    assert_eq!(groups[0].matches("<details>").count(), 15, "{}", groups[0]);

    // Every hostile string is text: escaped in the serialized DOM, and no element made of it.
    assert!(
        dom.contains("cat &lt;script&gt;alert(1)&lt;/script&gt; \"&gt;&lt;img src=x onerror=alert(1)&gt;"),
        "{dom}"
    );
    assert!(
        findings.contains(
            "<td>\"&gt;&lt;img src=x onerror=alert(2)&gt;</td><td>&lt;script&gt;alert(3)&lt;/script&gt;</td><td>c</td>"
        ),
        "{findings}"
    );
    assert!(
        groups[1]
            .contains(">pod \"&gt;&lt;img src=x onerror=alert(2)&gt;/&lt;script&gt;alert(3)&lt;/script&gt;:c</span>"),
        "{}",
        groups[1]
    );
    assert!(
        groups[1].contains("serviceaccount/&lt;b onclick=alert(4)&gt;x&lt;/b&gt;/token"),
        "the path in C's reason: {}",
        groups[1]
    );
    let markup = markup_only(&dom);
    for tag in ["<img", "<script>alert", "<b "] {
        assert!(!markup.contains(tag), "hostile markup {tag:?} became an element");
    }
    assert_eq!(markup.matches("<script").count(), 2, "only the page's own two script elements");

    // A screenshot for people (kept under target/).
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report");
    std::fs::create_dir_all(&shots).expect("mkdir");
    let shot = shots.join("report.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &["--window-size=1280,1800", "--hide-scrollbars", &format!("--screenshot={}", shot.display()), &url],
        &tmp.path().join("profile"),
    );
    assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000), "no screenshot at {}", shot.display());
}

#[test]
fn a_process_with_many_arguments_and_findings_is_cut_to_the_bounds() {
    // One non-interactive `cat` (no tty: the Elastic rule needs an interactive process)
    // with 100 arguments, which opens the token 15 times read-only: 15 TRC-108 findings.
    let tmp = tempfile::tempdir().expect("tmp");
    let c = r#""host":"h","pid":7,"tid":7,"ppid":1,"uid":0,"gid":0,"comm":"cat","cgroup_id":5,"container_id":"c0ffee""#;
    let args: Vec<String> = (0..100).map(|i| format!("{}{i}", "x".repeat(300))).collect();
    let args = serde_json::to_string(&args).expect("json");
    let mut text = format!(
        r#"{{"time":1,"kind":"exec",{c},"exe":"/bin/cat","args":{args},"path":"/bin/cat","requested_path":"/bin/cat","result":0}}"#
    ) + "\n";
    for i in 0..15 {
        text += &format!(r#"{{"time":{},"kind":"open",{c},"path":"{TOKEN}","flags":0,"result":3}}"#, i + 2);
        text += "\n";
    }
    let capture = tmp.path().join("many.ndjson");
    std::fs::write(&capture, text).expect("write");
    let data = data_of(&report(capture.to_str().expect("utf-8"), &tmp.path().join("r.html")));
    assert_eq!(data["summary"]["findings"], 15);
    let node =
        data["trees"][0]["nodes"].as_array().expect("nodes").iter().find(|n| n["pid"] == 7).expect("the cat").clone();
    assert_eq!(node["findings"].as_array().expect("findings").len(), 10);
    assert_eq!(node["findings_omitted"], 5);
    let kept = node["args"].as_array().expect("args");
    assert_eq!(kept.len(), 32);
    assert_eq!(node["args_omitted"], 68);
    // 256 characters of "xxx...x0" kept, then the ellipsis.
    assert_eq!(kept[0].as_str().expect("arg"), format!("{}…", "x".repeat(256)));
}

#[test]
fn lost_events_are_a_plain_warning_and_the_recorder_is_named() {
    use tokenscan_core::capture::{events_from_ndjson, ParquetCaptureWriter, WriterOptions};
    // A recorder's capture that says it lost 3 events (tokenscan.lost_events).
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("lossy.parquet");
    let file = std::fs::File::create(&path).expect("create");
    let mut w = ParquetCaptureWriter::new(file, &path, WriterOptions::default()).expect("writer");
    let ndjson = std::fs::read_to_string(root().join("fixtures/host-reads.ndjson")).expect("fixture");
    for b in events_from_ndjson(&ndjson, "events", 4096).expect("events") {
        w.write(&b).expect("write");
    }
    w.append_metadata("tokenscan.lost_events", "3");
    // What ebpf-recorder/src/run.rs writes about itself.
    for (k, v) in [
        ("tokenscan.recorder", "tokenscan-record"),
        ("tokenscan.recorder_version", "0.1.0"),
        ("tokenscan.hostname", "node-a"),
        ("tokenscan.kernel_release", "6.18.0"),
        ("tokenscan.containers_only", "true"),
    ] {
        w.append_metadata(k, v);
    }
    w.close().expect("close");
    let html = report(path.to_str().expect("utf-8"), &tmp.path().join("r.html"));
    assert_eq!(data_of(&html)["capture_metadata"][0]["lost_events"], 3);
    let out =
        chromium(&["--dump-dom", &format!("file://{}", tmp.path().join("r.html").display())], &tmp.path().join("p"));
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("the recorder lost 3 events: the capture is incomplete"), "{dom}");
    let line = format!(
        "{}: recorded by tokenscan-record 0.1.0 on node-a (kernel 6.18.0); options: containers_only=true",
        path.display()
    );
    assert!(dom.contains(&line), "{line} not in {dom}");
}

#[test]
fn the_page_stays_within_its_size_bound_on_a_capture_that_hits_every_limit() {
    use tokenscan_core::report::{MAX_REPORT_BYTES, TIMELINE_ROWS};
    // 400 containers whose id, pod namespace, pod name and container name are 300
    // characters of `<` (6 bytes each in the page's JSON), each with a `cat` (no tty)
    // opening the token read-only: one TRC-108 finding each. In the first 60, the `cat`
    // is interactive and was exec'd with 40 arguments of 300 `<` and the token path (one
    // Elastic exec-branch finding), and it also opens a token path holding 1100 `<`
    // read-only 12 times (12 TRC-108 findings: `serviceaccount.+token$` matches). On the
    // host, 30 such opens by a process named with 300 `<` (no rule looks at the host: 30
    // host-origin gaps).
    let tmp = tempfile::tempdir().expect("tmp");
    let lt = |n: usize| "<".repeat(n);
    let path = format!("/run/secrets/kubernetes.io/serviceaccount/{}/token", lt(1100));
    let mut args = vec!["cat".to_string()];
    args.extend((0..40).map(|_| lt(300)));
    args.push(TOKEN.to_string());
    let mut text = String::new();
    let mut t = 1_000_000_000u64;
    let mut line = |v: serde_json::Value| {
        t += 1000;
        let mut v = v;
        v["time"] = t.into();
        text.push_str(&v.to_string());
        text.push('\n');
    };
    for i in 0..400u32 {
        let id = format!("{i:04}{}", lt(300));
        let name = lt(300);
        line(serde_json::json!({"kind":"container","host":"n","pid":1,"tid":1,"ppid":0,"uid":0,"gid":0,"comm":"runc",
            "cgroup_id":0,"container_id":id,"pod_name":name,"pod_namespace":name,"container_name":name}));
        let mut p = serde_json::json!({"host":"n","pid":10_000 + i,"tid":10_000 + i,"ppid":0,"uid":0,"gid":0,
            "comm":"cat","cgroup_id":1,"container_id":id});
        if i < 60 {
            p["tty"] = "pts/0".into();
            let mut exec = p.clone();
            exec["kind"] = "exec".into();
            exec["exe"] = "/usr/bin/cat".into();
            exec["args"] = serde_json::json!(args);
            exec["path"] = "/usr/bin/cat".into();
            exec["result"] = 0.into();
            line(exec);
        }
        let opens = if i < 60 {
            vec![TOKEN.to_string(); 1].into_iter().chain(vec![path.clone(); 12]).collect()
        } else {
            vec![TOKEN.to_string()]
        };
        for opened in opens {
            let mut open = p.clone();
            open["kind"] = "open".into();
            open["path"] = opened.into();
            open["flags"] = 0.into();
            open["result"] = 3.into();
            line(open);
        }
    }
    for k in 0..30u32 {
        line(serde_json::json!({"kind":"open","host":"n","pid":90 + k,"tid":90 + k,"ppid":1,"uid":0,"gid":0,
            "comm":lt(300),"cgroup_id":1,"path":path,"flags":0,"result":3}));
    }
    let capture = tmp.path().join("big.ndjson");
    std::fs::write(&capture, text).expect("write");
    let out = tmp.path().join("r.html");
    // Long strings make this slow in a debug build on a loaded machine: a longer deadline.
    let o = run(Command::new(get_cargo_bin("tokenscan")).args(["report"]).arg(&capture).arg("-o").arg(&out), 600);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(&out).expect("report written");
    eprintln!("page: {} bytes (bound {MAX_REPORT_BYTES})", html.len());
    assert!(html.len() <= MAX_REPORT_BYTES, "{} bytes > {MAX_REPORT_BYTES}", html.len());

    let data = data_of(&html);
    assert_eq!(data["summary"]["events"], 400 * 2 + 60 * 13 + 30);
    assert_eq!(data["summary"]["findings"], 400 + 60 * 13);
    // Every limit was hit, and what was left out is counted.
    let rows = data["timeline"]["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), TIMELINE_ROWS);
    // 401 rows (the host's 30 events first), 39 shown on their own, 362 merged.
    assert_eq!(rows[0]["label"], "host");
    assert_eq!(rows[TIMELINE_ROWS - 1]["label"], "362 other containers");
    assert!(data["findings_omitted"].as_u64().expect("n") > 0);
    assert!(data["tree_nodes_omitted"].as_u64().expect("n") > 0);
    assert!(data["summary"]["containers_omitted"].as_u64().expect("n") > 0);
    let gap = &data["gaps"][0];
    assert_eq!((gap["code"].as_str(), gap["count"].as_u64()), (Some("host_origin"), Some(30)));
    assert!(gap["examples"].as_array().expect("examples").len() <= 20);
    // Strings are cut: an argument to 256 characters, a name to 256, a reason to 1024.
    let node = &data["trees"][0]["nodes"][0];
    assert_eq!(node["args"][1].as_str().expect("arg"), format!("{}…", lt(256)));
    assert_eq!(node["args_omitted"], 42 - 32);
    assert_eq!(data["findings"][0]["pod"].as_str().expect("pod"), format!("{}…", lt(256)));
    assert_eq!(node["findings"][2]["reason"].as_str().expect("reason").chars().count(), 1025);
}
