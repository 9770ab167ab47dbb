#!/usr/bin/env bash
# README command 2: the whole test suite. Installs what the tests need first (ffmpeg), then
# runs every unit and integration test in the workspace with real ffmpeg.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh

ensure_cargo
ensure_ffmpeg
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
