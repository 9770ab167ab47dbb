#!/usr/bin/env bash
# README command 1: the main job end to end on this machine, no AWS account, no Docker.
# Installs ffmpeg if missing, builds the transcoder, makes a 20 s 1080p sample (or takes the
# file you name), turns it into an HLS ladder in ./out/demo, and says how to play it.
#
#   scripts/demo.sh [VIDEO_FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh

ensure_cargo
ensure_ffmpeg
cargo build --release --locked -p transcoder
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
transcoder="$target_dir/release/transcoder"

out=out/demo
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

"$transcoder" local "$input" "$out"
echo
echo "output:  $(pwd)/$out"
echo "play it: ffplay $(pwd)/$out/master.m3u8"
echo "   or:   (cd $out && python3 -m http.server 8000), then open http://localhost:8000/master.m3u8 in Safari or any HLS player"
