#!/usr/bin/env bash
# Checks and replays Elastic's Defend for Containers rule pack from a local
# checkout of https://github.com/elastic/detection-rules. The rules stay in
# that checkout; nothing is copied into this repository.
#
#   scripts/detection-rules-pack.sh DETECTION_RULES_CHECKOUT [CAPTURE...]
#
# 1. `tokenscan rules check` on rules/integrations/cloud_defend/ and the
#    cross-platform D4C rules (rules/cross-platform/*d4c*.toml): every error
#    and warning of every file, then a count.
# 2. `tokenscan replay` of the captures (default: fixtures/*.parquet) through
#    every rule of the pack that loads; the rules that cannot load are named
#    on stderr and skipped (replay then exits 2, which this script accepts).
#
# The tokenscan binary is $TOKENSCAN, else `tokenscan` on PATH, else it is
# built with cargo from this repository.
set -euo pipefail

if [ $# -lt 1 ] || [ ! -d "$1/rules" ]; then
    echo "usage: $0 DETECTION_RULES_CHECKOUT [CAPTURE...]" >&2
    echo "  DETECTION_RULES_CHECKOUT: a clone of https://github.com/elastic/detection-rules" >&2
    exit 2
fi
checkout=$1
shift
here=$(cd "$(dirname "$0")/.." && pwd)

if [ -n "${TOKENSCAN:-}" ]; then
    tokenscan=("$TOKENSCAN")
elif command -v tokenscan >/dev/null; then
    tokenscan=(tokenscan)
else
    tokenscan=(cargo run --quiet --release --manifest-path "$here/Cargo.toml" -p tokenscan-cli --)
fi

pack=("$checkout/rules/integrations/cloud_defend")
for f in "$checkout"/rules/cross-platform/*d4c*.toml; do
    [ -e "$f" ] && pack+=("$f")
done
if [ $# -gt 0 ]; then
    captures=("$@")
else
    captures=("$here"/fixtures/*.parquet)
fi

if commit=$(git -C "$checkout" rev-parse --short HEAD 2>/dev/null); then
    echo "detection-rules at $commit"
fi
echo "== rules check (${#pack[@]} paths)"
# Exit 1 means something was reported: that is the point of the listing.
"${tokenscan[@]}" rules check "${pack[@]}" || [ $? -eq 1 ]

echo "== replay of ${#captures[@]} capture(s)"
rule_args=()
for p in "${pack[@]}"; do
    rule_args+=(--rules "$p")
done
# Exit 2 with findings written means that some rules were skipped (listed above them).
"${tokenscan[@]}" replay "${captures[@]}" "${rule_args[@]}" || [ $? -eq 2 ]
