//! `tokenscan-record` (under construction in issue 3).
fn main() {
    eprintln!("tokenscan-record: not built yet");
    std::process::exit(2);
}
