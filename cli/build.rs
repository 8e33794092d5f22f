//! Sets TOKENSCAN_VERSION_LONG (version, commit, build options) for `tokenscan --version`.

include!("../ebpf-recorder/build_info.rs");

fn main() {
    emit_build_info();
}
