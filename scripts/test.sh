#!/usr/bin/env bash
# README command 2: the whole test suite. Installs what the tests need first (ffmpeg, moto,
# awscli, cfn-lint, Docker Compose, tini, Chromium and the npm players), then runs every unit
# and integration test in the workspace with real ffmpeg, moto's server and a browser, the
# checks of docker/ and deploy/, the player harness's own tests, and tests/shipped: the binaries run as their images and task definitions run them, each under
# its own IAM role (Python's unittest; needs root, for unshare and mount).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh

ensure_cargo
ensure_ffmpeg
ensure_moto
ensure_tools
ensure_container_tools
ensure_player
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# Every test binary runs even when one fails, so one run shows every failure.
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log" || status=$?
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
echo "== tests/player"
node --test tests/player/ 2>&1 | tee -a "$log" || status=1
for suite in docker/tests deploy/tests tests/shipped; do
  echo "== $suite"
  "$MOTO_VENV/bin/python" -m unittest discover -s "$suite" 2>&1 | tee -a "$log" || status=1
done

# Close with the totals over every crate and suite (cargo's last "test result" is only the
# last crate's).
awk '/^test result:/ { for (i = 1; i < NF; i++) { if ($(i + 1) ~ /^passed/) p += $i; if ($(i + 1) ~ /^failed/) f += $i } }
     /^Ran [0-9]+ tests? in/ { ran = $2; p += ran }
     /^# pass [0-9]+$/ { p += $3 }
     /^# fail [0-9]+$/ { f += $3 }
     /^FAILED \(/ { n = 0; s = $0; while (match(s, /(failures|errors)=[0-9]+/)) { split(substr(s, RSTART, RLENGTH), kv, "="); n += kv[2]; s = substr(s, RSTART + RLENGTH) } p -= n; f += n }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
