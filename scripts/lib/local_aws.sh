# A local stand-in for AWS and the project's release binaries, for the benchmarks (and the
# local pipeline). Source scripts/lib/deps.sh first and call ensure_moto.

# release_binary NAME: builds the workspace binary NAME in release mode (cargo says nothing when
# it is fresh) and prints its path, wherever CARGO_TARGET_DIR puts it. For the benchmarks.
release_binary() {
  build_binary release "$1"
}

# dev_binary NAME: the same in the dev profile, which builds in a third of the time and shares
# the test suite's build: for the demo, where ffmpeg does the heavy work anyway.
dev_binary() {
  build_binary dev "$1"
}

build_binary() {
  local repo target_dir folder
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  (cd "$repo" && cargo build --profile "$1" --locked -p "$2" >&2)
  target_dir=$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  folder=$([ "$1" = dev ] && echo debug || echo "$1")
  echo "$target_dir/$folder/$2"
}

# start_moto: starts moto's server on a free loopback port, waits until it answers, and exports
# the AWS_* variables that point the SDKs (Rust and boto3) at it. Sets MOTO_PID; the caller
# kills it.
start_moto() {
  local python="$MOTO_VENV/bin/python" port
  port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  MOTO_PID=$!
  # boto3 reads AWS_DEFAULT_REGION, the Rust SDK AWS_REGION.
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true
  for _ in $(seq 300); do
    "$python" -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "moto did not start on port $port" >&2
  return 1
}
