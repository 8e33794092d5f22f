#!/usr/bin/env bash
# tokenscan developer entry point. Two commands do everything on a fresh
# Debian machine of this project's kind (Rust toolchain present, root):
#
#   ./dev.sh demo   build tokenscan and replay the bundled pod-session capture
#   ./dev.sh test   install what the tests need, then run the whole test suite
#
# Each command installs what it needs itself (apt packages, pip packages) and
# is safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Debian packages the build and the tests need (none beyond the toolchain yet;
# later pieces add clang/libbpf for the recorder).
APT_PACKAGES=(pkg-config)

ensure_apt() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        log "missing Debian packages: ${missing[*]} (run as root, or install them)"
        exit 2
    fi
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1; then
        [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null 2>&1 || { log "cargo not found: this machine kind ships a Rust toolchain; install rustup's stable toolchain"; exit 2; }
}

cmd_demo() {
    ensure_rust
    ensure_apt "${APT_PACKAGES[@]}"
    log "building tokenscan (release)"
    cargo build --release --quiet -p tokenscan-cli
    log "tokenscan replay fixtures/pod-session.parquet"
    exec ./target/release/tokenscan replay fixtures/pod-session.parquet "$@"
}

cmd_test() {
    ensure_rust
    ensure_apt "${APT_PACKAGES[@]}"
    log "cargo fmt --check"
    cargo fmt --all -- --check
    log "cargo clippy --all-targets -- -D warnings"
    cargo clippy --quiet --workspace --all-targets -- -D warnings
    log "cargo test --workspace"
    # INSTA_UPDATE=no: a snapshot that differs fails the run instead of writing .snap.new files.
    mkdir -p target
    local status=0
    INSTA_UPDATE=no cargo test --workspace 2>&1 | tee target/test-output.log || status=$?
    summarize target/test-output.log
    return "$status"
}

# One closing line over all test binaries: "N passed, N failed" (plus ignored).
summarize() {
    awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i; if ($(i+1) ~ /^ignored;?$/) s += $i } }
         END { printf "tokenscan: %d passed, %d failed, %d skipped\n", p, f, s }' "$1"
}

case "${1:-}" in
    demo) shift; cmd_demo "$@" ;;
    test) shift; cmd_test "$@" ;;
    *) echo "usage: ./dev.sh demo | ./dev.sh test" >&2; exit 2 ;;
esac
