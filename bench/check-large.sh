#!/usr/bin/env bash
# Benchmark (not a test): `mailc check` on a generated config of 1,000 domains
# x 10 mailboxes (10,000 mailboxes, 30,000 addresses, 3,000 aliases) in a
# release build. Target: under 1 s. Prints the wall time of each of 5 runs.
set -euo pipefail
cd "$(dirname "$0")/.."
DOMAINS=${1:-1000}
BOXES=${2:-10}
cargo build --release -q
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 bench/gen_config.py "$DOMAINS" "$BOXES" > "$tmp/big.kdl"
echo "config: $(wc -l < "$tmp/big.kdl") lines, $(wc -c < "$tmp/big.kdl") bytes, $DOMAINS domains x $BOXES mailboxes"
for i in 1 2 3 4 5; do
    start=$(date +%s.%N)
    ./target/release/mailc check --offline "$tmp/big.kdl" 2> "$tmp/err" || { cat "$tmp/err"; exit 1; }
    end=$(date +%s.%N)
    printf 'run %d: %.3f s\n' "$i" "$(echo "$end - $start" | bc -l)"
done
tail -1 "$tmp/err"
