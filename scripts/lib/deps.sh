# Installs what the project needs on a fresh Debian machine, skipping what is already there.
# Sourced by the scripts next door; every function is safe to call twice.

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# ffmpeg and ffprobe from Debian (5.1 on bookworm): the transcoder drives both.
ensure_ffmpeg() {
  if command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; then
    return 0
  fi
  echo "installing ffmpeg from Debian..." >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
  ffmpeg -version | head -n 1 >&2
}

# cargo, which the README assumes (a Rust toolchain installed with rustup).
ensure_cargo() {
  if ! command -v cargo >/dev/null; then
    echo "cargo not found: install a Rust toolchain first (https://rustup.rs)" >&2
    exit 1
  fi
}
