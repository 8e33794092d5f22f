#!/usr/bin/env bash
# Bounded fuzzing of every cargo-fuzz target (see docs/robustness.md).
#
#   fuzz/smoke.sh                      every target, 60 s each
#   FUZZ_SECONDS=3600 fuzz/smoke.sh    an hour each, by hand
#   FUZZ_TARGETS="eql rules" fuzz/smoke.sh
#   FUZZ_NO_BUILD=1 fuzz/smoke.sh      run the targets as last built
#
# Builds the targets once with the nightly toolchain (cargo-fuzz, libFuzzer,
# AddressSanitizer), then runs each built binary (not `cargo fuzz run`, which
# would rebuild whenever a source file's time stamp changes, between targets)
# on a working copy of its corpus seeded from fuzz/corpus/<target>/ (which
# this script never writes to). A crash, a
# hang (one input running longer than FUZZ_INPUT_TIMEOUT, default 10 s) or an
# input using more than FUZZ_RSS_MB (default 2048) MiB fails the run; the
# input is kept under $FUZZ_WORK/artifacts/<target>/ and the script prints
# how to reproduce it. Executions per target are appended to
# $FUZZ_WORK/stats.tsv.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd .. && pwd)

seconds=${FUZZ_SECONDS:-60}
input_timeout=${FUZZ_INPUT_TIMEOUT:-10}
rss_mb=${FUZZ_RSS_MB:-2048}
work=${FUZZ_WORK:-$root/target/fuzz-work}
target_dir=${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$root/target}/fuzz}
read -r -a targets <<<"${FUZZ_TARGETS:-eql rules ndjson parquet}"

log() { printf '\033[1m==> fuzz: %s\033[0m\n' "$*" >&2; }
fail() { printf '\033[1;31m==> FUZZ SMOKE FAILED: %s\033[0m\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"
rustup toolchain list 2>/dev/null | grep -q '^nightly' \
    || fail "the nightly toolchain is not installed (rustup toolchain install nightly); cargo-fuzz needs it"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz (once, about 2 minutes; it is cached in ~/.cargo/bin)"
    cargo install cargo-fuzz --locked --quiet || fail "cannot install cargo-fuzz"
fi
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')

mkdir -p "$work"
if [ "${FUZZ_NO_BUILD:-}" != 1 ]; then
    log "building the targets (nightly, release, AddressSanitizer, debug assertions)"
    start=$(date +%s)
    cargo +nightly fuzz build --target-dir "$target_dir" >"$work/build.log" 2>&1 \
        || { tail -n 60 "$work/build.log" >&2; fail "cargo fuzz build (log: $work/build.log)"; }
    log "built in $(($(date +%s) - start)) s"
fi

stats="$work/stats.tsv"
[ -f "$stats" ] || printf 'date\ttarget\tseconds\texecutions\tcorpus\tresult\tload\n' >"$stats"
failed=()
for t in "${targets[@]}"; do
    mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
    out="$work/$t.log"
    log "$t: ${seconds} s"
    status=0
    bin="$target_dir/$triple/release/$t"
    [ -x "$bin" ] || fail "$bin was not built"
    load=$(cut -d' ' -f1 /proc/loadavg)
    # detect_odr_violation=0: as `cargo fuzz run` sets it (Rust's duplicate symbols are not ODR bugs).
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0" \
        "$bin" "$work/corpus/$t" "corpus/$t" \
        -max_total_time="$seconds" -timeout="$input_timeout" -rss_limit_mb="$rss_mb" \
        -artifact_prefix="$work/artifacts/$t/" -print_final_stats=1 >"$out" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -1)
    units=$(find "$work/corpus/$t" -type f | wc -l)
    if [ "$status" -eq 0 ]; then
        result=ok
    else
        result=FAILED
        failed+=("$t")
        tail -n 40 "$out" >&2
        for a in "$work/artifacts/$t"/*; do
            [ -e "$a" ] && log "$t: reproduce with: (cd fuzz && cargo +nightly fuzz run --target-dir $target_dir $t $a)"
        done
    fi
    # load: the 1-minute load average when the target started (the machine has $(nproc) cores).
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s/%s\n' "$(date -u +%FT%TZ)" "$t" "$seconds" "${execs:-?}" "$units" "$result" \
        "$load" "$(nproc)" >>"$stats"
    log "$t: ${execs:-?} executions, $units corpus inputs, $result"
done
[ ${#failed[@]} -eq 0 ] || fail "${failed[*]} (inputs under $work/artifacts/)"
log "all targets ran ${seconds} s without a crash, hang or memory blow-up"
