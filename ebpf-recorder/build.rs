//! Compiles `src/bpf/recorder.bpf.c` with clang (CO-RE, against the trimmed
//! `src/bpf/vmlinux.h` committed next to it) and generates the libbpf-rs
//! skeleton `recorder.skel.rs` into `OUT_DIR`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "src/bpf/recorder.bpf.c";

include!("build_info.rs");

fn main() {
    emit_build_info();
    for f in ["src/bpf/recorder.bpf.c", "src/bpf/recorder.h", "src/bpf/vmlinux.h"] {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-env-changed=CLANG");
    let clang = env::var_os("CLANG").unwrap_or_else(|| "clang".into());
    if Command::new(&clang).arg("--version").output().is_err() {
        panic!(
            "tokenscan-record needs clang to compile its eBPF programs, and `{}` was not found: \
             install it (Debian: apt-get install clang; ./dev.sh installs it) or set CLANG=/path/to/clang",
            PathBuf::from(&clang).display()
        );
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("recorder.skel.rs");
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    if let Err(e) = SkeletonBuilder::new()
        .source(manifest.join(SRC))
        .clang(&clang)
        .clang_args([
            "-I".into(),
            manifest.join("src/bpf").into_os_string(),
            "-Wall".into(),
            "-Werror".into(),
            "-Wno-unused-function".into(),
        ])
        .build_and_generate(&out)
    {
        panic!("building the eBPF skeleton from {SRC} failed: {e:#}");
    }
}
