#!/usr/bin/env bash
# load.sh - many uploads at once through the whole pipeline: every one must end done exactly
# once, with bounded concurrency and flat consumer memory.
#
# WHAT IT DOES
#   moto as S3, SQS and ECS; two warm transcoders (one job each) and the consumer in `auto`
#   mode, so what the warm pool cannot take overflows to one-shot ECS tasks. moto's ECS runs no
#   container, so consumer/bench/fargate.py plays Fargate: it starts `transcoder run` with each
#   task's overrides, two at a time. UPLOADS short clips (1 s, 320x240) are uploaded at once.
#
# IT PRINTS
#   the time from the first upload to the last done manifest and the throughput; where the jobs
#   ran (warm or ECS); the most encoders seen at once (bounded by 2 warm + 2 tasks); the peak
#   memory (VmHWM) of the consumer, each warm transcoder and the largest one-shot task, and the
#   consumer's resident memory at each quarter of the run (flat, whatever the backlog); and
#   whether each upload was published exactly once with both queues empty at the end.
#
#   consumer/bench/load.sh                 # 200 uploads
#   UPLOADS=50 consumer/bench/load.sh
set -euo pipefail

UPLOADS="${UPLOADS:-200}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/scripts/lib/bench.sh"
pipeline_tools

ffmpeg -hide_banner -nostdin -v error -y -f lavfi -i "testsrc2=size=320x240:rate=30" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 1 -c:v libx264 -preset ultrafast \
  -c:a aac "$work/clip.mp4"
local_pipeline --ecs
export OUTPUT_PREFIX=hls/ TRANSCODER_PRESET=ultrafast RUST_LOG=info LOG_FORMAT=json

endpoints=()
for i in 1 2; do
  "$TRANSCODER" serve --listen 127.0.0.1:0 --max-jobs 1 >"$work/t$i.out" 2>"$work/t$i.log" &
  pids+=("$!")
  for _ in $(seq 100); do grep -q '^listening on ' "$work/t$i.out" 2>/dev/null && break; sleep 0.1; done
  endpoints+=("http://$(sed -n 's/^listening on //p' "$work/t$i.out")")
done
warm_pids=("${pids[@]}")
TRANSCODER_ENDPOINTS=$(IFS=,; echo "${endpoints[*]}") DISPATCH_MODE=auto POLL_WAIT_SECONDS=1 \
  TRANSCODER_HEALTH_SECONDS=1 "$CONSUMER" 2>"$work/consumer.log" &
consumer_pid=$!
pids+=("$consumer_pid")
RUST_LOG=warn LOG_FORMAT=text "$python" "$root/consumer/bench/fargate.py" "$TRANSCODER" \
  --parallel 2 --until-file "$work/all-done" --report "$work/tasks.json" &
player_pid=$!
pids+=("$player_pid")

echo "uploading $UPLOADS clips..." >&2
start=$(date +%s.%N)
"$python" - "$work/clip.mp4" "$UPLOADS" <<'PY'
import sys, boto3
s3 = boto3.client("s3")
body = open(sys.argv[1], "rb").read()
for i in range(int(sys.argv[2])):
    s3.put_object(Bucket="vod-raw", Key="load/clip-%04d.mp4" % i, Body=body)
PY

max_encoders=0
rss_at=()
next_quarter=1
while :; do
  done_count=$("$python" - <<'PY'
import json, boto3
s3 = boto3.client("s3")
done = 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="vod-output", Prefix="hls/load/"):
    for item in page.get("Contents", []):
        if item["Key"].endswith("/manifest.json"):
            body = s3.get_object(Bucket="vod-output", Key=item["Key"])["Body"].read()
            done += json.loads(body)["status"] == "done"
print(done)
PY
)
  encoders=$(pgrep -c -x ffmpeg || true)
  [ "$encoders" -gt "$max_encoders" ] && max_encoders=$encoders
  while [ "$next_quarter" -le 4 ] && [ "$done_count" -ge $((UPLOADS * next_quarter / 4)) ]; do
    rss_at+=("$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$consumer_pid/status")")
    next_quarter=$((next_quarter + 1))
  done
  [ "$done_count" -ge "$UPLOADS" ] && break
  kill -0 "$consumer_pid" 2>/dev/null || { echo "the consumer died" >&2; tail -5 "$work/consumer.log" >&2; exit 1; }
  sleep 1
done
end=$(date +%s.%N)
touch "$work/all-done"
wait "$player_pid" || true

hwm() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
consumer_hwm=$(hwm "$consumer_pid")
t1_hwm=$(hwm "${warm_pids[0]}")
t2_hwm=$(hwm "${warm_pids[1]}")
kill -TERM "$consumer_pid"; wait "$consumer_pid" 2>/dev/null || true

"$python" - "$work" "$UPLOADS" "$start" "$end" "$max_encoders" "$consumer_hwm" "$t1_hwm" "$t2_hwm" "${rss_at[*]}" <<'PY'
import json, sys, boto3
work, n, start, end, max_enc, c_hwm, t1, t2, rss = sys.argv[1:]
n, secs = int(n), float(end) - float(start)
log = [json.loads(l) for l in open(f"{work}/consumer.log") if l.startswith("{")]
handed = [l["fields"]["by"] for l in log if l["fields"].get("message") == "job handed over"]
warm = sum(1 for b in handed if b.startswith("http"))
ecs_jobs = len(handed) - warm
warm_published = sum(1 for l in log if l["fields"].get("message") == "job done" and l["fields"].get("already_done") is False)
tasks = json.load(open(f"{work}/tasks.json"))
task_published = sum(1 for t in tasks if t["exit"] == 0 and not t["already_done"])
failed_tasks = [t for t in tasks if t["exit"] != 0]
sqs = boto3.client("sqs")
def count(url):
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])
import os
queue_left, dlq_left = count(os.environ["QUEUE_URL"]), count(os.environ["DLQ_URL"])
run_peak = max((t["peak_kib"] for t in tasks), default=0) / 1024
print(f"uploads:                {n}, all done in {secs:.1f} s ({n / secs * 60:.0f} per minute)")
print(f"where they ran:         {warm} warm, {ecs_jobs} one-shot ECS tasks ({len(tasks)} tasks run)")
print(f"published:              {warm_published + task_published} (warm {warm_published}, tasks {task_published}); failed tasks: {len(failed_tasks)}")
print(f"encoders at once (max): {max_enc} (bound: 2 warm + 2 tasks = 4)")
print(f"peak memory (VmHWM):    consumer {c_hwm} MiB; warm transcoders {t1} and {t2} MiB; largest task {run_peak:.1f} MiB")
print(f"consumer RSS at 25/50/75/100% done: {rss} MiB")
print(f"queues at the end:      uploads {queue_left}, dead-letter {dlq_left}")
ok = warm_published + task_published == n and queue_left == 0 and dlq_left == 0 and not failed_tasks
print("exactly once, nothing left: " + ("yes" if ok else "NO"))
sys.exit(0 if ok else 1)
PY
