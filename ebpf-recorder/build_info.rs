// Build information for `--version`, shared by ebpf-recorder/build.rs and
// cli/build.rs (each `include!`s this file): the commit the binary came from
// and how it was built, in the environment variable TOKENSCAN_VERSION_LONG.
//
// The commit is TOKENSCAN_GIT_COMMIT when set (`./dev.sh dist` sets it),
// otherwise the source tree's HEAD, with `-dirty` when tracked files
// differed from it when the build script last ran (it reruns when HEAD
// moves, not on every edit: `./dev.sh dist` computes it afresh each time);
// "unknown" outside a git checkout.

fn git_output(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Sets `TOKENSCAN_VERSION_LONG` for the crate being built, e.g.
/// `0.1.0 (commit 0123456789ab, x86_64-unknown-linux-gnu, release, statically linked (crt-static), features: static)`.
fn emit_build_info() {
    println!("cargo:rerun-if-env-changed=TOKENSCAN_GIT_COMMIT");
    let commit = match std::env::var("TOKENSCAN_GIT_COMMIT") {
        Ok(c) if !c.is_empty() => c,
        _ => {
            // Rebuild the version when HEAD moves (a commit, a checkout).
            for p in ["HEAD", "packed-refs"] {
                if let Some(f) = git_output(&["rev-parse", "--git-path", p]) {
                    println!("cargo:rerun-if-changed={f}");
                }
            }
            if let Some(r) = git_output(&["symbolic-ref", "-q", "HEAD"]) {
                if let Some(f) = git_output(&["rev-parse", "--git-path", &r]) {
                    println!("cargo:rerun-if-changed={f}");
                }
            }
            match git_output(&["rev-parse", "--short=12", "HEAD"]) {
                Some(c) => {
                    let dirty = git_output(&["status", "--porcelain", "--untracked-files=no"])
                        .is_some_and(|s| !s.is_empty());
                    if dirty {
                        format!("{c}-dirty")
                    } else {
                        c
                    }
                }
                None => "unknown".to_string(),
            }
        }
    };
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let linking = if env("CARGO_CFG_TARGET_FEATURE").split(',').any(|f| f == "crt-static") {
        "statically linked (crt-static)"
    } else {
        "dynamically linked"
    };
    let mut features: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| k.strip_prefix("CARGO_FEATURE_").map(|f| f.to_ascii_lowercase().replace('_', "-")))
        .collect();
    features.sort();
    let features = if features.is_empty() { "none".to_string() } else { features.join(",") };
    println!(
        "cargo:rustc-env=TOKENSCAN_VERSION_LONG={} (commit {commit}, {}, {} profile, {linking}, features: {features})",
        env("CARGO_PKG_VERSION"),
        env("TARGET"),
        env("PROFILE"),
    );
}
