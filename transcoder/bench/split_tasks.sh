#!/usr/bin/env bash
# split_tasks.sh - a long upload finished by ECS range tasks, with 1, 2 and 4 task runners, and
# the projection to 64, measured on this machine.
#
# WHAT IT DOES
#   moto on a free loopback port as S3, SQS and ECS, set up by scripts/lib/local_stack.py
#   (`setup --ecs`: buckets, the uploads queue and its notification, a cluster, the one-shot
#   task definition, a Fargate-ready subnet). The source: one generated minute of 360p30
#   testsrc2 with a 440 Hz AAC tone, concatenated (-c copy) to MINUTES minutes (360p keeps the
#   three runs within half an hour here; the projection scales with the encode speed).
#   Then:
#     1. the one-pass encode alone: `transcoder local SOURCE DIR`, timed;
#     2. for each N in RUNNERS: one warm transcoder (`serve`, SPLIT_TASKS=N, the ECS_* settings,
#        the product's defaults otherwise) and one consumer (DISPATCH_MODE=grpc); the upload
#        goes to the raw bucket, the consumer hands it to the transcoder, which splits it over
#        itself and N range tasks (RunTask on moto). A stand-in for the ECS agent (a harness,
#        named as one, in split_tasks.py) runs each task's `transcoder run-range` as a process,
#        N at a time, and stops the task when it exits. Timed from the upload's return to the
#        `done` record.
#
# IT PRINTS
#   one pass and each run: ranges, tasks, done seconds, CPU seconds of the whole machine, and
#   the speed-up against the one pass; the per-range cost of a task beyond its encode; and a
#   projection to 1, 2, 4, 8, 16 and 64 tasks, each a 2-vCPU task of its own encoding at the
#   one-pass speed measured here, with and without Fargate's task start (not measurable here).
#   On this machine every runner shares the same 2 cores, so the measured speed-ups stay near
#   1x; the report says so. The last line is `RESULT {...}`.
#
#   transcoder/bench/split_tasks.sh                 # builds the release binaries
#   MINUTES=10 RUNNERS="1 2" transcoder/bench/split_tasks.sh
#
# KNOBS
#   MINUTES   source length, 60
#   RUNNERS   "1 2 4"
#   TRANSCODER, CONSUMER  binaries under test (default: built with release_binary)
#
# HOW LONG
#   About 6 minutes per run at 60 minutes (the 360p ladder encodes at about 10x real time on
#   2 cores), so 25 to 30 minutes with the defaults. Disk: about 1.5 GB in TMPDIR.
#
#   A measurement, not a test: it exits 0 when every job ran, 1 when a job failed.
set -euo pipefail

MINUTES="${MINUTES:-60}"
RUNNERS="${RUNNERS:-1 2 4}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/scripts/lib/bench.sh"
pipeline_tools

echo "making a ${MINUTES}-minute 360p30 source with audio..." >&2
ffmpeg -hide_banner -nostdin -v error -y -f lavfi -i testsrc2=s=640x360:r=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t 60 \
  -c:v libx264 -preset ultrafast -b:v 600k -g 60 -c:a aac -b:a 96k "$work/minute.mp4"
for _ in $(seq "$MINUTES"); do echo "file '$work/minute.mp4'"; done >"$work/list.txt"
ffmpeg -hide_banner -nostdin -v error -y -f concat -safe 0 -i "$work/list.txt" -c copy "$work/source.mp4"

local_pipeline --ecs
"$python" "$root/transcoder/bench/split_tasks.py" --work "$work" --transcoder "$TRANSCODER" \
  --consumer "$CONSUMER" --source "$work/source.mp4" --runners "$RUNNERS"
