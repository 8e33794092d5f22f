#!/usr/bin/env bash
# Rewrites fixtures/*.parquet from their NDJSON sources with tokenscan's own
# converter. Run after editing a fixture; the test suite fails while a
# Parquet twin is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet -p tokenscan-cli
for src in fixtures/*.ndjson; do
    ./target/debug/tokenscan convert "$src" -o "${src%.ndjson}.parquet" --force
    echo "wrote ${src%.ndjson}.parquet"
done
