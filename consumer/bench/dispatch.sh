#!/usr/bin/env bash
# dispatch.sh - how many queued uploads a second the consumer hands over, and its peak memory
# as the backlog grows.
#
# WHAT IT SHOWS
#   For each backlog size, a fresh moto server gets the whole pipeline's resources (buckets,
#   the queue with its dead-letter queue and the S3 notification, an ECS cluster and the task
#   definition), then N real uploads of a small clip, so the queue holds N real S3
#   notifications. The consumer then starts in `ecs` mode and the clock runs until it has
#   handed every upload over (N "job handed over" log lines: the message kept for the task,
#   RunTask answered with a task). ECS mode measures the consumer itself: in `grpc` mode the
#   rate is the transcoders' encoding rate, not the consumer's.
#   No task ever runs here, so the messages are kept invisible far longer than any run takes
#   (ECS_STARTUP_SECONDS=3600): each upload must start exactly one task.
#   The consumer's peak memory (VmHWM from /proc) must stay flat as the backlog grows: it
#   never holds more than one receive batch (10 messages).
#   moto answers more slowly as it holds more messages and tasks (it scans them per call), so
#   the wall-clock rate falls with the backlog for moto's sake. The consumer's own CPU time per
#   upload (utime + stime from /proc) is printed beside it: that is the consumer's cost, and
#   1 / (CPU per upload) is the rate one core of consumer could sustain against services
#   that answered at once.
#
# HOW TO RUN
#   consumer/bench/dispatch.sh                        # backlogs 100 400 1600
#   BACKLOGS="100 3200" consumer/bench/dispatch.sh
#
# The figures include moto's own time per call (a single-threaded Python server), so they are
# a floor for the consumer's rate against real SQS and ECS, not a ceiling.
set -euo pipefail

BACKLOGS="${BACKLOGS:-100 400 1600}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/scripts/lib/bench.sh"
consumer_pid=""
CONSUMER="${CONSUMER:-$(release_binary consumer)}"
ensure_ffmpeg
ensure_moto
python="$MOTO_VENV/bin/python"
ffmpeg -hide_banner -nostdin -v error -y -f lavfi -i "testsrc2=size=320x240:rate=30" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 1 -c:v libx264 -preset ultrafast \
  -c:a aac "$work/clip.mp4"

printf '%-8s %-9s %-11s %-14s %-17s %-10s\n' backlog seconds uploads/s "CPU ms/upload" "uploads/CPU-s" "VmHWM MiB" >"$work/table"
for n in $BACKLOGS; do
  start_moto
  echo "backlog $n: setting up and uploading..." >&2
  "$python" "$root/scripts/lib/local_stack.py" setup --ecs >"$work/env"
  # shellcheck disable=SC1091
  . "$work/env"
  "$python" "$root/consumer/bench/backlog.py" "$work/clip.mp4" "$n" "$QUEUE_URL"

  start=$(date +%s.%N)
  QUEUE_URL="$QUEUE_URL" DISPATCH_MODE=ecs ECS_CLUSTER="$ECS_CLUSTER" \
    ECS_TASK_DEFINITION="$ECS_TASK_DEFINITION" ECS_SUBNETS="$ECS_SUBNETS" \
    OUTPUT_BUCKET="$OUTPUT_BUCKET" POLL_WAIT_SECONDS=1 ECS_STARTUP_SECONDS=3600 LOG_FORMAT=json RUST_LOG=info \
    "$CONSUMER" 2>"$work/consumer.log" &
  consumer_pid=$!
  pids+=("$consumer_pid")
  peak=0
  while :; do
    handed=$(grep -c '"job handed over"' "$work/consumer.log" || true)
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$consumer_pid/status" 2>/dev/null || echo 0)
    [ "${hwm:-0}" -gt "$peak" ] && peak=$hwm
    [ "$handed" -ge "$n" ] && break
    if ! kill -0 "$consumer_pid" 2>/dev/null; then
      echo "the consumer exited early:" >&2; tail -5 "$work/consumer.log" >&2; exit 1
    fi
    sleep 0.05
  done
  end=$(date +%s.%N)
  # utime + stime, in clock ticks: fields 14 and 15 of /proc/PID/stat (after the command name).
  ticks=$(sed 's/^.*) //' "/proc/$consumer_pid/stat" | awk '{print $12 + $13}')
  hz=$(getconf CLK_TCK)
  kill -TERM "$consumer_pid"; wait "$consumer_pid" || true; consumer_pid=""
  tasks=$("$python" "$root/scripts/lib/local_stack.py" count-tasks)
  [ "$tasks" -eq "$n" ] || { echo "backlog $n: $tasks tasks, want $n" >&2; exit 1; }
  kill "$MOTO_PID"; wait "$MOTO_PID" 2>/dev/null || true; MOTO_PID=""
  awk -v n="$n" -v s="$start" -v e="$end" -v kb="$peak" -v t="$ticks" -v hz="$hz" \
    'BEGIN { cpu = t / hz; printf "%-8d %-9.1f %-11.1f %-14.2f %-17.0f %-10.1f\n",
             n, e - s, n / (e - s), 1000 * cpu / n, n / cpu, kb / 1024 }' >>"$work/table"
done
echo "consumer dispatch rate, ecs mode against moto (one RunTask and one visibility change per upload):"
cat "$work/table"
