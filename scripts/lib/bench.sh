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
