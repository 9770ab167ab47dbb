#!/usr/bin/env bash
# README command 2: the whole test suite. Installs what the tests need first (ffmpeg, moto), then
# runs every unit and integration test in the workspace with real ffmpeg and moto's server.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh

ensure_cargo
ensure_ffmpeg
ensure_moto
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

# The last "test result" cargo prints belongs to whichever crate ran last (often one with no
# tests), so close with the totals over every crate.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i < NF; i++) { if ($(i + 1) ~ /^passed/) p += $i; if ($(i + 1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
