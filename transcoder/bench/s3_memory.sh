#!/usr/bin/env bash
# s3_memory.sh - the transcoder's own peak memory while it moves a 1 GiB source through S3.
#
# WHAT IT SHOWS
#   `transcoder run` downloads the source from S3 into its work folder as a stream (never the
#   whole object in memory), transcodes it, and uploads the renditions from disk. Its own
#   process (not ffmpeg) must stay under 64 MiB whatever the source size. The source is 1 GiB
#   of raw 1080p video in Matroska: big on the wire, quick to decode, so the run stays short.
#   S3 is moto's server on a loopback port (installed like scripts/test.sh does).
#
# HOW TO RUN
#   transcoder/bench/s3_memory.sh                   # builds the release binary
#   SIZE_MIB=2048 TRANSCODER=target/release/transcoder transcoder/bench/s3_memory.sh
#
# It prints the source size, the job time and the transcoder's VmHWM (its own peak RSS, from
# /proc/PID/status, polled every 0.1 s), with PASS or MISS against 64 MiB. Exit 0 when the job
# succeeded, whatever the figure: it is a measurement, not a test.
set -euo pipefail

SIZE_MIB="${SIZE_MIB:-1024}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/scripts/lib/bench.sh"
TRANSCODER="${TRANSCODER:-$(release_binary transcoder)}"
ensure_moto
python="$MOTO_VENV/bin/python"

# 1080p yuv420p is 3,110,400 bytes a frame.
frames=$(( SIZE_MIB * 1024 * 1024 / 3110400 + 1 ))
echo "making a ${SIZE_MIB} MiB raw 1080p source ($frames frames)..." >&2
ffmpeg -hide_banner -nostdin -v error -y -f lavfi -i "testsrc2=size=1920x1080:rate=30" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000" -frames:v "$frames" \
  -c:v rawvideo -pix_fmt yuv420p -c:a pcm_s16le -shortest "$work/source.mkv"
size=$(stat -c %s "$work/source.mkv")

start_moto
"$python" - "$work/source.mkv" <<'PY'
import sys, boto3
s3 = boto3.client("s3")
for bucket in ("raw", "out"):
    s3.create_bucket(Bucket=bucket)
s3.upload_file(sys.argv[1], "raw", "big/source.mkv")
PY

start=$EPOCHREALTIME
TRANSCODER_PRESET=ultrafast TRANSCODER_WORK_DIR="$work" \
  "$TRANSCODER" run --source s3://raw/big/source.mkv --output s3://out/big/ >"$work/run.log" 2>&1 &
pid=$!
hwm=0
while kill -0 "$pid" 2>/dev/null; do
  value=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  [ -n "$value" ] && hwm=$value
  sleep 0.1
done
status=0
wait "$pid" || status=$?
elapsed=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
if [ "$status" -ne 0 ]; then
  cat "$work/run.log" >&2
  echo "transcoder run failed with exit $status" >&2
  exit 1
fi
published=$("$python" -c 'import boto3; print(len(boto3.client("s3").list_objects_v2(Bucket="out", Prefix="big/").get("Contents", [])))')

mib=$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }')
verdict=$(awk -v k="$hwm" 'BEGIN { print (k < 64 * 1024) ? "PASS" : "MISS" }')
echo "== s3_memory ================================================================"
echo "source:      $size bytes (raw 1080p in Matroska) via S3 (moto on loopback)"
echo "job:         transcoder run, ultrafast, ${elapsed}s, $published objects published"
printf 'peak VmHWM:  %s MiB   %s   (target < 64 MiB, the transcoder process itself)\n' "$mib" "$verdict"
