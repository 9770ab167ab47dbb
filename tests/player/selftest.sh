#!/usr/bin/env bash
# Self-test of the player harness: makes small ffmpeg fixtures in a temp dir, plays them with
# hls.js and dash.js through play.mjs, and also checks that broken copies FAIL.
# Exit status is non-zero if any case does not behave as expected. KEEP=1 keeps the fixtures.
set -euo pipefail
cd "$(dirname "$0")"
HERE="$PWD"
./install.sh

TMP="$(mktemp -d /tmp/player-selftest.XXXXXX)"
if [[ -z "${KEEP:-}" ]]; then trap 'rm -rf "$TMP"' EXIT; else echo "fixtures kept in $TMP"; fi
passed=0 failed=0

# 0. The whole approach needs MSE with H.264 + AAC in Debian's Chromium: stop early if not.
node --input-type=module -e '
import puppeteer from "puppeteer-core";
const b = await puppeteer.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true, args: ["--no-sandbox"] });
try {
  const p = await b.newPage();
  const r = await p.evaluate(() => ({
    h264: MediaSource.isTypeSupported(`video/mp4; codecs="avc1.64001f"`),
    aac: MediaSource.isTypeSupported(`audio/mp4; codecs="mp4a.40.2"`) }));
  console.log(`MSE in ${await b.version()}: H.264 ${r.h264}, AAC ${r.aac}`);
  if (!r.h264 || !r.aac) { console.error("Chromium cannot play H.264/AAC through MSE: hls.js/dash.js checks are impossible"); process.exitCode = 3; }
} finally { await b.close(); }'

# 1. Unit test of the loopback server (Range, traversal, media types).
if node --test server.test.mjs >"$TMP/server-test.log" 2>&1; then
  echo "PASS server.test.mjs ($(grep -E '^# (pass|fail) ' "$TMP/server-test.log" | tr '\n' ' '))"; passed=$((passed + 1))
else
  cat "$TMP/server-test.log"; echo "FAIL server.test.mjs"; failed=$((failed + 1))
fi

FF=(ffmpeg -hide_banner -loglevel error -y)
SRC=(-f lavfi -i testsrc2=size=1280x720:rate=24:duration=12 -f lavfi -i sine=frequency=440:sample_rate=48000:duration=12)
# 2 s GOPs without scene-cut keyframes so every rendition cuts segments at the same times.
X264=(-c:v libx264 -preset veryfast -profile:v high -level 3.1 -pix_fmt yuv420p -g 48 -keyint_min 48 -sc_threshold 0)

# a. HLS v3, MPEG-TS segments, H.264 + AAC muxed, three variants; master written by ffmpeg.
mkdir -p "$TMP/ts" && (cd "$TMP/ts" && "${FF[@]}" "${SRC[@]}" \
  -filter_complex '[0:v]split=3[a][b][c];[a]scale=1280:720[v0];[b]scale=854:480[v1];[c]scale=640:360[v2]' \
  -map '[v0]' -map 1:a -map '[v1]' -map 1:a -map '[v2]' -map 1:a "${X264[@]}" \
  -b:v:0 2000k -b:v:1 1000k -b:v:2 500k -c:a aac -b:a 96k -ac 2 \
  -f hls -hls_time 2 -hls_playlist_type vod -hls_segment_type mpegts \
  -var_stream_map 'v:0,a:0 v:1,a:1 v:2,a:2' -master_pl_name master.m3u8 \
  -hls_segment_filename 'v%v/seg_%03d.ts' 'v%v/index.m3u8')

# b. CMAF: one set of fMP4 segments described by both HLS (EXT-X-MAP) and DASH.
#    Two video rungs, English and French audio (440 Hz / 660 Hz tones), WebVTT subtitles.
mkdir -p "$TMP/cmaf" && (cd "$TMP/cmaf" && "${FF[@]}" "${SRC[@]}" \
  -f lavfi -i sine=frequency=660:sample_rate=48000:duration=12 \
  -map 0:v -map 0:v -map 1:a -map 2:a "${X264[@]}" \
  -filter:v:0 scale=1280:720 -b:v:0 2000k -filter:v:1 scale=640:360 -b:v:1 600k \
  -c:a aac -b:a 96k -ac 2 -metadata:s:a:0 language=eng -metadata:s:a:1 language=fra \
  -f dash -seg_duration 2 -use_template 1 -use_timeline 0 -hls_playlist 1 \
  -adaptation_sets 'id=0,streams=v id=1,streams=2 id=2,streams=3' \
  -init_seg_name 'init_$RepresentationID$.m4s' -media_seg_name 'chunk_$RepresentationID$_$Number%05d$.m4s' \
  manifest.mpd)
(cd "$TMP/cmaf"
cat >subs_eng.vtt <<'EOF'
WEBVTT

00:00:00.500 --> 00:00:03.000
First subtitle cue

00:00:04.000 --> 00:00:07.000
Second subtitle cue

00:00:08.000 --> 00:00:11.500
Third subtitle cue
EOF
cat >subs_eng.m3u8 <<'EOF'
#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:12
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXTINF:12.000,
subs_eng.vtt
#EXT-X-ENDLIST
EOF
# ffmpeg's own master has no LANGUAGE and no subtitles: replace it, keeping its media_N playlists.
cat >master.m3u8 <<'EOF'
#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",LANGUAGE="eng",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="media_2.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="French",LANGUAGE="fra",DEFAULT=NO,AUTOSELECT=YES,CHANNELS="2",URI="media_3.m3u8"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="eng",DEFAULT=NO,AUTOSELECT=YES,URI="subs_eng.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=2100550,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2",AUDIO="aud",SUBTITLES="subs"
media_0.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=700550,RESOLUTION=640x360,CODECS="avc1.64001f,mp4a.40.2",AUDIO="aud",SUBTITLES="subs"
media_1.m3u8
EOF
# ffmpeg's dash muxer cannot carry WebVTT: add a side-loaded text AdaptationSet by hand.
node -e '
const fs = require("fs"), f = "manifest.mpd";
const as = `\t<AdaptationSet id="3" contentType="text" mimeType="text/vtt" lang="eng">
\t\t\t<Role schemeIdUri="urn:mpeg:dash:role:2011" value="subtitle"/>
\t\t\t<Representation id="sub_eng" bandwidth="256"><BaseURL>subs_eng.vtt</BaseURL></Representation>
\t\t</AdaptationSet>\n\t`;
fs.writeFileSync(f, fs.readFileSync(f, "utf8").replace("</Period>", as + "</Period>"));')

# Broken copies of b, one defect each: French audio init segment, subtitle file, last video segments.
for b in audio subs end; do cp -r "$TMP/cmaf" "$TMP/broken-$b"; done
rm "$TMP/broken-audio/init_3.m4s" "$TMP/broken-subs/subs_eng.vtt" "$TMP/broken-end"/chunk_[01]_00006.m4s

# run NAME WANT_RC JS_CONDITION play.mjs-args...: runs one case and checks exit code and result.
run() {
  local name=$1 want=$2 cond=$3 rc=0; shift 3
  node play.mjs "$@" >"$TMP/$name.json" || rc=$?
  echo "$name: $(cat "$TMP/$name.json")"
  if [[ $rc == "$want" ]] && node -e '
      const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      const lang2 = (ts) => ts.map((t) => String(t.lang).slice(0, 2)).join(",");
      const err = (re) => d.errors.some((e) => re.test(`${e.url ?? ""} ${e.message ?? ""}`));
      process.exit(eval(process.argv[2]) ? 0 : 1);' "$TMP/$name.json" "$cond"; then
    echo "PASS $name (exit $rc)"; passed=$((passed + 1))
  else
    echo "FAIL $name (exit $rc, wanted $want; condition: $cond)"; failed=$((failed + 1))
  fi
}
ALL=(--switch-audio --subtitles --seek-end)
CMAF_OK='d.levels.length === 2 && lang2(d.audioTracks) === "en,fr" && d.audioSwitched === true
  && d.cues === 3 && d.firstCue === "First subtitle cue" && d.reachedEnd === true && Math.abs(d.duration - 12) < 0.2'

run ts-hls 0 'd.levels.length === 3 && d.reachedEnd === true && Math.abs(d.duration - 12) < 0.2' \
  --dir "$TMP/ts" --player hls --seek-end
run cmaf-hls 0 "$CMAF_OK" --dir "$TMP/cmaf" --player hls "${ALL[@]}"
run cmaf-dash 0 "$CMAF_OK" --dir "$TMP/cmaf" --player dash "${ALL[@]}"

# Negative cases: each check must be able to fail, for the right reason.
run neg-ts-no-mpd 1 'd.failed.includes("play") && err(/manifest\.mpd/)' --dir "$TMP/ts" --player dash
run neg-ts-one-audio 1 'd.failed.join() === "switchAudio,subtitles"' --dir "$TMP/ts" --player hls --switch-audio --subtitles
for p in hls dash; do
  # hls.js retries a missing segment without end, so these two rely on the timeout to stop.
  run "neg-$p-audio" 1 'd.failed.join() === "switchAudio" && err(/init_3\.m4s|chunk_3_/)' \
    --dir "$TMP/broken-audio" --player $p --switch-audio --timeout 12
  run "neg-$p-subs" 1 'd.failed.join() === "subtitles" && err(/subs_eng\.vtt/)' \
    --dir "$TMP/broken-subs" --player $p --subtitles --timeout 12
  run "neg-$p-end" 1 'd.failed.join() === "seekEnd" && err(/chunk_[01]_00006/)' \
    --dir "$TMP/broken-end" --player $p --seek-end --timeout 12
done

echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
