#!/usr/bin/env bash
# chaos.sh - one run of the whole pipeline under faults, with a player's eye on every stream:
# every upload must end published once for its final bytes (or failed, for the two bad files),
# no stable master may ever point at something missing, and nothing may be left behind.
#
# WHAT IT DOES
#   moto as S3 and SQS on a free loopback port: the uploads queue (visibility 30 s) with its
#   dead-letter queue (maxReceiveCount 5), the raw and output buckets and the S3 notification,
#   as scripts/lib/local_stack.py sets them up. Three warm transcoders (`serve --max-jobs 1`,
#   TRANSCODER_PREFIX_LEASE_SECONDS=10, QUEUE_MAX_RECEIVE_COUNT=5, ultrafast) and two consumers
#   (DISPATCH_MODE=grpc, each given all three endpoints). consumer/bench/chaos.py then uploads
#   UPLOADS short clips (2-4 s, 320x240, testsrc with a tone) in one burst, more than the three
#   slots, plus a file whose MP4 header declares a sixth of the 40 s it holds, and during the run:
#     - re-uploads every fifth clip with other bytes as soon as its first job is `processing`;
#     - overwrites one clip with a text file once its good version is `done`;
#     - SIGKILLs a transcoder while its ffmpeg runs, and restarts it on the same port;
#     - SIGKILLs a consumer, and restarts it;
#     - freezes a transcoder with SIGSTOP for 30 s mid-job, then SIGCONT.
#   Throughout, a poller (every ~0.5 s) reads every stable master.m3u8, every media playlist it
#   names, and checks that every segment those list exists: any miss is a moment unplayable.
#
# IT PRINTS
#   the faults with their times; then uploads, done, failed (and why), duplicate encodes (two
#   complete versions of one key for the same bytes, told by the records' source ETag and by
#   the version's length, cross-checked with the transcoders' "job done" lines), lost uploads
#   (final bytes with no `done` record), stable masters not serving their record's version as
#   a finished VOD stream, moments unplayable, both queues' counts and the records left
#   `processing`. It exits 1 when any of these misses its target (0, 0, 0, 0, empty, none) or
#   anything but the two bad files failed, after printing the evidence.
#
#   consumer/bench/chaos.sh                          # 60 clips
#   UPLOADS=30 consumer/bench/chaos.sh
#   TRANSCODER=target/debug/transcoder CONSUMER=target/debug/consumer consumer/bench/chaos.sh
#   BENCH_KEEP=1 ...                                 # keep the work folder (logs) and say where
#
# Other knobs: CHAOS_TIMEOUT (seconds for the whole run, 900), FREEZE_SECONDS (30). Progress
# and each unplayable moment as it happens go to stderr.
set -euo pipefail

UPLOADS="${UPLOADS:-60}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/scripts/lib/bench.sh"
pipeline_tools

local_pipeline
# chaos.py starts, kills and restarts the transcoders and consumers itself, and exits non-zero
# when a target is missed.
"$python" "$root/consumer/bench/chaos.py" --work "$work" --uploads "$UPLOADS" \
  --transcoder "$TRANSCODER" --consumer "$CONSUMER"
