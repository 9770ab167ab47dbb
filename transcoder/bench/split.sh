#!/usr/bin/env bash
# split.sh - progressive publish and split-and-stitch, measured in one run on this machine.
#
# WHAT IT DOES
#   moto as S3; a 2-minute 1080p30 source (and a 10-minute one, the same five times, stream
#   copied) uploaded; then, through real `transcoder serve` processes pinned with taskset:
#     1. the encode alone: `transcoder local` on core 0;
#     2. one warm transcoder on core 0: the whole job (download, encode while publishing,
#        final playlists and master), against the encode alone (target: within 5%);
#     3. two warm transcoders on cores 0 and 1, the first splitting the job across both
#        (target: at least 1.7x faster than 2.);
#     4. and 5. the time to first playable for the 10-minute source, split and one pass.
#   It prints those figures, each range's media and wall seconds from the coordinator's log,
#   and a projection to 4, 8, 16 and 64 workers from the measured per-range costs.
#
#   transcoder/bench/split.sh                          # builds the release binary
#   TRANSCODER=/path/to/transcoder transcoder/bench/split.sh
#
#   It takes about 15 minutes on 2 cores. A measurement, not a test: it exits 0 when every job
#   ran, whether or not a target was met.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/scripts/lib/bench.sh"
ensure_ffmpeg
ensure_moto
command -v taskset >/dev/null || { echo "split.sh: taskset (util-linux) is required" >&2; exit 1; }
TRANSCODER="${TRANSCODER:-$(release_binary transcoder)}"

echo "making a 2-minute 1080p30 source with audio (a minute or two)..." >&2
ffmpeg -hide_banner -nostdin -v error -y -f lavfi -i testsrc2=s=1920x1080:r=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t 120 \
  -c:v libx264 -preset superfast -crf 26 -g 60 -c:a aac -b:a 128k "$work/two.mp4"
for _ in 1 2 3 4 5; do echo "file '$work/two.mp4'"; done >"$work/five.txt"
ffmpeg -hide_banner -nostdin -v error -y -f concat -safe 0 -i "$work/five.txt" -c copy "$work/ten.mp4"

start_moto
"$MOTO_VENV/bin/python" "$root/transcoder/bench/split.py" --transcoder "$TRANSCODER" \
  --work "$work" --source "$work/two.mp4" --long-source "$work/ten.mp4"
