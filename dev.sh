#!/usr/bin/env bash
# tokenscan developer entry point. Two commands do everything on a fresh
# Debian machine of this project's kind (Rust toolchain present, root):
#
#   ./dev.sh demo   build tokenscan and replay the bundled pod-session capture
#   ./dev.sh test   install what the tests need, then run the whole test suite
#   ./dev.sh dist   build tokenscan-record and tokenscan as self-contained (static)
#                   executables into dist/, with SHA256SUMS
#
# Each command installs what it needs itself (apt packages, pip packages) and
# is safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Debian packages the build and the tests need. The recorder (ebpf-recorder/):
# clang compiles its eBPF C program; make, pkg-config, libelf-dev and
# zlib1g-dev build and link the vendored libbpf (libbpf-sys); its end-to-end
# test uses unshare, script and setsid (util-linux, bsdutils: always present),
# and runc with busybox-static to start a real container from a containerd-style bundle.
# `./dev.sh dist` links glibc (libc6-dev's libc.a), libelf.a and libz.a statically.
# The HTML report's test loads it in headless chromium. The Spark tests
# (python/tests/test_spark.py) run pyspark on a Java runtime: OpenJDK 17 (Debian 12's default JRE).
APT_PACKAGES=(pkg-config clang make libelf-dev zlib1g-dev libc6-dev runc busybox-static chromium openjdk-17-jre-headless)

# PyPI packages the Python tests need besides pyproject.toml's test group.
PIP_PACKAGES=("kubernetes-validate>=1.30")

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
    # Only what building tokenscan-cli needs: a C compiler and libc's headers and
    # start files (zstd-sys compiles zstd's C sources; the linker needs crt1.o).
    # The rest of APT_PACKAGES serves the recorder and the tests: installing it
    # here (chromium, a JRE, clang) cost a fresh machine a minute or more.
    ensure_apt gcc libc6-dev
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
    # The self-contained binaries: ebpf-recorder/tests/node.rs runs dist/tokenscan-record
    # in a container that holds nothing else.
    cmd_dist
    export TOKENSCAN_DIST_RECORDER="$PWD/dist/tokenscan-record"
    log "cargo test --workspace"
    # INSTA_UPDATE=no: a snapshot that differs fails the run instead of writing .snap.new files.
    mkdir -p target
    local status=0
    INSTA_UPDATE=no cargo test --workspace 2>&1 | tee target/test-output.log || status=$?
    python_tests target/pytest-output.log || status=$?
    # Gating: a crash, hang or memory blow-up found by fuzzing fails the run (counted as one failed test).
    fuzz_smoke target/fuzz-output.log || status=$?
    # The test runners' combined summary stays the last line of the output.
    summarize target/test-output.log target/pytest-output.log target/fuzz-output.log
    return "$status"
}

# Bounded fuzzing: fuzz/smoke.sh builds the cargo-fuzz targets (nightly toolchain) and
# runs each for FUZZ_SECONDS (default 60). CI runs it (CI=true), as does
# TOKENSCAN_FUZZ=1 ./dev.sh test; a developer's plain ./dev.sh test skips it, loudly.
# Its outcome goes to $1 as one cargo-style "test result:" line for summarize
# (passed, failed, or ignored when skipped).
fuzz_smoke() {
    local out=$1 status=0
    if [ "${CI:-}" != "true" ] && [ "${TOKENSCAN_FUZZ:-}" != "1" ]; then
        printf '\033[1;33m==> SKIPPED: fuzz smoke run (fuzz/smoke.sh); it runs in CI, or here with TOKENSCAN_FUZZ=1 ./dev.sh test\033[0m\n' >&2
        echo "test result: ok. 0 passed; 0 failed; 1 ignored; fuzz smoke run skipped" >"$out"
        return 0
    fi
    log "fuzz smoke run: fuzz/smoke.sh, ${FUZZ_SECONDS:-60} s per target"
    fuzz/smoke.sh || status=$?
    if [ "$status" -eq 0 ]; then
        echo "test result: ok. 1 passed; 0 failed; 0 ignored; fuzz smoke run" >"$out"
    else
        echo "test result: FAILED. 0 passed; 1 failed; 0 ignored; fuzz smoke run (see target/fuzz-work)" >"$out"
    fi
    return "$status"
}

# The Python module (python/, pyproject.toml): build the wheel with maturin, install it
# and the `test` dependency group into .venv, run pytest (API, parity with the CLI,
# the notebook, stubtest). Its output goes to $1 for summarize.
python_tests() {
    local out=$1 py=.venv/bin/python target="${CARGO_TARGET_DIR:-target}" status=0 wheel
    : >"$out"
    # A setup step that fails counts as one failed test in the closing summary line
    # (a pytest-style "1 error" line in $out), not only in the exit status.
    setup_failed() {
        local st=$?
        log "python setup failed: $1 (exit $st)"
        echo "1 error in 0.00s (python setup failed: $1)" >>"$out"
        return "$st"
    }
    if ! command -v python3 >/dev/null 2>&1; then
        log "python3 not found: the Python tests need CPython >= 3.9"
        echo "1 error in 0.00s (python setup failed: python3 not found)" >>"$out"
        return 2
    fi
    log "python: .venv with maturin and the test dependencies"
    [ -x "$py" ] || python3 -m venv .venv || setup_failed "python3 -m venv" || return
    # --group (PEP 735 dependency groups) needs pip 25.1; nothing is fetched when all is installed.
    "$py" -m pip install --quiet --disable-pip-version-check "pip>=25.1" || setup_failed "pip install pip" || return
    "$py" -m pip install --quiet --disable-pip-version-check --group test "maturin>=1.9.4,<2" \
        || setup_failed "pip install the test group and maturin" || return
    # Outside the test group (pyproject.toml): python/tests/test_deploy.py validates
    # deploy/tokenscan-recorder.yaml against the Kubernetes schemas this package ships.
    "$py" -m pip install --quiet --disable-pip-version-check "${PIP_PACKAGES[@]}" \
        || setup_failed "pip install ${PIP_PACKAGES[*]}" || return
    log "maturin build, pip install the wheel"
    rm -rf "$target/wheels"
    "$py" -m maturin build --quiet --out "$target/wheels" || setup_failed "maturin build" || return
    wheel=$(ls "$target"/wheels/tokenscan-*.whl) || setup_failed "no wheel in $target/wheels" || return
    "$py" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheel" \
        || setup_failed "pip install the wheel" || return
    "$py" -m pip install --quiet --disable-pip-version-check "$wheel" || setup_failed "pip install the wheel's dependencies" || return
    log "pytest python/tests"
    # The CLI that `cargo test` just built, to compare findings with (else the tests build it).
    if [ -x "$target/debug/tokenscan" ]; then
        export TOKENSCAN_CLI="$(cd "$target/debug" && pwd)/tokenscan"
    fi
    "$py" -m pytest -q 2>&1 | tee "$out" || status=$?
    if [ "$status" -eq 5 ]; then
        # Exit 5 is "no tests collected": never a pass for a suite that has tests.
        log "pytest collected no tests (exit 5)"
        echo "1 error in 0.00s (pytest collected no tests)" >>"$out"
    fi
    return "$status"
}

# One closing line over all cargo test binaries and pytest: "N passed, N failed, N skipped"
# (skipped: cargo's ignored tests and pytest's skips; pytest's errors count as failed).
summarize() {
    awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i; if ($(i+1) ~ /^ignored;?$/) s += $i } }
         FILENAME ~ /pytest/ && / in [0-9.]+s/ && /(passed|failed|error|skipped|no tests ran)/ { pyline = $0 }
         END {
             n = split(pyline, w, /[ ,=]+/)
             for (i = 2; i <= n; i++) { if (w[i] ~ /^passed/) p += w[i-1]; if (w[i] ~ /^(failed|errors?)$/) f += w[i-1]; if (w[i] ~ /^skipped/) s += w[i-1] }
             printf "tokenscan: %d passed, %d failed, %d skipped\n", p, f, s
         }' "$@"
}

cmd_bench() {
    ensure_rust
    ensure_apt "${APT_PACKAGES[@]}"
    local venv=target/bench-venv
    # The engines tokenscan is compared with, pinned: bench/replay_bench.py prints them.
    local pins=(duckdb==2.0.0 polars==2.1.0 datafusion==55.0.0 pyarrow==26.0.1)
    if [ ! -x "$venv/bin/python" ]; then
        log "creating $venv"
        python3 -m venv "$venv"
    fi
    "$venv/bin/python" -c '
import sys, duckdb, polars, datafusion, pyarrow
have = {m.__name__: m.__version__ for m in (duckdb, polars, datafusion, pyarrow)}
sys.exit(any(have[p.split("==")[0]] != p.split("==")[1] for p in sys.argv[1:]))' "${pins[@]}" 2>/dev/null \
        || { log "installing ${pins[*]} into $venv"; "$venv/bin/pip" install -q "${pins[@]}"; }
    log "building tokenscan (release)"
    cargo build --release --quiet -p tokenscan-cli
    "$venv/bin/python" bench/replay_bench.py "$@"
}

# Self-contained executables for a node without Rust, libraries or a package
# manager: glibc linked statically (crt-static, so --target is needed: build
# scripts and proc macros stay dynamic), libbpf vendored and static, libelf and
# zlib static (tokenscan-record's `static` feature). CO-RE: the same file runs
# on every x86_64 kernel from 5.8 with BTF. Output: dist/tokenscan-record,
# dist/tokenscan, dist/SHA256SUMS; `--version` names the commit and options.
DIST_TARGET=x86_64-unknown-linux-gnu

cmd_dist() {
    ensure_rust
    ensure_apt "${APT_PACKAGES[@]}"
    local commit out="${CARGO_TARGET_DIR:-target}/$DIST_TARGET/release" bin
    commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
    if [ "$commit" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        commit="$commit-dirty"
    fi
    log "building tokenscan-record and tokenscan for $DIST_TARGET, statically linked (commit $commit)"
    # LIBBPF_SYS_LIBRARY_PATH: where libbpf-sys finds libelf.a and libz.a.
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" TOKENSCAN_GIT_COMMIT="$commit" \
        LIBBPF_SYS_LIBRARY_PATH="/usr/lib/$(gcc -print-multiarch)" \
        cargo build --release --locked --target "$DIST_TARGET" \
        -p tokenscan-record --features tokenscan-record/static -p tokenscan-cli
    rm -rf dist
    mkdir -p dist
    for bin in tokenscan-record tokenscan; do
        # Debug info off (it is 9/10 of the file); symbols stay for backtraces.
        strip --strip-debug -o "dist/$bin" "$out/$bin"
        # Self-contained: no program interpreter and no shared library needed.
        # (Rust links crt-static as a static PIE, for which ldd says "statically
        # linked"; a non-PIE static executable gets "not a dynamic executable".)
        if readelf -lW "dist/$bin" | grep -q "program interpreter" || readelf -dW "dist/$bin" | grep -q "(NEEDED)"; then
            log "dist/$bin is dynamically linked:"
            ldd "dist/$bin" >&2 || true
            exit 1
        fi
    done
    (cd dist && sha256sum tokenscan-record tokenscan >SHA256SUMS)
    log "dist/ (statically linked: no interpreter, no NEEDED libraries)"
    ls -l dist >&2
    cat dist/SHA256SUMS
    dist/tokenscan-record --version
    dist/tokenscan --version
}

case "${1:-}" in
    demo) shift; cmd_demo "$@" ;;
    test) shift; cmd_test "$@" ;;
    bench) shift; cmd_bench "$@" ;;
    dist) shift; cmd_dist "$@" ;;
    *) echo "usage: ./dev.sh demo | ./dev.sh test | ./dev.sh dist | ./dev.sh bench [--sizes N,N] [--runs N] [--shapes A,B]" >&2; exit 2 ;;
esac
