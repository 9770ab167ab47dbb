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

# moto's server (S3, SQS, ECS over HTTP on loopback) with every dependency pinned
# (scripts/moto-requirements.txt), in a virtualenv of its own outside the clone: nothing touches
# the system Python, and a fresh clone on the same machine reuses it. Exports MOTO_SERVER, which
# the tests use to start it.
MOTO_VERSION=5.2.5
MOTO_VENV="${MOTO_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/vod-pipeline/moto-venv}"
ensure_moto() {
  local requirements
  requirements="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/moto-requirements.txt"
  export MOTO_SERVER="$MOTO_VENV/bin/moto_server"
  if [ -x "$MOTO_SERVER" ] && "$MOTO_VENV/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
    return 0
  fi
  echo "installing moto[server]==$MOTO_VERSION into $MOTO_VENV..." >&2
  install_venv "$MOTO_VENV" "$requirements"
}

# install_venv DIR REQUIREMENTS: a virtualenv at DIR with exactly REQUIREMENTS installed
# (python3-venv from Debian first, when the system Python lacks it).
install_venv() {
  mkdir -p "$(dirname "$1")"
  if ! python3 -m venv "$1" 2>/dev/null; then
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    python3 -m venv "$1"
  fi
  "$1/bin/pip" install --quiet --disable-pip-version-check -r "$2"
}

# awscli, cfn-lint and Docker Compose v2, pinned (scripts/tools-requirements.txt), in a
# virtualenv of their own beside moto's: deploy/ deploys with the AWS CLI, and the tests lint
# its templates and read docker/compose.yml with Compose itself. Exports TOOLS_BIN, the folder
# of their commands, and COMPOSE_BIN, Compose's binary (the package's `docker-compose` wrapper
# drops the exit status, so the tests call the binary). A machine with its own `aws` still uses this one,
# so every run deploys with the same, tested version.
TOOLS_VENV="${TOOLS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/vod-pipeline/tools-venv}"
ensure_tools() {
  local requirements
  requirements="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tools-requirements.txt"
  export TOOLS_BIN="$TOOLS_VENV/bin"
  export COMPOSE_BIN="$TOOLS_VENV/lib/compose-bin/docker-compose"
  # The venv remembers the requirements it was made from: a changed pin reinstalls.
  if [ -x "$TOOLS_BIN/aws" ] && cmp -s "$requirements" "$TOOLS_VENV/requirements.txt"; then
    return 0
  fi
  echo "installing awscli and cfn-lint into $TOOLS_VENV..." >&2
  install_venv "$TOOLS_VENV" "$requirements"
  mkdir -p "$(dirname "$COMPOSE_BIN")"
  ln -sf "$("$TOOLS_BIN/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')" "$COMPOSE_BIN"
  cp "$requirements" "$TOOLS_VENV/requirements.txt"
}

# What the images install and the tests of tests/shipped run as they do: tini (the images'
# init) and util-linux's unshare and setpriv (a PID namespace, the image's user).
ensure_container_tools() {
  if command -v tini >/dev/null && command -v unshare >/dev/null && command -v setpriv >/dev/null; then
    return 0
  fi
  echo "installing tini and util-linux from Debian..." >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends tini util-linux >/dev/null
}

# A real player for the playback tests: Debian's Chromium, and hls.js, dash.js and
# puppeteer-core at the versions tests/player pins (npm). Node comes from Debian when absent.
ensure_player() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "installing Node.js from Debian..." >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  tests/player/install.sh >&2
}
