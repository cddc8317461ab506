#!/usr/bin/env bash
# Long IMAP stress runs (not part of `cargo test`): the model-based
# concurrent stress of tests/imap_stress.rs with more clients, more
# operations per client and several seeds, on a release build. Every
# response is decoded by imap-codec and checked against each client's model
# of the mailbox; a failure prints the client's transcript tail.
#
# Usage: bench/imap_stress.sh [CLIENTS] [OPS] [SEEDS] [dovecot]
#   CLIENTS  sessions on one mailbox (default 16)
#   OPS      operations per session (default 2000)
#   SEEDS    runs, seeds 1..SEEDS (default 5)
#   dovecot  also run the same clients against Dovecot (needs root and
#            /usr/sbin/dovecot): a check of the checker
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${1:-16}
OPS=${2:-2000}
SEEDS=${3:-5}
TARGETS=(concurrent_clients_keep_a_consistent_view)
IGNORED=()
if [ "${4:-}" = dovecot ]; then
    TARGETS+=(checker_holds_against_dovecot)
    IGNORED=(--include-ignored)
fi
status=0
for seed in $(seq 1 "$SEEDS"); do
    for t in "${TARGETS[@]}"; do
        MAILC_STRESS_SEED=$seed MAILC_STRESS_CLIENTS=$CLIENTS MAILC_STRESS_OPS=$OPS \
        MAILC_STRESS_SECONDS=3600 \
            cargo test -q --release --test imap_stress "$t" -- --exact "${IGNORED[@]}" --nocapture \
            2>&1 | grep -E '^(mailc|dovecot):|^by kind|^--- client|panicked' || status=1
    done
done
exit $status
