#!/usr/bin/env bash
# Two mailc builds in the same run (a change's "before" and "after"): the
# SMTP benchmark (mailc only) and the IMAP benchmark (with Dovecot as the
# anchor of each round), alternating the binaries ROUNDS times so drift of
# the machine hits both alike.
#
# Usage: [BEFORE_COMPAT=1] bench/before_after.sh BEFORE_BIN AFTER_BIN [ROUNDS]
#   BEFORE_COMPAT=1: the before build predates `inbound { checks }` and
#   `resolver` (before 2026-12-03): its configs leave those lines out.
#   e.g. git worktree add /tmp/before <commit> && (cd /tmp/before && cargo build --release)
#        bench/before_after.sh /tmp/before/target/release/mailc target/release/mailc 2
# Needs what bench/smtp_bench.py and bench/imap_bench.py need (root, postfix
# for smtp-source, dovecot-imapd, cargo build --release --example imap_load).
set -euo pipefail
cd "$(dirname "$0")/.."
BEFORE=$(realpath "$1")
AFTER=$(realpath "$2")
ROUNDS=${3:-2}
for round in $(seq 1 "$ROUNDS"); do
    for which in before after; do
        compat=
        if [ "$which" = before ]; then bin=$BEFORE; compat=${BEFORE_COMPAT:-}; else bin=$AFTER; fi
        echo "=== round $round: $which ($bin)"
        MAILC_BENCH_COMPAT=$compat MAILC_BIN=$bin python3 bench/smtp_bench.py --only mailc --sessions 1,10 --messages 2000 \
            | grep -E '^mailc'
        MAILC_BENCH_COMPAT=$compat MAILC_BIN=$bin python3 bench/imap_bench.py --idle 1000 \
            | grep -E 'operations/s|idle connections|ratio'
    done
done
