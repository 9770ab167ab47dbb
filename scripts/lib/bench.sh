# The benchmarks' common start, sourced after setting `root` (the workspace): a scratch folder
# `work` removed on exit (kept, and named, with BENCH_KEEP=1), every pid in `pids` and moto
# (MOTO_PID, set by start_moto) stopped on exit, and the dependency and local-AWS helpers
# loaded (deps.sh, local_aws.sh). Each bench then ensures what it needs itself.

work="$(mktemp -d)"
MOTO_PID=""
pids=()
bench_cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null || true
  if [ -n "${BENCH_KEEP:-}" ]; then echo "work folder kept in $work" >&2; else rm -rf "$work"; fi
}
trap bench_cleanup EXIT

. "$root/scripts/lib/deps.sh"
. "$root/scripts/lib/local_aws.sh"

# pipeline_tools: what a bench of the whole pipeline runs: ffmpeg, moto, and the binaries
# under test (TRANSCODER and CONSUMER when given, else release builds of this workspace).
# Sets TRANSCODER, CONSUMER and `python` (the moto virtualenv's, which has boto3).
pipeline_tools() {
  ensure_ffmpeg
  ensure_moto
  TRANSCODER="${TRANSCODER:-$(release_binary transcoder)}"
  CONSUMER="${CONSUMER:-$(release_binary consumer)}"
  python="$MOTO_VENV/bin/python"
}

# local_pipeline [--ecs]: moto started, the pipeline's resources made on it by
# scripts/lib/local_stack.py (with --ecs, a cluster and the one-shot task definition too), and
# their names (QUEUE_URL, RAW_BUCKET, ECS_*...) exported.
local_pipeline() {
  start_moto
  "$python" "$root/scripts/lib/local_stack.py" setup "$@" >"$work/env"
  set -a
  # shellcheck disable=SC1091
  . "$work/env"
  set +a
}
