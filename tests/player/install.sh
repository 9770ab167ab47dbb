#!/usr/bin/env bash
# Installs what play.mjs needs: Debian's Chromium and the pinned npm packages.
# Idempotent: does nothing (and prints only the Chromium path) when already done.
set -euo pipefail
cd "$(dirname "$0")"

chromium="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]] && ! chromium="$(command -v chromium)"; then
  export DEBIAN_FRONTEND=noninteractive
  # Try without refreshing the index first; only update when the install fails.
  if ! apt-get install -y -qq chromium >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    apt-get install -y -qq chromium >/dev/null
  fi
  chromium="$(command -v chromium)"
fi

# npm ci only when node_modules is missing or older than the lockfile.
if [[ ! -d node_modules || package-lock.json -nt node_modules ]]; then
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  touch node_modules   # npm ci may leave the dir mtime older than the lock
fi

echo "chromium: $chromium ($("$chromium" --version 2>/dev/null || echo 'version unknown'))"
