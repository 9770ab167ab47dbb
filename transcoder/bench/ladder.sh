#!/usr/bin/env bash
# ladder.sh - wall-clock and memory benchmark of `transcoder local` against plain ffmpeg.
#
# WHAT IT MEASURES
#   Producing the 5-rung HLS ladder (1080p/720p/480p/360p/240p, libx264 veryfast, crf 23 capped
#   by maxrate, segments of 1, 1, 2 then 4 s with a keyframe at each, AAC audio) from one
#   synthetic 1080p30 source, by
#   four contenders:
#     a. transcoder   - `transcoder local SOURCE OUTDIR` (the product), TRANSCODER_PRESET=veryfast
#     b. hand-written - ONE ffmpeg process: decode once, split, scale, five encoders + HLS muxers
#     c. per-rung seq - five ffmpeg processes one after another, each decoding the source itself
#     d. per-rung par - the same five processes started at once (background + wait)
#   For each run: wall-clock seconds. For (a) also the peak RSS of the transcoder process itself
#   (VmHWM from /proc/PID/status, polled every 0.1 s; its ffmpeg children are NOT included).
#
# WHY
#   The transcoder should cost (almost) nothing on top of the best hand-written ffmpeg command
#   (target: hand-written / transcoder >= 0.95), should clearly beat the naive "one ffmpeg per
#   rung" pipelines that decode the source five times (target: >= 1.5x, sequential and parallel),
#   and its own process should stay small (target: VmHWM < 64 MiB).
#   The machine is noisy, so the contenders run ALTERNATELY (round-robin a,b,c,d; ROUNDS rounds)
#   in one session and only ratios of medians from that same session are reported. Numbers from
#   different sessions or machines are not comparable.
#
# HOW TO RUN
#   transcoder/bench/ladder.sh                          # builds the release binary, 3 rounds, 30 s
#   ROUNDS=5 DURATION=60 transcoder/bench/ladder.sh
#   TRANSCODER=/path/to/transcoder transcoder/bench/ladder.sh   # use an existing binary, no build
#   SKIP_TRANSCODER=1 DURATION=4 ROUNDS=1 transcoder/bench/ladder.sh  # baselines only (no binary)
#
#   Environment:
#     ROUNDS           rounds of a,b,c,d (default 3)
#     DURATION         seconds of generated source (default 30)
#     TRANSCODER       path to the transcoder binary (default: `cargo build --release -p transcoder`
#                      in the workspace root, then <target_directory>/release/transcoder)
#     WORK             scratch directory (default: a fresh `mktemp -d`, removed on exit; a WORK you
#                      pass yourself is kept, only the files this script creates in it are removed)
#     SKIP_TRANSCODER  1 = do not build or run contender (a); only the ffmpeg baselines run and the
#                      transcoder ratios are reported as n/a (for validating the script itself)
#     SEGMENTS         cmaf (default, the product's default: fMP4 video rungs and the audio encoded
#                      once as its own rendition, by every contender) or ts (MPEG-TS, the audio
#                      muxed into every rung)
#     FFMPEG           ffmpeg used by the baselines and the source generation (default: ffmpeg
#                      on PATH). If you export it, `transcoder` reads the same variable, so both
#                      sides use the same ffmpeg.
#
#   Requires: bash >= 5 (EPOCHREALTIME), ffmpeg with libx264 and lavfi, awk, Linux /proc.
#   Exit status: 0 when every run succeeded, even if a target is MISSed (this is a measurement,
#   not a test); non-zero when a run fails or the setup is broken.

set -euo pipefail

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-30}"
SKIP_TRANSCODER="${SKIP_TRANSCODER:-0}"
FFMPEG="${FFMPEG:-ffmpeg}"
SEGMENTS="${SEGMENTS:-cmaf}"

die() { printf 'ladder.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf '%s\n' "$*" >&2; }

[[ "$SEGMENTS" == cmaf || "$SEGMENTS" == ts ]] || die "SEGMENTS must be cmaf or ts (got '$SEGMENTS')"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer (got '$ROUNDS')"
[[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || die "DURATION must be a positive integer of seconds (got '$DURATION')"
[[ -n "${EPOCHREALTIME:-}" ]] || die "bash >= 5 is required (EPOCHREALTIME)"
command -v "$FFMPEG" >/dev/null || die "ffmpeg not found"
[[ -r /proc/self/status ]] || die "/proc is required (VmHWM polling)"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORKSPACE_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

# ---------------------------------------------------------------------------------------------
# Scratch directory
# ---------------------------------------------------------------------------------------------
if [[ -n "${WORK:-}" ]]; then
    mkdir -p "$WORK"
    WORK="$(cd "$WORK" && pwd)"
    OWN_WORK=0
else
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/ladder-bench.XXXXXX")"
    OWN_WORK=1
fi

POLLER_PID=""
cleanup() {
    local rc=$?
    if [[ -n "$POLLER_PID" ]]; then kill "$POLLER_PID" 2>/dev/null || true; fi
    # Stop any ffmpeg/transcoder still running in the background (only our own jobs).
    local p
    for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ "$OWN_WORK" == 1 ]]; then
        rm -rf -- "$WORK"
    else
        rm -rf -- "$WORK/source.mp4" "$WORK/runs" "$WORK/times" "$WORK/logs"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$WORK/runs" "$WORK/times" "$WORK/logs"
SOURCE="$WORK/source.mp4"

# ---------------------------------------------------------------------------------------------
# Transcoder binary
# ---------------------------------------------------------------------------------------------
if [[ "$SKIP_TRANSCODER" == 1 ]]; then
    TRANSCODER="(skipped: SKIP_TRANSCODER=1)"
elif [[ -n "${TRANSCODER:-}" ]]; then
    [[ -x "$TRANSCODER" ]] || die "TRANSCODER=$TRANSCODER is not an executable file"
else
    command -v cargo >/dev/null || die "cargo not found; set TRANSCODER=/path/to/transcoder"
    [[ -f "$WORKSPACE_ROOT/Cargo.toml" ]] || die "no workspace Cargo.toml in $WORKSPACE_ROOT"
    log "building: cargo build --release -p transcoder (in $WORKSPACE_ROOT)"
    (cd "$WORKSPACE_ROOT" && cargo build --release -p transcoder) >&2 \
        || die "cargo build --release -p transcoder failed"
    meta="$(cd "$WORKSPACE_ROOT" && cargo metadata --format-version 1 --no-deps)" \
        || die "cargo metadata failed"
    if command -v jq >/dev/null; then
        target_dir="$(jq -r .target_directory <<<"$meta")"
    elif command -v python3 >/dev/null; then
        target_dir="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' <<<"$meta")"
    else
        target_dir="$(sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p' <<<"$meta")"
    fi
    [[ -n "$target_dir" && -d "$target_dir" ]] || die "could not read target_directory from cargo metadata"
    TRANSCODER="$target_dir/release/transcoder"
    [[ -x "$TRANSCODER" ]] || die "built, but $TRANSCODER is not executable"
fi

# ---------------------------------------------------------------------------------------------
# The ladder: name, width, height, video maxrate (kbit/s), audio bitrate (kbit/s)
# ---------------------------------------------------------------------------------------------
RUNG_NAMES=(1080p 720p 480p 360p 240p)
RUNG_W=(1920 1280 854 640 426)
RUNG_H=(1080 720 480 360 240)
RUNG_VK=(5000 3000 1400 800 400)
RUNG_AK=(128 128 128 96 64)

# Keyframes, and so segments, where the transcoder puts them (encode::Schedule): the opening's
# 1, 1 and 2 s, then every 4 s; the muxer cuts at every keyframe.
KEYFRAMES="expr:gte(t,if(lt(n_forced,1),0,if(lt(n_forced,2),1,if(lt(n_forced,3),2,4*(n_forced-2)))))"

# Per-rung encoder + HLS options, identical for contenders b, c and d.
# Usage: rung_output_args OUTDIR INDEX  -> fills the array RUNG_ARGS
# With MPEG-TS each rung carries the audio (-map 0:a:0 and these encoder options); with CMAF
# the rungs are video only and the audio is one more output (audio_output_args).
rung_output_args() {
    local out="$1" i="$2"
    local name="${RUNG_NAMES[$i]}" r="${RUNG_VK[$i]}" a="${RUNG_AK[$i]}"
    RUNG_ARGS=(
        -c:v libx264 -preset veryfast -crf 23 -maxrate "${r}k" -bufsize "$((2 * r))k"
        -profile:v high -g 240 -sc_threshold 0 -force_key_frames "$KEYFRAMES"
    )
    if [[ "$SEGMENTS" == ts ]]; then
        RUNG_ARGS+=(
            -c:a aac -b:a "${a}k" -ac 2 -ar 48000
            -f hls -hls_time 0.5 -hls_playlist_type vod -hls_flags independent_segments
            -hls_segment_filename "$out/$name/seg_%05d.ts" "$out/$name/index.m3u8"
        )
    else
        RUNG_ARGS+=(
            -f hls -hls_time 0.5 -hls_playlist_type vod -hls_flags independent_segments
            -hls_segment_type fmp4 -hls_fmp4_init_filename init.mp4
            -hls_segment_filename "$out/$name/seg_%05d.m4s" "$out/$name/index.m3u8"
        )
    fi
}

# CMAF's audio rendition, encoded once at the top rung's bitrate, cut every second.
audio_output_args() { # OUTDIR
    AUDIO_ARGS=(
        -map 0:a:0 -c:a aac -b:a "${RUNG_AK[0]}k" -ac 2 -ar 48000
        -f hls -hls_time 1 -hls_playlist_type vod -hls_flags independent_segments
        -hls_segment_type fmp4 -hls_fmp4_init_filename init.mp4
        -hls_segment_filename "$1/audio/seg_%05d.m4s" "$1/audio/index.m3u8"
    )
}

# The rung's audio input, when it carries audio.
rung_audio_map() {
    [[ "$SEGMENTS" == ts ]] && RUNG_MAP_AUDIO=(-map 0:a:0) || RUNG_MAP_AUDIO=()
}

make_rung_dirs() {
    local out="$1" name
    for name in "${RUNG_NAMES[@]}" audio; do mkdir -p "$out/$name"; done
}

check_rung_outputs() { # OUTDIR LABEL
    local out="$1" label="$2" name
    for name in "${RUNG_NAMES[@]}"; do
        [[ -s "$out/$name/index.m3u8" ]] || die "$label: $out/$name/index.m3u8 missing or empty"
    done
}

fail_run() { # LABEL LOGFILE MESSAGE
    log "---- $1 failed: $3; log ($2): ----"
    cat -- "$2" >&2 || true
    log "---- end of log ----"
    exit 1
}

# ---------------------------------------------------------------------------------------------
# Contenders. Each sets RUN_SECONDS; (a) also sets RUN_HWM_KB.
# ---------------------------------------------------------------------------------------------

# Background poller: records the last VmHWM (kB) of PID into FILE every 0.1 s until the process
# is gone or a zombie (exited, not yet reaped - /proc then has no Vm* lines any more).
poll_vmhwm() { # PID FILE
    local pid="$1" file="$2" key val _ hwm="" last="" state
    while :; do
        hwm="" state=""
        { while read -r key val _; do
              case "$key" in
                  State:) state="$val" ;;
                  VmHWM:) hwm="$val" ;;
              esac
          done <"/proc/$pid/status"; } 2>/dev/null || break
        [[ "$state" == Z ]] && break
        if [[ -n "$hwm" && "$hwm" != "$last" ]]; then
            printf '%s\n' "$hwm" >"$file.tmp" && mv -f "$file.tmp" "$file"
            last="$hwm"
        fi
        sleep 0.1
    done
}

run_transcoder() { # RUNDIR
    local dir="$1" out="$1/out" logf="$1/transcoder.log" hwmf="$1/vmhwm_kb" t0 t1 pid rc=0
    mkdir -p "$out"
    t0=$EPOCHREALTIME
    # The same format as the ffmpeg contenders write.
    TRANSCODER_PRESET=veryfast TRANSCODER_SEGMENTS="$SEGMENTS" \
        "$TRANSCODER" local "$SOURCE" "$out" </dev/null >"$logf" 2>&1 &
    pid=$!
    poll_vmhwm "$pid" "$hwmf" &
    POLLER_PID=$!
    wait "$pid" || rc=$?
    t1=$EPOCHREALTIME
    wait "$POLLER_PID" 2>/dev/null || true
    POLLER_PID=""
    ((rc == 0)) || fail_run "transcoder" "$logf" "exit code $rc"
    RUN_SECONDS="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
    RUN_HWM_KB="$(cat "$hwmf" 2>/dev/null || true)"
    [[ -n "$RUN_HWM_KB" ]] || RUN_HWM_KB="NA"
    if ! find "$out" -name '*.m3u8' -print -quit | grep -q .; then
        log "warning: transcoder exited 0 but wrote no .m3u8 under $out"
    fi
}

run_handwritten() { # RUNDIR
    local dir="$1" out="$1/out" logf="$1/ffmpeg.log" t0 t1 i rc=0
    local args=()
    make_rung_dirs "$out"
    rung_audio_map
    for i in "${!RUNG_NAMES[@]}"; do
        rung_output_args "$out" "$i"
        args+=(-map "[v$i]" "${RUNG_MAP_AUDIO[@]}" "${RUNG_ARGS[@]}")
    done
    if [[ "$SEGMENTS" == cmaf ]]; then
        audio_output_args "$out"
        args+=("${AUDIO_ARGS[@]}")
    fi
    t0=$EPOCHREALTIME
    "$FFMPEG" -hide_banner -nostdin -y -v error -i "$SOURCE" -filter_complex \
        "[0:v]fps=30,split=5[s0][s1][s2][s3][s4];[s0]scale=1920:1080:flags=bicubic,setsar=1,format=yuv420p[v0];[s1]scale=1280:720:flags=bicubic,setsar=1,format=yuv420p[v1];[s2]scale=854:480:flags=bicubic,setsar=1,format=yuv420p[v2];[s3]scale=640:360:flags=bicubic,setsar=1,format=yuv420p[v3];[s4]scale=426:240:flags=bicubic,setsar=1,format=yuv420p[v4]" \
        "${args[@]}" </dev/null >"$logf" 2>&1 || rc=$?
    t1=$EPOCHREALTIME
    ((rc == 0)) || fail_run "hand-written ffmpeg" "$logf" "exit code $rc"
    check_rung_outputs "$out" "hand-written ffmpeg"
    RUN_SECONDS="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
}

# One ffmpeg for rung I, decoding the source itself. Runs in the foreground.
# With CMAF, INDEX `audio` is the audio rendition's own ffmpeg.
ffmpeg_one_rung() { # OUTDIR INDEX LOGFILE
    local out="$1" i="$2" logf="$3"
    if [[ "$i" == audio ]]; then
        audio_output_args "$out"
        "$FFMPEG" -hide_banner -nostdin -y -v error -i "$SOURCE" "${AUDIO_ARGS[@]}" \
            </dev/null >"$logf" 2>&1
        return
    fi
    rung_output_args "$out" "$i"
    rung_audio_map
    "$FFMPEG" -hide_banner -nostdin -y -v error -i "$SOURCE" \
        -vf "fps=30,scale=${RUNG_W[$i]}:${RUNG_H[$i]}:flags=bicubic,setsar=1,format=yuv420p" \
        -map 0:v:0 "${RUNG_MAP_AUDIO[@]}" "${RUNG_ARGS[@]}" </dev/null >"$logf" 2>&1
}

# The per-rung contenders' processes: one per rung, and with CMAF one for the audio.
PER_RUNG=("${!RUNG_NAMES[@]}")
[[ "$SEGMENTS" == cmaf ]] && PER_RUNG+=(audio)

# A per-rung process's label.
rung_label() { [[ "$1" == audio ]] && echo audio || echo "${RUNG_NAMES[$1]}"; }

run_perrung_seq() { # RUNDIR
    local dir="$1" out="$1/out" t0 t1 i rc
    make_rung_dirs "$out"
    t0=$EPOCHREALTIME
    for i in "${PER_RUNG[@]}"; do
        rc=0
        ffmpeg_one_rung "$out" "$i" "$dir/ffmpeg_$(rung_label "$i").log" || rc=$?
        ((rc == 0)) || fail_run "per-rung sequential ffmpeg ($(rung_label "$i"))" \
            "$dir/ffmpeg_$(rung_label "$i").log" "exit code $rc"
    done
    t1=$EPOCHREALTIME
    check_rung_outputs "$out" "per-rung sequential ffmpeg"
    RUN_SECONDS="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
}

run_perrung_par() { # RUNDIR
    local dir="$1" out="$1/out" t0 t1 i
    local pids=() rcs=()
    make_rung_dirs "$out"
    t0=$EPOCHREALTIME
    for i in "${PER_RUNG[@]}"; do
        ffmpeg_one_rung "$out" "$i" "$dir/ffmpeg_$(rung_label "$i").log" &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        rcs[i]=0
        wait "${pids[$i]}" || rcs[i]=$?
    done
    t1=$EPOCHREALTIME
    for i in "${!pids[@]}"; do
        local which
        which="$(rung_label "${PER_RUNG[$i]}")"
        ((rcs[i] == 0)) || fail_run "per-rung parallel ffmpeg ($which)" \
            "$dir/ffmpeg_$which.log" "exit code ${rcs[$i]}"
    done
    check_rung_outputs "$out" "per-rung parallel ffmpeg"
    RUN_SECONDS="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
}

# ---------------------------------------------------------------------------------------------
# Source
# ---------------------------------------------------------------------------------------------
FFMPEG_VERSION="$("$FFMPEG" -hide_banner -version | head -n 1)"
log "generating ${DURATION}s 1080p30 source: $SOURCE"
"$FFMPEG" -hide_banner -nostdin -y -v error \
    -f lavfi -i "testsrc2=size=1920x1080:rate=30,noise=alls=12:allf=t" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -t "$DURATION" -c:v libx264 -preset veryfast -crf 18 -pix_fmt yuv420p \
    -c:a aac -b:a 128k -shortest "$SOURCE" </dev/null >"$WORK/logs/source.log" 2>&1 \
    || fail_run "source generation" "$WORK/logs/source.log" "ffmpeg failed"
[[ -s "$SOURCE" ]] || die "source generation produced no file"

# ---------------------------------------------------------------------------------------------
# Round-robin
# ---------------------------------------------------------------------------------------------
CONTENDERS=(transcoder handwritten perrung_seq perrung_par)
declare -A LABEL=(
    [transcoder]="a. transcoder local"
    [handwritten]="b. hand-written (1 ffmpeg)"
    [perrung_seq]="c. per-rung sequential (5 ffmpeg)"
    [perrung_par]="d. per-rung parallel (5 ffmpeg)"
)
for c in "${CONTENDERS[@]}"; do : >"$WORK/times/$c"; done
: >"$WORK/times/vmhwm_kb"

for ((round = 1; round <= ROUNDS; round++)); do
    for c in "${CONTENDERS[@]}"; do
        if [[ "$c" == transcoder && "$SKIP_TRANSCODER" == 1 ]]; then continue; fi
        rundir="$WORK/runs/r${round}_$c"
        rm -rf -- "$rundir"
        mkdir -p "$rundir"
        RUN_SECONDS="" RUN_HWM_KB=""
        "run_$c" "$rundir"
        printf '%s\n' "$RUN_SECONDS" >>"$WORK/times/$c"
        if [[ "$c" == transcoder ]]; then
            printf '%s\n' "$RUN_HWM_KB" >>"$WORK/times/vmhwm_kb"
            log "[round $round/$ROUNDS] ${LABEL[$c]}: ${RUN_SECONDS}s, VmHWM ${RUN_HWM_KB} kB"
        else
            log "[round $round/$ROUNDS] ${LABEL[$c]}: ${RUN_SECONDS}s"
        fi
        # Free the disk (and page cache pressure) before the next contender; timing is done.
        rm -rf -- "$rundir/out"
    done
done

# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { if (NR == 0) { print "NA"; exit }
    if (NR % 2) printf "%.3f\n", v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
minimum() { sort -n "$1" | awk 'NR == 1 { printf "%.3f\n", $1; found = 1 } END { if (!found) print "NA" }'; }
all_runs() { paste -sd ' ' "$1"; }

declare -A MED MIN
for c in "${CONTENDERS[@]}"; do
    MED[$c]="$(median "$WORK/times/$c")"
    MIN[$c]="$(minimum "$WORK/times/$c")"
done

# ratio NUM DEN TARGET -> "VALUE RESULT": ratio of medians and PASS/MISS (ratio >= TARGET passes)
ratio() {
    awk -v n="$1" -v d="$2" -v t="$3" 'BEGIN {
        if (n == "NA" || d == "NA" || d + 0 <= 0) { print "n/a -"; exit }
        r = n / d; printf "%.3f %s\n", r, (r >= t ? "PASS" : "MISS") }'
}
ratio_row() { # LABEL NUM DEN TARGET TARGET_TEXT
    local value result
    read -r value result <<<"$(ratio "$2" "$3" "${4/-/0}")"
    [[ "$4" != - ]] || result=""  # informational row: no target, no verdict
    printf '%-36s %9s   %-6s %s\n' "$1" "$value" "$result" "$5"
}

echo
echo "== ladder benchmark =========================================================="
echo "machine:    $(nproc) cores ($(uname -srm)); $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)"
echo "ffmpeg:     $FFMPEG_VERSION"
echo "parameters: ROUNDS=$ROUNDS DURATION=${DURATION}s source=1920x1080@30 testsrc2+noise (x264 crf18)"
echo "            ladder=${RUNG_NAMES[*]} preset=veryfast segments=1,1,2,4s keyframes on segment boundaries, $SEGMENTS"
echo "transcoder: $TRANSCODER"
echo "order:      round-robin a,b,c,d per round; wall-clock seconds"
echo
printf '%-36s %9s %9s   %s\n' "contender" "median s" "min s" "all runs (s)"
for c in "${CONTENDERS[@]}"; do
    if [[ "$c" == transcoder && "$SKIP_TRANSCODER" == 1 ]]; then
        printf '%-36s %9s %9s   %s\n' "${LABEL[$c]}" "-" "-" "skipped (SKIP_TRANSCODER=1)"
    else
        printf '%-36s %9s %9s   %s\n' "${LABEL[$c]}" "${MED[$c]}" "${MIN[$c]}" "$(all_runs "$WORK/times/$c")"
    fi
done

echo
printf '%-36s %9s   %-6s %s\n' "ratio of medians" "value" "result" "target"
ratio_row "hand-written / transcoder" "${MED[handwritten]}" "${MED[transcoder]}" 0.95 \
    ">= 0.95 (transcoder within 5%)"
ratio_row "per-rung sequential / transcoder" "${MED[perrung_seq]}" "${MED[transcoder]}" 1.5 ">= 1.5"
ratio_row "per-rung parallel / transcoder" "${MED[perrung_par]}" "${MED[transcoder]}" 1.5 ">= 1.5"
# Informational only (no target): what the single-process command gains over the naive pipelines.
ratio_row "(info) per-rung sequential / hand" "${MED[perrung_seq]}" "${MED[handwritten]}" - "(no target)"
ratio_row "(info) per-rung parallel / hand" "${MED[perrung_par]}" "${MED[handwritten]}" - "(no target)"

echo
if [[ "$SKIP_TRANSCODER" == 1 ]]; then
    printf '%-36s %s\n' "transcoder peak VmHWM" "n/a (SKIP_TRANSCODER=1)"
else
    awk -v runs="$(all_runs "$WORK/times/vmhwm_kb")" '
        $1 != "NA" { if ($1 + 0 > max) max = $1 + 0; n++ }
        END {
            if (n == 0) { printf "%-36s %s\n", "transcoder peak VmHWM", "n/a (never read; process too short-lived?)"; exit }
            mib = max / 1024
            printf "%-36s %9s   %-6s %s\n", "transcoder peak VmHWM (own process)",
                sprintf("%.1f MiB", mib), (mib < 64 ? "PASS" : "MISS"), "< 64 MiB (max over runs; kB per run: " runs ")"
        }' "$WORK/times/vmhwm_kb"
fi
echo "=============================================================================="
echo "Ratios compare medians from this one session only. MISS is reported, not fatal."
