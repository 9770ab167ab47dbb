#!/usr/bin/env bash
# playable.sh - "playable in seconds whatever the length": time to first playable and time to
# done through the whole pipeline, for 1-, 10- and 60-minute uploads, measured on this machine.
#
# WHAT IT DOES
#   moto on a free loopback port as S3 and SQS, set up by scripts/lib/local_stack.py (raw and
#   output buckets, the uploads queue with its dead-letter queue, the S3 -> SQS notification);
#   two warm transcoders (`transcoder serve --listen 127.0.0.1:0 --max-jobs 1`, the product's
#   default encode settings: TRANSCODER_PRESET and the other encode knobs are unset) and one
#   consumer (DISPATCH_MODE=grpc, TRANSCODER_ENDPOINTS = both). Then, for each length in
#   LENGTHS (minutes) and each layout in LAYOUTS:
#     - the source: one generated minute of 1080p30 testsrc2 with a 440 Hz AAC tone (libx264
#       ultrafast, 3 Mbit/s), concatenated to the length with the concat demuxer (-c copy) and
#       remuxed (-c copy) as `faststart` (moov before mdat, -movflags +faststart) or `end`
#       (ffmpeg's default: moov after mdat); a top-level box walk checks the order;
#     - one upload to the raw bucket (boto3 upload_file: multipart for big files; the S3
#       notification fires on completion), then, from the moment the upload call returns, a
#       player's eye every 100 ms on the output prefix:
#         first playable: the stable master.m3u8 exists, every media playlist it names exists
#                         and lists at least one segment, and those segments exist;
#         done:           manifest.json says `done` (`failed`, `retrying`, `dead_lettered` or
#                         `cancelled` ends the job as a failure);
#       and the job's own figures for cross-checking: the manifest's created_at, playable_at and
#       updated_at (seconds_to_playable = playable_at - created_at) and the transcoder's
#       "downloaded source" log line;
#     - for lengths up to DONE_UP_TO_MINUTES, the one-pass encode of the same source
#       (`transcoder local SOURCE OUT_DIR`, no cloud), timed, for done / one-pass.
#   Longer lengths are measured up to first playable only: the job is then stopped (the
#   consumer and both transcoders' process groups are SIGKILLed, the uploads queue purged, and
#   the transcoders restarted on the same ports and the consumer after them), so the next
#   measurement never shares the CPU with a leftover encode. One job at a time, always: every
#   job ends (or is stopped) and no ffmpeg is left before the next upload.
#
# IT PRINTS
#   per job: upload, dispatch (upload returned -> the job's `processing` record), download (the
#   transcoder's log), first playable (the harness's and the job's own), done; then a table:
#   length, layout, source MB, first playable s, done s, one-pass s, done / one-pass, PASS/MISS,
#   and Mux's published median time to publish for the length (Mux blog, April 2023: 2.0 s
#   under 1 min, 3.3 s for 1-5 min, 9.0 s for 5-20 min, 46.4 s for 20-60 min). Targets:
#   first playable <= 5 s for every length and never above 8 s; done <= 1.10x one-pass.
#   The last line is `RESULT {...}`, the results as one JSON object.
#
#   transcoder/bench/playable.sh                              # builds the release binaries
#   LENGTHS=1 transcoder/bench/playable.sh                    # the 1-minute source only
#   LENGTHS="1 10" DONE_UP_TO_MINUTES=1 transcoder/bench/playable.sh
#   TRANSCODER=/path/to/transcoder CONSUMER=/path/to/consumer transcoder/bench/playable.sh
#   BENCH_KEEP=1 ...                                          # keep the work folder (logs) and say where
#
# KNOBS
#   LENGTHS             minutes of source, "1 10 60"
#   LAYOUTS             "faststart end"
#   DONE_UP_TO_MINUTES  10: longer sources get first playable only (done and one-pass "not
#                       measured (DONE_UP_TO_MINUTES)")
#   TRANSCODER, CONSUMER  binaries under test (default: built with release_binary)
#   PLAYABLE_TIMEOUT    seconds to wait for first playable, 600; the wait for done is 1800 s
#                       plus 3 s per second of source
#
# HOW LONG
#   A 1080p five-rung encode of this source runs at 1.7x real time on a quiet 2-core machine
#   and at half that when other work shares it, so with the defaults allow 30 to 60 minutes:
#   the 1-minute case 3 to 4 minutes (one-pass and two jobs), the 10-minute case 20 to 40
#   (one-pass and two jobs of 6 to 12 minutes each), the 60-minute case a few minutes (sources
#   to make and upload, first playable only). LENGTHS=1 takes 3 to 4 minutes. Disk: about 8 GB
#   in TMPDIR at the peak of the 60-minute case (both layouts, moto's copy of an upload and its
#   parts, the transcoder's download). Other work on the machine skews every wall-clock figure:
#   the report says how much CPU it took during each measurement ("others %") and flags rows
#   where it took over 10%; the CPU seconds of job and one-pass are printed beside the ratio.
#
#   A measurement, not a test: it exits 0 when every job ran, whether or not a target was met,
#   1 when a job failed or timed out, 2 when the harness broke.
set -euo pipefail

LENGTHS="${LENGTHS:-1 10 60}"
LAYOUTS="${LAYOUTS:-faststart end}"
DONE_UP_TO_MINUTES="${DONE_UP_TO_MINUTES:-10}"
PLAYABLE_TIMEOUT="${PLAYABLE_TIMEOUT:-600}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/scripts/lib/bench.sh"
pipeline_tools

# The stop-early path purges the uploads queue after stopping a job; moto refuses a second
# purge within 60 s unless told otherwise (real SQS does too; this is the harness, not the product).
export MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR=false
local_pipeline
status=0
"$python" "$root/transcoder/bench/playable.py" --work "$work" --transcoder "$TRANSCODER" \
  --consumer "$CONSUMER" --lengths "$LENGTHS" --layouts "$LAYOUTS" \
  --done-up-to "$DONE_UP_TO_MINUTES" --playable-timeout "$PLAYABLE_TIMEOUT" || status=$?
exit "$status"
