#!/usr/bin/env bash
# README command 1: the whole pipeline on this machine, no AWS account, no Docker.
#
#   scripts/demo.sh [VIDEO_FILE]
#
# Installs what it needs (ffmpeg from Debian, the pinned moto in a virtualenv), builds the two
# binaries, starts moto's server as the stand-in for S3 and SQS, creates the buckets, the queue
# with its dead-letter queue and the S3 upload notification, starts two warm transcoders and
# the consumer, uploads a 20 s 1080p sample it generates (or the file you name), shows the job's
# progress, and copies the HLS output to out/demo/<name>/ with a line to play it.
#
# On a terminal it then keeps the pipeline running (upload more with the line it prints) until
# Ctrl-C, which stops everything it started. Off a terminal (scripts, tests) it stops at once.
#
# Environment: TRANSCODER and CONSUMER name prebuilt binaries (skips the build); DEMO_OUT
# changes the output folder; DEMO_KEEP_RUNNING=1/0 forces keeping the pipeline up or not.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
. scripts/lib/local_aws.sh

ensure_cargo
ensure_ffmpeg
ensure_moto
TRANSCODER="${TRANSCODER:-$(dev_binary transcoder)}"
CONSUMER="${CONSUMER:-$(dev_binary consumer)}"
python="$MOTO_VENV/bin/python"
stack() { "$python" scripts/lib/local_stack.py "$@"; }

out="${DEMO_OUT:-out/demo}"
run="$out/.run"
mkdir -p "$run"
pids=()
stop_all() {
  trap - EXIT INT TERM
  if [ "${#pids[@]}" -gt 0 ]; then
    echo "stopping the pipeline..." >&2
    # The consumer first, so it hands back what it holds; then the transcoders; moto last.
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  fi
  [ -n "${MOTO_PID:-}" ] && kill "$MOTO_PID" 2>/dev/null && wait "$MOTO_PID" 2>/dev/null
  return 0
}
trap stop_all EXIT
trap 'exit 130' INT TERM

input=${1:-}
if [ -z "$input" ]; then
  input=out/sample-1080p.mp4
  if [ ! -s "$input" ]; then
    mkdir -p out
    echo "making a 20 s 1080p sample with ffmpeg: $input"
    ffmpeg -hide_banner -nostdin -v error -y \
      -f lavfi -i "testsrc2=size=1920x1080:rate=30" \
      -f lavfi -i "sine=frequency=440:sample_rate=48000" \
      -t 20 -c:v libx264 -preset veryfast -crf 20 -pix_fmt yuv420p -c:a aac -b:a 128k "$input"
  fi
fi
[ -f "$input" ] || { echo "no such file: $input" >&2; exit 1; }

echo "starting moto (S3 and SQS on loopback)..."
start_moto
# Every process started here, one per line: for whoever wants to check they are all gone.
echo "$MOTO_PID" >"$run/pids"
stack setup >"$run/stack.env"
set -a
# shellcheck disable=SC1091
. "$run/stack.env"
set +a
export OUTPUT_PREFIX=hls/ RUST_LOG="${RUST_LOG:-info}"

endpoints=()
for i in 1 2; do
  # A short drain: Ctrl-C should not wait for a job to finish.
  "$TRANSCODER" serve --listen 127.0.0.1:0 --drain-seconds 5 >"$run/transcoder-$i.out" 2>"$run/transcoder-$i.log" &
  pids=("$!" "${pids[@]}")
  echo "$!" >>"$run/pids"
  for _ in $(seq 100); do
    grep -q '^listening on ' "$run/transcoder-$i.out" 2>/dev/null && break
    sleep 0.1
  done
  address=$(sed -n 's/^listening on //p' "$run/transcoder-$i.out")
  [ -n "$address" ] || { echo "transcoder $i did not start:" >&2; cat "$run/transcoder-$i.log" >&2; exit 1; }
  endpoints+=("http://$address")
done
echo "warm transcoders: ${endpoints[*]}"

TRANSCODER_ENDPOINTS=$(IFS=,; echo "${endpoints[*]}") DISPATCH_MODE=grpc POLL_WAIT_SECONDS=2 \
  TRANSCODER_HEALTH_SECONDS=2 "$CONSUMER" 2>"$run/consumer.log" &
# First in the list: stopped first.
pids=("$!" "${pids[@]}")
echo "$!" >>"$run/pids"
echo "consumer: polling $QUEUE_URL"

name=$(basename "$input")
stem="${name%.*}"
key="uploads/$name"
prefix="hls/uploads/$stem/"
echo "uploading $input to s3://$RAW_BUCKET/$key ..."
stack upload "$input" "$key"

# Progress: the consumer's log of this job (stages, and progress every 25%).
(
  tail -n +1 -F "$run/consumer.log" 2>/dev/null |
    grep --line-buffered -E ': (job handed over|stage|progress|job done|job failed) ' |
    sed -u -E 's/^.*: (job handed over|stage|progress|job done|job failed) /  \1: /'
) &
progress_pid=$!
status=0
stack wait "$prefix" || status=$?
# The subshell's pipeline first (tail would otherwise outlive it and hold our stdout open).
pkill -P "$progress_pid" 2>/dev/null || true
kill "$progress_pid" 2>/dev/null || true
wait "$progress_pid" 2>/dev/null || true
if [ "$status" -ne 0 ]; then
  echo "the job did not finish: see $run/consumer.log and $run/transcoder-*.log" >&2
  exit 1
fi

dest="$out/$stem"
rm -rf "$dest"
mkdir -p "$dest"
stack download "$prefix" "$dest"
dest=$(cd "$dest" && pwd)
echo
echo "output:  $dest (master.m3u8, manifest.mpd, poster.jpg, thumbnails.vtt, manifest.json, and the rungs and audio in a version folder _v.../)"
echo "play:    ffplay $dest/master.m3u8"
echo "   or:   (cd $dest && python3 -m http.server 8000), then open http://localhost:8000/master.m3u8 in Safari or any HLS player"

keep="${DEMO_KEEP_RUNNING:-}"
if [ -z "$keep" ]; then
  if [ -t 0 ]; then keep=1; else keep=0; fi
fi
# The preview page (hls.js, dash.js, rungs, tracks, seek thumbnails): served while the
# pipeline keeps running, otherwise the command that serves it.
if [ "$keep" = 1 ]; then
  "$TRANSCODER" preview "$dest" --listen 127.0.0.1:0 >"$run/preview.out" 2>"$run/preview.log" &
  echo "$!" >>"$run/pids"
  pids+=("$!")
  for _ in $(seq 50); do grep -q '^preview: ' "$run/preview.out" 2>/dev/null && break; sleep 0.1; done
  echo "$(sed -n 's/^preview: \([^ ]*\).*/preview: \1/p' "$run/preview.out")"
else
  echo "preview: $TRANSCODER preview $dest   (serves http://127.0.0.1:8765/)"
fi

if [ "$keep" = 1 ]; then
  echo
  echo "the pipeline keeps running; upload another video with:"
  echo "  AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \\"
  echo "    $python scripts/lib/local_stack.py upload VIDEO uploads/VIDEO_NAME"
  echo "its HLS appears under s3://$OUTPUT_BUCKET/hls/uploads/ (logs in $run). Ctrl-C stops everything."
  while kill -0 "${pids[0]}" 2>/dev/null; do sleep 1; done
fi
